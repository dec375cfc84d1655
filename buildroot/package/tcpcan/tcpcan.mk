################################################################################
#
# tcpcan
#
################################################################################

# Built from the tcpcan tree this BR2_EXTERNAL is part of, as it stands: a
# clone needs no release, no download and no archive hash. A tagged,
# downloaded release instead is a documented release step
# (docs/packaging.md, "Building a release from a download").
TCPCAN_VERSION = 0.1.0
TCPCAN_SITE = $(BR2_EXTERNAL_TCPCAN_PATH)/..
TCPCAN_SITE_METHOD = local
# Not source: build output (target/ can hold gigabytes), and the developers'
# cross-build settings, which the vendoring below replaces as Buildroot's
# vendoring replaces them in a downloaded archive.
TCPCAN_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude /target --exclude /bench/target --exclude /dist \
	--exclude /.cargo/config.toml
TCPCAN_LICENSE = MIT or Apache-2.0
TCPCAN_LICENSE_FILES = LICENSE-MIT LICENSE-APACHE
TCPCAN_USERS = tcpcan -1 tcpcan -1 * - - - tcpcan daemon

# Buildroot vendors the crates of a downloaded archive at download time; a
# local tree is rsynced instead, and the build runs offline. So vendor them
# here the way Buildroot does (VENDOR/ and the .cargo/config.toml that
# cargo vendor prints), with Buildroot's cargo and CARGO_HOME: by the
# configure step host-rustc is built. This is the one step of a build from
# the clone that reaches crates.io.
define TCPCAN_VENDOR_CRATES
	mkdir -p $(@D)/.cargo $(BR_CARGO_HOME)
	cd $(@D) && $(TARGET_MAKE_ENV) $(PKG_COMMON_CARGO_ENV) \
		flock $(BR_CARGO_HOME)/.br-lock \
		cargo vendor --manifest-path Cargo.toml --locked VENDOR \
		> $(@D)/.cargo/config.toml
endef
TCPCAN_PRE_CONFIGURE_HOOKS += TCPCAN_VENDOR_CRATES

# The start script, unit and settings file live in init/ of the source
# tree: one copy for Buildroot, Yocto and hand installs. The sysctl file
# gives the unprivileged daemon the CAN receive queue it asks for; systemd
# and S02sysctl (busybox's or procps-ng's) apply it at boot.
define TCPCAN_INSTALL_SETTINGS
	$(INSTALL) -D -m 0644 $(@D)/init/tcpcan.default \
		$(TARGET_DIR)/etc/default/tcpcan
	$(INSTALL) -D -m 0644 $(@D)/init/tcpcan.sysctl.conf \
		$(TARGET_DIR)/usr/lib/sysctl.d/30-tcpcan.conf
endef
TCPCAN_POST_INSTALL_TARGET_HOOKS += TCPCAN_INSTALL_SETTINGS

# The script sources its CAN link and receive-queue set-up from
# /usr/share/tcpcan/tcpcan-link.sh.
define TCPCAN_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(@D)/init/tcpcan.init \
		$(TARGET_DIR)/etc/init.d/S60tcpcan
	$(INSTALL) -D -m 0644 $(@D)/init/tcpcan-link.sh \
		$(TARGET_DIR)/usr/share/tcpcan/tcpcan-link.sh
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
