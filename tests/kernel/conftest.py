"""Fixtures and helpers for the kernel-level tests (run inside UML, see run.sh).

Every test gets fresh vcan interfaces and TCP ports, starts the daemons it
needs (ours from TCPCAN_BIN, the Python reference 0.0.2 from target/pyenv) and
checks what arrives on the far bus with raw AF_CAN sockets. Daemon logs are
attached to the report of a failing test. Readiness is always polled.
"""

import itertools
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# The protocol client every test directory shares (tests/v1proto.py); test
# modules import it after this conftest has run.
sys.path.insert(0, str(REPO / "tests"))
from v1proto import (  # noqa: E402, F401  (re-exported to the test modules)
    CAN_EFF_FLAG,
    CAN_RTR_FLAG,
    CANFD_BRS,
    CANFD_FDF,
    HELLO,
    classic,
    fd,
    hello,
    message,
    split,
)


def _repo_path(value):
    path = Path(value)
    return path if path.is_absolute() else REPO / path


OUR_BIN = _repo_path(os.environ.get("TCPCAN_BIN", "target/release/tcpcan"))
REF_BIN = REPO / "target/pyenv/bin/tcpcan"

# linux/can.h and linux/can/raw.h (the frame flags are in v1proto)
CAN_ERR_FLAG = 0x20000000
CAN_EFF_MASK = 0x1FFFFFFF
CAN_ERR_MASK = 0x1FFFFFFF
CAN_ERR_BUSOFF = 0x40
CAN_ERR_RESTARTED = 0x100
CANFD_ESI = 0x02
CAN_MTU = 16
CANFD_MTU = 72
SOL_CAN_RAW = socket.SOL_CAN_BASE + socket.CAN_RAW
CAN_RAW_ERR_FILTER = 2
CAN_RAW_FD_FRAMES = 5

CLASSIC_LENGTHS = list(range(9))
FD_LENGTHS = list(range(9)) + [12, 16, 20, 24, 32, 48, 64]

# Probe frames prove a path is up; every receive helper skips them so a late
# probe can never be mistaken for a test frame.
PROBE_MAGIC = b"PRB"

# How long "nothing more arrives" is watched for. Frames cross vcan and
# loopback TCP in well under a millisecond; this leaves a wide margin.
QUIET = 0.2


def payload(length, seed=0):
    return bytes((seed * 31 + i * 7 + 1) & 0xFF for i in range(length))


def frame_id(frame):
    return struct.unpack_from("<I", frame)[0]


def is_probe(frame):
    return frame[8:11] == PROBE_MAGIC


def probe_frame(k, can_id):
    """Probe number k: a classic frame no test sends otherwise."""
    return classic(can_id, PROBE_MAGIC + struct.pack("<I", k) + b"!")


def show(frame):
    """candump-like text of a raw frame, for assertion messages."""
    can_id, length, flags = struct.unpack_from("<IBB", frame)
    ident = (
        "%08X" % (can_id & CAN_EFF_MASK) if can_id & CAN_EFF_FLAG else "%03X" % (can_id & 0x7FF)
    )
    if can_id & CAN_ERR_FLAG:
        ident = "ERR:%08X" % (can_id & CAN_ERR_MASK)
    data = frame[8 : 8 + length].hex().upper()
    if len(frame) == CANFD_MTU:
        return "%s##%X%s" % (ident, flags, data)
    if can_id & CAN_RTR_FLAG:
        return "%s#R%d" % (ident, length)
    return "%s#%s" % (ident, data)


def shows(frames):
    return [show(f) for f in frames]


