"""socketcand's protocol beside protocol v1 (--socketcand), proven with python-can itself.

python-can's interface="socketcand" is the client users run; a scripted client
(Scd below) covers what python-can cannot say: remote requests, BCM cyclic
sends, filters and subscriptions, bad input, the exact lines. Frames are
compared byte for byte on the raw bus.

socketcand's own client, socketcandcl, is not used: it is packaged neither
by Debian (bookworm and bookworm-backports: `apt-cache search socketcand`
finds nothing, `apt-cache policy socketcand` knows no such package) nor on
PyPI (`pip index versions socketcandcl`, and `socketcand`: no matching
distribution), checked 2026-11-29; CI does not build it from source. The
scripted client stands in for it.
"""

import signal
import socket
import statistics
import subprocess
import sys
import time

import can
import pytest

from conftest import (
    CAN_EFF_FLAG,
    CAN_ERR_BUSOFF,
    CAN_ERR_FLAG,
    PROBE_MAGIC,
    CAN_RTR_FLAG,
    Bus,
    Peer,
    classic,
    fd,
    payload,
    shows,
    wait_peer_path,
)
from faultlib import eof_within, links, netns, sh, stays_open  # noqa: F401  (links, netns: fixtures)
from roundtrip import BLOCK, REQUEST_ID, CanDesk, Ecu, interleaved

IDS = [(0x000, False), (0x123, False), (0x7FF, False), (0x0, True), (0x1ABCDEF0, True), (0x1FFFFFFF, True)]


def serve(daemons, canif, port, *extra):
    """Our server with protocol v1 on one port and socketcand on another; returns (daemon, scd port)."""
    v1, scd = port(), port()
    d = daemons.ours(
        "--serve", "--host", "127.0.0.1", "--port", str(v1), "--socketcand", str(scd), *extra, canif, name="ours-server"
    )
    d.wait_listening(scd)
    d.v1_port = v1
    return d, scd


def python_can(scd, canif, **kwargs):
    return can.Bus(interface="socketcand", host="127.0.0.1", port=scd, channel=canif, **kwargs)


