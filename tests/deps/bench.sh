#!/bin/bash
# What bench/run.sh needs (idempotent): everything the kernel tests need (UML
# with SocketCAN modules, cangw from can-utils, the Python reference 0.0.2 in
# target/pyenv), gcc and the kernel headers for bench/tools/canbench.c, and
# valgrind for the instruction counts (perf has no counters inside UML).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
"$repo/tests/deps/kernel.sh"

pkgs=(gcc libc6-dev linux-libc-dev valgrind binutils)
missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=900 -qq update
	apt-get -o DPkg::Lock::Timeout=900 -qq install -y --no-install-recommends "${missing[@]}" >/dev/null
fi
