#!/bin/bash
# The init script exercised for real: run inside User-Mode Linux by
# tests/packaging/run.sh (through tests/uml/run-in-uml.sh), with every
# busybox applet first in PATH, busybox syslogd receiving the logs, and the
# script and settings file installed byte for byte as the recipes install
# them. Needs the tcpcan binary (TCPCAN_BIN).
#
# Prints "ok - ..." or "not ok - ..." per check; exit status 1 if any failed.
#
# The helpers below are called through check "$@", which shellcheck cannot see.
# shellcheck disable=SC2317
set -uo pipefail

repo=$(pwd)
bin=${TCPCAN_BIN:-target/release/tcpcan}
case $bin in
/*) ;;
*) bin=$repo/$bin ;;
esac

failed=0
ok() { echo "ok - $*"; }
not_ok() {
	echo "not ok - $*"
	failed=1
}
# check DESCRIPTION CMD...: one check from a command's exit status.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

if [ "${TCPCAN_IN_UML:-}" != 1 ]; then
	echo "not ok - $0 must run inside UML (tests/uml/run-in-uml.sh)"
	exit 1
fi
if [ ! -x "$bin" ]; then
	echo "not ok - no tcpcan binary at $bin (TCPCAN_BIN; cargo build --release)"
	exit 1
fi
iproute2=$(command -v ip) || {
	echo "not ok - iproute2's ip not found"
	exit 1
}
busybox=$(command -v busybox) || {
	echo "not ok - busybox not found (busybox-static)"
	exit 1
}
if ! command -v cangen >/dev/null || ! command -v cansend >/dev/null; then
	echo "not ok - can-utils' cangen and cansend not found"
	exit 1
fi

# The interpreter itself: a pyenv shim costs seconds per start in UML.
python=$(python3 -c 'import sys; print(sys.executable)') || {
	echo "not ok - python3 not found"
	exit 1
}

# Readable by "nobody", whom the daemon runs as.
tmp=$(mktemp -d /tmp/tcpcan-pkg-XXXXXX)
chmod 0755 "$tmp"
cleanup() {
	[ -n "${syslogd_pid:-}" ] && kill "$syslogd_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# The installed layout: the script as Buildroot names it, mode 0755, and
# the link set-up it sources.
mkdir -p "$tmp/etc/init.d" "$tmp/etc/default" "$tmp/usr/bin" "$tmp/busybox"
initscript=$tmp/etc/init.d/S60tcpcan
install -m 0755 init/tcpcan.init "$initscript"
install -D -m 0644 init/tcpcan-link.sh "$tmp/usr/share/tcpcan/tcpcan-link.sh"
install -m 0755 "$bin" "$tmp/usr/bin/tcpcan"
settings=$tmp/etc/default/tcpcan
export TCPCAN_DEFAULTS=$settings TCPCAN_DAEMON=$tmp/usr/bin/tcpcan \
	TCPCAN_LINK=$tmp/usr/share/tcpcan/tcpcan-link.sh
unset TCPCAN_PIDFILE
pidfile=/var/run/tcpcan.pid # /run is a tmpfs private to UML
pidfile1=/var/run/tcpcan.can1.pid

# A busybox system: every applet before the host's tools.
for applet in $("$busybox" --list); do
	ln -s "$busybox" "$tmp/busybox/$applet"
done
export PATH=$tmp/busybox:$PATH

# The shipped settings file, then this test's overrides appended to it.
settings() {
	cp init/tcpcan.default "$settings"
	printf '%s\n' "$@" >>"$settings"
}

# initscript ACTION [NAME]: run it as busybox init would, output in $tmp/out.
initscript() {
	timeout 30 "${TCPCAN_SH:-sh}" "$initscript" "$@" >"$tmp/out" 2>&1
	rc=$?
	sed 's/^/    | /' "$tmp/out"
	return "$rc"
}
output_has() { grep -qF -- "$1" "$tmp/out"; }
daemon_pid() { cat "$pidfile" 2>/dev/null; }
# exchange CANIF [PORT]: frames cross the server on PORT both ways.
exchange() { timeout 20 "$python" tests/packaging/v1_exchange.py 127.0.0.1 "${2:-20010}" "$1"; }
# The process is gone (or a zombie, which busybox init would reap).
gone() { ! [ -e "/proc/$1/exe" ] || ! readlink "/proc/$1/exe" >/dev/null 2>&1; }
# differs A B: A is set and not B.
differs() { [ -n "$1" ] && [ "$1" != "$2" ]; }
nothing_on() { ! timeout 5 bash -c "echo >/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
link_up() { "$iproute2" link show dev "$1" | grep -qE "[<,]UP[,>]"; }
still_runs() { [ "$(daemon_pid)" = "$1" ] && ! gone "$1"; }
both_gone() { gone "$1" && gone "$2"; }
# The pidfile names a running tcpcan.
running() { [ "$(readlink "/proc/$(cat "$1" 2>/dev/null)/exe")" = "$tmp/usr/bin/tcpcan" ]; }
both_running() { running "$pidfile" && running "$pidfile1"; }
syslog_has() {
	for _ in $(seq 20); do
		grep -qF -- "$1" "$tmp/messages" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

"$busybox" syslogd -n -O "$tmp/messages" &
syslogd_pid=$!
if ! "$iproute2" link add dev vcan0 type vcan ||
	! "$iproute2" link set dev vcan0 up; then
	not_ok "set up vcan0"
fi

echo "# start/status/restart/stop as user nobody, logs to syslog"
settings 'TCPCAN_CANIF="vcan0"' 'TCPCAN_HOST="127.0.0.1"' \
	'TCPCAN_USER="nobody"' 'TCPCAN_CAN_TXQUEUELEN="100"'
initscript start
check "start exits 0" [ "$rc" -eq 0 ]
check "start says OK" output_has "Starting tcpcan: OK"
pid1=$(daemon_pid)
check "pidfile names the tcpcan process" \
	[ "$(readlink "/proc/${pid1:-none}/exe")" = "$tmp/usr/bin/tcpcan" ]
check "tcpcan runs as nobody" \
	grep -qE "^Uid:[[:space:]]+65534[[:space:]]" "/proc/${pid1:-none}/status"
check "TCPCAN_CAN_TXQUEUELEN set with busybox ip" \
	[ "$(cat /sys/class/net/vcan0/tx_queue_len)" = 100 ]
initscript status
check "status exits 0 while running" [ "$rc" -eq 0 ]
check "status names the pid" output_has "running (pid $pid1)"
check "tunnel carries frames both ways" exchange vcan0
check "tcpcan's stderr reaches syslog through logger" syslog_has "tcpcan: [INFO]"
initscript start
check "start while running exits 0" [ "$rc" -eq 0 ]
check "start while running says so" output_has "already running"
# Boot scripts and ssh sessions wait for every holder of their output.
check "restart returns without holding its output open" \
	timeout 20 bash -c "[ \"\$(sh '$initscript' restart)\" != '' ]"
pid1=$(daemon_pid)
initscript restart
check "restart exits 0" [ "$rc" -eq 0 ]
pid2=$(daemon_pid)
check "restart replaced the process" differs "$pid2" "$pid1"
check "old process gone after restart" gone "$pid1"
check "tunnel works after restart" exchange vcan0
initscript stop
check "stop exits 0" [ "$rc" -eq 0 ]
check "stop says OK" output_has "Stopping tcpcan: OK"
check "stop removes the pidfile" [ ! -e "$pidfile" ]
check "stop ends tcpcan" gone "$pid2"
initscript status
check "status exits 3 when stopped" [ "$rc" -eq 3 ]
initscript stop
check "stop when stopped exits 0" [ "$rc" -eq 0 ]

echo "# bad settings make start fail with a clear message"
# The script checks only what is its own (TCPCAN_MODE); tcpcan and
# start-stop-daemon say the rest in one line each, which reaches syslog.
settings 'TCPCAN_MODE="sever"' 'TCPCAN_CANIF="vcan0"' 'TCPCAN_USER="nobody"'
initscript start
check "start with a misspelt TCPCAN_MODE exits 1" [ "$rc" -eq 1 ]
check "start names the bad TCPCAN_MODE" \
	output_has "Starting tcpcan: FAIL (TCPCAN_MODE must be server or client, not 'sever'"
settings 'TCPCAN_CANIF="vcan9"' 'TCPCAN_USER="nobody"'
initscript start
check "start with a missing interface exits 1" [ "$rc" -eq 1 ]
check "start says tcpcan exited at start-up" \
	output_has "Starting tcpcan: FAIL (tcpcan exited at start-up; its reason is in syslog)"
check "no pidfile after a failed start" [ ! -e "$pidfile" ]
check "tcpcan names the missing interface in syslog" \
	syslog_has "no such CAN interface: vcan9"
settings 'TCPCAN_CANIF="lo"' 'TCPCAN_USER="nobody"'
initscript start
check "start on a non-CAN interface exits 1" [ "$rc" -eq 1 ]
check "tcpcan says lo is not a CAN interface, in syslog" \
	syslog_has "lo is not a CAN interface"
# A mistake only tcpcan itself notices: it exits at once.
settings 'TCPCAN_CANIF="vcan0"' 'TCPCAN_USER="nobody"' \
	'TCPCAN_ARGS="--no-such-option"'
initscript start
check "start fails when tcpcan exits at start-up" [ "$rc" -eq 1 ]
check "start says tcpcan exited at start-up" output_has "exited at start-up"
check "no pidfile after tcpcan exited" [ ! -e "$pidfile" ]
check "tcpcan's reason is in syslog" syslog_has "--no-such-option"
settings 'TCPCAN_CANIF="vcan0"' 'TCPCAN_USER="nosuchuser"'
initscript start
check "start with an unknown user exits 1" [ "$rc" -eq 1 ]
check "start-stop-daemon names the unknown user, in syslog" syslog_has "nosuchuser"

echo "# CAN controller set-up"
"$iproute2" link add dev can0 type vcan
settings 'TCPCAN_CANIF="can0"' 'TCPCAN_HOST="127.0.0.1"' 'TCPCAN_USER=""' \
	'TCPCAN_CAN_BITRATE="500000"'
initscript start
check "with busybox's ip, a bitrate setting fails" [ "$rc" -eq 1 ]
check "and the message says iproute2's ip is needed" \
	output_has "FAIL (TCPCAN_CAN_BITRATE needs iproute2's ip"
# vcan has no bitrate, so a stand-in ip records the calls. Debian's
# busybox-static prefers its own applets to PATH, unlike image builds of
# busybox, so this part runs under dash, which honours PATH.
cat >"$tmp/ip" <<EOF
#!/bin/sh
if [ "\$*" = -V ]; then
	echo "ip utility, iproute2-stand-in"
	exit 0
fi
echo "ip \$*" >>"$tmp/ip.log"
case " \$* " in
*" type can "*) exit 0 ;;
esac
exec "$busybox" ip "\$@"
EOF
chmod 0755 "$tmp/ip"
settings 'TCPCAN_CANIF="can0"' 'TCPCAN_HOST="127.0.0.1"' 'TCPCAN_USER=""' \
	'TCPCAN_CAN_BITRATE="500000"' 'TCPCAN_CAN_DBITRATE="2000000"' \
	'TCPCAN_CAN_RESTART_MS="100"' 'TCPCAN_CAN_TXQUEUELEN="64"'
PATH=$tmp:$PATH TCPCAN_SH=dash initscript start
check "start with CAN set-up exits 0" [ "$rc" -eq 0 ]
cat >"$tmp/ip.expected" <<EOF
ip link set dev can0 down
ip link set dev can0 type can bitrate 500000 dbitrate 2000000 fd on restart-ms 100
ip link set dev can0 qlen 64
ip link set dev can0 up
EOF
check "ip commands: down, bitrate/dbitrate/restart-ms, qlen, up" \
	cmp -s "$tmp/ip.expected" "$tmp/ip.log"
check "can0 is up" link_up can0
check "tunnel works on can0" exchange can0
initscript stop
check "stop after CAN set-up exits 0" [ "$rc" -eq 0 ]

echo "# TCPCAN_LOG=none: start-stop-daemon --background"
settings 'TCPCAN_CANIF="vcan0"' 'TCPCAN_HOST="127.0.0.1"' 'TCPCAN_USER="nobody"' \
	'TCPCAN_LOG="none"'
initscript start
check "start with TCPCAN_LOG=none exits 0" [ "$rc" -eq 0 ]
check "tunnel works with TCPCAN_LOG=none" exchange vcan0
pid=$(daemon_pid)
initscript stop
check "stop with TCPCAN_LOG=none exits 0" [ "$rc" -eq 0 ]
check "stop with TCPCAN_LOG=none ends tcpcan" gone "$pid"

echo "# run: the foreground form for an inittab respawn line"
sh "$initscript" run >"$tmp/out" 2>&1 &
run_pid=$!
sleep 0.5
check "run execs tcpcan in place" \
	[ "$(readlink "/proc/$run_pid/exe")" = "$tmp/usr/bin/tcpcan" ]
check "tunnel works under run" exchange vcan0
kill "$run_pid"
wait "$run_pid"
check "tcpcan under run exits 0 on SIGTERM" [ "$?" -eq 0 ]

echo "# two CAN interfaces: instance can1 beside the first, by settings alone"
"$iproute2" link add dev vcan1 type vcan
"$iproute2" link set dev vcan1 up
settings 'TCPCAN_CANIF="vcan0"' 'TCPCAN_HOST="127.0.0.1"' 'TCPCAN_USER="nobody"' \
	'TCPCAN_INSTANCES="can1"'
printf '%s\n' 'TCPCAN_CANIF="vcan1"' 'TCPCAN_PORT="20011"' >"$settings.can1"
# What package managers and editors leave beside the files: copies of the
# shared file, with the port it had (the integrator changed it since), and
# of the instance's. None is an instance; the copies of the shared file
# would serve vcan0 a second time.
backups=".bak .orig .old .save .swp .new .dist .tmp .rpmnew .rpmsave .rpmorig
	.dpkg-dist .dpkg-old .dpkg-new .dpkg-bak .dpkg-tmp .ucf-dist .ucf-old
	.ucf-new -opkg .opkg .cfsaved ~"
for suffix in $backups; do
	sed 's/^TCPCAN_PORT=.*/TCPCAN_PORT="20019"/' "$settings" >"$settings$suffix"
	cp "$settings.can1" "$settings.can1$suffix"
