"""A server fed bad input: each case has one outcome the protocol defines
(connection closed, message ignored, or frame dropped and counted), a log
line that names the peer and the reason, and no effect on a well-behaved
client connected at the same time, whose traffic is checked after each case."""

import random
import re
import socket
import struct
import time

import pytest

from conftest import CAN_MTU, CANFD_FDF, Bus, Peer, classic, fd, payload, shows, wait_peer_path
from faultlib import addr, assert_flows, closed_counters, counters, eof_within, stays_open
from v1proto import HELLO, hello, message

HANDSHAKE = 2


version = hello
V1 = HELLO


class Served:
    """Our server on a fresh bus, a witness client already talking to it."""

    def __init__(self, daemons, vcan, port, peers, mtu=72, extra=()):
        self.bus = vcan(mtu)
        self.port = port()
        self.daemon = daemons.server(self.bus, self.port, extra=["--handshake-timeout", str(HANDSHAKE), *extra])
        self.peers = peers
        self.witness = peers(Peer.connect(self.port))
        wait_peer_path(self.witness, self.bus)

    def raw(self, agreed=False):
        """A plain TCP connection to the server, optionally past negotiation."""
        sock = self.peers(socket.create_connection(("127.0.0.1", self.port), 5))
        if agreed:
            sock.sendall(V1)
            assert recv_exactly(sock, 6) == V1, "no version agreement"
        return sock

    def assert_closed(self, sock, reason, timeout=2.0):
        """The server closed `sock` and logged why, naming the peer."""
        assert eof_within(sock, timeout) is not None, "server kept the connection open"
        why, _ = closed_counters(self.daemon, addr(sock))
        assert re.search(reason, why, re.I), "closed for %r, expected /%s/" % (why, reason)
        return why

    def assert_unaffected(self):
        assert self.daemon.alive(), "server died"
        # Noise that was valid CAN reached the bus and so the witness: skip it.
        self.witness.buf = b""
        self.witness.sock.settimeout(0.3)
        try:
            while self.witness.sock.recv(1 << 20):
                pass
        except socket.timeout:
            pass
        assert_flows(self.witness, self.bus, "the witness client")


@pytest.fixture
def served(daemons, vcan, port, peers):
    return Served(daemons, vcan, port, peers)


@pytest.fixture
def served_v1(daemons, vcan, port, peers):
    """Our server pinned to version 1 (--protocol 1): steps down as a
    server that speaks only version 1 must."""
    return Served(daemons, vcan, port, peers, extra=["--protocol", "1"])


def recv_exactly(sock, size, timeout=3.0):
    data = b""
    sock.settimeout(timeout)
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def quiet(sock, seconds=0.3):
    """Bytes the server sends within `seconds` (expected: none)."""
    sock.settimeout(seconds)
    try:
        return sock.recv(4096)
    except socket.timeout:
        return b""


msg = message


# ---------------------------------------------------------------- negotiation


def test_data_before_version_agreement_closes(served):
    with Bus(served.bus) as bus:
        sock = served.raw()
        sock.sendall(msg(b"d", classic(0x111, payload(8))))
        served.assert_closed(sock, r"data message before version agreement")
        assert not bus.quiet(), "a frame sent before agreement reached the bus"
    served.assert_unaffected()


def test_version_zero_closes(served):
    sock = served.raw()
    sock.sendall(version(0))
    served.assert_closed(sock, r"version 0")
    served.assert_unaffected()


@pytest.mark.parametrize("offer", [2, 0xFFFFFFFF], ids=["v2", "vFFFFFFFF"])
def test_higher_version_is_answered_with_1_then_agreed_on_echo(served_v1, offer):
    served = served_v1
    sock = served.raw()
    sock.sendall(version(offer))
    assert recv_exactly(sock, 6) == V1, "server did not propose version 1"
    sock.sendall(V1)
    assert quiet(sock) == b"", "server answered the echo of its own proposal"
    served.daemon.wait_log(re.escape(addr(sock)) + r": agreed protocol version 1")
    peer = Peer(sock)
    wait_peer_path(peer, served.bus)
    assert_flows(peer, served.bus, "the downgraded client")
    served.assert_unaffected()


