"""--latency-budget (issue 14): under load a side waits a moment before reading
again, so one read takes many frames; nothing is lost or reordered, and an
isolated frame is not delayed.

Wake-ups are counted as the daemon's voluntary context switches
(/proc/PID/status): every one is a sleep in poll(2) that a frame or a wait's
end then ended, and each wake-up costs at least that poll and a read, so
fewer wake-ups per frame are fewer system calls per frame. The counter costs
the daemon nothing, unlike strace, whose slowdown would batch frames by itself.
"""

import re
import socket
import struct
import time

import pytest
from conftest import Bus, Peer, classic, wait_peer_path, wait_tunnel
from faultlib import links, make_vcan, sh  # noqa: F401  (links: a fixture)

RATE = 5000  # frames/s: above the 2,000/s where coalescing starts (limits::COALESCE_RATE)
FRAMES = 4000  # 0.8 s of it
STREAM_ID = 0x3C0
SO_RCVBUFFORCE = 33  # not in Python's socket module


def wakeups(daemon):
    for line in open("/proc/%d/status" % daemon.pid):
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches in /proc/%d/status" % daemon.pid)


def tunnel(daemons, vcan, port, budget):
    a, b, p = vcan(), vcan(), port()
    extra = () if budget is None else ("--latency-budget", budget)
    server = daemons.server(a, p, extra=extra)
    client = daemons.client(b, p, extra=extra)
    wait_tunnel(a, b)
    return a, b, server, client


def numbered(count):
    return [classic(STREAM_ID, struct.pack("<I", i)) for i in range(count)]


def paced(send, frames, rate):
    """Sends each frame at its time at `rate`, sleeping between (UML's sleeps
    are coarse: the stream comes in clumps of a few frames, as a loaded
    gateway's would)."""
    start = time.monotonic()
    for i, frame in enumerate(frames):
        ahead = start + i / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        send(frame)


def big_queue(bus):
    """Room for a whole stream, read after it: a reader thread would take CPU
    from the daemons and lose frames of its own."""
    bus.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    return bus


def stream(src_if, dst_if, count, rate):
    """Offers `count` numbered frames at `rate` on src_if; returns them and what dst_if got."""
    frames = numbered(count)
    with big_queue(Bus(dst_if)) as dst, Bus(src_if) as src:
        paced(src.send, frames, rate)
        return frames, dst.recv_n(count, timeout=5)


def server_wakeups_per_frame(daemons, vcan, port, budget, direction):
    """Wake-ups per frame of a server carrying a 5 kfps stream between its bus
    and a protocol v1 peer spoken from here (one frame per TCP segment, so
    no other daemon batches the frames first), after checking the stream
    arrived whole and in order."""
    canif, p = vcan(), port()
    extra = () if budget is None else ("--latency-budget", budget)
    server = daemons.server(canif, p, extra=extra)
    peer = Peer.connect(p)
    try:
        return stream_wakeups(server, peer, canif, direction, budget)
    finally:
        peer.close()


def stream_wakeups(server, peer, canif, direction, what):
    """Wake-ups per frame of `server` carrying a 5 kfps stream between canif
    and `peer` in `direction`, after checking it arrived whole and in order."""
    peer.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    wait_peer_path(peer, canif)
    frames = numbered(FRAMES)
    with big_queue(Bus(canif)) as bus:
        before = wakeups(server)
        if direction == "CAN -> TCP":
            paced(bus.send, frames, RATE)
            got = [peer.recv_frame(5) for _ in frames]
        else:
            paced(peer.send_frame, frames, RATE)
            got = bus.recv_n(FRAMES, timeout=5)
        woken = wakeups(server) - before
    assert got == frames, "%s, %s: %d of %d frames arrived, or out of order" % (
        what,
        direction,
        sum(f is not None for f in got),
        FRAMES,
    )
    return woken / FRAMES


