#!/usr/bin/env bash
# Builds a gzip'd cpio (newc) initramfs for the ARM test VMs from the Debian
# kernel and busybox-static that tests/deps/arm.sh unpacked under
# target/arm-vm/cache/<arch>/root.
#
# Usage: tests/arm/mkinitramfs.sh ARCH TCPCAN_BINARY OUT [MODE]
#   ARCH  arm64 | armhf (Debian architecture of the cached kernel/busybox)
#   MODE  test (default): /init is guest/test-init: sets the VM up, runs
#         tcpcan itself and takes commands from the console (tests/arm/vm.py)
#         boot: busybox init is PID 1 (/sbin/init, /etc/inittab); rcS runs
#         /etc/init.d/S??*: the VM set-up, then the project's init script
#         (init/tcpcan.init as S60tcpcan, settings from init/tcpcan.default)
#         as an image built by Buildroot would.
set -euo pipefail

[ "$#" -ge 3 ] || { echo "usage: $0 ARCH TCPCAN_BINARY OUT [test|boot]" >&2; exit 2; }
arch=$1 bin=$2 out=$3 mode=${4:-test}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=$repo/target/arm-vm/cache/$arch/root

[ -x "$cache/bin/busybox" ] || { echo "mkinitramfs: no $cache (run tests/deps/arm.sh)" >&2; exit 1; }
kver=$(ls "$cache/lib/modules")
moddir=$cache/lib/modules/$kver
[ -f "$moddir/modules.dep" ] || { echo "mkinitramfs: no modules.dep in $moddir" >&2; exit 1; }

stage=$(mktemp -d "$repo/target/arm-vm/stage-XXXXXX")
trap 'rm -rf "$stage"' EXIT
# The initramfs stays the writable root (ramfs): no tmpfs needed for /var/run.
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,var/run,var/log,etc/init.d,etc/default,root}

# busybox and the applets the guest scripts and init/tcpcan.init use. The
# binary is foreign (ARM), so the links are made here rather than with
# `busybox --install` inside; a missing applet shows as "not found".
cp "$cache/bin/busybox" "$stage/bin/busybox"
for a in sh ash cat echo printf test [ true false sleep usleep mkdir rm ln ls ps \
    kill dmesg mount umount mknod chmod grep sed cut head tail tr date id uname hostname \
    insmod ip ifconfig route logger logread timeout setsid; do
    ln -s busybox "$stage/bin/$a"
done
for a in init poweroff reboot halt syslogd klogd start-stop-daemon; do
    ln -s ../bin/busybox "$stage/sbin/$a"
done
# The kernel opens /dev/console before it runs init; devtmpfs comes later.
mknod -m 600 "$stage/dev/console" c 5 1

# Modules with their dependencies first, in the order of modules.dep.
# virtio_net and virtio_mmio are modules in Debian's kernels; so is CAN.
declare -A seen=()
order=()
add_mod() { # <path relative to moddir>
    local path=$1 dep line
    [ -n "${seen[$path]:-}" ] && return 0
    seen[$path]=1
    line=$(grep -m1 "^$path:" "$moddir/modules.dep") || { echo "mkinitramfs: $path not in modules.dep" >&2; exit 1; }
    for dep in ${line#*:}; do add_mod "$dep"; done
    order+=("$path")
}
for name in virtio_mmio virtio_net can can-raw can-dev vcan; do
    path=$(grep -oE "^[^:]*/$name\.ko(\.xz|\.zst)?:" "$moddir/modules.dep" | head -n1 | tr -d :)
    [ -n "$path" ] || { echo "mkinitramfs: module $name not found for $kver" >&2; exit 1; }
    add_mod "$path"
done
for path in "${order[@]}"; do
    mkdir -p "$stage/lib/modules/$kver/$(dirname "$path")"
    cp "$moddir/$path" "$stage/lib/modules/$kver/$path"
    echo "/lib/modules/$kver/$path"
done >"$stage/etc/vm-modules"

install -m 0755 "$bin" "$stage/usr/bin/tcpcan"
install -m 0755 "$here/guest/S05vmsetup" "$stage/etc/init.d/S05vmsetup"
printf 'root:x:0:0:root:/root:/bin/sh\ntcpcan:x:999:999:tcpcan:/:/bin/false\n' >"$stage/etc/passwd"
printf 'root:x:0:\ntcpcan:x:999:\n' >"$stage/etc/group"

case $mode in
test)
    install -m 0755 "$here/guest/test-init" "$stage/init" ;;
boot)
    install -m 0644 "$here/guest/inittab" "$stage/etc/inittab"
    install -m 0755 "$here/guest/rcS" "$stage/etc/init.d/rcS"
    install -m 0755 "$here/guest/rcK" "$stage/etc/init.d/rcK"
    install -m 0755 "$repo/init/tcpcan.init" "$stage/etc/init.d/S60tcpcan"
    install -D -m 0644 "$repo/init/tcpcan-link.sh" "$stage/usr/share/tcpcan/tcpcan-link.sh"
    # The shipped settings, changed the way a user would: the VM's vcan0,
    # reachable through QEMU's port forward.
    sed -e 's/^TCPCAN_CANIF=.*/TCPCAN_CANIF="vcan0"/' \
        -e 's/^TCPCAN_HOST=.*/TCPCAN_HOST="0.0.0.0"/' \
        "$repo/init/tcpcan.default" >"$stage/etc/default/tcpcan"
    if ! grep -q '^TCPCAN_CANIF="vcan0"$' "$stage/etc/default/tcpcan" ||
        ! grep -q '^TCPCAN_HOST="0.0.0.0"$' "$stage/etc/default/tcpcan"; then
        echo "mkinitramfs: init/tcpcan.default has no TCPCAN_CANIF/TCPCAN_HOST line to set" >&2
        exit 1
    fi
    ;;
*) echo "mkinitramfs: unknown mode $mode" >&2; exit 2 ;;
esac

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n >"$out"
