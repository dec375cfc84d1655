# nooelint: oelint.var.bbclassextend,oelint.var.mandatoryvar.HOMEPAGE,oelint.var.suggestedvar.BUGTRACKER - a daemon with init files and a system user has no use as native; no HOMEPAGE or BUGTRACKER until the project's public repository is decided (no guessed URL)
SUMMARY = "Tunnel a Linux SocketCAN interface over TCP"
DESCRIPTION = "tcpcan forwards the frames of a SocketCAN interface over TCP, \
               as a server or as a client; it speaks the protocol of the \
               Python tcpcan 0.0.2. The package starts it at boot from \
               /etc/init.d (busybox or SysV init) or as tcpcan.service \
               (systemd), configured in /etc/default/tcpcan."
SECTION = "net"
LICENSE = "MIT | Apache-2.0"
CVE_PRODUCT = "tcpcan"
LIC_FILES_CHKSUM = "file://LICENSE-MIT;md5=fd445c0622eee9f5f53c8ed6ff4c9276 \
                    file://LICENSE-APACHE;md5=3b83ef96387f14655fc854ddc3c6bd57"

# TCPCAN_GIT_URI: the repository SRCREV is fetched from, the one place that
# names it. The project's public repository is not decided yet, so by
# default it is the tcpcan repository this layer is part of (this file sits
# four directories below its top): a clone fetches from itself, with no
# release and no network. Once the public one exists, a distro or local.conf
# sets e.g. TCPCAN_GIT_URI = "git://<host>/<path>.git;protocol=https".
# To build a working tree with uncommitted changes instead, use externalsrc
# (the layer README).
TCPCAN_GIT_URI ??= "git://${@os.path.normpath(d.getVar('FILE_DIRNAME') + '/../../../..')};protocol=file"

# nobranch=1: SRCREV is taken from wherever the repository holds it, not
# only from a branch main. kas and CI check the layer out detached, often
# with no local branch at all, and the fetcher's clone of a local path
# copies every object; from a server it fetches every ref (refs/*), so
# SRCREV must be on a branch or tag there. tests/packaging/yocto_fetch.py
# fetches it the fetcher's way from detached clones.
# destsuffix=${BP} and no S line: the checkout lands in the default S on
# scarthgap (${WORKDIR}/${BP}) and on whinlatter and later
# (${UNPACKDIR}/${BP}). The maintainer moves SRCREV (and PV) at each release
# and then regenerates tcpcan-crates.inc (see the layer README).
PV = "0.1.0+git"
SRC_URI = "${TCPCAN_GIT_URI};nobranch=1;destsuffix=${BP}"
SRCREV = "071040deca0d585dbdcaf9560283a5c4eb72eee2"

inherit cargo cargo-update-recipe-crates update-rc.d systemd useradd

require tcpcan-crates.inc

# `bitbake -c update_crates tcpcan` lists the crates of every Cargo.lock it
# finds under CARGO_LOCK_SRC_DIR (default ${S}, walked down to the last
# directory; only .git and .pc are skipped, on scarthgap to wrynose alike).
# ${S} also holds fuzz/Cargo.lock, whose crates (libfuzzer-sys, arbitrary,
# cc, ...) nothing built here uses, and the class has no way to leave a file
# out: so the task reads a directory that holds only the root Cargo.lock.
CARGO_LOCK_SRC_DIR = "${WORKDIR}/update-crates"
do_update_crates[cleandirs] = "${CARGO_LOCK_SRC_DIR}"
do_update_crates:prepend() {
    cp ${S}/Cargo.lock ${CARGO_LOCK_SRC_DIR}/
}

# The init script, the unit and the settings file come from init/ of the
# source tree itself: one copy for Yocto, Buildroot and hand installs.
do_install:append() {
    install -D -m 0644 ${S}/init/tcpcan.default ${D}${sysconfdir}/default/tcpcan
    install -D -m 0755 ${S}/init/tcpcan.init ${D}${INIT_D_DIR}/tcpcan
    # What the script sources for the CAN link and receive-queue set-up.
    install -D -m 0644 ${S}/init/tcpcan-link.sh ${D}${datadir}/tcpcan/tcpcan-link.sh
    # What the script sources for the CAN link and receive-queue set-up.
    install -D -m 0644 ${S}/init/tcpcan-link.sh ${D}${datadir}/tcpcan/tcpcan-link.sh
    install -D -m 0644 ${S}/init/tcpcan.service ${D}${systemd_system_unitdir}/tcpcan.service
    install -D -m 0644 ${S}/init/tcpcan@.service ${D}${systemd_system_unitdir}/tcpcan@.service
    # The CAN receive queue the unprivileged daemon asks for: systemd-sysctl
    # applies this at boot; under sysvinit and busybox the init script
    # raises the limit itself (oe-core applies only /etc/sysctl.conf there).
    install -D -m 0644 ${S}/init/tcpcan.sysctl.conf ${D}${nonarch_libdir}/sysctl.d/30-tcpcan.conf
    # update-rc.d links the script only with sysvinit in DISTRO_FEATURES.
    # Under INIT_MANAGER = "mdev-busybox" nothing would start tcpcan, yet
    # busybox's rcS runs /etc/rc5.d/S??*: link it there ourselves.
    if ${@oe.utils.conditional('VIRTUAL-RUNTIME_init_manager', 'busybox', 'true', 'false', d)} && \
       ${@bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'false', 'true', d)}; then
        install -d ${D}${sysconfdir}/rc5.d
        ln -sf ../init.d/tcpcan ${D}${sysconfdir}/rc5.d/S60tcpcan
    fi
}

FILES:${PN} += "${nonarch_libdir}/sysctl.d"
CONFFILES:${PN} = "${sysconfdir}/default/tcpcan"

INITSCRIPT_NAME = "tcpcan"
INITSCRIPT_PARAMS = "defaults 60 40"

# The class packages tcpcan@.service along with tcpcan.service. Each further
# CAN interface is an instance NAME: /etc/default/tcpcan.NAME (from a
# bbappend or the image), which the init script starts once
# TCPCAN_INSTANCES in /etc/default/tcpcan names it, and under systemd
# SYSTEMD_SERVICE:${PN}:append = " tcpcan@NAME.service" in a bbappend.
SYSTEMD_SERVICE:${PN} = "tcpcan.service"

# tcpcan runs as this system user (TCPCAN_USER, User= in the unit): raw CAN
# sockets need no privileges.
USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --no-create-home --home-dir /nonexistent --shell /bin/false --user-group tcpcan"
