"""Faults a gateway meets in the field: the bus goes down, disappears, is slow
or dead; a TCP peer stops reading, the server dies, a peer vanishes without a
FIN; SIGTERM under full load; many short connections. Each test prints the
figures it measured (run pytest with -s or -rP to see them)."""

import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import (
    Bus,
    Peer,
    classic,
    daemon_with_peer,
    our_bin,
    payload,
    wait_path,
    wait_peer_path,
    wait_tunnel,
    wait_until,
)
from faultlib import (  # noqa: F401  (links, netns: fixtures)
    addr,
    assert_flows,
    big_rcvbuf_bus,
    count_log,
    counters,
    cpu_over,
    cpu_seconds,
    fd_count,
    links,
    log_lines,
    make_vcan,
    netns,
    parse_counters,
    rss_kb,
    seq_frame,
    seq_of,
    sh,
    stays_open,
    wait_frame,
    wait_new_log,
)
from v1proto import HELLO
from v1proto import data as data_message

# A daemon that waits for an event must not burn CPU: 2 s while the bus is
# down may cost at most this much CPU time (a busy loop costs ~2 s).
IDLE_CPU = 0.10


def data_msgs(frames):
    """The frames as one block of protocol v1 data messages."""
    return b"".join(data_message(f) for f in frames)


# ---------------------------------------------------------------- 1. down/up


@pytest.mark.parametrize("role", ["server", "client"])
def test_interface_down_then_up_keeps_session_without_busy_loop(daemons, vcan, port, peers, role):
    a = vcan()
    daemon, peer = daemon_with_peer(role, daemons, peers, a, port())
    who = addr(peer.sock)

    sh("ip", "link", "set", a, "down")
    daemon.wait_log(re.escape(a) + r": interface is down")
    lost = [seq_frame(0x321, i) for i in range(10)]
    peer.sock.sendall(data_msgs(lost))
    cpu = cpu_over(daemon.pid, 2.0)
    print("%s: CPU time over 2 s with %s down: %.3f s" % (role, a, cpu))
    assert cpu < IDLE_CPU, "busy loop while the interface is down: %.2f s CPU in 2 s" % cpu
    counts = counters(daemon, who)
    print("%s: counters while down: %s" % (role, counts))
    assert counts["bus_down"] == len(lost), "frames from TCP while down not counted as bus_down"
    assert daemon.alive(), "daemon exited while the interface was down"
    assert peer.is_open(), "TCP session dropped while the interface was down"

    sh("ip", "link", "set", a, "up")
    start = time.monotonic()
    wait_peer_path(peer, a, timeout=3.0)
    assert_flows(peer, a, "the same session after up")
    print("%s: traffic resumed %.2f s after up" % (role, time.monotonic() - start))
    daemon.wait_log(re.escape(a) + r": interface is up")
    assert count_log(daemon, r"closed: ") == 0, "a connection was closed"


# ---------------------------------------------------------------- 2. deleted


def accepted_peer(server):
    """The address the server logged for the (only) client it accepted."""
    line = server.wait_log(r": accepted")
    return line.split("] ", 1)[-1].rsplit(": accepted", 1)[0]


@pytest.mark.parametrize("side", ["server", "client"])
def test_interface_deleted_and_recreated_reopens_by_name(daemons, links, port, side):
    a, b, p = links(), links(), port()
    make_vcan(a)
    make_vcan(b)
    server = daemons.server(a, p)
    client = daemons.client(b, p)
    wait_tunnel(a, b)
    # The daemon whose interface goes, its bus, the far bus, and its name for its peer.
    if side == "server":
        victim, gone, far, who = server, a, b, accepted_peer(server)
    else:
        victim, gone, far, who = client, b, a, "127.0.0.1:%d" % p

    sh("ip", "link", "del", "dev", gone)
    victim.wait_log(re.escape(gone) + r" disappeared")
    time.sleep(0.2)
    with Bus(far) as bus:
        bus.send_all([seq_frame(0x322, i) for i in range(5)])
    cpu = cpu_over(victim.pid, 2.0)
    print("%s: CPU time over 2 s with %s deleted: %.3f s" % (side, gone, cpu))
    assert cpu < IDLE_CPU, "busy loop while the interface is gone: %.2f s CPU in 2 s" % cpu
    counts = counters(victim, who)
    print("%s: counters while gone: %s" % (side, counts))
    assert counts["bus_down"] == 5, "frames for a deleted interface not counted as bus_down"

    make_vcan(gone)
    start = time.monotonic()
    wait_tunnel(a, b, timeout=5.0)
    took = time.monotonic() - start
    print("%s: traffic resumed %.2f s after %s was re-created" % (side, took, gone))
    assert took < 2.5, "reopening took %.2f s (retry interval is 1 s)" % took
    for d in (server, client):
        assert d.alive()
        assert count_log(d, r"closed: ") == 0, "%s closed its TCP session" % d.name
    assert count_log(client, r"connected to") == 1, "the client had to reconnect"