def test_insisting_on_a_higher_version_closes(served_v1):
    served = served_v1
    sock = served.raw()
    sock.sendall(version(2))
    assert recv_exactly(sock, 6) == V1
    sock.sendall(version(2))
    served.assert_closed(sock, r"no common version")
    served.assert_unaffected()


@pytest.mark.parametrize("offer", [3, 0xFFFFFFFF], ids=["v3", "vFFFFFFFF"])
def test_a_version_above_2_is_answered_with_2_and_insisting_closes(served, offer):
    sock = served.raw()
    sock.sendall(version(offer))
    assert recv_exactly(sock, 6) == version(2), "server did not propose version 2"
    sock.sendall(version(2))
    served.daemon.wait_log(re.escape(addr(sock)) + r": agreed protocol version 2")
    other = served.raw()
    other.sendall(version(offer))
    assert recv_exactly(other, 6) == version(2)
    other.sendall(version(offer))
    served.assert_closed(other, r"no common version")
    served.assert_unaffected()


@pytest.mark.parametrize("length", [0, 1, 3, 5, 8, 255])
def test_version_message_of_wrong_length_closes(served, length):
    sock = served.raw()
    sock.sendall(b"v" + bytes([length]) + b"\0" * length)
    served.assert_closed(sock, r"version message with length %d\b" % length)
    served.assert_unaffected()


def test_repeated_version_after_agreement_is_ignored(served):
    sock = served.raw(agreed=True)
    sock.sendall(V1)
    assert quiet(sock) == b"", "server answered a repeated version"
    peer = Peer(sock)
    wait_peer_path(peer, served.bus)
    assert_flows(peer, served.bus, "the client that repeated its version")
    served.assert_unaffected()


@pytest.mark.parametrize("other", [2, 0])
def test_different_version_after_agreement_closes(served, other):
    sock = served.raw(agreed=True)
    sock.sendall(version(other))
    served.assert_closed(sock, r"version %d after agreeing on 1" % other)
    served.assert_unaffected()


@pytest.mark.parametrize("agreed", [False, True], ids=["fresh", "agreed"])
@pytest.mark.parametrize("prefix", [0x00, 0x01, ord("V"), ord("D"), ord("x"), 0x7F, 0x80, 0xFF])
def test_unknown_prefix_closes(served, prefix, agreed):
    sock = served.raw(agreed)
    sock.sendall(bytes([prefix, 16]) + bytes(16))
    served.assert_closed(sock, r"unknown message prefix 0x%02x" % prefix)
    served.assert_unaffected()


# ---------------------------------------------------------------- data messages


def only_good_frame_arrives(served, sock, bad_messages, good):
    """Send the bad messages then a good frame: only the good one reaches the
    bus, the connection stays, and the server counts the drops."""
    with Bus(served.bus) as bus:
        sock.sendall(b"".join(bad_messages) + msg(b"d", good))
        got = bus.recv_n(1, 3.0) + bus.quiet()
    assert shows(got) == shows([good]), "expected only the good frame on the bus"
    assert stays_open(sock), "server closed the connection over a bad frame"
    return counters(served.daemon, addr(sock))


def test_data_of_every_invalid_length_dropped_and_counted(served):
    sock = served.raw(agreed=True)
    bad = [msg(b"d", payload(n)) for n in range(256) if n not in (16, 72)]
    counts = only_good_frame_arrives(served, sock, bad, classic(0x222, payload(8)))
    print("254 data messages of bad length: %s" % counts)
    assert counts["invalid"] == len(bad)
    served.daemon.wait_log(re.escape(addr(sock)) + r": dropped frame from TCP: data message of 0 bytes")
    served.assert_unaffected()


