#!/bin/bash
# Fuzz both protocol cores, each for a bounded time, and print how many
# inputs ran: protocol v1's (fuzz/fuzz_targets/protocol.rs) and socketcand's
# (fuzz/fuzz_targets/socketcand.rs). Fails on a crash, a broken invariant or
# a build failure; the crashing input is kept in fuzz/artifacts/TARGET/.
#
# Env: TCPCAN_FUZZ_SECONDS (default 30, per target: about 150,000 and
# 250,000 inputs on the CI machine, a regression check kept short so the
# whole CI run stays well under 30 minutes; fuzz longer by hand).
# New corpus entries go to a temporary directory: the committed seed corpora
# (fuzz/corpus/TARGET) stay small and hand-made.
set -euo pipefail
cd "$(dirname "$0")/../.."

secs=${TCPCAN_FUZZ_SECONDS:-30}
targets=(protocol socketcand)
# The nightly the release is built with (one nightly is enough).
# shellcheck source=scripts/release-toolchain.env
. scripts/release-toolchain.env
if ! rustup run "$RELEASE_TOOLCHAIN" rustc --version >/dev/null 2>&1; then
	echo "fuzz: toolchain $RELEASE_TOOLCHAIN is missing: run tests/deps/fuzz.sh" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Built the way `cargo fuzz run -a` builds it (libFuzzer's coverage passes,
# AddressSanitizer, debug assertions so overflows and debug_assert! count as
# crashes, one codegen unit), without installing cargo-fuzz: that takes
# minutes of CI for a command line we can give ourselves.
host=$(rustc +"$RELEASE_TOOLCHAIN" -vV | sed -n 's/^host: //p')
flags=(
	-Cpasses=sancov-module
	-Cllvm-args=-sanitizer-coverage-level=4
	-Cllvm-args=-sanitizer-coverage-inline-8bit-counters
	-Cllvm-args=-sanitizer-coverage-pc-table
	-Cllvm-args=-sanitizer-coverage-trace-compares
	-Cllvm-args=-sanitizer-coverage-stack-depth
	-Cllvm-args=-simplifycfg-branch-fold-threshold=0
	--cfg fuzzing
	-Zsanitizer=address
	-Cdebug-assertions
	-Ccodegen-units=1
)
passed=0
failed=0
for target in "${targets[@]}"; do
	mkdir -p "fuzz/artifacts/$target" "$work/$target"
	status=0
	RUSTFLAGS="${flags[*]}" cargo +"$RELEASE_TOOLCHAIN" build --quiet --locked --release \
		--manifest-path fuzz/Cargo.toml --target "$host" --bin "$target" >"$work/$target.log" 2>&1 || status=$?
	if [ "$status" -eq 0 ]; then
		# -max_total_time bounds the run; new corpus entries go to $work.
		ASAN_OPTIONS=detect_odr_violation=0 "fuzz/target/$host/release/$target" \
			"$work/$target" "fuzz/corpus/$target" -max_total_time="$secs" \
			-artifact_prefix="fuzz/artifacts/$target/" >>"$work/$target.log" 2>&1 || status=$?
	fi
	runs=$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' "$work/$target.log" | tail -n 1)
	if [ "$status" -ne 0 ] || [ -z "$runs" ]; then
		tail -n 40 "$work/$target.log" >&2
		echo "fuzz: $target FAILED (exit status $status); inputs kept in fuzz/artifacts/$target/" >&2
		failed=$((failed + 1))
		continue
	fi
	echo "fuzz: $target: $runs executions in ${secs} s without a crash ($(find "$work/$target" -maxdepth 1 -type f | wc -l) new corpus entries)"
	passed=$((passed + 1))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