def test_missing_interface_at_startup_fails_fast(port):
    start = time.monotonic()
    done = subprocess.run(
        [our_bin(), "--serve", "--host", "127.0.0.1", "--port", str(port()), "nosuchcan9"],
        capture_output=True,
        timeout=10,
    )
    took = time.monotonic() - start
    print("missing interface: exit %d after %.3f s" % (done.returncode, took))
    assert done.returncode == 1
    assert b"nosuchcan9" in done.stderr
    assert took < 1.0, "took %.2f s to give up" % took


@pytest.mark.parametrize("role", ["server", "client"])
def test_wait_flag_waits_for_missing_interface(daemons, links, vcan, port, role):
    late, other, p = links(), vcan(), port()
    if role == "server":
        waiting = daemons.server(late, p, extra=["--wait"])
        daemons.client(other, p)
    else:
        daemons.server(other, p)
        waiting = daemons.client(late, p, extra=["--wait"])
    waiting.wait_log(re.escape(late) + r".*wait")
    time.sleep(1.5)
    assert waiting.alive(), "--wait daemon exited while the interface was missing"

    make_vcan(late)
    start = time.monotonic()
    wait_tunnel(late, other, timeout=5.0)
    took = time.monotonic() - start
    print("%s --wait: tunnel up %.2f s after %s appeared" % (role, took, late))
    assert took < 2.5


# ---------------------------------------------------------------- 3. slow bus

BURST = 5000


def test_burst_over_slow_bus_arrives_complete_in_order(daemons, vcan, port, peers):
    a = vcan()
    server, peer = daemon_with_peer("server", daemons, peers, a, port())
    sh("tc", "qdisc", "add", "dev", a, "root", "tbf", "rate", "500kbit", "burst", "1k", "latency", "50ms")
    frames = [seq_frame(0x1AB, i) for i in range(BURST)]
    with big_rcvbuf_bus(a) as bus:
        cpu0, start = cpu_seconds(server.pid), time.monotonic()
        peer.sock.sendall(data_msgs(frames))
        got = bus.recv_n(BURST, timeout=30.0)
        took = time.monotonic() - start
        cpu = cpu_seconds(server.pid) - cpu0
        got += bus.quiet()
    print(
        "slow bus: %d of %d frames in %.2f s (%.0f frames/s), daemon CPU %.2f s (%.0f%%)"
        % (len(got), BURST, took, len(got) / took, cpu, 100 * cpu / took)
    )
    seqs = [seq_of(f) for f in got]
    assert len(got) == BURST, "%d frames lost" % (BURST - len(got))
    assert seqs == list(range(BURST)), "frames out of order"
    assert took > 0.5, "the qdisc did not slow the bus down; test proves nothing"
    assert cpu < 0.5 * took, "daemon CPU %.2f s over %.2f s: busy waiting on ENOBUFS?" % (cpu, took)
    counts = counters(server, addr(peer.sock))
    assert counts["to_can"] >= BURST and counts["stale"] == 0, counts


