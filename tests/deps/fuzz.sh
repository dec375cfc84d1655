#!/bin/bash
# What tests/fuzz/run.sh needs (idempotent): a nightly toolchain (the fuzz
# build uses -Zsanitizer), the one the release binaries are built with
# (scripts/release-toolchain.env), and a C++ compiler (libfuzzer-sys compiles
# libFuzzer). cargo-fuzz itself is not needed: run.sh gives cargo the same
# flags. `cargo install cargo-fuzz` is handy for working on fuzz/ by hand.
set -euo pipefail

# shellcheck source=tests/deps/lib.sh
. "$(dirname "$0")/lib.sh"

# shellcheck source=scripts/release-toolchain.env
. "$(dirname "$0")/../../scripts/release-toolchain.env"
if ! rustup run "$RELEASE_TOOLCHAIN" rustc --version >/dev/null 2>&1; then
	rustup toolchain install "$RELEASE_TOOLCHAIN" --profile minimal >/dev/null ||
		{ echo "fuzz deps: rustup could not install $RELEASE_TOOLCHAIN (scripts/release-toolchain.env)" >&2; exit 1; }
fi

command -v c++ >/dev/null || apt_install_missing g++
