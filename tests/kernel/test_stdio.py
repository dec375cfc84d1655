"""`tcpcan --stdio`: one peer on standard input and output, as sshd runs it,
spoken to here directly through pipes. Bad input gets the same end as over
TCP (the reason logged, the counters, the process gone with status 1) and
never touches another peer of the same bus: a second --stdio process, the
witness, keeps carrying frames. The end of input is a clean exit (0)."""

import os
import random
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Bus, Daemon, Peer, classic, fd, our_bin, payload, shows
from faultlib import parse_counters, wait_new_log
from v1proto import HELLO, hello, message


class Stdio(Daemon):
    """A `tcpcan --stdio` process and our ends of its pipes."""

    def __init__(self, tmp_path, canif, *extra, name="stdio"):
        argv = [our_bin(), "--stdio", *extra, canif]
        super().__init__(name, argv, tmp_path / ("%s.log" % name), pipes=True)
        self.buf = b""
        self.closed = False

    def send(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # it ended on us mid-write, as it may

    def _read(self, timeout):
        """Takes what waits on our end of its stdout into buf, as
        conftest.Peer does from its socket; False at a timeout or the end."""
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            return False
        chunk = os.read(self.proc.stdout.fileno(), 65536)
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    # Messages are split as on TCP: only the reads differ.
    recv_msg = Peer.recv_msg

    def agree(self):
        """Propose version 1 and see it echoed."""
        self.send(HELLO)
        msg = self.recv_msg(3.0)
        assert msg is not None and message(*msg) == HELLO, "no version agreement, got %r" % (msg,)
        self.wait_log(r"stdio: agreed protocol version 1")

    def stop(self):
        if self.alive():
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.log_file):
            try:
                f.close()
            except BrokenPipeError:
                pass


@pytest.fixture
def stdio(tmp_path):
    started = []

    def start(canif, *extra, name="stdio"):
        s = Stdio(tmp_path, canif, *extra, name="%s-%d" % (name, len(started)))
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def witness_flows(witness, canif):
    """A frame each way between the bus and the witness's pipes."""
    frame = classic(0x7C0, payload(8, 3))
    with Bus(canif) as bus:
        witness.send(message(b"d", frame))
        assert shows(bus.recv_n(1)) == shows([frame]), "the witness's frame did not reach the bus"
        back = classic(0x7C1, payload(4, 5))
        bus.send(back)
        # Noise that was valid CAN reached the bus, and so the witness: skip it.
        deadline = time.monotonic() + 3.0
        while True:
            msg = witness.recv_msg(max(0.0, deadline - time.monotonic()))
            assert msg is not None, "the bus's frame did not reach the witness"
            if msg == (b"d", back):
                break


def random_noise(seed, size):
    rng = random.Random(seed)
    out = bytearray(HELLO)
    while len(out) < size // 2:
        length = rng.choice([16, 72, rng.randrange(256)])
        out += bytes([ord("d"), length]) + rng.randbytes(length)
    return bytes(out + rng.randbytes(size - len(out)))


# (sent after agreement or not, the bytes, the reason the log gives)
CLOSING = {
    "data_before_agreement": (False, message(b"d", classic(0x111, payload(8))), r"data message before version agreement"),
    "version_0": (False, hello(0), r"version 0"),
    "version_of_length_3": (False, b"v\x03\0\0\0", r"version message with length 3\b"),
    "other_version_after_agreement": (True, hello(2), r"version 2 after agreeing on 1"),
    "unknown_prefix_fresh": (False, bytes([0xFF, 16]) + bytes(16), r"unknown message prefix 0xff"),
    "unknown_prefix_agreed": (True, bytes([0x00, 16]) + bytes(16), r"unknown message prefix 0x00"),
    "random_flood_fresh": (False, random.Random(1).randbytes(1 << 20), r"."),
    "random_flood_agreed": (True, random_noise(2, 1 << 20), r"."),
}


