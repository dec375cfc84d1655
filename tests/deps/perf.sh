#!/bin/bash
# What the performance guard (tests/perf/run.sh) needs (idempotent): what the
# kernel tests need (UML, the venv), valgrind for instructions (perf has no
# counters inside UML), strace for system calls, and gcc with the kernel
# headers for bench/tools/canbench.c, whose probe proves the tunnel's path.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
"$repo/tests/deps/kernel.sh"
# shellcheck source=tests/deps/lib.sh
. "$repo/tests/deps/lib.sh"

apt_install_missing valgrind strace gcc libc6-dev linux-libc-dev
