#!/bin/bash
# Fuzz the protocol core (fuzz/fuzz_targets/protocol.rs) for a bounded time
# and print how many inputs ran. Fails on a crash, a broken invariant or a
# build failure; the crashing input is kept in fuzz/artifacts/protocol/.
#
# Env: TCPCAN_FUZZ_SECONDS (default 60).
# New corpus entries go to a temporary directory: the committed seed corpus
# (fuzz/corpus/protocol) stays small and hand-made.
set -euo pipefail
cd "$(dirname "$0")/../.."

secs=${TCPCAN_FUZZ_SECONDS:-60}
target=protocol
if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "fuzz: cargo-fuzz missing: run tests/deps/fuzz.sh" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "fuzz/artifacts/$target"

# -a: debug assertions on, so overflow and debug_assert! count as crashes.
status=0
cargo +nightly fuzz run -a "$target" "$work" "fuzz/corpus/$target" -- \
	-max_total_time="$secs" -artifact_prefix="fuzz/artifacts/$target/" \
	>"$work/log" 2>&1 || status=$?

runs=$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' "$work/log" | tail -n 1)
if [ "$status" -ne 0 ] || [ -z "$runs" ]; then
	tail -n 40 "$work/log" >&2
	echo "fuzz: $target FAILED (exit status $status); inputs kept in fuzz/artifacts/$target/" >&2
	echo "0 passed, 1 failed"
	exit 1
fi
echo "fuzz: $target: $runs executions in ${secs} s without a crash ($(find "$work" -maxdepth 1 -type f ! -name log | wc -l) new corpus entries)"
echo "1 passed, 0 failed"
