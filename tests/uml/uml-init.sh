#!/bin/bash
# PID 1 inside User-Mode Linux, started by run-in-uml.sh (see there).
# The kernel hands us tcpcan_uml_dir=DIR from its command line: DIR holds
# env.sh and cmd.sh from the host, and receives the result file `rc`.
# PID 1 must never exit (the kernel would panic): every path ends in
# power_off.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
dir=${tcpcan_uml_dir:-}

log() {
	echo "uml-init: $*" >&2
}

power_off() {
	sync
	# busybox's poweroff -f calls reboot(2) directly; sysrq is the fallback.
	busybox poweroff -f 2>/dev/null || poweroff -f 2>/dev/null ||
		echo o >/proc/sysrq-trigger
	sleep 10
}

# A setup failure: say why on the console and in a file the host reads.
fatal() {
	log "FATAL: $*"
	[ -n "$dir" ] && echo "$*" >"$dir/init_error"
	power_off
}

if [ -z "$dir" ] || [ ! -d "$dir" ]; then
	fatal "no tcpcan_uml_dir on the kernel command line"
fi

mountpoint -q /proc || mount -t proc proc /proc || fatal "cannot mount /proc"
mountpoint -q /sys || mount -t sysfs sysfs /sys || fatal "cannot mount /sys"
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev || fatal "cannot mount /dev"
mkdir -p /dev/pts /dev/shm
mountpoint -q /dev/pts || mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mountpoint -q /dev/shm || mount -t tmpfs -o mode=1777 tmpfs /dev/shm
# The host's /run holds its sockets and pid files: hide them. /tmp stays the
# host's: files pass through it.
mount -t tmpfs -o mode=0755 tmpfs /run

# tty1 goes to the host's stdout. The tty layer would turn \n into \r\n.
out=/dev/console
if [ -c /dev/tty1 ]; then
	out=/dev/tty1
fi
stty -F "$out" -onlcr 2>/dev/null
stty -F /dev/console -onlcr 2>/dev/null

# Modules: modprobe resolves dependencies but looks in ROOT/lib/modules/$(uname -r);
# the UML package keeps them elsewhere, so point a private root at them.
kver=$(uname -r)
modbase=/usr/lib/uml/modules
[ -s "$dir/moddir" ] && modbase=$(cat "$dir/moddir")
moddir=$modbase/$kver
[ -d "$moddir" ] || fatal "no UML modules for kernel $kver in $modbase"
mkdir -p "$dir/modroot/lib/modules"
ln -sfn "$moddir" "$dir/modroot/lib/modules/$kver"
command -v modprobe >/dev/null || fatal "modprobe not found (install kmod)"
for m in can can-raw can-dev vcan; do
	modprobe -d "$dir/modroot" "$m" || fatal "cannot load required module $m"
done
loaded="can can-raw can-dev vcan"
missing=
# Best effort: ipv6 for dual-stack listening, the rest for other test areas.
for m in ipv6 can-gw can-bcm vxcan veth sch_netem sch_tbf; do
	# Newer kernels build ipv6 in.
	if [ "$m" = ipv6 ] && [ -e /proc/net/if_inet6 ]; then
		loaded="$loaded $m"
	elif modprobe -q -d "$dir/modroot" "$m" 2>/dev/null; then
		loaded="$loaded $m"
	else
		missing="$missing $m"
	fi
done
log "modules loaded: $loaded${missing:+; NOT loaded:$missing}"

ip link set lo up || fatal "cannot bring lo up"

read -r up _ </proc/uptime
date +%s%N >"$dir/ready_ns"
log "kernel $kver ready after ${up}s of kernel uptime"

# The caller's environment, then a PATH that still has the sbin directories.
# shellcheck source=/dev/null
. "$dir/env.sh"
case ":$PATH:" in
*:/usr/sbin:*) ;;
*) PATH=$PATH:/usr/sbin:/sbin ;;
esac
export PATH
export TCPCAN_IN_UML=1
# Where modprobe finds this kernel's modules (tests that unload and reload CAN).
export TCPCAN_UML_MODROOT="$dir/modroot"

bash "$dir/cmd.sh" >"$out" 2>/dev/console </dev/null
rc=$?
echo "$rc" >"$dir/rc.tmp" && mv "$dir/rc.tmp" "$dir/rc"
power_off