done
initscript start
check "start exits 0 with two instances" [ "$rc" -eq 0 ]
check "start says OK for the first" output_has "Starting tcpcan: OK"
check "start says OK for instance can1" output_has "Starting tcpcan.can1: OK"
check "no backup file starts a tcpcan ($(wc -w <<<"$backups") suffixes)" \
	[ "$(grep -c Starting "$tmp/out")" -eq 2 ]
check "nothing listens on the backups' port" nothing_on 20019
pid0=$(daemon_pid)
pid1=$(cat "$pidfile1" 2>/dev/null)
check "instance can1 has its own pidfile and process" differs "$pid1" "$pid0"
check "instance can1 runs tcpcan as nobody" \
	grep -qE "^Uid:[[:space:]]+65534[[:space:]]" "/proc/${pid1:-none}/status"
check "tunnel on vcan0, port 20010" exchange vcan0 20010
check "tunnel on vcan1, port 20011" exchange vcan1 20011
check "instance can1 logs under its own tag" syslog_has "tcpcan.can1: [INFO]"
initscript status
check "status exits 0 with both running" [ "$rc" -eq 0 ]
check "status names instance can1" output_has "tcpcan.can1 is running (pid $pid1)"
initscript stop can1
check "stop can1 exits 0" [ "$rc" -eq 0 ]
check "stop can1 says OK for can1 only" \
	[ "$(cat "$tmp/out")" = "Stopping tcpcan.can1: OK" ]