def recv_msgs(bus, count, timeout=3.0):
    """Up to `count` python-can messages within timeout, probe frames skipped."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        m = bus.recv(max(0.0, deadline - time.monotonic()))
        if m is not None and bytes(m.data[:3]) != PROBE_MAGIC:
            got.append(m)
    return got


class Scd:
    """A socketcand client written out line by line."""

    def __init__(self, port, hi=True):
        self.sock = socket.create_connection(("127.0.0.1", port), 5.0)
        self.buf = b""
        if hi:
            assert self.line() == "< hi >"

    def send(self, text):
        self.sock.sendall(text.encode() if isinstance(text, str) else text)

    def line(self, timeout=3.0):
        """The next '< ... >' line, or None on timeout or EOF."""
        self.sock.settimeout(timeout)
        while b">" not in self.buf:
            try:
                chunk = self.sock.recv(4096)
            except (socket.timeout, ConnectionError):
                return None
            if not chunk:
                return None
            self.buf += chunk
        end = self.buf.index(b">") + 1
        text, self.buf = self.buf[:end].decode().strip(), self.buf[end:]
        return text

    def ask(self, text):
        self.send(text)
        return self.line()

    def opened(self, canif, raw=True):
        assert self.ask("< open %s >" % canif) == "< ok >"
        if raw:
            assert self.ask("< rawmode >") == "< ok >"
        return self

    def close(self):
        self.sock.close()


def test_python_can_and_the_bus_exchange_every_dlc_and_both_id_kinds(daemons, vcan, port):
    canif = vcan()
    _, scd = serve(daemons, canif, port)
    client = python_can(scd, canif)
    try:
        with Bus(canif) as bus:
            sent = [classic(i | (CAN_EFF_FLAG if ext else 0), payload(n, i + n)) for i, ext in IDS for n in range(9)]
            before = time.time()
            bus.send_all(sent)
            got = recv_msgs(client, len(sent))
            assert len(got) == len(sent), "python-can got %d of %d frames" % (len(got), len(sent))
            for frame, m in zip(sent, got):
                want_id = int.from_bytes(frame[:4], "little")
                assert m.is_extended_id == bool(want_id & CAN_EFF_FLAG), m
                assert m.arbitration_id == want_id & 0x1FFFFFFF, m
                assert bytes(m.data) == frame[8 : 8 + frame[4]], m
                # The kernel's receive time, not a time made up later.
                assert before - 1 <= m.timestamp <= time.time() + 1, m

            msgs = [
                can.Message(arbitration_id=i, is_extended_id=ext, data=payload(n, i + n + 1))
                for i, ext in IDS
                for n in range(9)
            ]
            for m in msgs:
                client.send(m)
            arrived = bus.recv_n(len(msgs))
            want = [classic(m.arbitration_id | (CAN_EFF_FLAG if m.is_extended_id else 0), bytes(m.data)) for m in msgs]
            assert shows(arrived) == shows(want)
            assert arrived == want
    finally:
        client.shutdown()


def test_python_can_and_a_v1_client_see_each_other(daemons, vcan, port):
    canif = vcan()
    d, scd = serve(daemons, canif, port)
    peer = Peer.connect(d.v1_port)
    client = python_can(scd, canif)
    try:
        wait_peer_path(peer, canif)
        for i, ext in IDS:
            for n in (0, 3, 8):
                data = payload(n, i + n)
                client.send(can.Message(arbitration_id=i, is_extended_id=ext, data=data))
                want = classic(i | (CAN_EFF_FLAG if ext else 0), data)
                assert peer.recv_frame(3.0) == want
                peer.send_frame(want)
                (m,) = recv_msgs(client, 1)
                assert (m.arbitration_id, m.is_extended_id, bytes(m.data)) == (i, ext, data)
    finally:
        client.shutdown()
        peer.close()


def test_remote_requests_both_ways_and_fd_frames_counted_not_sent(daemons, vcan, port):
    canif = vcan()
    d, scd = serve(daemons, canif, port)
    c = Scd(scd).opened(canif)
    with Bus(canif) as bus:
        rtr = classic(0x123, rtr=True, dlc=4)
        bus.send(fd(0x55, payload(20)))
        bus.send(rtr)
        line = c.line()
        assert line.startswith("< rtr 123 ") and line.endswith(" 4 >"), line
        c.send("< sendrtr 1AAAAAAA 2 >")
        (got,) = bus.recv_n(1)
        assert got == classic(0x1AAAAAAA | CAN_EFF_FLAG | CAN_RTR_FLAG, dlc=2)
        bus.send(fd(0x56, payload(12)))
        bus.send(classic(0x7, b"\x01"))
        assert c.line().endswith(" 01 >")
    d.wait_log(r"CAN FD frames are not sent to socketcand clients")
    assert d.log().count("CAN FD frames are not sent") == 1, "one warning per connection"
    d.proc.send_signal(signal.SIGUSR1)
    line = d.wait_log(r"127\.0\.0\.1:\d+: socketcand: .*fd_not_sent=2")
    assert "to_tcp=2" in line and "to_can=1" in line, line
    c.close()


def test_a_bus_not_served_gets_an_error_and_the_connection_ends(daemons, vcan, port):
    canif = vcan()
    d, scd = serve(daemons, canif, port)
    c = Scd(scd)
    assert c.ask("< open can9 >") == "< error no such bus >"
    assert eof_within(c.sock, 2.0) is not None
    d.wait_log(r"127\.0\.0\.1:\d+: closed: socketcand: asked to open a bus not served")


BAD = [
    # (what is sent after open + rawmode, the reply line or None, connection stays)
    ("< send 12G 1 00 >", "< error malformed CAN ID >", False),
    ("< send 123 9 1 2 3 4 5 6 7 8 9 >", "< error DLC above 8 >", True),
    ("< frobnicate >", "< error unknown command >", True),
    ("< muxfilter 0 0 123 2 FF 00 00 00 00 00 00 00 33 FF FF FF FF FF FF FF >", "< error command not supported >", True),
    ("< subscribe 0 0 12G >", "< error malformed CAN ID >", False),
    ("< subscribe 0 0 123 4 >", "< error too many fields >", True),
    ("\x00\x01\x02\xff", None, False),
    ("< send " + " " * 400, None, False),
]


@pytest.mark.parametrize(
    "text,reply,stays",
    BAD,
    ids=["bad-id", "dlc9", "unknown", "unsupported", "subscribe-bad-id", "subscribe-extra", "binary", "too-long"],
)
def test_bad_input_gets_its_outcome_and_another_client_keeps_working(daemons, vcan, port, text, reply, stays):
    canif = vcan()
    d, scd = serve(daemons, canif, port)
    other = python_can(scd, canif)
    c = Scd(scd).opened(canif)
    try:
        with Bus(canif) as bus:
            c.send(text.encode("latin-1"))
            if reply is not None:
                assert c.line() == reply
            if stays:
                assert stays_open(c.sock)
                assert c.ask("< echo >") == "< echo >"
            else:
                assert eof_within(c.sock, 2.0) is not None
                d.wait_log(r"127\.0\.0\.1:%d: closed: socketcand" % c.sock.getsockname()[1])
            assert not bus.quiet(), "nothing reached the bus"
            other.send(can.Message(arbitration_id=0x42, is_extended_id=False, data=b"ok"))
            assert bus.recv_n(1) == [classic(0x42, b"ok")]
            bus.send(classic(0x43, b"yes"))
            (m,) = recv_msgs(other, 1)
            assert (m.arbitration_id, bytes(m.data)) == (0x43, b"yes")
    finally:
        other.shutdown()
        c.close()


def test_send_before_open_is_an_error_and_the_client_may_then_open(daemons, vcan, port):
    canif = vcan()
    _, scd = serve(daemons, canif, port)
    c = Scd(scd)
    with Bus(canif) as bus:
        assert c.ask("< send 123 1 11 >") == "< error no bus open >"
        assert not bus.quiet()
        c.opened(canif, raw=False)
        c.send("< send 123 1 11 >")
        assert bus.recv_n(1) == [classic(0x123, b"\x11")]
    c.close()


def test_read_only_and_the_shared_client_limit_apply(daemons, vcan, port):
    canif = vcan()
    d, scd = serve(daemons, canif, port, "--read-only", "--max-clients", "1")
    client = python_can(scd, canif)
    try:
        with Bus(canif) as bus:
            client.send(can.Message(arbitration_id=0x1, is_extended_id=False, data=b"x"))
            assert not bus.quiet()
            # The one slot is taken by the socketcand client: a v1 client is
            # refused, its connection reset (even while it connects).
            try:
                s = socket.create_connection(("127.0.0.1", d.v1_port), 5.0)
            except ConnectionResetError:
                pass
            else:
                assert eof_within(s, 2.0) is not None
                s.close()
            d.wait_log(r"refused: already serving 1 clients \(--max-clients\)")
            bus.send(classic(0x2, b"y"))
            (m,) = recv_msgs(client, 1)
            assert bytes(m.data) == b"y"
    finally:
        client.shutdown()
    d.wait_log(r"closed: peer closed the connection")
    d.wait_log(r"socketcand: .*read_only=1")


FIND_AND_SEND = """
import can
from can.interfaces.socketcand import detect_beacon
found = detect_beacon(6000)
print(found)
with can.Bus(**found[0]) as bus:
    bus.send(can.Message(arbitration_id=0x321, is_extended_id=False, data=b"found"))
