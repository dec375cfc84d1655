#!/bin/bash
# The UML rig's own test: the path a host takes when Debian 12's UML cannot
# boot, proven on any host, including one where it boots.
#
#   1. the boot probe names the panic seen on AVX-512/AMX hosts "xstate";
#   2. a stand-in kernel that prints that panic and dies, put in the
#      distribution UML's place, is left out by tests/uml/kernels.sh, and
#      so is the real one when TCPCAN_UML_DISTRO_UNUSABLE=1;
#   3. tests/kernel/run.sh, with the stand-in in place, says so in one line,
#      runs a few real scenarios on the newest kernel alone, and passes.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/uml/lib.sh
. tests/uml/lib.sh

passed=0
failed=0
check() {
	local what=$1
	shift
	if "$@"; then
		passed=$((passed + 1))
		echo "ok - $what"
	else
		failed=$((failed + 1))
		echo "not ok - $what"
	fi
}

work=$(mktemp -d /tmp/tcpcan-umlself-XXXXXXXX)
trap 'rm -rf "$work"' EXIT

# What Debian 12's UML printed on an AVX-512/AMX host (Xeon, host kernel 6.18).
cat >"$work/panic.txt" <<'EOF'
Linux version 6.1.176 (debian-kernel@lists.debian.org)
userspace - ptrace set fp regs failed, errno = 14
Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b
EOF
check "the probe calls the fp-regs panic 'xstate'" \
	test "$(uml_boot_failure "$work/panic.txt" 139)" = xstate
echo 'Kernel panic - not syncing: VFS: Unable to mount root fs' >"$work/other.txt"
check "the probe quotes any other panic" \
	grep -q 'Unable to mount root fs' <(uml_boot_failure "$work/other.txt" 1)

# A stand-in for a UML that panics on this host: it answers --version as
# the real one does, and prints the panic when booted.
fake=$work/linux.uml
cat >"$fake" <<EOF
#!/bin/sh
if [ "\${1:-}" = --version ]; then echo 6.1.176; exit 0; fi
cat "$work/panic.txt"
exit 139
EOF
chmod 0755 "$fake"
newest=$PWD/target/uml/newest/usr/bin/linux.uml
newest_release=$(uml_release "$newest")

survey=$(TCPCAN_UML_CANDIDATES="$fake:$newest" tests/uml/kernels.sh --all)
check "kernels.sh finds the stand-in cannot boot (xstate)" \
	grep -qx "no 6.1.176 $fake xstate" <<<"$survey"
check "kernels.sh falls back to the newest ($newest_release)" \
	test "$(TCPCAN_UML_CANDIDATES="$fake:$newest" tests/uml/kernels.sh)" = "$newest_release $newest"
check "TCPCAN_UML_DISTRO_UNUSABLE=1 leaves Debian's own out" \
	test "$(TCPCAN_UML_DISTRO_UNUSABLE=1 tests/uml/kernels.sh)" = "$newest_release $newest"

# The fallback end to end, on a few real scenarios.
TCPCAN_UML_CANDIDATES="$fake:$newest" tests/kernel/run.sh -k 'test_frames and classic' >"$work/run.log" 2>&1
rc=$?
grep -E '^kernel-scenarios' "$work/run.log"
check "the scenarios pass on the newest kernel alone" test "$rc" -eq 0
check "... saying in one line that 6.1 cannot boot, and what ran" \
	grep -qx "kernel-scenarios: UML 6.1.176 cannot boot on this host (xstate); ran $newest_release only" "$work/run.log"
check "... with the kernel named on every result line" \
	grep -q "PASSED" <(grep "@ UML $newest_release" "$work/run.log")
if grep -q "@ UML 6.1" "$work/run.log"; then
	check "... and no result from the stand-in" false
fi
[ "$rc" -eq 0 ] || tail -n 30 "$work/run.log"

echo "uml-rig: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