def test_frame_for_stuck_bus_dropped_after_tx_timeout(daemons, vcan, port, peers):
    # A dead bus (no ACK) keeps the controller's frames; the interface queue
    # (txqueuelen 10) fills and every write fails with ENOBUFS. netem holding
    # frames for 100 s with room for 10 behaves the same on a vcan.
    a = vcan()
    server, peer = daemon_with_peer("server", daemons, peers, a, port(), extra=["--tx-timeout", "300"])
    who = addr(peer.sock)
    sh("tc", "qdisc", "add", "dev", a, "root", "netem", "delay", "100s", "limit", "10")
    frames = [seq_frame(0x2AB, i) for i in range(30)]
    mark = len(server.log())
    cpu0, start = cpu_seconds(server.pid), time.monotonic()
    peer.sock.sendall(data_msgs(frames))
    wait_new_log(server, r"bus busy past --tx-timeout", mark, timeout=3.0)
    waited = time.monotonic() - start
    time.sleep(0.2)
    cpu = cpu_seconds(server.pid) - cpu0
    counts = counters(server, who)
    print(
        "stuck bus: first frame dropped %.0f ms after sending (tx-timeout 300 ms), "
        "daemon CPU %.3f s; counters %s" % (waited * 1000, cpu, counts)
    )
    assert counts["to_can"] + counts["stale"] == len(frames), "frames unaccounted for"
    assert counts["stale"] >= 1
    assert 0.28 <= waited <= 0.7, "frame dropped after %.0f ms, not ~300 ms" % (waited * 1000)
    assert cpu < 0.3, "daemon spun while the bus was stuck (%.2f s CPU)" % cpu
    assert stays_open(peer.sock), "connection closed over a stuck bus"

    sh("tc", "qdisc", "del", "dev", a, "root")
    with Bus(a) as bus:
        fresh = seq_frame(0x2AC, 99)
        peer.send_frame(fresh)
        assert wait_frame(bus, fresh, 2.0), "bus free again but frames from TCP do not reach it"


# ---------------------------------------------------------------- 4. slow reader

FLOOD = 20000
BATCH = 100


def read_exactly(sock, size, timeout):
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < size and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(size - len(data))
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return data


def read_until_quiet(sock, quiet=0.5):
    data = b""
    sock.settimeout(quiet)
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            return data
        if not chunk:
            return data
        data += chunk


def send_queue(local_port, remote_port):
    """Bytes in the send queue of the TCP socket local_port -> remote_port."""
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == remote_port:
            return int(fields[4].split(":")[0], 16)
    return -1