check "stop can1 ends its tcpcan" gone "$pid1"
check "stop can1 removes its pidfile" [ ! -e "$pidfile1" ]
check "the first instance still runs" still_runs "$pid0"
check "tunnel on vcan0 still works" exchange vcan0 20010
initscript status can1
check "status can1 exits 3 when it is stopped" [ "$rc" -eq 3 ]
initscript status
check "status of all exits 3 while one is stopped" [ "$rc" -eq 3 ]
initscript start can1
check "start can1 exits 0" [ "$rc" -eq 0 ]
check "start can1 starts only can1" \
	[ "$(cat "$tmp/out")" = "Starting tcpcan.can1: OK" ]
check "tunnel on vcan1 works again" exchange vcan1 20011
initscript start nosuch
check "start of an unknown instance exits 1" [ "$rc" -eq 1 ]
check "and names its missing file" output_has "no instance 'nosuch': $settings.nosuch does not exist"
pid1=$(cat "$pidfile1" 2>/dev/null)
initscript stop
check "stop exits 0 with two instances" [ "$rc" -eq 0 ]
check "stop ends both" both_gone "$pid0" "$pid1"

echo "# two instances under busybox init respawn lines (run, run can1)"
sh "$initscript" run >"$tmp/run0.out" 2>&1 &
run0=$!
sh "$initscript" run can1 >"$tmp/run1.out" 2>&1 &
run1=$!
# run pipes tcpcan's log into logger; each pidfile names its tcpcan.
for _ in $(seq 30); do
	both_running && break
	sleep 0.1
