#!/bin/bash
# Benchmark (issue 6): tcpcan against the kernel's CAN gateway (cangw, the
# rig's upper bound), the Python tcpcan 0.0.2 and a minimal C relay (what any
# user-space TCP tunnel costs on this rig), side by side in ONE boot of
# User-Mode Linux, printed as one table; then, from the same boot, tcpcan's
# server with socketcand clients beside v1 clients (issue 13) and its
# coalescing budgets (issue 14), a desk's request round trip through it
# (issue 26), the path through ssh (--stdio behind dropbear and sshd,
# --via ssh; issue 23), each "n/a" when the binary lacks the option, and
# protocol version 2 beside version 1 between two tcpcans (issue 24).
# Not part of the test suite; see docs/benchmark.md for what each figure
# means and how to read it.
#
# usage: bench/run.sh [--quick] [--only round-trip|via|protocol] [--compare OTHER_TCPCAN [--label TEXT]]
#   --quick              one run per figure, shorter runs (~5 min instead of ~10)
#   --only round-trip    the round-trip rows alone (~1 min), no size figures
#   --only via           the rows through ssh alone (issue 23), no size figures
#   --only protocol      version 2 beside version 1 alone (~3 min), no size figures
#   --compare BINARY     also measure another build of tcpcan (e.g. a patched
#                        copy) in the same boot, with a ratio column
#   --label TEXT         what to call that column (default: its path)
# env: TCPCAN_BIN (default target/release/tcpcan, built here if missing)
#
# Output: the tables on stdout, also in bench/target/report.md; raw results
# in bench/target/results.json, daemon logs in bench/target/logs/.
set -euo pipefail

# The full run with --compare and a binary that has every option takes
# ~11 minutes in UML: past run-in-uml.sh's default limit on a slow day.
export TCPCAN_UML_TIMEOUT=${TCPCAN_UML_TIMEOUT:-1500}

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

usage() {
	echo "usage: $0 [--quick] [--only round-trip|via|protocol] [--compare BINARY [--label TEXT]]" >&2
	exit 2
}
quick=0
only=
alt=
label=
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--only)
		case ${2:-} in
		round-trip | via | protocol) ;;
		*) usage ;;
		esac
		only=$2
		shift
		;;
	--compare | --label)
		[ $# -ge 2 ] || usage
		if [ "$1" = --compare ]; then
			alt=$(realpath "$2")
		else
			label=$2
		fi
		shift
		;;
	*) usage ;;
	esac
	shift
done
if [ -n "$label" ] && [ -z "$alt" ]; then
	usage
fi

tests/deps/bench.sh

out=bench/target
mkdir -p "$out"
rm -rf "$out/logs"

if [ -z "${TCPCAN_BIN:-}" ]; then
	cargo build --release --quiet
	TCPCAN_BIN=target/release/tcpcan
fi
export TCPCAN_BIN

# The size figure is the stripped dist profile (Cargo.toml); the static musl
# binary is what ships, so its size and idle RSS are reported too, built as a
# release builds it (scripts/build-dist.sh, after tests/deps/arm.sh).
# A partial run (--only) has no size figures.
size_dist=
static=
size_static=
if [ -z "$only" ]; then
	cargo build --profile dist --quiet
	size_dist=$(stat -c %s target/dist/tcpcan)
	if ! scripts/build-dist.sh x86_64-unknown-linux-musl >"$out/static-build.log" 2>&1; then
		echo "bench: static musl build FAILED (see $out/static-build.log; tests/deps/arm.sh installs what it needs): its figures are left out" >&2
	else
		static=dist/tcpcan-$(cargo pkgid | sed 's/.*[#@]//')-x86_64-unknown-linux-musl
		size_static=$(stat -c %s "$static")
	fi
fi
size_alt=
if [ -n "$alt" ]; then
	tmp=$(mktemp)
	strip -o "$tmp" "$alt"
	size_alt=$(stat -c %s "$tmp")
	rm -f "$tmp"
fi

gcc -O2 -Wall -Wextra -Werror -o "$out/canbench" bench/tools/canbench.c

py=target/pyenv/bin/python
host_json() {
	"$py" - "$@" <<'EOF'
import json, os, sys
path, key, value = sys.argv[1:4]
d = json.load(open(path)) if os.path.exists(path) else {}
d[key] = value
json.dump(d, open(path, "w"), indent=1)
EOF
}
rm -f "$out/host.json"
host_json "$out/host.json" host_nproc "$(nproc)"
host_json "$out/host.json" host_cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
host_json "$out/host.json" load_before "$(cut -d' ' -f1-3 /proc/loadavg)"
host_json "$out/host.json" describe "$(git describe --always --dirty 2>/dev/null || echo unknown)"
host_json "$out/host.json" size_dist "dist $size_dist${size_static:+ / static musl $size_static}"
if [ -n "$alt" ]; then
	host_json "$out/host.json" alt "${label:-$alt}"
	host_json "$out/host.json" size_alt "$size_alt"
fi

BENCH_QUICK=$quick BENCH_ALT=$alt BENCH_STATIC=$static BENCH_ONLY=$only \
	tests/uml/run-in-uml.sh "$py" bench/bench.py "$out/results.json"

host_json "$out/host.json" load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
"$py" bench/report.py "$out/results.json" "$out/host.json" | tee "$out/report.md"
