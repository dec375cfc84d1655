#!/bin/bash
# What tests/packaging/run.sh needs (idempotent): shellcheck, busybox (its
# sh, start-stop-daemon, logger, syslogd and ip are what the init script
# meets on an image), iproute2, systemd-analyze for the unit, git for the
# crate-list check, and oelint-adv in a venv at target/packaging-venv.
# The UML scenario also needs tests/deps/kernel.sh.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/deps/lib.sh
. "$(dirname "$0")/lib.sh"

# systemd: only for systemd-analyze; nothing starts it here.
apt_install_missing shellcheck busybox-static iproute2 systemd git python3-venv

# Pinned: a newer oelint-adv may add rules, and the findings must not change
# under us. Bump it on purpose, with the recipe fixes it asks for.
oelint_version=9.11.2
venv=$repo/target/packaging-venv
if [ ! -x "$venv/bin/python" ]; then
	mkdir -p "$repo/target"
	python3 -m venv "$venv"
fi
if [ "$("$venv/bin/oelint-adv" --version 2>/dev/null)" != "oelint-adv $oelint_version" ]; then
	"$venv/bin/python" -m pip install -q --disable-pip-version-check "oelint-adv==$oelint_version"
fi
