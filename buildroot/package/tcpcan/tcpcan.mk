################################################################################
#
# tcpcan
#
################################################################################

# The maintainer bumps the version here at each release (tag v<version>),
# then regenerates tcpcan.hash (see docs/packaging.md).
TCPCAN_VERSION = 0.1.0
TCPCAN_SITE = $(call github,tcpcan,tcpcan,v$(TCPCAN_VERSION))
TCPCAN_LICENSE = MIT or Apache-2.0
TCPCAN_LICENSE_FILES = LICENSE-MIT LICENSE-APACHE
TCPCAN_USERS = tcpcan -1 tcpcan -1 * - - - tcpcan daemon

# The start script, unit and settings file live in init/ of the source
# tree: one copy for Buildroot, Yocto and hand installs.
define TCPCAN_INSTALL_SETTINGS
	$(INSTALL) -D -m 0644 $(@D)/init/tcpcan.default \
		$(TARGET_DIR)/etc/default/tcpcan
endef
TCPCAN_POST_INSTALL_TARGET_HOOKS += TCPCAN_INSTALL_SETTINGS

define TCPCAN_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(@D)/init/tcpcan.init \
		$(TARGET_DIR)/etc/init.d/S60tcpcan
endef

# tcpcan@.service: one more CAN interface per instance (tcpcan@can1), as
# /etc/default/tcpcan.can1 does for the start script.
define TCPCAN_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/init/tcpcan.service \
		$(TARGET_DIR)/usr/lib/systemd/system/tcpcan.service
	$(INSTALL) -D -m 0644 $(@D)/init/tcpcan@.service \
		$(TARGET_DIR)/usr/lib/systemd/system/tcpcan@.service
endef

$(eval $(cargo-package))
