#!/bin/bash
# What the kernel-level tests need (idempotent): UML kernels with SocketCAN
# modules (tests/deps/uml.sh: Debian 12's and the newest), the tools the UML
# init and the tests call, and a Python venv at
# target/pyenv with pytest, the reference implementation tcpcan 0.0.2
# (interop tests run it as target/pyenv/bin/tcpcan) and python-can.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/deps/lib.sh
. "$(dirname "$0")/lib.sh"

# busybox-static: its poweroff -f is how PID 1 stops UML.
# util-linux: setpriv and mountpoint. python3-venv in case python3 is Debian's.
# openssh-server, openssh-client, dropbear-bin: tests/kernel/test_via_ssh.py
# runs both ssh servers on loopback (--stdio behind a forced command).
apt_install_missing can-utils kmod iproute2 busybox-static util-linux openssh-server openssh-client dropbear-bin
bash "$(dirname "$0")/uml.sh"

venv=$repo/target/pyenv
if [ ! -x "$venv/bin/python" ]; then
	mkdir -p "$repo/target"
	if ! python3 -m venv "$venv" 2>/dev/null; then
		rm -rf "$venv"
		apt_install_missing python3-venv
		python3 -m venv "$venv"
	fi
fi
# python-can, pinned: a desk tool nobody here wrote, reading a virtual bus
# with its default queue (tests/kernel/test_desk.py), and the real client of
# tests/kernel/test_socketcand.py (its socketcand interface). 4.6 is the
# newest line and supports the venv's Python 3.11.
if ! "$venv/bin/python" -c 'import pytest, tcpcan, can' 2>/dev/null ||
	[ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("tcpcan"), m.version("python-can"))')" != "0.0.2 4.6.1" ]; then
	"$venv/bin/python" -m pip install -q --disable-pip-version-check 'pytest>=7,<9' 'tcpcan==0.0.2' 'python-can==4.6.1'
fi
"$venv/bin/python" -c 'import socket; socket.AF_CAN' ||
	{ echo "kernel deps: $venv/bin/python has no socket.AF_CAN" >&2; exit 1; }