def wait_until(predicate, timeout, what, interval=0.01):
    """Poll predicate until truthy; fail the test naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


class Bus:
    """A raw CAN socket on one interface, CAN FD enabled."""

    def __init__(self, ifname, errors=False, fd_frames=True):
        self.ifname = ifname
        self.sock = socket.socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
        if fd_frames:
            self.sock.setsockopt(SOL_CAN_RAW, CAN_RAW_FD_FRAMES, 1)
        if errors:
            self.sock.setsockopt(SOL_CAN_RAW, CAN_RAW_ERR_FILTER, struct.pack("=I", CAN_ERR_MASK))
        self.sock.bind((ifname,))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, frame):
        self.sock.send(frame)

    def send_all(self, frames):
        for frame in frames:
            self.send(frame)

    def recv(self, timeout, probes=False):
        """Next frame within timeout, or None. Probes are skipped unless asked."""
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            if not select.select([self.sock], [], [], left)[0]:
                return None
            frame = self.sock.recv(CANFD_MTU)
            if probes or not is_probe(frame):
                return frame

    def recv_n(self, count, timeout=3.0):
        """Up to `count` frames; fewer if they do not arrive within timeout."""
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < count:
            frame = self.recv(max(0.0, deadline - time.monotonic()))
            if frame is None:
                break
            got.append(frame)
        return got

    def quiet(self, timeout=QUIET):
        """Everything that arrives within timeout (expected: nothing)."""
        return self.recv_n(1 << 20, timeout)

    def expect(self, count, timeout=2.0):
        """The `count` frames a test expects, plus any that follow within QUIET."""
        return self.recv_n(count, timeout) + self.quiet()

    def drain(self):
        """Everything already queued, without waiting."""
        return self.recv_n(1 << 20, 0)


def wait_path(src_if, dst_if, timeout=8.0, can_id=0x7E1):
    """Send probes on src_if until one arrives on dst_if; return the seconds it took.

    TCP keeps order, so once probe k has arrived every earlier probe has
    arrived or was dropped before the tunnel was up.
    """
    start = time.monotonic()
    with Bus(src_if) as src, Bus(dst_if) as dst:
        for k in itertools.count():
            probe = probe_frame(k, can_id)
            src.send(probe)
            deadline = time.monotonic() + 0.1
            while time.monotonic() < deadline:
                frame = dst.recv(deadline - time.monotonic(), probes=True)
                if frame == probe:
                    return time.monotonic() - start
            if time.monotonic() - start > timeout:
                pytest.fail("no frame crossed from %s to %s within %.1fs" % (src_if, dst_if, timeout))


def wait_tunnel(a, b, timeout=8.0, can_id=0x7E1):
    """Both directions between buses a and b carry frames."""
    wait_path(a, b, timeout, can_id)
    wait_path(b, a, timeout, can_id)


def transfer(src_if, dst_if, frames, timeout=3.0):
    """Send frames on src_if; assert dst_if gets exactly them, in order, byte for byte,
    and that nothing comes back to src_if (no echo loop)."""
    with Bus(src_if) as src, Bus(src_if) as src_watch, Bus(dst_if) as dst:
        src.send_all(frames)
        got = dst.recv_n(len(frames), timeout)
        assert shows(got) == shows(frames), "frames %s -> %s differ" % (src_if, dst_if)
        assert got == frames, "struct bytes %s -> %s differ" % (src_if, dst_if)
        time.sleep(QUIET)
        extra = dst.drain()
        assert not extra, "unexpected extra frames on %s: %s" % (dst_if, shows(extra))
        local = src_watch.drain()
        assert local == frames, "frames echoed back onto %s: %s" % (src_if, shows(local))


# ---------------------------------------------------------------- interfaces

_names = itertools.count(1)


@pytest.fixture
def vcan():
    """Factory: vcan(mtu=72) -> name of a fresh, up vcan interface (mtu 16: classic only)."""
    made = []

    def make(mtu=CANFD_MTU):
        name = "vcan%d" % next(_names)
        # One ip(8) call per interface: every process start is slow under UML.
        cmd = ["ip", "link", "add", "dev", name, "mtu", str(mtu), "up", "type", "vcan"]
        subprocess.run(cmd, check=True)
        made.append(name)
        actual = int(Path("/sys/class/net/%s/mtu" % name).read_text())
        assert actual == mtu, "%s has mtu %d, wanted %d" % (name, actual, mtu)
        return name

    yield make
    if made:
        batch = "".join("link del dev %s\n" % name for name in made)
        subprocess.run(["ip", "-batch", "-"], input=batch.encode(), check=False)


# ---------------------------------------------------------------- TCP ports

_ports = itertools.count(21000)


def _port_in_use(port):
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                return True
    return False


@pytest.fixture
def port():
    """Factory: port() -> a TCP port nothing uses."""

    def get():
        while True:
            candidate = next(_ports)
            if not _port_in_use(candidate):
                return candidate

    return get


def listening(port):
    """True when some socket listens on TCP port (IPv4 or IPv6), read from /proc."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                return True
    return False


# ---------------------------------------------------------------- daemons


def our_bin():
    if not os.access(OUR_BIN, os.X_OK):
        pytest.fail("daemon under test %s not found (set TCPCAN_BIN, run cargo build --release)" % OUR_BIN)
    return str(OUR_BIN)