@pytest.mark.parametrize("case", list(CLOSING))
def test_bad_input_on_stdin_ends_the_process_as_over_tcp(stdio, vcan, case):
    agreed, data, reason = CLOSING[case]
    bus = vcan()
    witness = stdio(bus, name="witness")
    witness.agree()
    s = stdio(bus)
    if agreed:
        s.agree()
    with Bus(bus) as watch:
        s.send(data)
        try:
            status = s.proc.wait(3)
        except subprocess.TimeoutExpired:
            pytest.fail("--stdio kept running after %s" % case)
        leaked = watch.quiet()
    line = s.wait_log(r"stdio: closed: ")
    why = line.split(": closed: ", 1)[1]
    print("%s: exit %d, closed: %s" % (case, status, why))
    assert status == 1, "exit status %d" % status
    assert re.search(reason, why, re.I), "closed for %r, expected /%s/" % (why, reason)
    s.wait_log(r"stdio: frames to_can=")
    assert re.search(r"^tcpcan: connection to stdio lost: ", s.log(), re.M), s.log()
    if not agreed:
        assert not leaked, "frames reached the bus before agreement: %s" % shows(leaked)
    assert witness.alive(), "the witness died"
    witness_flows(witness, bus)


def test_bad_lengths_are_dropped_and_counted_and_the_peer_stays(stdio, vcan):
    bus = vcan()
    s = stdio(bus)
    s.agree()
    bad = [message(b"d", payload(n)) for n in range(256) if n not in (16, 72)]
    good = fd(0x225, payload(64))
    with Bus(bus) as watch:
        s.send(b"".join(bad) + message(b"d", good))
        got = watch.recv_n(1, 3.0) + watch.quiet()
    assert shows(got) == shows([good])
    start = len(s.log())
    os.kill(s.pid, signal.SIGUSR1)
    counts = parse_counters(wait_new_log(s, r"stdio: frames to_can=", start))
    print("254 bad lengths on stdin: %s" % counts)
    assert counts["invalid"] == len(bad) and counts["to_can"] == 1
    assert s.alive()


def test_silence_on_stdin_ends_after_the_handshake_timeout(stdio, vcan):
    s = stdio(vcan(), "--handshake-timeout", "1")
    assert s.proc.wait(4) == 1
    assert re.search(r"stdio: closed: no version agreement within 1 s", s.log()), s.log()


def test_the_end_of_input_is_a_clean_exit_after_delivering_what_came_before(stdio, vcan):
    bus = vcan()
    s = stdio(bus)
    s.agree()
    frames = [classic(0x400 + i, payload(8, i)) for i in range(50)]
    with Bus(bus) as watch:
        s.send(b"".join(message(b"d", f) for f in frames))
        s.proc.stdin.close()
        assert s.proc.wait(3) == 0
        assert shows(watch.recv_n(len(frames))) == shows(frames)
    assert re.search(r"stdio: closed: peer closed the connection", s.log()), s.log()


def test_a_reader_gone_from_stdout_is_the_peer_gone(stdio, vcan):
    bus = vcan()
    s = stdio(bus)
    s.agree()
    s.proc.stdout.close()
    with Bus(bus) as b:
        b.send(classic(0x123, payload(8)))
    assert s.proc.wait(3) == 0
    assert re.search(r"stdio: closed: peer closed the connection", s.log(), re.I), s.log()


def test_stdio_opens_no_network_socket(stdio, vcan):
    s = stdio(vcan())
    s.agree()
    inodes = set()
    for fd_name in os.listdir("/proc/%d/fd" % s.pid):
        target = os.readlink("/proc/%d/fd/%s" % (s.pid, fd_name))
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    assert inodes, "no CAN socket found"
    for table in ("tcp", "tcp6", "udp", "udp6"):
        path = Path("/proc/net/%s" % table)
        if path.exists():
            used = {line.split()[9] for line in path.read_text().splitlines()[1:]}
            assert not inodes & used, "--stdio holds a %s socket" % table


@pytest.mark.parametrize("flag", [["--host", "h"], ["--port", "1"], ["--allow", "10.0.0.0/8"], ["--max-clients", "2"], ["--socketcand", "29536"], ["--replay-rate", "0"]])
def test_socket_flags_are_refused_in_one_line(vcan, flag):
    done = subprocess.run([our_bin(), "--stdio", *flag, "vcan0"], capture_output=True, text=True, timeout=5)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert re.match(r"tcpcan: %s cannot apply with --stdio" % re.escape(flag[0]), done.stderr), done.stderr
