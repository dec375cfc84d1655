#!/bin/bash
# Run CMD [ARGS...] inside User-Mode Linux and exit with CMD's exit status.
#
# Why: the host kernel has no SocketCAN; the UML kernel has it as modules.
# UML boots once with the host file system as its root (hostfs), so CMD sees
# the same repo, toolchain and Python as the caller. uml-init.sh (PID 1 inside
# UML) loads the CAN modules, runs CMD in the repo root and writes CMD's exit
# status to a result file that this script reads after UML powers off.
#
# CMD's stdout reaches our stdout through UML's tty1, its stderr (and the UML
# console) reaches our stderr through tty0, both live.
#
# Environment:
#   TCPCAN_UML          UML kernel binary (default: the oldest that boots on
#                       this host, tests/uml/kernels.sh)
#   TCPCAN_UML_TIMEOUT  seconds before UML is killed (default: 900)
#   TCPCAN_UML_MEM      UML memory (default: 512M)
# Every other exported variable is passed through to CMD.
#
# Exit status: CMD's; 125 when UML could not boot or left no result.
set -euo pipefail

die() {
	echo "run-in-uml: FAIL: $*" >&2
	exit 125
}

if [ $# -lt 1 ]; then
	echo "usage: $0 CMD [ARGS...]" >&2
	exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
uml=${TCPCAN_UML:-}
timeout_s=${TCPCAN_UML_TIMEOUT:-900}
mem=${TCPCAN_UML_MEM:-512M}

if [ -z "$uml" ]; then
	uml=$("$here/kernels.sh" | awk 'NR == 1 { print $2 }') || die "no UML kernel boots on this host (tests/uml/kernels.sh --all says why)"
fi
uml=$(command -v "$uml") || die "UML kernel '$uml' not found (run tests/deps/kernel.sh)"
command -v timeout >/dev/null || die "timeout(1) not found"

# No dots in the name: a kernel parameter passed on to init must not look
# like a module parameter. /tmp, not tmpfs-backed, is visible inside UML.
work=$(mktemp -d /tmp/tcpcan-uml-XXXXXXXX)
trap 'rm -rf "$work"' EXIT

# The init script runs from $work so an unusual repo path (spaces) is harmless.
cp "$here/uml-init.sh" "$work/init"
chmod 0755 "$work/init"
# Each UML package keeps its modules beside its binary (bin/../lib/uml/modules):
# tell init where, since a private copy is not under /usr.
echo "$(cd "$(dirname "$uml")/.." && pwd)/lib/uml/modules" >"$work/moddir"

# Pass the caller's environment through; %q keeps every value on one line.
{
	for name in $(compgen -e); do
		case $name in
		PWD | OLDPWD | SHLVL | _) continue ;;
		esac
		printf 'export %s=%q\n' "$name" "${!name}"
	done
} >"$work/env.sh"

{
	printf 'cd %q || exit 126\n' "$repo"
	printf '%q ' "$@"
	printf '\n'
} >"$work/cmd.sh"

# If stderr is a terminal UML switches it to raw mode: put it back afterwards.
tty_state=
if [ -t 2 ]; then
	tty_state=$(stty -g <&2 2>/dev/null || true)
fi

start_ns=$(date +%s%N)
echo "$start_ns" >"$work/start_ns"
set +e
timeout --kill-after=10 "$timeout_s" "$uml" \
	mem="$mem" rootfstype=hostfs rootflags=/ rw quiet \
	init="$work/init" tcpcan_uml_dir="$work" \
	con=null con0=null,fd:2 con1=null,fd:1 ssl=null \
	</dev/null
uml_rc=$?
set -e
end_ns=$(date +%s%N)
if [ -n "$tty_state" ]; then
	stty "$tty_state" <&2 2>/dev/null || true
fi

total=$(((end_ns - start_ns) / 1000000))
if [ "$uml_rc" -eq 124 ] || [ "$uml_rc" -eq 137 ]; then
	die "UML timed out after ${timeout_s}s (TCPCAN_UML_TIMEOUT) running: $*"
fi
if [ ! -s "$work/rc" ]; then
	if [ -s "$work/init_error" ]; then
		die "UML init failed: $(cat "$work/init_error")"
	fi
	die "UML produced no result file (did it boot? '$uml' exit status $uml_rc) running: $*"
fi
rc=$(cat "$work/rc")
if [ "$uml_rc" -ne 0 ]; then
	# Seen now and then: UML aborts while halting, after CMD's result is safe.
	echo "run-in-uml: note: UML itself exited with status $uml_rc after CMD finished" >&2
fi
boot="?"
if [ -s "$work/ready_ns" ]; then
	ready_ns=$(cat "$work/ready_ns")
	boot=$(((ready_ns - start_ns) / 1000000))
fi
echo "run-in-uml: UML $("$uml" --version 2>/dev/null | head -n 1) ($uml): boot ${boot} ms, total ${total} ms, exit status $rc" >&2
case $rc in
'' | *[!0-9]*) die "unreadable result file: '$rc'" ;;
esac
exit "$rc"
