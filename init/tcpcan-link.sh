# shellcheck shell=sh
# Sourced by the tcpcan init script (init/tcpcan.init) before it starts
# tcpcan, as root; installed as /usr/share/tcpcan/tcpcan-link.sh. Not a
# program: it only defines can_setup and rcvbuf_setup. Busybox images have
# no network manager to set a CAN controller up, and may apply no sysctl.d
# files at boot: this does both from /etc/default/tcpcan. With the shipped
# settings it changes nothing but net.core.rmem_max (below).

# ip_link ARGS...: ip link set dev TCPCAN_CANIF ARGS; on failure prints the
# command and its complaint.
ip_link() {
	if ! out=$(ip link set dev "$TCPCAN_CANIF" "$@" 2>&1); then
		echo "ip link set dev $TCPCAN_CANIF $*: $out"
		return 1
	fi
}

# can_setup: bitrate, FD, restart-ms and queue length from the TCPCAN_CAN_*
# settings; prints why and fails if a command does.
can_setup() {
	configured=""
	case "$TCPCAN_CANIF" in
		vcan*|vxcan*) ;; # virtual: no bitrate to set
		*)
			if [ -n "$TCPCAN_CAN_BITRATE" ]; then
				set -- bitrate "$TCPCAN_CAN_BITRATE"
				[ -n "$TCPCAN_CAN_DBITRATE" ] &&
					set -- "$@" dbitrate "$TCPCAN_CAN_DBITRATE" fd on
				[ -n "$TCPCAN_CAN_RESTART_MS" ] &&
					set -- "$@" restart-ms "$TCPCAN_CAN_RESTART_MS"
				# Busybox's ip cannot set CAN parameters, and says so
				# in words that do not point at the cure.
				if ! ip -V 2>&1 | grep -q iproute2; then
					echo "TCPCAN_CAN_BITRATE needs iproute2's ip; busybox's ip cannot set CAN parameters"
					return 1
				fi
				# The bitrate can only change while the link is down.
				ip_link down || return 1
				ip_link type can "$@" || return 1
				configured="yes"
			fi;;
	esac
	if [ -n "$TCPCAN_CAN_TXQUEUELEN" ]; then
		# "qlen": the one spelling both busybox ip and iproute2 accept.
		ip_link qlen "$TCPCAN_CAN_TXQUEUELEN" || return 1
		configured="yes"
	fi
	[ -z "$configured" ] || ip_link up
}

# tcpcan asks for a 512 KiB receive queue on each CAN socket. Forcing it
# needs CAP_NET_ADMIN, which TCPCAN_USER does not get, so the kernel caps
# the request at net.core.rmem_max (212992 on a stock kernel: ~550 frames
# instead of ~1,360). The package's /usr/lib/sysctl.d/30-tcpcan.conf raises
# it where something applies sysctl.d files at boot; oe-core's sysvinit and
# busybox images apply none, so raise it here, as root, before dropping to
# the user. Never lower it: other software may want more. If /proc/sys is
# read-only (a container), tcpcan still starts, with the smaller queue.
RCVBUF="524288"

rcvbuf_setup() {
	[ -n "$TCPCAN_USER" ] || return 0 # as root, tcpcan forces its queue
	# cat, not read: a sysctl file answers only a read from offset 0, and
	# the shell's read takes a byte at a time.
	limit=$(cat /proc/sys/net/core/rmem_max 2>/dev/null)
	case "$limit" in
		""|*[!0-9]*) return 0;;
	esac
	[ "$limit" -ge "$RCVBUF" ] && return 0
	{ echo "$RCVBUF" >/proc/sys/net/core/rmem_max; } 2>/dev/null || :
}
