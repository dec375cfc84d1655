#!/usr/bin/env bash
# Installs everything the static cross builds (scripts/build-dist.sh) and the
# ARM full-system tests (tests/arm/run.sh) need, on a new Debian bookworm
# machine (what it starts with: tests/deps/lib.sh). Idempotent; safe to run
# while others run apt (lock timeout).
#
# What and why:
#   rustup: the toolchains named in scripts/release-toolchain.env: the
#           dated nightly with its rust-src (the binaries build std from
#           source, -Zbuild-std; this nightly's aarch64 musl std is not even
#           served), and the stable release's x86_64/aarch64 musl targets,
#           for their libunwind.a (.cargo/config.toml says why).
#   dpkg:   arm64, armhf, armel (musl libc.a and cross gcc libraries for the
#           targets; kernels and busybox-static for the VMs, downloaded, not
#           installed).
#   apt:    gcc for each target (the linker; libgcc_eh for 32-bit ARM),
#           musl-dev per architecture (crt objects, libc.a), qemu-system-arm (also
#           brings qemu-system-aarch64) from bookworm-backports, because
#           bookworm's QEMU 7.2 conflicts with the backported qemu-utils on
#           these machines; qemu-user from there too, for qemu-arm -cpu
#           arm1176 (Pi Zero/1).
#   cache:  target/arm-vm/cache/{arm64,armhf}: kernel + modules + busybox,
#           extracted with dpkg-deb -x (gitignored, reused by run.sh).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/deps/lib.sh
. "$(dirname "$0")/lib.sh"
# Runs a command silently; shows its output only if it fails.
quiet() {
    local out
    if ! out=$("$@" 2>&1); then
        echo "$out" >&2
        return 1
    fi
}

# --- Rust ---------------------------------------------------------------
# shellcheck source=scripts/release-toolchain.env
. "$repo/scripts/release-toolchain.env"
# A dated toolchain is installed once and never moves; install it only when
# missing, so a run without network finds nothing to do.
if ! rustup run "$RELEASE_TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    quiet rustup toolchain install "$RELEASE_TOOLCHAIN" --profile minimal ||
        { echo "tests/deps/arm.sh: rustup could not install $RELEASE_TOOLCHAIN (scripts/release-toolchain.env): the release binaries cannot be built" >&2; exit 1; }
fi
quiet rustup component add --toolchain "$RELEASE_TOOLCHAIN" rust-src ||
    { echo "tests/deps/arm.sh: rustup could not add rust-src to $RELEASE_TOOLCHAIN: -Zbuild-std needs it" >&2; exit 1; }
# musl's runtime for x86_64 and aarch64 (.cargo/config.toml says why).
if ! rustup run "$RELEASE_MUSL_TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    quiet rustup toolchain install "$RELEASE_MUSL_TOOLCHAIN" --profile minimal
fi
quiet rustup target add --toolchain "$RELEASE_MUSL_TOOLCHAIN" x86_64-unknown-linux-musl aarch64-unknown-linux-musl ||
    { echo "tests/deps/arm.sh: rustup could not add the musl targets to $RELEASE_MUSL_TOOLCHAIN: x86_64 and aarch64 cannot be linked" >&2; exit 1; }

# --- Debian: foreign architectures and backports -------------------------
for arch in arm64 armhf armel; do
    dpkg --print-foreign-architectures | grep -qx "$arch" || dpkg --add-architecture "$arch"
done

# Add bookworm-backports to the machine's own Debian entry (deb822), in place,
# so no mirror name is written anywhere by us. The entry is the one whose
# Suites line lists plain "bookworm".
need_update=0
if ! grep -rqs -- 'bookworm-backports' /etc/apt/sources.list.d/ /etc/apt/sources.list; then
    src=$(grep -lE '^Suites:.*(^|[[:space:]])bookworm([[:space:]]|$)' /etc/apt/sources.list.d/*.sources | head -n1 || true)
    if [ -z "$src" ]; then
        echo "tests/deps/arm.sh: no deb822 entry for bookworm under /etc/apt/sources.list.d/" >&2
        exit 1
    fi
    sed -i -E '/^Suites:/ s/(^|[[:space:]])bookworm([[:space:]]|$)/\1bookworm bookworm-backports\2/' "$src"
    need_update=1
fi
# A fresh machine may never have fetched the foreign-arch lists either.
if [ "$need_update" = 1 ] || ! apt-cache show musl-dev:armel >/dev/null 2>&1 \
    || ! apt-cache show musl-dev:arm64 >/dev/null 2>&1 \
    || ! apt-cache show busybox-static:arm64 >/dev/null 2>&1; then
    apt_update
fi

apt_install_missing gcc gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf gcc-arm-linux-gnueabi \
    musl-dev:amd64 musl-dev:arm64 musl-dev:armhf musl-dev:armel \
    cpio gzip binutils file python3 git
if ! command -v qemu-system-aarch64 >/dev/null || ! command -v qemu-system-arm >/dev/null; then
    apt_get install --no-install-recommends -y -t bookworm-backports qemu-system-arm >/dev/null
fi
# qemu-arm -cpu arm1176 runs the ARMv6 binary on the Pi Zero/1 CPU itself.
# No recommends: qemu-user-binfmt would register ARM binaries host-wide.
if ! command -v qemu-arm >/dev/null; then
    apt_get install --no-install-recommends -y -t bookworm-backports qemu-user >/dev/null
fi

# --- VM payload: kernels and busybox, downloaded and unpacked, not installed ---
# The kernel package name carries the ABI (linux-image-6.1.0-NN-arm64); ask the
# flavour's meta package which one is current.
cache=$repo/target/arm-vm/cache
fetch_vm() { # <debian arch> <kernel flavour>
    local arch=$1 flavour=$2 dir=$cache/$1 kpkg
    kpkg=$(apt-cache depends "linux-image-$flavour:$arch" \
        | sed -n "s/^ *Depends: \(linux-image-[0-9][^:]*-$flavour\).*/\1/p" | head -n1)
    if [ -z "$kpkg" ]; then
        echo "tests/deps/arm.sh: cannot resolve the $flavour kernel package" >&2
        exit 1
    fi
    if [ -f "$dir/.done" ] && [ "$(cat "$dir/.done")" = "$kpkg" ]; then
        return 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir/debs" "$dir/root"
    # Sandbox user root: _apt cannot write into a root-owned work tree.
    (cd "$dir/debs" && apt_get -o APT::Sandbox::User=root download "$kpkg:$arch" "busybox-static:$arch" >/dev/null)
    for deb in "$dir"/debs/*.deb; do
        dpkg-deb -x "$deb" "$dir/root"
    done
    rm -rf "$dir/debs"
    # The package ships no modules.dep (postinst makes it); the initramfs
    # builder reads it to load each module's dependencies first.
    depmod -b "$dir/root" "${kpkg#linux-image-}"
    echo "$kpkg" >"$dir/.done"
}
fetch_vm arm64 arm64
fetch_vm armhf armmp
