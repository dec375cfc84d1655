#!/bin/bash
# What tests/fuzz/run.sh needs (idempotent): the nightly toolchain (the fuzz
# build uses -Zsanitizer) and a C++ compiler (libfuzzer-sys compiles
# libFuzzer). cargo-fuzz itself is not needed: run.sh gives cargo the same
# flags. `cargo install cargo-fuzz` is handy for working on fuzz/ by hand.
set -euo pipefail

# shellcheck source=tests/deps/lib.sh
. "$(dirname "$0")/lib.sh"

# Only package registries are reachable: nightly cannot be downloaded here,
# so say so plainly instead of failing inside rustup.
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
	echo "fuzz deps: the nightly Rust toolchain is not installed (rustup toolchain install nightly)" >&2
	exit 1
fi

command -v c++ >/dev/null || apt_install_missing g++