def small_window_peer(peers, p):
    """An agreed connection with a small receive window and an Ethernet MSS
    (not loopback's 64 KiB), so a stall reaches the daemon as it would over
    a real network."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1448)
    sock.connect(("127.0.0.1", p))
    peers(sock)
    sock.sendall(HELLO)
    assert read_exactly(sock, 6, 3.0) == HELLO, "no version agreement"
    return sock


def seqs_until(data, tail):
    """Sequence numbers of the data messages in `data` before frame `tail`;
    None if `tail` is not there."""
    seqs = []
    while len(data) >= 2 and len(data) >= 2 + data[1]:
        frame, data = data[2 : 2 + data[1]], data[2 + data[1] :]
        if frame == tail:
            return seqs
        seqs.append(seq_of(frame))
    return None


def test_slow_reader_bounded_memory_others_unaffected(daemons, vcan, port, peers):
    a, p = vcan(), port()
    server = daemons.server(a, p)
    fast = peers(Peer.connect(p))
    slow_sock = small_window_peer(peers, p)
    slow = peers(Peer(slow_sock))
    wait_peer_path(slow, a)
    wait_peer_path(fast, a)
    read_until_quiet(fast.sock, 0.3)
    read_until_quiet(slow.sock, 0.3)
    rss0 = rss_kb(server.pid)

    # From here on the slow peer reads nothing; the fast one reads everything.
    frames = [seq_frame(0x3AB, i) for i in range(FLOOD)]
    start = time.monotonic()
    with Bus(a) as bus:
        for k in range(0, FLOOD, BATCH):
            chunk = frames[k : k + BATCH]
            bus.send_all(chunk)
            want = data_msgs(chunk)
            got = read_exactly(fast.sock, len(want), 3.0)
            assert got == want, "fast peer: frames %d..%d missing or wrong" % (k, k + BATCH - 1)
    took = time.monotonic() - start
    rss1 = rss_kb(server.pid)
    stalled = counters(server, addr(slow_sock))
    print(
        "slow reader: %d frames reached the fast peer in %.2f s (%.0f frames/s); "
        "daemon RSS %d kB before, %d kB after; %d bytes wait in the daemon's TCP send queue; "
        "slow peer's counters while stalled: %s"
        % (FLOOD, took, FLOOD / took, rss0, rss1, send_queue(p, slow_sock.getsockname()[1]), stalled)
    )
    assert rss1 - rss0 < 256, "RSS grew by %d kB during the flood" % (rss1 - rss0)
    assert stalled["kernel_overflow"] > 0, "drops of a stalled peer not counted while it is stalled"

    # Now the slow peer reads what the daemon kept for it: an in-order subset,
    # the rest counted as dropped by the kernel. The kernel reports a socket's
    # drops with the next frame it queues (SO_RXQ_OVFL), so one more frame
    # follows the flood: without it the count would wait for new traffic.
    rest = read_until_quiet(slow.sock, 0.5)
    before_tail = counters(server, addr(slow_sock))["kernel_overflow"]
    tail = seq_frame(0x3AC, 0)
    with Bus(a) as bus:
        bus.send(tail)
    rest += read_until_quiet(slow.sock, 0.5)
    seqs = seqs_until(rest, tail)
    assert seqs is not None, "the frame after the flood did not reach the slow peer"
    after = counters(server, addr(slow_sock))
    warnings = count_log(server, r"kernel dropped \d+ frames .*not keeping up")
    print(
        "slow reader: got %d frames afterwards; kernel_overflow=%d before the next frame, "
        "%d after it; %d warning line(s)" % (len(seqs), before_tail, after["kernel_overflow"], warnings)
    )
    assert seqs == sorted(seqs), "slow peer's frames out of order"
    assert after["kernel_overflow"] > 0, "no kernel_overflow counted for the slow peer"
    assert len(seqs) + after["kernel_overflow"] == FLOOD, "frames neither delivered nor counted"
    assert 1 <= warnings <= 2, "expected one rate-limited warning, got %d" % warnings
    assert slow.is_open() and fast.is_open()


def test_trickling_reader_drops_counted_exactly(daemons, vcan, port, peers):
    # A peer that reads a little now and then: the daemon reads its CAN
    # socket while the kernel is dropping, and SIGUSR1 asks for the drop
    # count in between. Every frame must be delivered or counted, once.
    a, p = vcan(), port()
    server = daemons.server(a, p)
    sock = small_window_peer(peers, p)
    wait_peer_path(Peer(sock), a)
    read_until_quiet(sock, 0.3)
    who = addr(sock)
    total = 30000  # well beyond what the TCP send buffer holds
    got = b""
    with Bus(a) as bus:
        for k in range(0, total, BATCH):
            bus.send_all([seq_frame(0x3B0, i) for i in range(k, k + BATCH)])
            sock.settimeout(0.002)
            try:
                got += sock.recv(600)
            except socket.timeout:
                pass
            if k % (5 * BATCH) == 0:
                counters(server, who)
        got += read_until_quiet(sock, 0.5)
        tail = seq_frame(0x3B1, 0)
        bus.send(tail)
    got += read_until_quiet(sock, 0.5)
    seqs = seqs_until(got, tail)
    assert seqs is not None, "the frame after the flood did not arrive"
    counts = counters(server, who)
    print(
        "trickling reader: %d of %d frames delivered, kernel_overflow=%d (sum %d)"
        % (len(seqs), total, counts["kernel_overflow"], len(seqs) + counts["kernel_overflow"])
    )
    assert seqs == sorted(set(seqs)), "frames out of order or repeated"
    assert counts["kernel_overflow"] > 0, "the reader was not slow enough to test anything"
    assert len(seqs) + counts["kernel_overflow"] == total, "frames neither delivered nor counted exactly once"


# ---------------------------------------------------------------- 5. restart


def test_clients_resume_within_2s_of_server_restart(daemons, vcan, port):
    a, p = vcan(), port()
    buses = [vcan() for _ in range(3)]
    server = daemons.server(a, p)
    for b in buses:
        daemons.client(b, p)
    for b in buses:
        wait_tunnel(a, b)

    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    killed = time.monotonic()
    time.sleep(1.5)  # the clients are in their retry loop by now
    daemons.server(a, p)
    restarted = time.monotonic()
    for b in buses:
        wait_path(b, a, timeout=5.0)
        wait_path(a, b, timeout=5.0)
    took = time.monotonic() - restarted
    print(
        "server restart: all 3 clients carried traffic again %.2f s after the new server "
        "listened (%.2f s after the kill, 1.5 s of it down)" % (took, time.monotonic() - killed)
    )
    assert took < 2.0, "clients took %.2f s to resume" % took


# ---------------------------------------------------------------- 6. vanished peer

KEEPALIVE = 1
# keepalive idle + 3 probes, or TCP_USER_TIMEOUT = 4 x keepalive, plus slack.
DETECT_LIMIT = 4 * KEEPALIVE + 3.0


class Split:
    """Our server in the root namespace; our client in its own namespace,
    reached over a veth pair, its bus a vxcan whose other end is here."""

    def __init__(self, daemons, vcan, port, netns, links):
        self.ns = netns()
        self.veth, self.vx = links("fveth"), links("fvx")
        inner_veth, inner_vx = "nveth0", "nvx0"
        sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", inner_veth, "netns", self.ns)
        sh("ip", "addr", "add", "10.77.0.1/24", "dev", self.veth)
        sh("ip", "link", "set", self.veth, "up")
        sh("ip", "-n", self.ns, "addr", "add", "10.77.0.2/24", "dev", inner_veth)
        sh("ip", "-n", self.ns, "link", "set", inner_veth, "up")
        sh("ip", "link", "add", self.vx, "type", "vxcan", "peer", "name", inner_vx, "netns", self.ns)
        sh("ip", "link", "set", self.vx, "up")
        sh("ip", "-n", self.ns, "link", "set", inner_vx, "up")
        self.inner_veth = inner_veth
        self.a, p = vcan(), port()
        ka = ["--keepalive", str(KEEPALIVE)]
        self.server = daemons.server(self.a, p, host="10.77.0.1", extra=ka)
        self.client = daemons.start(
            "ns-client",
            ["ip", "netns", "exec", self.ns, our_bin(), "--host", "10.77.0.1", "--port", str(p), *ka, inner_vx],
        )
        wait_tunnel(self.a, self.vx)

    def cut(self):
        """Drop every packet both ways: the peer is gone without a FIN or RST."""
        sh("tc", "qdisc", "add", "dev", self.veth, "root", "netem", "loss", "100%")
        sh("tc", "-n", self.ns, "qdisc", "add", "dev", self.inner_veth, "root", "netem", "loss", "100%")

    def heal(self):
        sh("tc", "qdisc", "del", "dev", self.veth, "root")
        sh("tc", "-n", self.ns, "qdisc", "del", "dev", self.inner_veth, "root")

    def detection_times(self, start, timeout):
        """Seconds from `start` until each daemon logged a closed connection."""
        marks = {d: len(d.log()) for d in (self.server, self.client)}
        times = {}

        def both():
            for d, mark in marks.items():
                if d not in times and any(": closed: " in line for line in log_lines(d, mark)):
                    times[d] = time.monotonic() - start
            return len(times) == 2

        wait_until(both, timeout, "both ends to close the dead connection", interval=0.05)
        return times[self.server], times[self.client]


def check_dead_peer(split, case, start):
    server_t, client_t = split.detection_times(start, DETECT_LIMIT + 2)
    print(
        "%s: dead connection closed by the server after %.2f s, by the client after %.2f s"
        % (case, server_t, client_t)
    )
    for who, t in (("server", server_t), ("client", client_t)):
        assert t < DETECT_LIMIT, "%s took %.2f s to notice (limit %.1f s)" % (who, t, DETECT_LIMIT)
    reasons = [line for line in log_lines(split.server) if ": closed: " in line]
    print("%s: server's reason: %s" % (case, reasons[-1]))
    assert split.server.alive() and split.client.alive()

    split.heal()
    healed = time.monotonic()
    wait_tunnel(split.a, split.vx, timeout=10.0)
    print("%s: client reconnected and carried traffic %.2f s after the path returned" % (case, time.monotonic() - healed))


def test_vanished_idle_peer_detected_by_keepalive(daemons, vcan, port, netns, links):
    split = Split(daemons, vcan, port, netns, links)
    split.cut()
    check_dead_peer(split, "idle", time.monotonic())


def test_vanished_peer_with_data_in_flight_detected_by_user_timeout(daemons, vcan, port, netns, links):
    split = Split(daemons, vcan, port, netns, links)
    split.cut()
    start = time.monotonic()
    # Unacknowledged data both ways: keepalive stays quiet, TCP_USER_TIMEOUT decides.
    with Bus(split.a) as near, Bus(split.vx) as far:
        near.send(classic(0x4A0, payload(8)))
        far.send(classic(0x4A1, payload(8)))
    check_dead_peer(split, "data in flight", start)


# ---------------------------------------------------------------- 7. SIGTERM under load


@pytest.mark.parametrize("target", ["server", "client"])
def test_sigterm_under_full_load_exits_0_within_100ms(daemons, vcan, port, target):
    a, b, p = vcan(), vcan(), port()
    server = daemons.server(a, p)
    client = daemons.client(b, p)
    wait_tunnel(a, b)
    # On a gateway frames come from the bus hardware, not from processes
    # that compete with the daemon for the CPU: hence nice 10 (at equal
    # priority the generators starve the daemons, see the report). The
    # daemons are still saturated: their kernel_overflow counters grow.
    load = [
        subprocess.Popen(
            ["nice", "-n", "10", "cangen", bus, "-g", "0", "-I", "i", "-L", "8", "-D", "i"],
            stderr=subprocess.PIPE,
        )
        for bus in (a, b)
    ]
    daemon, who = (server, accepted_peer(server)) if target == "server" else (client, "127.0.0.1:%d" % p)
    try:

        def loaded():
            for bus, gen in zip((a, b), load):
                assert gen.poll() is None, "cangen on %s stopped: %s" % (bus, gen.stderr.read())
            counts = counters(daemon, who)
            return counts["to_can"] > 1000 and counts["to_tcp"] > 1000

        time.sleep(0.5)
        wait_until(loaded, 5, "frames to flow both ways through the %s" % target, interval=0.2)
        mark = len(daemon.log())
        status, took = daemon.signal_and_reap(signal.SIGTERM)
    finally:
        for gen in load:
            gen.kill()
            gen.wait()
    assert status is not None, "still running 2 s after SIGTERM under load"
    final = [line for line in log_lines(daemon, mark) if "frames to_can=" in line]
    print("%s under load: SIGTERM -> exit %d after %.1f ms; %s" % (target, status, took * 1000, final))
    assert status == 0
    assert took < 0.100, "took %.1f ms (limit 100 ms)" % (took * 1000)
    # cangen cannot have sent more than a few hundred thousand frames.
    overflow = parse_counters(final[0])["kernel_overflow"]
    assert overflow < 10_000_000, "kernel_overflow=%d: the counter wrapped" % overflow


# ---------------------------------------------------------------- 8. churn

CYCLES = 1000
WARMUP_CYCLES = 400


def one_cycle(p, kind):
    s = socket.create_connection(("127.0.0.1", p), 5)
    try:
        if kind == 1:
            s.sendall(b"v")  # gone mid-header
        elif kind == 2:
            s.sendall(HELLO[:4])  # gone mid-payload
        elif kind in (3, 4, 5):
            s.sendall(HELLO)
            assert read_exactly(s, 6, 5.0) == HELLO
            if kind == 4:
                s.sendall(data_msgs([classic(0x6AB, payload(8))]))
            if kind == 5:
                # Abort with RST instead of FIN.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        elif kind == 6:
            s.sendall(b"x")  # the server closes on us
    finally:
        s.close()


def test_connect_disconnect_cycles_leak_nothing(daemons, vcan, port, peers):
    a, p = vcan(), port()
    server = daemons.server(a, p)
    # What the idle server holds open; it holds that again once every
    # connection is closed. Its "closed" log line comes a moment before the
    # descriptor is closed, so the count is waited for, not sampled.
    fds_idle = fd_count(server.pid)

    def idle():
        settled = count_log(server, r": accepted") == count_log(server, r": closed: ")
        return settled and fd_count(server.pid) == fds_idle

    # Warm-up: the first few hundred connections touch pages that then
    # stay (log lines of every length through the allocator): on 6.1 RSS
    # grew by 84 kB after a warm-up of 21 (a CI failure), in steps up to
    # the 300th, then stayed flat. A leak grows with every connection, so
    # it still shows over the 1,000 after the plateau.
    plateau = []
    for i in range(WARMUP_CYCLES):
        one_cycle(p, i % 7)
        if i % 100 == 99:
            wait_until(idle, 5, "the server to close every warm-up connection (%d descriptors when idle)" % fds_idle)
            plateau.append(rss_kb(server.pid))
    print("warm-up: RSS (kB) every 100 connections: %s" % plateau)
    rss0 = rss_kb(server.pid)

    start = time.monotonic()
    for i in range(CYCLES):
        one_cycle(p, i % 7)
    deadline = time.monotonic() + 10
    while not idle() and time.monotonic() < deadline:
        time.sleep(0.01)
    took = time.monotonic() - start
    fds1, rss1 = fd_count(server.pid), rss_kb(server.pid)
    print(
        "churn: %d connections in %.1f s; open fds %d when idle, %d after; RSS %d kB before, %d kB after"
        % (CYCLES, took, fds_idle, fds1, rss0, rss1)
    )
    assert fds1 == fds_idle, "descriptor leak: %d open when idle, %d 10 s after 1,000 connections" % (fds_idle, fds1)
    assert abs(rss1 - rss0) <= 64, "RSS changed by %d kB" % (rss1 - rss0)
    assert server.alive()
    peer = peers(Peer.connect(p))
    assert_flows(peer, a, "a client after the churn")
