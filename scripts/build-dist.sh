#!/usr/bin/env bash
# Builds the static release binaries: dist/tcpcan-<version>-<target> plus
# dist/SHA256SUMS, with `--profile dist` (Cargo.toml). Checks each one is a
# static executable (no ELF interpreter, no dynamic section) within its size
# budget, and prints its size. Install the toolchains first, once:
#     tests/deps/arm.sh
# Usage: scripts/build-dist.sh [TARGET...]   (default: every target below)
#
# Reproducible: the same commit gives the same bytes wherever it is built
# (scripts/check-reproducible.sh proves it): one pinned toolchain
# (scripts/release-toolchain.env, checked below), no build paths in the
# binaries (--remap-path-prefix), and SOURCE_DATE_EPOCH from the commit for
# any tool that would stamp a time.
set -euo pipefail

cd "$(dirname "$0")/.."

# shellcheck source=scripts/release-toolchain.env
. scripts/release-toolchain.env
have=$(rustc +"$RELEASE_TOOLCHAIN" -V 2>/dev/null) || have=
if [ "$have" != "$RELEASE_RUSTC" ]; then
    echo "build-dist: toolchain $RELEASE_TOOLCHAIN is '${have:-not installed}', expected '$RELEASE_RUSTC' (scripts/release-toolchain.env); run tests/deps/arm.sh, or move the pin on purpose" >&2
    exit 1
fi
sysroot=$(rustc +"$RELEASE_TOOLCHAIN" --print sysroot)
musl_sysroot=$(rustc +"$RELEASE_MUSL_TOOLCHAIN" --print sysroot 2>/dev/null) || musl_sysroot=
cargo_home=${CARGO_HOME:-$HOME/.cargo}
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null) || SOURCE_DATE_EPOCH=0
export SOURCE_DATE_EPOCH
# Paths that would otherwise reach the binary through panic locations: this
# checkout, the crates.io sources and std's sources (rust-src). Each is
# replaced by a fixed name. Given with --config, so they add to the target's
# rustflags in .cargo/config.toml (RUSTFLAGS would replace them).
# x86_64 and aarch64 take libunwind.a from the stable toolchain's
# self-contained musl directory (.cargo/config.toml says why); its path is
# this machine's, so it is given here, after Debian's musl in the search.
target_flags() { # <target>
    local t=$1 extra="" sc
    case $t in
        x86_64-unknown-linux-musl | aarch64-unknown-linux-musl)
            sc=$musl_sysroot/lib/rustlib/$t/lib/self-contained
            if [ ! -f "$sc/libunwind.a" ]; then
                echo "build-dist: no musl runtime for $t in toolchain $RELEASE_MUSL_TOOLCHAIN ($sc); run tests/deps/arm.sh" >&2
                return 1
            fi
            extra=", '-L', '$sc'" ;;
    esac
    # -Zlocation-detail=none: a panic prints its message without file, line
    # and column (panics abort, and the message names what broke). Measured
    # on ARMv6: 8 KiB, 2.7 % of the binary, the margin that keeps it within
    # its budget with socketcand's BCM jobs and coalescing.
    printf "target.%s.rustflags=['-Zlocation-detail=none', '--remap-path-prefix=%s=/tcpcan', '--remap-path-prefix=%s=/cargo', '--remap-path-prefix=%s=/rust'%s]" \
        "$t" "$PWD" "$cargo_home" "$sysroot" "$extra"
}

# Size budgets in KiB for the stripped binary. aarch64's 400 KiB is the
# project's promise (issue 4). The others were set at about 1.5 times what
# they weighed then (0.1.0: 198-222 KiB), so growth is a decision, not an
# accident; the likeliest accident, std's backtrace symbolizer coming back
# (+220 KiB), fails every target. Raised from 300 to 340 KiB by decision:
# ARMv6 stood at 298 KiB with socketcand, BCM and coalescing, and the SSH
# transport (--stdio, --via: ~16 KiB) and protocol version 2 (~16 KiB) are
# each asked for by an issue; 340 keeps them and about 10 KiB of margin,
# still below aarch64's promise.
budget_kib() {
    case $1 in
        aarch64-unknown-linux-musl) echo 400 ;;
        x86_64-unknown-linux-musl | armv7-unknown-linux-musleabihf | arm-unknown-linux-musleabi)
            echo 340 ;;
        *) echo "unknown target $1" >&2; return 1 ;;
    esac
}

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl
             armv7-unknown-linux-musleabihf arm-unknown-linux-musleabi)
fi

version=$(cargo pkgid | sed 's/.*[#@]//')
mkdir -p dist
fail=0
for t in "${targets[@]}"; do
    budget=$(budget_kib "$t")
    flags=$(target_flags "$t")
    # std is built from source with our profile (-Zbuild-std, nightly):
    # rustup serves no std for the 32-bit ARM musl targets here, nor our
    # nightly's aarch64 one, and for the others it saves ~47 KiB. No std features: that
    # drops std's backtrace symbolizer (~220 KiB), useless in a stripped
    # binary; a panic still prints its message, then aborts (panic_abort).
    cargo +"$RELEASE_TOOLCHAIN" build --quiet --locked --profile dist --target "$t" \
        --config "$flags" -Zbuild-std=std,panic_abort -Zbuild-std-features=
    bin=target/$t/dist/tcpcan
    out=dist/tcpcan-$version-$t
    cp "$bin" "$out"

    # Static means: no program interpreter and no dynamic section at all.
    if readelf -lW "$out" | grep -q 'INTERP'; then
        echo "FAIL $t: has a program interpreter (dynamically linked)" >&2
        fail=1
    fi
    if ! readelf -dW "$out" | grep -q 'There is no dynamic section'; then
        echo "FAIL $t: has a dynamic section" >&2
        fail=1
    fi
    size=$(stat -c %s "$out")
    kib=$(( (size + 1023) / 1024 ))
    printf '%-34s %8d bytes %5d KiB (budget %d KiB)  %s\n' \
        "$t" "$size" "$kib" "$budget" "$(file -b "$out" | cut -d, -f1-2)"
    if [ "$kib" -gt "$budget" ]; then
        echo "FAIL $t: $kib KiB is over its $budget KiB budget" >&2
        fail=1
    fi
done

(cd dist && sha256sum "tcpcan-$version-"* >SHA256SUMS)
# What took part in the build, for whoever rebuilds it (docs/embedded.md).
{
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "toolchain: $RELEASE_TOOLCHAIN: $have"
    echo "musl libunwind from: $RELEASE_MUSL_TOOLCHAIN: $(rustc +"$RELEASE_MUSL_TOOLCHAIN" -V 2>/dev/null)"
    dpkg-query -W -f='debian: ${Package}:${Architecture} ${Version}\n' \
        gcc-12 gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf gcc-arm-linux-gnueabi \
        binutils binutils-aarch64-linux-gnu binutils-arm-linux-gnueabihf binutils-arm-linux-gnueabi \
        musl-dev:amd64 musl-dev:arm64 musl-dev:armhf musl-dev:armel 2>/dev/null
} >dist/BUILDINFO
echo "dist/SHA256SUMS and dist/BUILDINFO written"
exit "$fail"
