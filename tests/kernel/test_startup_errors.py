"""Start-up errors: exit status 1 and one stderr line that names the cause."""

import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import our_bin


def run_failing(argv, timeout=10):
    """Run the daemon, expect it to exit 1 by itself; return its one stderr line."""
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, cwd="/"
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail("%s still running after %ds (stderr: %r)" % (argv, timeout, exc.stderr))
    stderr = done.stderr.decode(errors="replace")
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert done.returncode == 1, "exit status %d, stderr: %r" % (done.returncode, stderr)
    assert len(lines) == 1, "expected one stderr line, got: %r" % stderr
    return lines[0]


def assert_names(line, *patterns):
    for pattern in patterns:
        assert re.search(pattern, line, re.I), "stderr line %r lacks /%s/" % (line, pattern)


@pytest.mark.parametrize("mode", ["serve", "client"])
def test_no_such_can_interface(port, mode):
    p = port()
    # A listener that never accepts, so a client fails only on the interface.
    with socket.create_server(("127.0.0.1", p)):
        role = ["--serve"] if mode == "serve" else []
        line = run_failing([our_bin(), *role, "--host", "127.0.0.1", "--port", str(p), "nosuchcan0"])
    assert_names(line, r"nosuchcan0", r"no such|not found|does not exist|unknown|missing")


# CAN's protocol modules, those that hold `can` (the address family) in use.
CAN_PROTOCOLS = ("can_gw", "can_bcm", "can_j1939", "can_isotp", "can_raw")


@pytest.fixture
def can_modules():
    """Unload CAN's modules for one test and load again what was loaded:
    a kernel with CAN that lacks raw sockets, or CAN altogether, as in many
    containers and WSL kernels."""
    modroot = os.environ["TCPCAN_UML_MODROOT"]
    loaded = [m for m in (*CAN_PROTOCOLS, "can") if Path("/sys/module", m).is_dir()]

    def unload(*modules):
        modules = [m for m in modules if m in loaded]
        done = subprocess.run(["modprobe", "-r", "-d", modroot, *modules], capture_output=True, text=True)
        held = Path("/proc/modules").read_text()
        assert done.returncode == 0, "cannot unload %s: %s\n%s" % (modules, done.stderr, held)

    yield unload
    for module in loaded:
        subprocess.run(["modprobe", "-d", modroot, module], check=True)


@pytest.mark.parametrize("which", ["missing", "vcan"])
def test_kernel_without_can_is_named_with_what_to_load(can_modules, vcan, port, which):
    name = "nosuchcan0" if which == "missing" else vcan()
    can_modules(*CAN_PROTOCOLS, "can")
    line = run_failing([our_bin(), "--serve", "--host", "127.0.0.1", "--port", str(port()), name])
    assert_names(line, re.escape(name), r"kernel has no CAN", r"modprobe can_raw")
    assert "no such" not in line


@pytest.mark.parametrize("which", ["missing", "vcan"])
def test_kernel_without_raw_can_sockets_is_named_with_the_module_to_load(can_modules, vcan, port, which):
    name = "nosuchcan0" if which == "missing" else vcan()
    can_modules("can_raw")
    line = run_failing([our_bin(), "--serve", "--host", "127.0.0.1", "--port", str(port()), name])
    assert_names(line, re.escape(name), r"no raw CAN sockets", r"modprobe can_raw")
    assert "no such" not in line


def test_interface_is_not_can(port):
    line = run_failing([our_bin(), "--serve", "--host", "127.0.0.1", "--port", str(port()), "lo"])
    assert_names(line, r"\blo\b", r"not a can|not can|no can|isn't a can")


def test_address_in_use(vcan, port):
    p = port()
    with socket.create_server(("127.0.0.1", p)):
        line = run_failing([our_bin(), "--serve", "--host", "127.0.0.1", "--port", str(p), vcan()])
    assert_names(line, r"in use")


def test_permission_denied_on_privileged_port(vcan):
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop privileges"
    # A copy nobody can reach: the checkout may sit below a 0700 directory.
    public = tempfile.mkdtemp(prefix="tcpcan-nobody-")
    try:
        os.chmod(public, 0o755)
        binary = shutil.copy(our_bin(), os.path.join(public, "tcpcan"))
        os.chmod(binary, 0o755)
        nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", binary]
        probe = subprocess.run(nobody + ["--version"], capture_output=True, cwd="/")
        assert probe.returncode == 0, "nobody cannot run %s: %r" % (binary, probe.stderr)
        line = run_failing(nobody + ["--serve", "--host", "127.0.0.1", "--port", "81", vcan()])
    finally:
        shutil.rmtree(public)
    assert_names(line, r"permission denied|not permitted")


@pytest.mark.parametrize("mode", ["serve", "client"])
def test_unresolvable_host(vcan, port, mode):
    role = ["--serve"] if mode == "serve" else ["--no-retry"]
    host = "no.such.host.invalid"
    line = run_failing([our_bin(), *role, "--host", host, "--port", str(port()), vcan()])
    assert_names(line, re.escape(host), r"resolv|not known|unknown host|lookup|no address")