@pytest.mark.parametrize("direction", ["CAN -> TCP", "TCP -> CAN"])
def test_a_5kfps_stream_arrives_whole_with_fewer_wakeups_per_frame_than_without_a_budget(
    daemons, vcan, port, direction
):
    off = server_wakeups_per_frame(daemons, vcan, port, "0", direction)
    default = server_wakeups_per_frame(daemons, vcan, port, None, direction)
    two = server_wakeups_per_frame(daemons, vcan, port, "2", direction)
    ten = server_wakeups_per_frame(daemons, vcan, port, "10", direction)
    print(
        "%s wake-ups per frame at %d frames/s: budget 0: %.3f, default (1 ms): %.3f, 2 ms: %.3f, 10 ms: %.3f"
        % (direction, RATE, off, default, two, ten)
    )
    # Without a budget UML's coarse sleeps already clump this stream in a few
    # frames per wake-up, and how many varies from run to run by a fifth. The
    # default's TCP side waits 0.25 ms (a frame or two), within that noise,
    # so the proof uses 2 ms (1.5 ms on the CAN side, 0.5 ms on the TCP
    # side) and 10 ms (about a batch).
    # TCP -> CAN varies more: on Linux 7.2 one full run gave 0.597 with
    # 2 ms against 0.731 without (and 0.31 with 10 ms), the next boot 0.442
    # against 0.680 (0.076); 6.1 gives about 0.44 against 0.69 (0.11). The
    # TCP side waits a quarter of the budget, and how the far end's sends
    # clump varies with the run. So the TCP -> CAN proof is the 10 ms one,
    # with room for that spread; why 7.2 sometimes clumps less is open.
    if direction == "CAN -> TCP":
        assert two < 0.8 * off, "%s: %.3f wake-ups per frame with a 2 ms budget, %.3f without" % (direction, two, off)
        assert ten < 0.4 * off, "%s: %.3f wake-ups per frame with a 10 ms budget, %.3f without" % (direction, ten, off)
    else:
        assert ten < 0.6 * off, "%s: %.3f wake-ups per frame with a 10 ms budget, %.3f without" % (direction, ten, off)


def test_after_the_interface_is_deleted_and_recreated_a_stream_wakes_the_server_no_more_often(daemons, links, port):
    # Coalescing is timed by the CAN socket's receive stamps: the socket
    # opened when the interface came back must ask for them too, or its
    # side is never left unread again (the CPU cost of --latency-budget 0).
    # 10 ms: a budget whose wake-ups differ from none well beyond the noise.
    canif, p = links(), port()
    make_vcan(canif)
    server = daemons.server(canif, p, extra=("--latency-budget", "10"))
    peer = Peer.connect(p)
    try:
        before = stream_wakeups(server, peer, canif, "CAN -> TCP", "before the flap")
        sh("ip", "link", "del", "dev", canif)
        server.wait_log(re.escape(canif) + r" disappeared")
        make_vcan(canif)
        server.wait_log(re.escape(canif) + r" is back")
        after = stream_wakeups(server, peer, canif, "CAN -> TCP", "after the flap")
    finally:
        peer.close()
    print("CAN -> TCP wake-ups per frame at %d frames/s, budget 10 ms: %.3f before the interface flapped, %.3f after"
          % (RATE, before, after))
    assert after < 1.5 * before, "%.3f wake-ups per frame after the flap, %.3f before" % (after, before)


def test_an_isolated_frame_is_not_delayed_by_a_large_budget(daemons, vcan, port):
    a, b, _, _ = tunnel(daemons, vcan, port, "50")
    # A fast stream first, so both sides have measured a rate that waits.
    frames, got = stream(a, b, 500, RATE)
    assert got == frames, "%d of 500 frames arrived, or out of order" % len(got)
    worst = 0.0
    with Bus(a) as src, Bus(b) as dst:
        for k in range(5):
            time.sleep(0.3)
            frame = classic(STREAM_ID + 1, bytes([k]))
            start = time.monotonic()
            src.send(frame)
            assert dst.recv(2.0) == frame, "isolated frame %d lost" % k
            worst = max(worst, time.monotonic() - start)
    print("isolated frame after silence, --latency-budget 50: worst %.1f ms" % (worst * 1000))
    assert worst < 0.025, "an isolated frame took %.1f ms with --latency-budget 50" % (worst * 1000)


def test_a_bad_latency_budget_is_a_one_line_error_naming_the_option(daemons, vcan):
    d = daemons.ours("--latency-budget", "0.0001", vcan())
    assert d.wait_exit(10) == 2
    lines = d.log().strip().splitlines()
    assert len(lines) == 1 and "--latency-budget" in lines[0], lines