done
check "run and run can1 both start a tcpcan" both_running
check "tunnel on vcan0 under run" exchange vcan0 20010
check "tunnel on vcan1 under run can1" exchange vcan1 20011
kill "$(cat "$pidfile1")"
wait "$run1"
check "the run can1 line ends when its tcpcan does" [ "$?" -eq 0 ]
check "tunnel on vcan0 still works under run" exchange vcan0 20010
kill "$(cat "$pidfile")"
wait "$run0"
rm -f "$settings".*

echo "# the CAN receive queue of the unprivileged daemon (net.core.rmem_max)"
# tcpcan asks for a 512 KiB receive queue per CAN socket. As root it forces
# it; as TCPCAN_USER the kernel caps it at net.core.rmem_max, which the
# script raises. Measured by what a stall costs: 1000 frames at 5 kfps
# (cangen -g 0.2, about 200 ms) while the peer or tcpcan itself is
# stopped, counted by tcpcan as kernel_overflow. The same runs as root
# must lose no fewer frames, and a run at the stock limit must lose more,
# or the burst does not measure the queue at all.
rmem_max=/proc/sys/net/core/rmem_max
rmem_was=$(cat "$rmem_max")
stock=212992 # 2 x 106,496: the kernel's default on a stock kernel
# burst peer|daemon: stop that side for the burst; sets $received (frames
# the peer got) and $overflow (tcpcan's kernel_overflow for the connection,
# from the counters line it logs when the peer closes).
burst() {
	local target before peer
	received="" overflow=""
	before=$(grep -c "kernel_overflow=" "$tmp/messages")
	"$python" tests/packaging/burst_peer.py 127.0.0.1 20010 >"$tmp/peer.out" &
	peer=$!
	for _ in $(seq 50); do
		grep -q "^ready$" "$tmp/peer.out" && break
		sleep 0.1
	done
	sleep 0.2 # the connection's CAN socket is open once version 1 is agreed
	if [ "$1" = peer ]; then target=$peer; else target=$(daemon_pid); fi
	kill -STOP "$target"
	cangen vcan0 -g 0.2 -n 1000 -I 123 -L 8 -D i || echo "    | cangen failed"
	kill -CONT "$target"
	sleep 0.5
	cansend vcan0 7FF#
	wait "$peer"
	received=$(sed -n 2p "$tmp/peer.out")
	for _ in $(seq 50); do
		[ "$(grep -c "kernel_overflow=" "$tmp/messages")" -gt "$before" ] || {
			sleep 0.1
			continue
		}
		overflow=$(grep -o "kernel_overflow=[0-9]*" "$tmp/messages" | tail -n 1 | cut -d= -f2)
		break
	done
	echo "    | $1 stopped: $received of 1000 frames arrived, kernel_overflow=$overflow"
}
# every frame either arrived or was counted as lost
accounted() { [ -n "$received" ] && [ -n "$overflow" ] && [ $((received + overflow)) -eq 1000 ]; }
# same A B: A is set and equals B.
same() { [ -n "$1" ] && [ "$1" = "$2" ]; }