def test_bad_classic_and_fd_lengths_dropped_and_counted(served):
    sock = served.raw(agreed=True)
    bad_classic = [classic(0x223, dlc=n) for n in range(9, 256)]
    valid_fd = {0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64}
    bad_fd = [struct.pack("<IBBBB64s", 0x224, n, CANFD_FDF, 0, 0, b"") for n in range(256) if n not in valid_fd]
    bad = [msg(b"d", f) for f in bad_classic + bad_fd]
    counts = only_good_frame_arrives(served, sock, bad, fd(0x225, payload(64)))
    print("%d classic and %d FD frames of bad len: %s" % (len(bad_classic), len(bad_fd), counts))
    assert counts["invalid"] == len(bad)
    served.daemon.wait_log(re.escape(addr(sock)) + r": dropped frame from TCP: classic frame with len 9")
    served.assert_unaffected()


def test_fd_frames_toward_classic_only_interface_refused_and_counted(daemons, vcan, port, peers):
    served = Served(daemons, vcan, port, peers, mtu=CAN_MTU)
    sock = served.raw(agreed=True)
    bad = [msg(b"d", fd(0x226, payload(n))) for n in (0, 8, 12, 64)]
    counts = only_good_frame_arrives(served, sock, bad, classic(0x227, payload(3)))
    print("4 FD frames toward a classic-only bus: %s" % counts)
    assert counts["refused"] == len(bad)
    served.daemon.wait_log(re.escape(addr(sock)) + r": dropped frame .* refused by interface")
    served.assert_unaffected()


def test_stream_in_one_byte_writes_arrives_intact(served):
    sock = served.raw()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def trickle(data):
        for i in range(len(data)):
            sock.send(data[i : i + 1])
            time.sleep(0.0005)  # separate segments, not one coalesced write

    trickle(V1)
    assert recv_exactly(sock, 6) == V1
    frames = [classic(0x230 + i, payload(i, seed=i)) for i in range(9)] + [fd(0x240, payload(64)), fd(0x241, payload(12))]
    with Bus(served.bus) as bus:
        trickle(b"".join(msg(b"d", f) for f in frames))
        got = bus.recv_n(len(frames), 3.0)
    assert got == frames, "frames written a byte at a time arrived damaged"
    served.assert_unaffected()


def random_stream(seed, size):
    """Half random data messages (valid frames, bad lengths, error frames,
    repeated versions), so the noise gets past the framing, then plain
    random bytes."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size // 2:
        if rng.random() < 0.01:
            out += V1
            continue
        length = rng.choice([16, 72, 16, 72, rng.randrange(256)])
        out += bytes([ord("d"), length]) + rng.randbytes(length)
    out += rng.randbytes(size - len(out))
    return bytes(out)


@pytest.mark.parametrize("agreed", [False, True], ids=["fresh", "agreed"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_byte_flood_closes_without_harm(served, seed, agreed):
    sock = served.raw(agreed)
    data = random_stream(seed, 1 << 20) if agreed else random.Random(seed).randbytes(1 << 20)
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed on us mid-flood, as it should
    assert eof_within(sock, 3.0) is not None, "server kept a connection that sent 1 MiB of noise"
    why, counts = closed_counters(served.daemon, addr(sock))
    print("random flood (seed %d, %s): closed: %s; %s" % (seed, "agreed" if agreed else "fresh", why, counts))
    served.assert_unaffected()


# ---------------------------------------------------------------- silence


@pytest.mark.parametrize(
    "sent",
    [b"", HELLO[:3], version(3)],
    ids=["nothing", "half_a_version", "unanswered_downgrade"],
)
def test_silent_connection_closed_after_handshake_timeout(served, sent):
    sock = served.raw()
    start = time.monotonic()
    sock.sendall(sent)
    assert eof_within(sock, HANDSHAKE + 3) is not None, "server kept a silent connection"
    took = time.monotonic() - start
    why, _ = closed_counters(served.daemon, addr(sock))
    print("sent %r then nothing: closed after %.2f s: %s" % (sent, took, why))
    assert HANDSHAKE - 0.2 <= took <= HANDSHAKE + 1.0, "closed after %.2f s, --handshake-timeout %d" % (took, HANDSHAKE)
    assert re.search(r"no version agreement within %d s" % HANDSHAKE, why), why
    served.assert_unaffected()
