"""Who may use the tunnel and how: --allow, --read-only, --max-clients, and
running as an unprivileged user."""

import re
import shutil
import socket
import time

import pytest

from conftest import Bus, Peer, classic, daemon_with_peer, our_bin, payload, shows, wait_peer_path, wait_tunnel
from faultlib import addr, assert_flows, closed_counters, counters, eof_within, seq_frame, wait_peer_frame
from v1proto import HELLO, message


def connect_from(source, port, host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect((host, port))
    return sock


def refused_within(source, port, host="127.0.0.1", timeout=2.0):
    """Connects from `source` and says hello: (this end as the server logs
    it, seconds until the server ended the connection, or None if it did
    not). A refusal resets the connection (so that our client never takes
    it for the Python original's close on a version): the reset may come
    while connecting, during the hello or after it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((source, 0))
        who = addr(sock)
        start = time.monotonic()
        try:
            sock.settimeout(5)
            sock.connect((host, port))
            sock.sendall(HELLO)
        except (ConnectionResetError, BrokenPipeError):
            return who, time.monotonic() - start
        return who, eof_within(sock, timeout)
    finally:
        sock.close()


@pytest.mark.parametrize(
    "listen, allow, inside, outside",
    [
        ("127.0.0.1", ["127.0.0.1/32"], "127.0.0.1", "127.0.0.2"),
        ("127.0.0.1", ["127.0.0.0/30", "127.0.1.0/24"], "127.0.1.9", "127.0.0.4"),
        ("::", ["::1"], "::1", "127.0.0.1"),
    ],
    ids=["host", "two_blocks", "ipv6_only"],
)
def test_allow_closes_peers_outside_at_accept(daemons, vcan, port, peers, listen, allow, inside, outside):
    a, p = vcan(), port()
    extra = [arg for block in allow for arg in ("--allow", block)]
    server = daemons.server(a, p, host=listen, extra=extra)
    target = "::1" if ":" in inside else "127.0.0.1"
    good = peers(Peer(connect_from(inside, p, target)))
    good.sock.sendall(HELLO)
    assert message(*(good.recv_msg(3.0) or (b"", b""))) == HELLO, "a peer inside %s was not served" % allow
    wait_peer_path(good, a)

    bad, took = refused_within(outside, p, "127.0.0.1" if ":" not in outside else "::1")
    assert took is not None, "a peer outside %s was served" % allow
    line = server.wait_log(re.escape(bad) + r": refused: not in the --allow list")
    print("%s outside %s: closed after %.3f s: %s" % (outside, allow, took, line))
    assert count_accepted(server, bad) == 0
    assert_flows(good, a, "the allowed peer")


def test_a_desk_the_gateway_refuses_dials_again_once_a_second_not_in_a_loop(daemons, vcan, port):
    """A desk outside the gateway's --allow is reset as soon as it connects.
    It dials again once a second, as for a server that is down, not at once
    in a loop that keeps both daemons busy and fills both logs. Before,
    every close was redialed at once: 18 refusals in 3 s on 7.2 (3 on 6.1,
    where that build already waited)."""
    a, b, p = vcan(), vcan(), port()
    server = daemons.server(a, p, extra=["--allow", "10.0.0.0/8"])
    client = daemons.client(b, p)
    server.wait_log(r": refused: not in the --allow list")
    time.sleep(3.0)
    refused = len(re.findall(r": refused: not in the --allow list", server.log()))
    print("a refused desk over 3 s: %d refusals at the gateway" % refused)
    assert client.alive(), "the desk gave up"
    # One at once, then one a second; a closure on version 2 may be taken
    # for the Python original's answer once, which asks again in version 1.
    assert 3 <= refused <= 8, "%d refusals in 3 s" % refused


def count_accepted(daemon, who):
    return sum(1 for line in daemon.log().splitlines() if re.search(re.escape(who) + r": accepted", line))


@pytest.mark.parametrize("role", ["server", "client"])
def test_read_only_keeps_tcp_off_the_bus(daemons, vcan, port, peers, role):
    a = vcan()
    daemon, peer = daemon_with_peer(role, daemons, peers, a, port(), extra=["--read-only"])
    frames = [seq_frame(0x7A0, i) for i in range(5)]
    with Bus(a) as bus:
        for f in frames:
            peer.send_frame(f)
        leaked = bus.quiet(0.5)
        assert not leaked, "--read-only wrote frames to the bus: %s" % shows(leaked)
        # Bus -> TCP still works.
        down = classic(0x7A1, payload(8))
        bus.send(down)
        assert wait_peer_frame(peer, down), "bus -> TCP stopped with --read-only"
    counts = counters(daemon, addr(peer.sock))
    print("%s --read-only: %s" % (role, counts))
    assert counts["read_only"] == len(frames) and counts["to_can"] == 0
    assert peer.is_open()


def test_max_clients_refuses_the_extra_client(daemons, vcan, port, peers):
    a, p = vcan(), port()
    server = daemons.server(a, p, extra=["--max-clients", "2"])
    first = peers(Peer.connect(p))
    second = peers(Peer.connect(p))
    for peer in (first, second):
        wait_peer_path(peer, a)

    extra, took = refused_within("127.0.0.1", p)
    assert took is not None, "a third client was served with --max-clients 2"
    line = server.wait_log(re.escape(extra) + r": refused: .*--max-clients")
    print("third client closed after %.3f s: %s" % (took, line))
    for peer in (first, second):
        assert_flows(peer, a, "a client within the limit")

    # A place frees up: the next client is served.
    who = addr(first.sock)
    first.close()
    closed_counters(server, who)
    later = peers(Peer.connect(p))
    wait_peer_path(later, a)
    assert_flows(later, a, "the client after one left")
    assert_flows(second, a, "the remaining client")


def nobody(argv):
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop privileges"
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *argv]


def uid_of(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


@pytest.mark.parametrize("side", ["server", "client"])
def test_unprivileged_user_runs_the_daemon(daemons, vcan, port, side):
    a, b, p = vcan(), vcan(), port()
    server_argv = [our_bin(), "--serve", "--host", "127.0.0.1", "--port", str(p), a]
    client_argv = [our_bin(), "--host", "127.0.0.1", "--port", str(p), b]
    if side == "server":
        server = daemons.start("nobody-server", nobody(server_argv))
        server.wait_listening(p)
        client = daemons.start("root-client", client_argv)
        unprivileged = server
    else:
        server = daemons.start("root-server", server_argv)
        server.wait_listening(p)
        client = daemons.start("nobody-client", nobody(client_argv))
        unprivileged = client
    wait_tunnel(a, b)
    assert uid_of(unprivileged.pid) == 65534, "the daemon does not run as nobody"
    frames = [seq_frame(0x7B0, i) for i in range(3)]
    with Bus(a) as near, Bus(b) as far:
        near.send_all(frames)
        got = far.recv_n(len(frames), 2.0)
    assert got == frames
    print("%s as nobody (uid 65534): tunnel works" % side)
    assert server.alive() and client.alive()
    # The queue each says it got: root forces the intended 512 KiB (the
    # kernel reports twice that); nobody gets what net.core.rmem_max allows,
    # and is told so, with the fix.
    privileged = client if side == "server" else server
    privileged.wait_log(r"\[INFO\] %s: CAN receive queue 1048576 bytes \(~1361 frames\)$" % (b if side == "server" else a))
    rmem_max = int(open("/proc/sys/net/core/rmem_max").read())
    mine = a if side == "server" else b
    if 2 * rmem_max < 1048576:
        line = unprivileged.wait_log(r"\[WARN\] %s: CAN receive queue is %d bytes" % (mine, 2 * rmem_max))
        assert "net.core.rmem_max=524288" in line, line
    else:
        unprivileged.wait_log(r"\[INFO\] %s: CAN receive queue" % mine)
    print("%s as nobody: receive queue logged (rmem_max %d)" % (side, rmem_max))