echo "$stock" >"$rmem_max"
settings 'TCPCAN_CANIF="vcan0"' 'TCPCAN_HOST="127.0.0.1"' 'TCPCAN_USER=""'
initscript start
check "as root, start leaves net.core.rmem_max alone" [ "$(cat "$rmem_max")" = "$stock" ]
burst peer
check "as root, peer stopped: every frame arrived or counted" accounted
root_peer=$overflow
burst daemon
check "as root, tcpcan stopped: every frame arrived or counted" accounted
root_daemon=$overflow
initscript stop

settings 'TCPCAN_CANIF="vcan0"' 'TCPCAN_HOST="127.0.0.1"' 'TCPCAN_USER="nobody"'
initscript start
check "as nobody, start raises net.core.rmem_max from $stock to 524288" \
	[ "$(cat "$rmem_max")" = 524288 ]
burst peer
check "as nobody, peer stopped: every frame arrived or counted" accounted
check "as nobody, peer stopped: kernel_overflow=$overflow, as root $root_peer" \
	same "$overflow" "$root_peer"
burst daemon
check "as nobody, tcpcan stopped: every frame arrived or counted" accounted
check "as nobody, tcpcan stopped: kernel_overflow=$overflow, as root $root_daemon" \
	same "$overflow" "$root_daemon"
# Each connection opens its CAN socket, so the next one gets the stock cap.
echo "$stock" >"$rmem_max"
burst daemon
check "at the stock limit the burst loses more: kernel_overflow=$overflow, as root $root_daemon" \
	[ "${overflow:-0}" -gt "${root_daemon:-0}" ]
initscript stop
echo 1048576 >"$rmem_max"
initscript start
check "start as nobody never lowers net.core.rmem_max" \
	[ "$(cat "$rmem_max")" = 1048576 ]
initscript stop
echo "$rmem_was" >"$rmem_max"

exit "$failed"