def ref_bin():
    if not os.access(REF_BIN, os.X_OK):
        pytest.fail("reference %s not found (run tests/deps/kernel.sh)" % REF_BIN)
    return str(REF_BIN)


class Daemon:
    """A tcpcan process with its stdout+stderr captured in a log file (with
    `pipes`, only its stderr: its stdin and stdout are pipes to the test)."""

    def __init__(self, name, argv, log_path, pipes=False):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.log_file = open(log_path, "wb")
        if pipes:
            std = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log_file)
        else:
            std = dict(stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=subprocess.STDOUT)
        self.proc = subprocess.Popen(argv, **std)
        self.pid = self.proc.pid

    def log(self):
        return self.log_path.read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def wait_log(self, pattern, timeout=5.0):
        """Wait for a log line matching the regex (case-insensitive); return it."""
        regex = re.compile(pattern, re.I)

        def found():
            for line in self.log().splitlines():
                if regex.search(line):
                    return line
            if not self.alive():
                pytest.fail("%s exited (status %s) before logging /%s/" % (self.name, self.proc.returncode, pattern))
            return None

        return wait_until(found, timeout, "%s to log /%s/" % (self.name, pattern))

    def wait_listening(self, port, timeout=5.0):
        def ready():
            if not self.alive():
                pytest.fail("%s exited (status %s) instead of listening" % (self.name, self.proc.returncode))
            return listening(port)

        wait_until(ready, timeout, "%s to listen on port %d" % (self.name, port))

    def signal_and_reap(self, sig, timeout=2.0):
        """Send sig; return (exit status, seconds from signal to reap), or (None, None)."""
        pidfd = os.pidfd_open(self.pid)
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            start = time.monotonic()
            os.kill(self.pid, sig)
            ready = poller.poll(timeout * 1000)
            elapsed = time.monotonic() - start
        finally:
            os.close(pidfd)
        if not ready:
            return None, None
        return self.proc.wait(), elapsed

    def wait_exit(self, timeout):
        """Exit status within timeout, or None if still running."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            if self.wait_exit(2) is None:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


class Daemons:
    """Starts daemons for one test and stops them all afterwards."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.all = []

    def start(self, name, argv):
        log_path = self.tmp_path / ("%s-%d.log" % (name, len(self.all)))
        daemon = Daemon(name, argv, log_path)
        self.all.append(daemon)
        return daemon

    def ours(self, *args, name="ours"):
        return self.start(name, [our_bin(), *args])

    def ref(self, *args, name="ref"):
        return self.start(name, [ref_bin(), "-v", *args])

    def server(self, canif, port, impl="ours", host="127.0.0.1", extra=()):
        start = self.ours if impl == "ours" else self.ref
        daemon = start("--serve", "--host", host, "--port", str(port), *extra, canif, name="%s-server" % impl)
        daemon.wait_listening(port)
        return daemon

    def client(self, canif, port, impl="ours", host="127.0.0.1", extra=()):
        start = self.ours if impl == "ours" else self.ref
        return start("--host", host, "--port", str(port), *extra, canif, name="%s-client" % impl)

    def stop_all(self):
        for daemon in self.all:
            daemon.stop()

    def report(self):
        return "\n".join(
            "==== %s: %s (exit %s)\n%s" % (d.name, " ".join(d.argv), d.proc.returncode, d.log())
            for d in self.all
        )


@pytest.fixture
def daemons(request, tmp_path):
    group = Daemons(tmp_path)
    request.node.tcpcan_daemons = group
    yield group
    group.stop_all()


# Every result line names the kernel it ran on: tests/kernel/run.sh runs the
# scenarios once per UML kernel that boots here (a long-term 6.1, as gateways
# run, and the newest), and a line without its kernel would be ambiguous.
KERNEL = "UML " + os.uname().release


def pytest_report_header(config):
    return "kernel: " + KERNEL


def pytest_collection_modifyitems(items):
    for item in items:
        item._nodeid = "%s @ %s" % (item.nodeid, KERNEL)


