#!/bin/bash
# What tests/fuzz/run.sh needs (idempotent): the nightly toolchain (cargo-fuzz
# builds with -Zsanitizer), a C++ compiler (libfuzzer-sys compiles libFuzzer)
# and cargo-fuzz itself, from crates.io.
set -euo pipefail

cargo_fuzz_version=0.13.2

# shellcheck source=tests/deps/lib.sh
. "$(dirname "$0")/lib.sh"

# Only package registries are reachable: nightly cannot be downloaded here,
# so say so plainly instead of failing inside rustup.
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
	echo "fuzz deps: the nightly Rust toolchain is not installed (rustup toolchain install nightly)" >&2
	exit 1
fi

command -v c++ >/dev/null || apt_install_missing g++

if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
	cargo install -q --locked cargo-fuzz --version "$cargo_fuzz_version"
fi
