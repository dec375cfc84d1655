"""Helpers for the fault, bad-input and access scenarios (test_faults.py,
test_bad_input.py, test_access.py).

They measure the daemon from outside, as an operator would: CPU time, RSS and
open descriptors from /proc, per-connection counters from the log line that
SIGUSR1 (or a close) produces, and what arrives on the bus or the TCP peer.
Everything here builds on conftest.py and changes nothing in it.
"""

import itertools
import os
import re
import select
import signal
import socket
import struct
import subprocess
import time

import pytest

from conftest import PROBE_MAGIC, Bus, classic, wait_until

CLK_TCK = os.sysconf("SC_CLK_TCK")
SO_RCVBUFFORCE = 33  # asm-generic/socket.h; Python's socket module lacks it


# ---------------------------------------------------------------- /proc


def cpu_seconds(pid):
    """User + system CPU time the process has used so far, in seconds."""
    stat = open("/proc/%d/stat" % pid).read()
    # The command name may contain spaces: fields start after its ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_over(pid, seconds):
    """CPU seconds the process uses during the next `seconds` of wall time."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - before


def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    pytest.fail("no VmRSS for pid %d" % pid)
    return None


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


# ---------------------------------------------------------------- commands


def sh(*argv, check=True):
    """Run a command (ip, tc); fail the test with its stderr if it fails."""
    done = subprocess.run(argv, capture_output=True, text=True)
    if check and done.returncode != 0:
        pytest.fail("%s failed (%d): %s" % (" ".join(argv), done.returncode, done.stderr.strip()))
    return done


def make_vcan(name, mtu=72):
    sh("ip", "link", "add", "dev", name, "type", "vcan")
    sh("ip", "link", "set", name, "mtu", str(mtu))
    sh("ip", "link", "set", name, "up")


_ids = itertools.count(1)


@pytest.fixture
def links():
    """Factory: links(prefix) -> a fresh interface name that is deleted after
    the test whatever became of it (for interfaces a test deletes, re-creates,
    or creates late)."""
    names = []

    def name(prefix="fcan"):
        n = "%s%d" % (prefix, next(_ids))
        names.append(n)
        return n

    yield name
    for n in names:
        subprocess.run(["ip", "link", "del", "dev", n], capture_output=True)


@pytest.fixture
def netns():
    """Factory: netns() -> name of a fresh network namespace with lo up."""
    made = []

    def make():
        name = "tcpcanns%d" % next(_ids)
        sh("ip", "netns", "add", name)
        made.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    yield make
    for name in made:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


# ---------------------------------------------------------------- logs


def addr(sock):
    """How the daemon names this socket's end in its log: `127.0.0.1:40000`."""
    host, port = sock.getsockname()[:2]
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


def log_lines(daemon, start=0):
    """Complete log lines from character offset `start` on."""
    return daemon.log()[start:].split("\n")[:-1]


def wait_new_log(daemon, pattern, start, timeout=5.0):
    """First complete line after offset `start` matching the regex."""
    regex = re.compile(pattern, re.I)

    def found():
        for line in log_lines(daemon, start):
            if regex.search(line):
                return line
        return None

    return wait_until(found, timeout, "%s to log /%s/" % (daemon.name, pattern))


def count_log(daemon, pattern):
    regex = re.compile(pattern, re.I)
    return sum(1 for line in log_lines(daemon) if regex.search(line))


def parse_counters(line):
    """{'to_can': 3, 'bus_down': 1, ...} from a counters log line."""
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def counters(daemon, who, timeout=3.0):
    """Counters of the connection with peer `who` (as `addr` gives it),
    asked for with SIGUSR1."""
    start = len(daemon.log())
    os.kill(daemon.pid, signal.SIGUSR1)
    line = wait_new_log(daemon, re.escape(who) + r": frames to_can=", start, timeout)
    return parse_counters(line)


def closed_counters(daemon, who, timeout=3.0):
    """(reason, counters) logged when the connection with `who` closed."""
    line = daemon.wait_log(re.escape(who) + r": closed: ", timeout)
    reason = line.split(": closed: ", 1)[1]
    counts = daemon.wait_log(re.escape(who) + r": frames to_can=", timeout)
    return reason, parse_counters(counts)


# ---------------------------------------------------------------- sockets


def eof_within(sock, timeout):
    """Seconds until the other end closes `sock` (FIN or RST), or None.
    Whatever else arrives meanwhile is discarded."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            return None
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except (ConnectionResetError, ConnectionAbortedError):
            return time.monotonic() - start


def stays_open(sock, seconds=0.3):
    """True if the other end does not close `sock` within `seconds`."""
    return eof_within(sock, seconds) is None


def seq_frame(can_id, seq):
    """A classic frame carrying a sequence number, for order checks."""
    return classic(can_id, struct.pack("<I", seq) + b"SEQ!")


def seq_of(frame):
    return struct.unpack_from("<I", frame, 8)[0]


def big_rcvbuf_bus(ifname, size=32 << 20):
    """A Bus whose receive queue holds a whole burst, so the test reader
    (Python, slower than the kernel) loses nothing."""
    bus = Bus(ifname)
    bus.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    return bus


def _wait_for(recv, want, timeout):
    """True once recv(seconds_left) returns `want`; other items are skipped."""
    deadline = time.monotonic() + timeout
    while True:
        got = recv(max(0.0, deadline - time.monotonic()))
        if got is None:
            return False
        if got == want:
            return True


def wait_frame(bus, frame, timeout=2.0):
    """True once `frame` arrives on `bus` (other frames are skipped)."""
    return _wait_for(bus.recv, frame, timeout)


def wait_peer_frame(peer, frame, timeout=2.0):
    """True once `frame` arrives at the protocol peer (other messages skipped)."""
    return _wait_for(peer.recv_msg, (b"d", frame), timeout)


_witness = itertools.count(1)


def assert_flows(peer, canif, what="the other client"):
    """A frame crosses both ways between protocol peer `peer` and bus `canif`."""
    k = next(_witness)
    down = classic(0x5A0, PROBE_MAGIC + b"W" + struct.pack("<I", k))
    up = classic(0x5A1, b"WIT" + struct.pack("<I", k) + b"!")
    with Bus(canif) as bus:
        peer.send_frame(up)
        assert wait_frame(bus, up), "%s: frame from TCP did not reach %s" % (what, canif)
        bus.send(down)
        assert wait_peer_frame(peer, down), "%s: frame from %s did not reach TCP" % (what, canif)

