#!/bin/bash
# Kernel-level scenarios: pytest inside User-Mode Linux (the host has no CAN),
# once on each UML kernel that boots on this host (tests/uml/kernels.sh):
# Debian 12's 6.1, a long-term kernel as gateways in the field run, and the
# newest Debian has, as desks run. Where 6.1 cannot boot (it panics on some
# AVX-512/AMX hosts), the newest alone runs, and the first line says so.
# Extra arguments go to pytest, e.g. tests/kernel/run.sh -k interop -x
# Env: TCPCAN_BIN (default target/release/tcpcan), TCPCAN_UML (one kernel,
# unprobed), TCPCAN_UML_DISTRO_UNUSABLE=1 (the newest only), TCPCAN_UML_TIMEOUT,
# TCPCAN_KERNELS_SERIAL=1 (one kernel after the other, output live).
set -euo pipefail
cd "$(dirname "$0")/../.."
py=target/pyenv/bin/python
if [ ! -x "$py" ]; then
	echo "kernel tests: $py missing: run tests/deps/kernel.sh" >&2
	exit 1
fi
# Inside UML pytest always writes to a tty: colour only if the caller has one.
color=no
if [ -t 1 ]; then
	color=yes
fi

survey=$(tests/uml/kernels.sh --all) || true
left_out=
while read -r status release _ why; do
	[ "$status" = no ] && left_out+="UML $release cannot boot on this host ($why); "
done <<<"$survey"
kernels=$(awk '$1 == "ok" { print $2, $3 }' <<<"$survey")
if [ -z "$kernels" ]; then
	echo "kernel-scenarios: FAIL: ${left_out}no UML kernel boots here" >&2
	exit 1
fi
running=$(cut -d' ' -f1 <<<"$kernels" | paste -sd' ')
if [ -n "$left_out" ]; then
	echo "kernel-scenarios: ${left_out}ran ${running// /, } only"
else
	echo "kernel-scenarios: running on UML ${running// / and UML }"
fi

mkdir -p target/kernel-tests
results=()
failed=0
# One kernel's run: pytest inside UML.
run_on() {
	local release=$1 bin=$2
	shift 2
	echo "==== kernel-scenarios on UML $release ($bin)"
	# No .pytest_cache in the checkout; daemon logs stay in
	# target/kernel-tests/RELEASE (a private --basetemp: concurrent pytest
	# runs share /tmp/pytest-of-root); -rfEP: failures named at the end,
	# and what passing tests measured.
	TCPCAN_UML=$bin tests/uml/run-in-uml.sh "$py" -m pytest tests/kernel -v \
		--basetemp="target/kernel-tests/$release" -rfEP --durations=15 --color="$color" \
		-p no:cacheprovider "$@" </dev/null
}

# Both kernels at once where the host has a CPU for each (UML runs a
# kernel and its processes on one CPU): the step takes as long as the
# slower kernel, not both (17 min to 10 here). Each run's output is
# printed whole when both are done. TCPCAN_KERNELS_SERIAL=1, or one CPU:
# one after the other, output live.
if [ "$(wc -l <<<"$kernels")" -gt 1 ] && [ "$(nproc)" -ge 2 ] && [ -z "${TCPCAN_KERNELS_SERIAL:-}" ]; then
	echo "kernel-scenarios: both kernels at once ($(nproc) CPUs); their output follows when both are done"
	pids=()
	while read -r release bin; do
		run_on "$release" "$bin" "$@" >"target/kernel-tests/$release.out" 2>&1 &
		pids+=("$!")
	done <<<"$kernels"
	i=0
	while read -r release bin; do
		if wait "${pids[$i]}"; then
			results+=("UML $release PASS")
		else
			results+=("UML $release FAIL")
			failed=1
		fi
		cat "target/kernel-tests/$release.out"
		i=$((i + 1))
	done <<<"$kernels"
else
	while read -r release bin; do
		if run_on "$release" "$bin" "$@"; then
			results+=("UML $release PASS")
		else
			results+=("UML $release FAIL")
			failed=1
		fi
	done <<<"$kernels"
fi

summary=$(printf '%s, ' "${results[@]}")
echo "kernel-scenarios: ${summary%, }"
exit "$failed"
