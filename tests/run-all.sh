#!/usr/bin/env bash
# The whole test suite: installs what it needs (tests/install-deps.sh), then
# runs every check and every kernel-level scenario, and ends with one line
# counting the steps that passed and failed. Run as root (apt, UML, netns).
#
#   tests/run-all.sh            install dependencies, then test
#   tests/run-all.sh --no-install   test only (dependencies already there)
#
# A step that cannot run (UML does not boot, a VM does not start) fails: no
# step is ever skipped.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

if [ "${1:-}" != "--no-install" ]; then
	bash tests/install-deps.sh || { echo "run-all: installing dependencies failed" >&2; exit 1; }
fi

passed=0
failed=0
failures=()
step() {
	local name=$1
	shift
	echo
	echo "==== $name: $*"
	local t0=$SECONDS
	if "$@"; then
		passed=$((passed + 1))
		echo "==== $name: PASS ($((SECONDS - t0)) s)"
	else
		failed=$((failed + 1))
		failures+=("$name")
		echo "==== $name: FAIL ($((SECONDS - t0)) s)"
	fi
}

step format cargo fmt --check
# Every shell script we ship or run, including the init script (POSIX sh).
shell_lint() {
	git ls-files -z -- '*.sh' .ci/run | xargs -0 shellcheck -x &&
		shellcheck -x -s sh init/tcpcan.init
}
step shell-lint shell_lint
step clippy cargo clippy --locked --all-targets -- -D warnings
step unit-tests cargo test --locked
step msrv-1.75 cargo +1.75.0 build --locked
step release-build cargo build --locked --release
export TCPCAN_BIN=$PWD/target/release/tcpcan
# Which UML kernels boot here, and the path of a host where Debian 12's
# cannot (a stand-in that panics as it does on AVX-512/AMX hosts).
step uml-rig tests/uml/selftest.sh
# On every kernel that boots: Debian 12's 6.1 and the newest.
step kernel-scenarios tests/kernel/run.sh
# Counts per frame (instructions, system calls) against committed figures.
step perf-guard tests/perf/run.sh
step packaging tests/packaging/run.sh
step static-arm-builds scripts/build-dist.sh
# Bit for bit from another directory: the cheapest target (a release checks
# all four: scripts/check-reproducible.sh).
step reproducible scripts/check-reproducible.sh x86_64-unknown-linux-musl
step arm-kernels tests/arm/run.sh
step fuzz tests/fuzz/run.sh

echo
if [ "$failed" -gt 0 ]; then
	echo "failed steps: ${failures[*]}"
fi
echo "steps: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
