# shellcheck shell=bash
#
# Which User-Mode Linux kernels boot on this host. Sourced by
# tests/uml/kernels.sh, tests/uml/run-in-uml.sh and tests/uml/selftest.sh.
#
# Why a boot and not a guess from CPU flags: whether a UML boots depends on
# the host kernel's register state (xstate) size as well as the CPU, and a
# boot takes about a second.

uml_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# The candidates, oldest first: Debian 12's own (a long-term kernel, as
# gateways run) and the newest Debian has (tests/deps/uml.sh). Overridden
# by TCPCAN_UML_CANDIDATES (paths separated by ':'), which the rig's own
# test uses to put a kernel that panics in the distribution's place.
uml_candidates() {
	local list=${TCPCAN_UML_CANDIDATES:-/usr/bin/linux.uml:$uml_repo/target/uml/newest/usr/bin/linux.uml}
	tr ':' '\n' <<<"$list"
}

# Debian's own UML is the first candidate. TCPCAN_UML_DISTRO_UNUSABLE=1
# declares it unusable, so that a host where it boots can still prove the
# path a host where it panics takes.
uml_is_distro() {
	[ "$1" = "$(uml_candidates | head -n 1)" ]
}

# The kernel release a UML binary was built from (it answers --version
# without booting).
uml_release() {
	local v
	v=$(timeout 10 "$1" --version 2>/dev/null | head -n 1) || true
	echo "${v:-unknown}"
}

# Why a boot failed, in a few words, from what the kernel printed (file $1)
# and its exit status ($2). Pure: tests/uml/selftest.sh feeds it the panic
# seen on AVX-512/AMX hosts.
uml_boot_failure() {
	local out=$1 rc=$2
	if grep -q 'ptrace set fp regs failed' "$out"; then
		echo "xstate"
	elif grep -q 'GLIBC_[0-9.]* not found\|error while loading shared libraries' "$out"; then
		echo "its C library is missing: run tests/deps/uml.sh"
	elif grep -q 'Too few physical memory' "$out"; then
		echo "it miscomputes its memory"
	elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "no init after 20 s"
	elif grep -q 'Kernel panic' "$out"; then
		grep -m 1 'Kernel panic' "$out" | cut -c 1-120
	else
		echo "exit status $rc: $(grep -v '^[[:space:]]*$' "$out" | tail -n 1 | cut -c 1-120)"
	fi
}

# Boots UML binary $1 with an init that only leaves a mark and powers off.
# Succeeds when the mark is there; otherwise prints why it did not boot.
uml_probe() {
	local bin=$1 work rc=0 why
	if [ ! -x "$bin" ]; then
		echo "not installed ($bin): run tests/deps/uml.sh"
		return 1
	fi
	# No dots in the name: the kernel would take it for a module parameter.
	work=$(mktemp -d /tmp/tcpcan-probe-XXXXXXXX)
	cat >"$work/init" <<'EOF'
#!/bin/sh
echo booted >"$tcpcan_probe_dir/mark"
busybox poweroff -f || echo o >/proc/sysrq-trigger
sleep 10
EOF
	chmod 0755 "$work/init"
	timeout --kill-after=5 20 "$bin" mem=64M rootfstype=hostfs rootflags=/ rw quiet \
		init="$work/init" tcpcan_probe_dir="$work" \
		con=null con0=null,fd:1 con1=null ssl=null </dev/null >"$work/out" 2>&1 || rc=$?
	if [ -s "$work/mark" ]; then
		rm -rf "$work"
		return 0
	fi
	why=$(uml_boot_failure "$work/out" "$rc")
	rm -rf "$work"
	echo "$why"
	return 1
}

# One line per candidate: "ok RELEASE PATH" or "no RELEASE PATH WHY".
uml_survey() {
	local bin release why
	while read -r bin; do
		[ -n "$bin" ] || continue
		release=$(uml_release "$bin")
		if uml_is_distro "$bin" && [ "${TCPCAN_UML_DISTRO_UNUSABLE:-0}" = 1 ]; then
			echo "no $release $bin declared unusable (TCPCAN_UML_DISTRO_UNUSABLE=1)"
		elif why=$(uml_probe "$bin"); then
			echo "ok $release $bin"
		else
			echo "no $release $bin $why"
		fi
	done < <(uml_candidates)
}