"""


def test_detect_beacon_finds_the_gateway_from_another_subnet_host(daemons, vcan, port, netns, links):
    """python-can in a netns behind a veth finds the gateway by its beacon and uses what it found."""
    canif, ns, veth = vcan(), netns(), links("scdveth")
    sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth9", "netns", ns)
    sh("ip", "addr", "add", "10.77.0.1/24", "brd", "+", "dev", veth)
    sh("ip", "link", "set", veth, "up")
    sh("ip", "-n", ns, "addr", "add", "10.77.0.2/24", "brd", "+", "dev", "eth9")
    sh("ip", "-n", ns, "link", "set", "eth9", "up")
    v1, scd = port(), port()
    d = daemons.ours(
        "--serve", "--host", "10.77.0.1", "--port", str(v1), "--socketcand", str(scd), "--beacon", canif, name="ours-server"
    )
    d.wait_listening(scd)
    with Bus(canif) as bus:
        done = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", FIND_AND_SEND], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        want = "{'interface': 'socketcand', 'host': '10.77.0.1', 'port': %d, 'channel': '%s'}" % (scd, canif)
        assert want in done.stdout, done.stdout
        assert bus.recv_n(1) == [classic(0x321, b"found")]
    d.wait_log(r"sending socketcand beacons to UDP port 42000 every 2 s")


def test_cyclic_sends_repeat_in_the_kernel_until_deleted_or_the_client_leaves(daemons, vcan, port):
    canif = vcan()
    _, scd = serve(daemons, canif, port)
    c = Scd(scd).opened(canif, raw=False)
    with Bus(canif) as bus:
        c.send("< add 0 20000 123 2 42 43 >")
        got = bus.recv_n(1000, 1.0)
        # Every 20 ms for 1 s: about 50; the margin is for a loaded UML.
        assert 20 <= len(got) <= 60, "%d frames in 1 s at 20 ms" % len(got)
        assert set(got) == {classic(0x123, b"\x42\x43")}
        c.send("< update 123 1 11 >")
        time.sleep(0.1)
        bus.drain()
        assert set(bus.recv_n(5, 1.0)) == {classic(0x123, b"\x11")}, "new content, same timer"
        c.send("< delete 123 >")
        time.sleep(0.1)
        bus.drain()
        assert not bus.quiet(0.3), "deleted job still sends"
        assert c.ask("< delete 123 >") == "< error no such cyclic send >"
        c.send("< add 0 20000 1AAAAAAA 0 >")
        assert bus.recv_n(3, 1.0) == [classic(0x1AAAAAAA | CAN_EFF_FLAG)] * 3
        c.close()
        time.sleep(0.2)
        bus.drain()
        assert not bus.quiet(0.3), "a job outlived its connection"


@pytest.mark.parametrize("mode", ["rawmode", "controlmode"])
def test_a_mode_change_ends_the_cyclic_sends_of_the_mode_before(daemons, vcan, port, mode):
    # As socketcand, which closes its BCM socket on a mode change: a job
    # that outlived the mode that made it would send frames nobody watches.
    canif = vcan()
    _, scd = serve(daemons, canif, port)
    c = Scd(scd).opened(canif, raw=False)
    with Bus(canif) as bus:
        c.send("< add 0 20000 123 2 42 43 >")
        assert bus.recv_n(3, 1.0) == [classic(0x123, b"\x42\x43")] * 3, "the job runs"
        assert c.ask("< %s >" % mode) == "< ok >"
        # What the job sent before the < ok > may still be queued here.
        time.sleep(0.05)
        bus.drain()
        assert bus.quiet(0.3) == [], "a cyclic send outlived < %s >" % mode
        # RAW mode may still forward what the bus carried before the switch.
        c.send("< echo >")
        replies = []
        while len(replies) < 20 and "< echo >" not in replies:
            replies.append(c.line())
            if replies[-1] is None:
                break
        assert "< echo >" in replies, "the connection stays: %r" % replies
    c.close()


@pytest.mark.parametrize("flag", [True, False], ids=["error-frames", "default"])
def test_error_frames_reach_python_can_only_with_the_flag(daemons, vcan, port, flag):
    canif = vcan()
    _, scd = serve(daemons, canif, port, *(["--error-frames"] if flag else []))
    client = python_can(scd, canif)
    try:
        with Bus(canif) as injector:
            injector.send(classic(CAN_ERR_FLAG | CAN_ERR_BUSOFF, bytes(8)))
            injector.send(classic(0x321, b"mark"))
            got = recv_msgs(client, 2 if flag else 1)
        seen = [(m.is_error_frame, m.arbitration_id, bytes(m.data)) for m in got]
        marker = (False, 0x321, b"mark")
        assert seen == ([(True, CAN_ERR_BUSOFF, b"\x00"), marker] if flag else [marker])
    finally:
        client.shutdown()


def test_control_mode_reports_the_interface_statistics_at_the_interval(daemons, vcan, port):
    canif = vcan()
    _, scd = serve(daemons, canif, port)
    c = Scd(scd).opened(canif, raw=False)
    assert c.ask("< controlmode >") == "< ok >"
    c.send("< statistics 200 >")
    first = c.line().split()
    assert first[:2] == ["<", "stat"] and len(first) == 7, first
    with Bus(canif) as bus:
        bus.send_all([classic(0x10 + i, payload(8, i)) for i in range(3)])
    start = time.monotonic()
    second = c.line().split()
    took = time.monotonic() - start
    assert 0.05 <= took <= 1.0, "next < stat > after %.2f s at 200 ms" % took
    rb1, rp1, tb1, tp1 = map(int, first[2:6])
    rb2, rp2, tb2, tp2 = map(int, second[2:6])
    assert (rp2 + tp2) - (rp1 + tp1) >= 3, (first, second)
    assert (rb2 + tb2) - (rb1 + tb1) >= 3 * 8, (first, second)
    c.send("< statistics 0 >")
    # A line already on its way is fine; none may follow it.
    while c.line(0.3) is not None:
        pass
    assert c.line(0.5) is None, "statistics still sent after < statistics 0 >"
    c.close()


def subscribed(scd, canif, *commands):
    """A scripted client in BCM mode whose commands the server has carried out.

    Receive commands have no answer: the < echo > after them comes back once
    the ones before it are done, so frames sent then are seen by the kernel's BCM.
    """
    c = Scd(scd).opened(canif, raw=False)
    c.send("".join(commands) + "< echo >")
    assert c.line() == "< echo >"
    return c


def frame_line(line):
    """(id text, kernel time, data hex) of a '< frame ID SEC.USEC DATA >' line."""
    words = line.split()
    assert words[:2] == ["<", "frame"] and words[-1] == ">", line
    return words[2], float(words[3]), "".join(words[4:-1])


def lines_until_quiet(c, quiet=0.5):
    got = []
    while (line := c.line(quiet)) is not None:
        got.append(line)
    return got


def test_subscribe_passes_every_frame_of_its_ids_to_its_client_only(daemons, vcan, port):
    canif = vcan()
    _, scd = serve(daemons, canif, port)
    c = subscribed(scd, canif, "< subscribe 0 0 123 >", "< subscribe 0 0 1AAAAAAA >")
    bystander = Scd(scd).opened(canif, raw=False)
    with Bus(canif) as bus:
        before = time.time()
        bus.send_all([classic(0x124, b"\x01"), classic(0x123, b"\x0a\x0b"), classic(0x123, b"\x0a\x0b")])
        bus.send(classic(0x1AAAAAAA | CAN_EFF_FLAG, payload(8, 3)))
        bus.send(classic(0x0AA, b"\x02"))
        got = [frame_line(line) for line in lines_until_quiet(c)]
    assert [(i, d) for i, _, d in got] == [
        ("123", "0A0B"),
        ("123", "0A0B"),
        ("1AAAAAAA", payload(8, 3).hex().upper()),
    ], "every frame of a subscribed ID, unchanged ones too, and nothing else"
    for _, stamp, _ in got:
        assert before - 1 <= stamp <= time.time() + 1, "the kernel's receive time: %f" % stamp
    assert bystander.line(0.3) is None, "a subscription's frames went to another client"
    c.close()
    bystander.close()


def test_filter_passes_only_changes_under_its_mask(daemons, vcan, port):
    canif = vcan()
    _, scd = serve(daemons, canif, port)
    c = subscribed(scd, canif, "< filter 0 0 123 2 F0 FF >")
    with Bus(canif) as bus:
        bus.send_all(
            [
                classic(0x123, b"\x10\x01"),  # first: passed
                classic(0x123, b"\x10\x01"),  # the same: not repeated
                classic(0x123, b"\x1F\x01"),  # changed outside the mask: not passed
                classic(0x123, b"\x20\x01"),  # changed under the mask: passed
                classic(0x124, b"\x30\x01"),  # another ID: not passed
            ]
        )
        got = [frame_line(line)[2] for line in lines_until_quiet(c)]
    assert got == ["1001", "2001"]
    c.close()


def test_a_throttled_subscription_passes_at_most_one_frame_per_interval_and_the_last(daemons, vcan, port):
    canif = vcan()
    _, scd = serve(daemons, canif, port)
    c = subscribed(scd, canif, "< subscribe 0 200000 123 >")
    with Bus(canif) as bus:
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < 1.0:
            bus.send(classic(0x123, n.to_bytes(2, "big")))
            n += 1
            time.sleep(0.01)
        got = [frame_line(line) for line in lines_until_quiet(c)]
    assert n >= 30, "only %d frames sent in 1 s" % n
    # 1 s at one per 200 ms: the first at once, then about 5; margin for a loaded UML.
    assert 3 <= len(got) <= 8, "%d of %d frames passed at 200 ms" % (len(got), n)
    assert got[0][2] == "0000", "the first frame passes at once"
    assert got[-1][2] == (n - 1).to_bytes(2, "big").hex().upper(), "the throttle holds back the latest frame, not the first"
    c.close()


def test_unsubscribe_stops_the_frames_and_the_connection_stays(daemons, vcan, port):
    canif = vcan()
    _, scd = serve(daemons, canif, port)
    c = subscribed(scd, canif, "< subscribe 0 0 123 >", "< filter 0 0 456 1 FF >")
    with Bus(canif) as bus:
        bus.send(classic(0x123, b"\x01"))
        assert frame_line(c.line())[0] == "123"
        c.send("< unsubscribe 123 >< echo >")
        assert c.line() == "< echo >"
        bus.send_all([classic(0x123, b"\x02"), classic(0x456, b"\x03")])
        assert [frame_line(line)[0] for line in lines_until_quiet(c)] == ["456"]
        assert c.ask("< unsubscribe 123 >") == "< error no such subscription >"
        # RAW mode forwards everything, and leaving BCM mode ends its jobs.
        assert c.ask("< rawmode >") == "< ok >"
        assert c.ask("< bcmmode >") == "< ok >"
        bus.send(classic(0x456, b"\x04"))
        assert c.line(0.5) is None, "a subscription outlived BCM mode"
    c.close()


def test_subscriptions_are_bounded_per_client_and_the_connection_stays(daemons, vcan, port):
    canif = vcan()
    _, scd = serve(daemons, canif, port)
    limit = 64  # limits::SCD_MAX_SUBSCRIPTIONS
    c = subscribed(scd, canif, *("< subscribe 0 0 %03X >" % i for i in range(limit)))
    assert c.ask("< subscribe 0 0 7FF >") == "< error too many subscriptions >"
    with Bus(canif) as bus:
        bus.send_all([classic(limit - 1, b"\x01"), classic(0x7FF, b"\x02")])
        assert [frame_line(line)[0] for line in lines_until_quiet(c)] == ["%03X" % (limit - 1)]
    assert c.ask("< echo >") == "< echo >"
    c.close()


def test_read_only_allows_subscriptions_and_filter_hides_what_it_hides(daemons, vcan, port):
    canif = vcan()
    _, scd = serve(daemons, canif, port, "--read-only", "--filter", "100:700")
    c = subscribed(scd, canif, "< subscribe 0 0 123 >")
    assert c.ask("< subscribe 0 0 223 >") == "< error ID hidden by --filter >"
    with Bus(canif) as bus:
        bus.send_all([classic(0x223, b"\x01"), classic(0x123, b"\x02")])
        assert [frame_line(line)[:3:2] for line in lines_until_quiet(c)] == [("123", "02")]
        c.send("< send 123 1 05 >")
        assert not bus.quiet(), "--read-only let a send through"
    c.close()


# Rounds of turns per desk (tests/roundtrip.py), after one that is not counted.
ROUNDS, TURNS = 4, 10


def test_a_desk_at_python_cans_defaults_takes_a_request_turn_about_as_fast_as_a_tuned_one(daemons, vcan, port):
    """A desk at python-can's defaults (tcp_tune=False; Windows has no other
    choice) holds each small write until the server acknowledges the one
    before (Nagle): the server acknowledges what it reads at once, so the
    request's block of consecutive frames (tests/roundtrip.py) never waits
    for a delayed acknowledgement."""
    canif = vcan()
    _, scd = serve(daemons, canif, port)
    ids = {tune: REQUEST_ID + i for i, tune in enumerate((False, True))}
    with Ecu(canif, ids.values()):
        desks = {tune: (CanDesk(python_can(scd, canif, tcp_tune=tune)), i) for tune, i in ids.items()}
        try:
            took = interleaved(desks, ROUNDS, TURNS)
        finally:
            for desk, _ in desks.values():
                desk.close()
    mean = {tune: statistics.mean(t) * 1000 for tune, t in took.items()}
    median = {tune: statistics.median(t) * 1000 for tune, t in took.items()}
    ratio = mean[False] / mean[True]
    print(
        "request turn (request and answer, each a first frame, a flow control and %d consecutive frames) "
        "over %d turns each: defaults mean %.2f ms (median %.2f), tcp_tune=True mean %.2f ms (median %.2f): %.2f x"
        % (BLOCK, len(took[False]), mean[False], median[False], mean[True], median[True], ratio)
    )
    assert ratio <= 2, "a desk at python-can's defaults takes %.1f x as long per turn as a tuned one" % ratio
