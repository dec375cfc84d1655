#!/usr/bin/env bash
# ARM full-system tests (issue 4): the static release binaries boot-tested on
# real ARM kernels under QEMU, plus the x86_64 one under User-Mode Linux.
#
#   1. scripts/build-dist.sh builds every static binary into dist/ and checks
#      each is static and within its size budget (one check per target).
#      Then the command a developer tries first, a plain `cargo build
#      --release --target <x86_64|aarch64>-unknown-linux-musl` with nothing
#      but .cargo/config.toml: it links a static binary that runs.
#   2. For each ARM binary: an initramfs (mkinitramfs.sh) with Debian's
#      kernel modules, busybox and the binary; QEMU boots it; vm.py crosses
#      classic and FD frames between two TCP clients through the VM kernel's
#      vcan0 and checks a clean SIGTERM exit.
#        aarch64 -> qemu-system-aarch64 -M virt -cpu cortex-a53, Debian arm64
#        armv7hf -> qemu-system-arm -M virt -cpu cortex-a15, Debian armmp
#        ARMv6 soft-float -> the same armmp VM (hard-float kernel)
#   ARMv6 CPU: the ARMv6 binary under qemu-arm -cpu arm1176 (user mode).
#   3. "boot for real" (aarch64): busybox init as PID 1, init/tcpcan.init
#      installed as S60tcpcan with init/tcpcan.default, frames crossing, and
#      poweroff running its stop.
#   4. x86_64 musl binary: the same two-client scenario inside UML
#      (tests/uml/run-in-uml.sh, tests/arm/uml-scenario.sh).
#
# Needs tests/deps/arm.sh (and tests/deps/kernel.sh for UML). Prints
# FIGURE lines (boot times, start-up, RSS: never asserted) and closes with
# "N passed, N failed". Logs: target/arm-vm/*.log.
# Env: TCPCAN_ARM_SKIP_BUILD=1 uses dist/ as it is (no build).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo" || exit 1
work=$repo/target/arm-vm
mkdir -p "$work"

passed=0
failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }

# Adds up the PASS/FAIL lines a sub-step wrote to FILE (it printed them live).
tally() {
    passed=$((passed + $(grep -c '^PASS ' "$1")))
    failed=$((failed + $(grep -c '^FAIL ' "$1")))
}

version=$(cargo pkgid | sed 's/.*[#@]//')
targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl
         armv7-unknown-linux-musleabihf arm-unknown-linux-musleabi)

# --- 1. build, static and budget checks -----------------------------------
for t in "${targets[@]}"; do
    if [ "${TCPCAN_ARM_SKIP_BUILD:-}" = 1 ]; then
        if [ -f "dist/tcpcan-$version-$t" ]; then
            pass "$t: in dist/ (not rebuilt)"
        else
            fail "$t: dist/tcpcan-$version-$t missing (TCPCAN_ARM_SKIP_BUILD=1)"
        fi
        continue
    fi
    if out=$(scripts/build-dist.sh "$t" 2>&1); then
        pass "$t: static, within budget: $(grep "^$t " <<<"$out" | tr -s ' ')"
    else
        fail "$t: build or static/size check failed:"
        tail -n 30 <<<"$out"
    fi
done

# The plain cross build, with the stable toolchain tests/deps/arm.sh gives
# the musl targets; no RUSTFLAGS, so .cargo/config.toml alone decides.
# shellcheck source=scripts/release-toolchain.env
. scripts/release-toolchain.env
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    plain=target/plain-musl/$t/release/tcpcan
    run=()
    [ "$t" = aarch64-unknown-linux-musl ] && run=(qemu-aarch64)
    if ! out=$(env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS cargo +"$RELEASE_MUSL_TOOLCHAIN" \
        build --quiet --locked --release --target "$t" --target-dir target/plain-musl 2>&1); then
        fail "$t: plain cargo build --release --target $t:"
        tail -n 5 <<<"$out"
    elif readelf -lW "$plain" | grep -q INTERP; then
        fail "$t: plain cargo build: $plain is dynamically linked"
    elif ! ver=$(timeout 60 "${run[@]}" "$plain" --version 2>&1) ||
        [ "$ver" != "tcpcan $version ($t)" ]; then
        fail "$t: plain cargo build: --version says: $ver"
    else
        pass "$t: plain cargo build --release --target $t links a static binary: $ver"
    fi
done

