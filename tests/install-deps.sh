#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian (bookworm)
# machine, as root. Idempotent. Each area keeps its own steps in
# tests/deps/<area>.sh; this runs them in an order that needs apt once.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

# shellcheck source=tests/deps/lib.sh
. tests/deps/lib.sh
# Package lists may be missing or stale on a fresh machine.
apt_update

for area in core kernel perf packaging arm fuzz; do
	script=tests/deps/$area.sh
	[ -f "$script" ] || { echo "install-deps: $script missing" >&2; exit 1; }
	echo "== install-deps: $area"
	bash "$script"
done
