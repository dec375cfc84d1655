#!/bin/bash
# Which UML kernels boot on this host, by booting each (about a second).
#
#   tests/uml/kernels.sh          the usable ones, oldest first: "RELEASE PATH"
#   tests/uml/kernels.sh --all    every candidate: "ok RELEASE PATH" or
#                                 "no RELEASE PATH WHY"
#
# Exit status 1 when none boots. With TCPCAN_UML set, that kernel alone is
# used, unprobed (a developer's choice). Environment: see tests/uml/lib.sh.
set -euo pipefail
# shellcheck source=tests/uml/lib.sh
. "$(dirname "$0")/lib.sh"

if [ -n "${TCPCAN_UML:-}" ]; then
	bin=$(command -v "$TCPCAN_UML") || { echo "kernels: TCPCAN_UML=$TCPCAN_UML not found" >&2; exit 1; }
	survey="ok $(uml_release "$bin") $bin"
else
	survey=$(uml_survey)
fi

if [ "${1:-}" = --all ]; then
	echo "$survey"
else
	awk '$1 == "ok" { print $2, $3 }' <<<"$survey"
fi
grep -q '^ok ' <<<"$survey" || {
	echo "kernels: no UML kernel boots on this host:" >&2
	while read -r _ release bin why; do
		echo "  UML $release ($bin): $why" >&2
	done <<<"$survey"
	exit 1
}