def pytest_terminal_summary(terminalreporter):
    counts = {k: len(terminalreporter.stats.get(k, [])) for k in ("passed", "failed", "error")}
    terminalreporter.write_line(
        "kernel-scenarios on %s: %d passed, %d failed, %d errors"
        % (KERNEL, counts["passed"], counts["failed"], counts["error"])
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the logs of the test's daemons to its report when it fails."""
    outcome = yield
    report = outcome.get_result()
    group = getattr(item, "tcpcan_daemons", None)
    if group is not None and report.failed and call.when in ("setup", "call"):
        report.sections.append(("daemon logs", group.report()))


# ---------------------------------------------------------------- protocol v1


class Peer:
    """One end of a protocol v1 TCP connection, spoken directly from Python."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.closed = False

    @classmethod
    def connect(cls, port, host="127.0.0.1", version=1, timeout=5.0):
        """Connect, propose `version`, wait for the server's answer."""
        sock = socket.create_connection((host, port), timeout)
        peer = cls(sock)
        peer.sock.sendall(hello(version))
        msg = peer.recv_msg(timeout)
        assert msg is not None, "server answered no version within %.1fs" % timeout
        assert message(*msg) == hello(version), "bad version answer %r" % (msg,)
        return peer

    def close(self):
        self.sock.close()

    def send_msg(self, prefix, payload_bytes):
        self.sock.sendall(message(prefix, payload_bytes))

    def send_frame(self, frame):
        self.send_msg(b"d", frame)

    def _read(self, timeout):
        if not select.select([self.sock], [], [], timeout)[0]:
            return False
        try:
            chunk = self.sock.recv(65536)
        except ConnectionError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    def recv_msg(self, timeout):
        """(prefix, payload) within timeout, or None (timeout or closed)."""
        deadline = time.monotonic() + timeout
        while True:
            whole = split(self.buf)
            if whole is not None:
                kind, body, self.buf = whole
                return kind, body
            left = deadline - time.monotonic()
            if self.closed or left <= 0 or not self._read(left):
                return None

    def recv_frame(self, timeout):
        """Payload of the next non-probe data message within timeout, or None."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv_msg(max(0.0, deadline - time.monotonic()))
            if msg is None:
                return None
            assert msg[0] == b"d", "unexpected message %r" % (msg,)
            if not is_probe(msg[1]):
                return msg[1]

    def is_open(self):
        """False once the other end closed the connection."""
        while not self.closed and self._read(0):
            pass
        return not self.closed


def wait_peer_path(peer, canif, timeout=5.0):
    """Probe bus -> peer until a probe arrives (the server side is up)."""
    with Bus(canif) as bus:
        deadline = time.monotonic() + timeout
        k = 0
        while time.monotonic() < deadline:
            k += 1
            probe = probe_frame(k, 0x7E2)
            bus.send(probe)
            end = time.monotonic() + 0.1
            while time.monotonic() < end:
                msg = peer.recv_msg(end - time.monotonic())
                if msg == (b"d", probe):
                    return
            assert peer.is_open(), "server closed the connection"
        pytest.fail("no frame reached the TCP peer from %s within %.1fs" % (canif, timeout))


class FakeServer:
    """A listening socket that speaks protocol v1 to one client at a time."""

    def __init__(self, port, host="127.0.0.1"):
        self.sock = socket.create_server((host, port))

    def accept(self, timeout=5.0):
        """Accept a client and answer its version proposal; return a Peer.
        A proposal of another version is closed without an answer, as the
        Python original does (our client then dials again proposing 1)."""
        for _ in range(2):
            if not select.select([self.sock], [], [], timeout)[0]:
                pytest.fail("no client connected within %.1fs" % timeout)
            conn, _ = self.sock.accept()
            peer = Peer(conn)
            msg = peer.recv_msg(timeout)
            if msg is not None and message(*msg) == HELLO:
                peer.sock.sendall(HELLO)
                return peer
            conn.close()
        pytest.fail("client proposed %r again after it was closed on it" % (msg,))

    def close(self):
        self.sock.close()


@pytest.fixture
def peers():
    """Closes the Peer / FakeServer objects a test registers."""
    opened = []

    def keep(obj):
        opened.append(obj)
        return obj

    yield keep
    for obj in opened:
        obj.close()


def daemon_with_peer(role, daemons, peers, canif, port, extra=()):
    """Our daemon on canif in `role`, with a Python Peer on the TCP side; path up."""
    if role == "server":
        daemon = daemons.server(canif, port, extra=extra)
        peer = peers(Peer.connect(port))
    else:
        fake = peers(FakeServer(port))
        daemon = daemons.client(canif, port, extra=extra)
        peer = peers(fake.accept())
    wait_peer_path(peer, canif)
    return daemon, peer
