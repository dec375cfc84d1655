#!/bin/bash
# What tests/fuzz/run.sh needs (idempotent): the nightly toolchain (cargo-fuzz
# builds with -Zsanitizer), a C++ compiler (libfuzzer-sys compiles libFuzzer)
# and cargo-fuzz itself, from crates.io.
set -euo pipefail

cargo_fuzz_version=0.13.2

apt_get() {
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 -qq "$@"
}

# Only package registries are reachable: nightly cannot be downloaded here,
# so say so plainly instead of failing inside rustup.
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
	echo "fuzz deps: the nightly Rust toolchain is not installed (rustup toolchain install nightly)" >&2
	exit 1
fi

if ! command -v c++ >/dev/null; then
	apt_get update
	apt_get install -y --no-install-recommends g++ >/dev/null
fi

if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
	cargo install -q --locked cargo-fuzz --version "$cargo_fuzz_version"
fi
