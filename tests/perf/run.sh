#!/bin/bash
# The performance guard (issue 14): counts, never times. Boots User-Mode
# Linux once per kernel that boots on this host (tests/uml/kernels.sh: the
# long-term 6.1 and the newest; their counts differ by under 3 %, so one
# figure set serves both) and measures, for the build in TCPCAN_BIN, user-space
# instructions per frame (callgrind) and system calls per frame (strace) of
# the tcpcan server and client at 100 and 5000 frames/s
# (tests/perf/measure.py), then compares each count with its committed
# figure in tests/perf/baseline.toml (tests/perf/guard.py).
#
# usage: tests/perf/run.sh [--update] [--margin FRACTION]
#   --update            rewrite tests/perf/baseline.toml with the counts
#                       measured; commit it with the reason they changed
#   --margin FRACTION   allowed rise above a figure (default: the file's
#                       margin, 0.10); also TCPCAN_PERF_MARGIN
# env: TCPCAN_BIN (default target/release/tcpcan, built here if missing)
#
# Exit status: 0 when no count rose more than the margin, 1 when one did,
# 2 on a usage error, 125 when UML could not run the measurement.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

update=
margin=${TCPCAN_PERF_MARGIN:-}
while [ $# -gt 0 ]; do
	case $1 in
	--update) update=--update ;;
	--margin)
		[ $# -ge 2 ] || { echo "perf: --margin needs a value" >&2; exit 2; }
		margin=$2
		shift
		;;
	*)
		echo "usage: $0 [--update] [--margin FRACTION]" >&2
		exit 2
		;;
	esac
	shift
done

# Checked before the boot, not a minute later by guard.py.
case $margin in
*[!0-9.]* | . | *.*.* | [1-9]*)
	echo "perf: margin must be a fraction below 1 such as 0.10, not '$margin'" >&2
	exit 2
	;;
esac

if [ -z "${TCPCAN_BIN:-}" ]; then
	cargo build --locked --release --quiet
	TCPCAN_BIN=$repo/target/release/tcpcan
fi
TCPCAN_BIN=$(realpath "$TCPCAN_BIN")
export TCPCAN_BIN

out=target/perf
mkdir -p "$out"
rm -rf "$out/logs" "$out"/results*.json
# bench.py's Tunnel proves a path with canbench's probe: built as bench/run.sh does.
gcc -O2 -Wall -Wextra -Werror -o "$out/canbench" bench/tools/canbench.c

py=target/pyenv/bin/python
kernels=$(tests/uml/kernels.sh) || exit 125
failed=0
while read -r release bin; do
	# --update writes the figures of the first (oldest) kernel only.
	[ "$release $bin" = "$(head -n 1 <<<"$kernels")" ] || update=
	echo "==== perf on UML $release"
	results=$out/results-$release.json
	TCPCAN_UML=$bin tests/uml/run-in-uml.sh "$py" tests/perf/measure.py "$results" </dev/null || exit 125
	if "$py" tests/perf/guard.py tests/perf/baseline.toml "$results" ${update:+"$update"} ${margin:+--margin "$margin"}; then
		echo "perf on UML $release: PASS"
	else
		echo "perf on UML $release: FAIL"
		failed=1
	fi
done <<<"$kernels"
exit "$failed"