# A free local port for QEMU's forward (a tiny race we accept).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# boot_vm NAME DEBIAN_ARCH TARGET MODE
boot_vm() {
    local name=$1 arch=$2 t=$3 mode=$4 bin initrd kernel port qemu
    bin=dist/tcpcan-$version-$t
    initrd=$work/$name.cpio.gz
    if [ ! -f "$bin" ]; then
        fail "$name: no $bin to test"
        return
    fi
    if ! tests/arm/mkinitramfs.sh "$arch" "$bin" "$initrd" "$mode"; then
        fail "$name: could not build the initramfs"
        return
    fi
    kernel=$(find "$work/cache/$arch/root/boot" -name 'vmlinuz-*' 2>/dev/null | head -n1)
    if [ -z "$kernel" ]; then
        fail "$name: no $arch kernel (run tests/deps/arm.sh)"
        return
    fi
    case $arch in
    arm64) qemu=(qemu-system-aarch64 -M virt -cpu cortex-a53) ;;
    armhf) qemu=(qemu-system-arm -M virt -cpu cortex-a15) ;;
    esac
    local append="console=ttyAMA0 quiet panic=-1"
    [ "$mode" = boot ] && append="$append rdinit=/sbin/init"
    port=$(free_port)
    # -no-reboot + panic=-1: a kernel panic ends QEMU instead of looping.
    # The outer timeout is a last resort; vm.py has its own per-step ones.
    timeout --kill-after=10 600 python3 tests/arm/vm.py --name "$name" --mode "$mode" \
        --port "$port" --log "$work/$name.log" -- \
        "${qemu[@]}" -m 256 -smp 1 -nographic -no-reboot \
        -kernel "$kernel" -initrd "$initrd" -append "$append" \
        -netdev "user,id=n,hostfwd=tcp:127.0.0.1:$port-:20010" \
        -device virtio-net-device,netdev=n 2>&1 | tee "$work/$name.out"
    local rc=${PIPESTATUS[0]}
    tally "$work/$name.out"
    # vm.py prints FAIL lines for what it checked; a crash prints none.
    if [ "$rc" != 0 ] && ! grep -q '^FAIL ' "$work/$name.out"; then
        fail "$name: vm.py failed without a verdict"
    fi
}

# --- 2. and 3. ARM VMs -----------------------------------------------------
boot_vm aarch64 arm64 aarch64-unknown-linux-musl test
boot_vm armv7hf armhf armv7-unknown-linux-musleabihf test
boot_vm armv6-softfloat armhf arm-unknown-linux-musleabi test
if [ -f init/tcpcan.init ] && [ -f init/tcpcan.default ]; then
    boot_vm aarch64-busybox-init arm64 aarch64-unknown-linux-musl boot
else
    fail "aarch64-busybox-init: init/tcpcan.init or init/tcpcan.default missing"
fi

# --- ARMv6: the Pi Zero/1 CPU itself ----------------------------------------
# No Debian kernel boots on an ARM1176 under QEMU's virt board, so the VM
# above runs the ARMv6 binary on a Cortex-A15. qemu-arm (user mode) emulates
# the ARM1176's instruction set exactly: an ARMv7-only instruction anywhere
# on the path taken raises SIGILL. The armv7 binary is the control that the
# check can fail.
v6=dist/tcpcan-$version-arm-unknown-linux-musleabi
v7=dist/tcpcan-$version-armv7-unknown-linux-musleabihf
if ! command -v qemu-arm >/dev/null; then
    fail "armv6-arm1176: qemu-arm missing (run tests/deps/arm.sh)"
elif [ ! -f "$v6" ] || [ ! -f "$v7" ]; then
    fail "armv6-arm1176: $v6 or $v7 missing"
else
    if out=$(timeout 60 qemu-arm -cpu arm1176 "$v6" --version 2>&1) &&
        [ "$out" = "tcpcan $version (arm-unknown-linux-musleabi)" ]; then
        pass "armv6-arm1176: --version runs on an ARM1176 CPU: $out"
    else
        fail "armv6-arm1176: --version on an ARM1176 CPU: $out"
    fi
    # Start-up to its first system calls: parse, log, open a CAN socket.
    out=$(timeout 60 qemu-arm -cpu arm1176 "$v6" --serve nosuchcan0 2>&1)
    rc=$?
    if [ "$rc" = 1 ] && grep -q 'nosuchcan0' <<<"$out"; then
        pass "armv6-arm1176: start-up error path runs on an ARM1176 (status 1: $out)"
    else
        fail "armv6-arm1176: start-up error path: status $rc: $out"
    fi
    # In a subshell whose stderr is dropped: bash reports the crash there.
    rc=$( { timeout 60 qemu-arm -cpu arm1176 "$v7" --version >/dev/null 2>&1; echo $?; } 2>/dev/null)
    if [ "$rc" = 132 ]; then
        pass "armv6-arm1176: control: the armv7 binary dies of SIGILL there"
    else
        fail "armv6-arm1176: control: the armv7 binary ran on an ARM1176 (status $rc)"
    fi
fi

# --- 4. x86_64 under UML ----------------------------------------------------
bin=dist/tcpcan-$version-x86_64-unknown-linux-musl
if [ ! -x tests/uml/run-in-uml.sh ]; then
    fail "x86_64-uml: tests/uml/run-in-uml.sh missing"
elif [ ! -f "$bin" ]; then
    fail "x86_64-uml: no $bin"
else
    TCPCAN_BIN=$repo/$bin timeout --kill-after=10 600 \
        tests/uml/run-in-uml.sh python3 tests/arm/uml_scenario.py \
        2>"$work/x86_64-uml.log" | tee "$work/x86_64-uml.out"
    rc=${PIPESTATUS[0]}
    tally "$work/x86_64-uml.out"
    if [ "$rc" != 0 ] && ! grep -q '^FAIL ' "$work/x86_64-uml.out"; then
        fail "x86_64-uml: no verdict (status $rc; log: $work/x86_64-uml.log)"
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
