#!/bin/bash
# What bench/run.sh needs (idempotent): everything the kernel tests need (UML
# with SocketCAN modules, cangw from can-utils, the Python reference 0.0.2 in
# target/pyenv), gcc and the kernel headers for bench/tools/canbench.c, and
# valgrind for the instruction counts (perf has no counters inside UML).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
"$repo/tests/deps/kernel.sh"
# shellcheck source=tests/deps/lib.sh
. "$repo/tests/deps/lib.sh"

apt_install_missing gcc libc6-dev linux-libc-dev valgrind binutils
