#!/bin/bash
# Kernel-level scenarios: pytest inside User-Mode Linux (the host has no CAN).
# Extra arguments go to pytest, e.g. tests/kernel/run.sh -k interop -x
# Env: TCPCAN_BIN (default target/release/tcpcan), TCPCAN_UML_TIMEOUT.
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
# No .pytest_cache in the checkout; daemon logs stay in target/kernel-tests
# (a private --basetemp: concurrent pytest runs share /tmp/pytest-of-root);
# -rfEP: failures named at the end, and what passing tests measured.
exec tests/uml/run-in-uml.sh "$py" -m pytest tests/kernel -v --basetemp=target/kernel-tests -rfEP --durations=15 --color="$color" -p no:cacheprovider "$@"
