#!/usr/bin/env bash
# What the Rust checks need: rustfmt and clippy on the default toolchain, and
# Rust 1.75.0 (Yocto scarthgap's) to prove the MSRV with the committed lockfile.
set -euo pipefail
rustup component add rustfmt clippy >/dev/null
rustup toolchain install 1.75.0 --profile minimal >/dev/null
