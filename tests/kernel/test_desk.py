"""Nothing lost at the desk (issue 15): after a stall, the backlog a tunnel
end replays into a *virtual* interface must reach the tools reading it.

The desk end of the tunnel (a client on vcan, or a server on vcan in a
simulation) is stopped with SIGSTOP while the gateway's bus keeps sending;
on SIGCONT it holds the whole backlog. Two real readers nobody here wrote
read the desk interface with the kernel's default receive queue (about 277
classic frames): `candump` from can-utils and python-can's socketcan bus
(tests/kernel/canreader.py), at once. Both must receive every frame, in
order. A virtual interface has no flow control: written as fast as the
kernel takes it, a backlog overruns both queues within one burst.

Each test prints what it measured: frames per reader, the kernel's drop
count for candump's socket, and the replay's duration and rate as candump's
receive timestamps show them. The same scenario with the Python original is
measured for comparison and not held to the same bar.
"""

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Bus, our_bin, ref_bin, wait_tunnel, wait_until
from faultlib import parse_counters, seq_frame, wait_new_log

HERE = Path(__file__).resolve().parent
READER = HERE / "canreader.py"

# The identifier of every frame the scenario sends; readers filter on it so
# the tunnel's probes never count.
CAN_ID = 0x1AB
# Warm-up frames prove both readers listen before the stall; their sequence
# numbers are out of the scenario's range.
WARMUP = 0x80000000
# A reader that saw nothing for this long after its first frame has seen all
# it will see.
IDLE = 3.0

STALLS = [
    pytest.param(1.0, 2000, id="1s-stall-2kfps"),
    pytest.param(3.0, 5000, id="3s-stall-5kfps"),
]


def has_socket(pid):
    """True once the process has opened a socket (candump: bound right after)."""
    try:
        return any(os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:") for fd in os.listdir("/proc/%d/fd" % pid))
    except FileNotFoundError:
        return False


_CANDUMP_LINE = re.compile(r"^\((\d+\.\d+)\) \S+ ([0-9A-F]{3})#([0-9A-F]*)$")


class Readers:
    """candump and a python-can reader on one interface, default queues."""

    def __init__(self, ifname, count, tmp_path, idle):
        self.count = count
        self.dump_path = tmp_path / "candump.txt"
        self.dump_file = open(self.dump_path, "wb")
        # -n: ends by itself once it has all; -d: reports the kernel's drops.
        self.candump = subprocess.Popen(
            ["candump", "-L", "-d", "-n", str(count + 1), "%s,%X:7FF" % (ifname, CAN_ID)],
            stdin=subprocess.DEVNULL,
            stdout=self.dump_file,
            stderr=subprocess.STDOUT,
        )
        self.pycan = subprocess.Popen(
            [sys.executable, str(READER), ifname, "%X" % CAN_ID, str(count + 1), str(idle)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: has_socket(self.candump.pid), 5.0, "candump to open its socket")
        line = self.pycan.stdout.readline()
        if line.strip() != "ready":
            pytest.fail("python-can reader did not start: %r %s" % (line, self.pycan.stderr.read()))
        # candump binds right after socket(): leave it that moment.
        time.sleep(0.2)

    def finish(self, timeout):
        """(candump, python-can) results once both are done or timed out."""
        try:
            out, err = self.pycan.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.pycan.terminate()
            out, err = self.pycan.communicate()
        try:
            self.candump.wait(timeout=IDLE)
        except subprocess.TimeoutExpired:
            self.candump.terminate()
            self.candump.wait()
        self.dump_file.close()
        lines = out.strip().splitlines()
        if self.pycan.returncode != 0 or not lines:
            pytest.fail("python-can reader failed (%s): %s" % (self.pycan.returncode, err))
        return parse_candump(self.dump_path.read_text()), json.loads(lines[-1])

    def stop(self):
        for proc in (self.candump, self.pycan):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if not self.dump_file.closed:
            self.dump_file.close()


def parse_candump(text):
    """{'seqs': [...], 'stamps': [...], 'drops': n} from candump -L -d output."""
    seqs, stamps, drops = [], [], 0
    for line in text.splitlines():
        m = re.search(r"total drops (\d+)", line)
        if m:
            drops = max(drops, int(m.group(1)))
            continue
        m = _CANDUMP_LINE.match(line)
        if m and int(m.group(2), 16) == CAN_ID and len(m.group(3)) >= 8:
            seqs.append(int.from_bytes(bytes.fromhex(m.group(3)[:8]), "little"))
            stamps.append(float(m.group(1)))
    return {"seqs": seqs, "stamps": stamps, "drops": drops}


def send_paced(bus, frames, rate):
    """Send frames at `rate` frames/s on an absolute schedule (no drift);
    return the seconds it took."""
    start = time.monotonic()
    for i, frame in enumerate(frames):
        ahead = start + i / rate - time.monotonic()
        if ahead > 0.001:
            time.sleep(ahead)
        bus.send(frame)
    return time.monotonic() - start


def stall_scenario(daemons, vcan, port, tmp_path, stall, rate, impl="ours", stalled="client"):
    """Gateway bus `gw`, desk bus `desk`; the desk end is stopped for `stall`
    seconds while `gw` sends stall*rate frames at `rate`; then continued.
    Returns what each reader on `desk` got, and the figures, as a dict."""
    gw, desk, p = vcan(), vcan(), port()
    # Reversed roles: the server sits on the desk's virtual bus, the client
    # on the bus that produces the backlog.
    server_if, client_if = (gw, desk) if stalled == "client" else (desk, gw)
    common = ["--host", "127.0.0.1", "--port", str(p)]
    # The reference without -v, as a desk user runs it: -v logs every frame.
    program = [our_bin()] if impl == "ours" else [ref_bin()]
    server = daemons.start("%s-server" % impl, [*program, "--serve", *common, server_if])
    server.wait_listening(p)
    client = daemons.start("%s-client" % impl, [*program, *common, client_if])
    desk_end = client if stalled == "client" else server
    wait_tunnel(gw, desk)
    count = int(stall * rate)
    # The warm-up frame comes a stall before the next: not a reason to stop.
    readers = Readers(desk, count, tmp_path, idle=stall + IDLE)
    try:
        with Bus(gw) as bus:
            bus.send(seq_frame(CAN_ID, WARMUP))
            time.sleep(0.3)
            os.kill(desk_end.pid, signal.SIGSTOP)
            try:
                sent_in = send_paced(bus, [seq_frame(CAN_ID, i) for i in range(count)], rate)
                time.sleep(max(0.0, stall - sent_in))
            finally:
                os.kill(desk_end.pid, signal.SIGCONT)
        if impl == "ours":
            # SIGUSR1 shows the replay in progress.
            time.sleep(0.5)
            start = len(desk_end.log())
            os.kill(desk_end.pid, signal.SIGUSR1)
            line = wait_new_log(desk_end, r": replaying a backlog: \d+ frames", start)
            print("%s, SIGUSR1 0.5 s after SIGCONT: %s" % (desk_end.name, line.split("] ", 1)[-1]))
        dump, pycan = readers.finish(timeout=30.0 + count / 500)
    finally:
        readers.stop()
    if impl == "ours":
        # Where frames went, by the daemons' own count (SIGUSR1).
        for daemon in (server, client):
            start = len(daemon.log())
            os.kill(daemon.pid, signal.SIGUSR1)
            line = wait_new_log(daemon, r": frames to_can=", start)
            counts = parse_counters(line)
            print("%s: to_can=%d to_tcp=%d kernel_overflow=%d" % (daemon.name, counts["to_can"], counts["to_tcp"], counts["kernel_overflow"]))
        # The replay is counted and logged once it has caught up. TCP may
        # pause in the middle of a backlog this big (the gateway's
        # retransmission timer, after the stopped desk's kernel ran out of
        # receive buffer); what it delivers after a long pause is a replay
        # of its own, and a lone retransmitted segment (32 frames) may go
        # between two.
        done = wait_until(lambda: re.findall(r": replay done: (\d+) frames", desk_end.log()), 5.0, "the replay's end in the log")
        print("%s: %s" % (desk_end.name, [l.split("] ", 1)[-1] for l in desk_end.log().splitlines() if "replay" in l]))
        # The bus stopped with the stall: nothing keeps arriving, and the
        # replay is never ended by live traffic (src/pace.rs), which would
        # overrun the readers.
        assert "ended by live traffic" not in desk_end.log()
        replayed = sum(int(n) for n in done)
        assert count // 2 <= replayed <= count, "replays counted %s frames of %d" % (done, count)
    got = {"candump": dump["seqs"], "python-can": pycan}
    for name, seqs in got.items():
        assert WARMUP in seqs, "%s was not reading before the stall: test proves nothing" % name
        got[name] = [s for s in seqs if s != WARMUP]
    stamps = dump["stamps"][1:]
    took = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    figures = {
        "impl": impl,
        "stalled": stalled,
        "sent": count,
        "send_seconds": round(sent_in, 2),
        "candump": len(got["candump"]),
        "python-can": len(got["python-can"]),
        "candump_kernel_drops": dump["drops"],
        "replay_seconds": round(took, 2),
        "replay_fps": round(len(stamps) / took) if took > 0 else None,
    }
    print("desk backlog %s: %s" % ("%gs-stall-%dfps" % (stall, rate), figures))
    return got, figures, desk_end


def assert_all_in_order(got, count):
    for name, seqs in got.items():
        missing = count - len(set(seqs))
        assert missing == 0, "%s received %d of %d frames" % (name, count - missing, count)
        assert seqs == list(range(count)), "%s: frames out of order or repeated" % name


@pytest.mark.parametrize("stall, rate", STALLS)
def test_desk_client_backlog_reaches_every_default_queue_reader(daemons, vcan, port, tmp_path, stall, rate):
    got, _, client = stall_scenario(daemons, vcan, port, tmp_path, stall, rate)
    assert_all_in_order(got, int(stall * rate))
    assert client.alive()


def test_server_on_virtual_bus_replays_a_clients_backlog(daemons, vcan, port, tmp_path):
    got, _, server = stall_scenario(daemons, vcan, port, tmp_path, 1.0, 2000, stalled="server")
    assert_all_in_order(got, 2000)
    assert server.alive()


@pytest.mark.parametrize("stall, rate", STALLS)
def test_python_original_in_the_same_scenario_is_measured(daemons, vcan, port, tmp_path, stall, rate):
    """For the report (issue 15 asks for both figures): how the Python
    tcpcan 0.0.2 does here. Only what must hold of any TCP tunnel is
    asserted: what arrives, arrives once and in order."""
    got, _, _ = stall_scenario(daemons, vcan, port, tmp_path, stall, rate, impl="ref")
    for name, seqs in got.items():
        assert seqs == sorted(set(seqs)), "%s: frames out of order or repeated" % name



# ---------------------------------------------------------------- live bursts

# Issue 25: an ECU waking up or a flash download starting, as cangen floods
# the bus flat out with CAN FD frames of 64 bytes (its reads fill the desk's
# buffer at once: a burst paced at 20,000 frames/s did not show the flaw).
FLOOD = 100_000
FLOOD_RUNS = 8


def tx_packets(ifname):
    """Frames written to a vcan so far, by anyone (its own count)."""
    return int(Path("/sys/class/net/%s/statistics/tx_packets" % ifname).read_text())


def settled(ifname, quiet=1.0, timeout=120.0):
    """tx_packets of ifname once it stopped moving for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, since = tx_packets(ifname), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = tx_packets(ifname)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    pytest.fail("%s still busy after %.0f s" % (ifname, timeout))


def flood_after_quiet(daemons, vcan, port, desk_args=()):
    """One frame, 0.8 s of quiet, then cangen's flood on the gateway's bus,
    with fresh daemons (defaults but for `desk_args` on the desk). Returns
    (frames cangen put on the bus, frames the desk wrote to its vcan, the
    gateway, the desk)."""
    gw, desk, p = vcan(), vcan(), port()
    common = ["--host", "127.0.0.1", "--port", str(p)]
    server = daemons.start("gateway", [our_bin(), "--serve", *common, gw])
    server.wait_listening(p)
    client = daemons.start("desk", [our_bin(), *common, *desk_args, desk])
    wait_tunnel(gw, desk)
    with Bus(gw) as bus, Bus(desk) as watch:
        bus.send(seq_frame(CAN_ID, WARMUP))
        assert watch.recv(2.0) is not None, "the first frame did not cross"
    time.sleep(0.8)
    sent_before, got_before = tx_packets(gw), tx_packets(desk)
    gen = subprocess.run(
        ["cangen", gw, "-g", "0", "-I", "i", "-D", "i", "-f", "-L", "64", "-n", str(FLOOD), "-i"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gen.returncode == 0, "cangen failed: %s" % gen.stderr
    sent = tx_packets(gw) - sent_before
    got = settled(desk) - got_before
    return sent, got, server, client


# What a run on a loaded host loses beside the pacer's doing, in frames: the
# gateway (one UML CPU shared with cangen) does not always keep up with a
# flat-out flood, paced or not. Measured in three boots on a host shared by
# several builds: --replay-rate 0 runs delivered 84.2 % to 100 %, default
# runs 81.6 % to 100 %, with or without a replay. The flaw delivered 6.7 to
# 9.7 %: the bound is relative to the worst unpaced run of the same boot.
FLOOD_SLACK = FLOOD // 10

# The replay log line, today's and before issue 25's: how long no data had
# been read before the backlog.
_REPLAY_SILENCE = re.compile(r"\((\d+) ms without a read\)|backlog after (\d+) ms without data")


def test_a_burst_after_silence_is_live_traffic_not_a_backlog(daemons, vcan, port):
    """Issue 25: with default settings no replay begins with the burst
    after the quiet, and the desk writes what it writes with
    --replay-rate 0 in the same boot, run after run with fresh daemons.
    (A desk starved for 100 ms or more in the middle of the flood has a
    backlog like any stalled desk; that replay must cost no frames beyond
    what runs on this host lose anyway.)"""
    runs = []
    # Unpaced runs between the paced ones, so the host's load weighs on both.
    for i in range(FLOOD_RUNS + FLOOD_RUNS // 2):
        args = ("--replay-rate", "0") if i % 3 == 0 else ()
        sent, got, gateway, desk = flood_after_quiet(daemons, vcan, port, args)
        log = desk.log()
        runs.append(
            {
                "desk_args": " ".join(args) or "defaults",
                "sent": sent,
                "desk_got": got,
                "gateway_dropped": gateway_drops(gateway),
                "replays": [l.split("] ", 1)[-1] for l in log.splitlines() if re.search(r"backlog|replay", l)],
                "silences": [int(a or b) for a, b in _REPLAY_SILENCE.findall(log)],
            }
        )
        print("flood after quiet: %s" % runs[-1])
        gateway.stop()
        desk.stop()
    unpaced = [r for r in runs if r["desk_args"] != "defaults"]
    paced = [r for r in runs if r["desk_args"] == "defaults"]
    assert len(paced) >= FLOOD_RUNS
    worst_got = min(r["desk_got"] for r in unpaced)
    worst_dropped = max(r["gateway_dropped"] for r in unpaced)
    for r in paced:
        # The flaw: the burst's first read, after the quiet, taken for a
        # backlog and paced.
        assert not [s for s in r["silences"] if s >= 500], "the desk paced the burst after the quiet: %s" % r
        # A run that replayed nothing held no frame back: it ran the same
        # path as --replay-rate 0, and what it lost is the host's doing (on
        # a host shared with other builds, one such run lost 14 %). What a
        # replay costs is judged run by run, and the runs as a whole below.
        if r["replays"]:
            assert r["desk_got"] >= worst_got - FLOOD_SLACK, "the desk wrote %d of %d frames (--replay-rate 0: %d): %s" % (r["desk_got"], r["sent"], worst_got, r)
            assert r["gateway_dropped"] <= worst_dropped + FLOOD_SLACK, "the gateway dropped %d (--replay-rate 0: %d): %s" % (r["gateway_dropped"], worst_dropped, r)
    # Pacing that throttled the flood, logged or not, shows in the middle
    # run: the flaw delivered 6.7 to 9.7 % in one run out of three.
    middle_paced = statistics.median(r["desk_got"] for r in paced)
    middle_unpaced = statistics.median(r["desk_got"] for r in unpaced)
    assert middle_paced >= middle_unpaced - FLOOD_SLACK, "defaults delivered a median %d frames, --replay-rate 0 %d" % (middle_paced, middle_unpaced)
    print(
        "flood after quiet, %d runs: unpaced delivered %s, default %s"
        % (len(runs), [r["desk_got"] for r in unpaced], [r["desk_got"] for r in paced])
    )


# A flood the desk stalls in (issue 25): 20,000 classic frames/s asked of
# cangen (bursts of 60 with a 1 ms gap: in UML each gap takes about 3 ms),
# the desk stopped for 1 s two seconds into it, and a few seconds more
# after. Where the stall makes the gateway's kernel drop what its buffers
# cannot hold, a replay must not add to that.
FLOOD_RATE = 20_000
FLOOD_BURST = 60
FLOOD_SECONDS = 6
STALL_RUNS = 3
# The desk stays stopped until the bus sent this many frames (1.25 s at the
# 20,000 frames/s asked; cangen in UML runs at 12-25 k frames/s), at most
# STALL_MAX seconds: more than the gateway's buffers hold (~20,500 classic
# frames measured on 7.2, fewer on 6.1), so every run overflows them and
# what a replay does to the gateway shows in every run.
STALL_FRAMES = 25_000
STALL_MAX = 3.0
# What the best runs of each side may keep apart (frames). Measured, three
# runs a side in each boot: --replay-rate 0's best kept 19,481 and 21,804
# (6.1, 7.2), and defaults', since the desk reads on during a replay, from
# 792 fewer to 1,403 more (a desk reading flat out on UML's one CPU
# sometimes starves the gateway beside it, either side). Before, defaults'
# best kept 2.6 k (6.1) and 2.3 k (7.2) fewer, medians 2.8 and 3.6 k.
HELD_SLACK = 1500
# A replay in a flood ends within this (seconds): the escape needs the far
# end's stock read and a quarter second of arrivals (src/limits.rs).
REPLAY_IN_FLOOD_MAX = 5.0


def gateway_drops(gateway):
    """kernel_overflow of the gateway's one connection (SIGUSR1)."""
    start = len(gateway.log())
    os.kill(gateway.pid, signal.SIGUSR1)
    return parse_counters(wait_new_log(gateway, r": frames to_can=", start))["kernel_overflow"]


def stall_in_flood(daemons, vcan, port, desk_args=()):
    gw, desk, p = vcan(mtu=16), vcan(mtu=16), port()
    common = ["--host", "127.0.0.1", "--port", str(p)]
    server = daemons.start("gateway", [our_bin(), "--serve", *common, gw])
    server.wait_listening(p)
    client = daemons.start("desk", [our_bin(), *common, *desk_args, desk])
    wait_tunnel(gw, desk)
    sent_before, got_before = tx_packets(gw), tx_packets(desk)
    count = FLOOD_RATE * FLOOD_SECONDS
    gen = subprocess.Popen(
        ["cangen", gw, "-g", "1", "-c", str(FLOOD_BURST), "-I", "i", "-L", "8", "-D", "i", "-n", str(count), "-i"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    began = time.monotonic()
    try:
        time.sleep(2.0)
        stall_began = tx_packets(gw)
        os.kill(client.pid, signal.SIGSTOP)
        try:
            stopped = time.monotonic()
            while tx_packets(gw) - stall_began < STALL_FRAMES and time.monotonic() - stopped < STALL_MAX:
                time.sleep(0.01)
        finally:
            os.kill(client.pid, signal.SIGCONT)
        stall_sent = tx_packets(gw) - stall_began
        stall_seconds = time.monotonic() - stopped
        _, err = gen.communicate(timeout=120)
    finally:
        if gen.poll() is None:
            gen.kill()
            gen.wait()
    took = time.monotonic() - began
    assert gen.returncode == 0, "cangen failed: %s" % err
    sent = tx_packets(gw) - sent_before
    got = settled(desk) - got_before
    run = {
        "desk_args": " ".join(desk_args) or "defaults",
        "sent": sent,
        "bus_fps": round(sent / took),
        "desk_got": got,
        "stall_sent": stall_sent,
        "stall_seconds": round(stall_seconds, 2),
        "gateway_dropped": gateway_drops(server),
        "replays": [l.split("] ", 1)[-1] for l in client.log().splitlines() if "replay" in l or "backlog" in l],
    }
    # What the tunnel kept of the frames the bus sent during the stall.
    run["held"] = stall_sent - run["gateway_dropped"]
    print("stall in a flood: %s" % run)
    server.stop()
    client.stop()
    return run


def test_a_replay_in_a_flood_never_holds_the_desk_below_the_bus(daemons, vcan, port):
    """Issue 25: a desk stopped while a flood keeps coming, longer than the
    gateway's buffers hold. A replay must not make the gateway drop beyond
    what the stall itself caused: what the tunnel keeps of the frames the
    bus sent during the stall (the rest the gateway's kernel dropped) is
    what it keeps with --replay-rate 0 in the same boot, best run against
    best run. Whatever the desk replays ends within a few seconds (caught
    up, or ended by live traffic), and the tunnel loses nothing between the
    gateway's socket and the desk."""
    runs = []
    for _ in range(STALL_RUNS):
        runs.append(stall_in_flood(daemons, vcan, port, ("--replay-rate", "0")))
        runs.append(stall_in_flood(daemons, vcan, port))
    unpaced, paced = runs[0::2], runs[1::2]
    for r in runs:
        # The tunnel loses nothing between the gateway's socket and the desk.
        assert r["desk_got"] == r["sent"] - r["gateway_dropped"], r
    for r in unpaced:
        assert not r["replays"], "--replay-rate 0 replayed: %s" % r
    for r in paced:
        for line in r["replays"]:
            m = re.search(r"(?:replay done|replay ended by live traffic).*: \d+ frames in ([\d.]+) s", line)
            if m:
                assert float(m.group(1)) <= REPLAY_IN_FLOOD_MAX, "a replay held the desk too long: %s" % line
        ends = [l for l in r["replays"] if "replay done" in l or "replay ended" in l]
        starts = [l for l in r["replays"] if ": backlog: data waited" in l]
        assert len(ends) == len(starts), "a replay never ended: %s" % r
    for r in runs:
        assert r["stall_sent"] >= STALL_FRAMES, "the bus sent only %d frames in a %.1f s stall: too slow to overflow the gateway" % (r["stall_sent"], r["stall_seconds"])
    held = lambda rs: [r["held"] for r in rs]
    print("stall in a flood, frames of the stall the tunnel kept: defaults %s; --replay-rate 0 %s" % (held(paced), held(unpaced)))
    # The best run of each: a desk reading flat out on UML's one CPU
    # sometimes starves the gateway beside it (6.1 kept 6,781 in one such
    # run with --replay-rate 0, 18,782 in another).
    best, best_unpaced = max(held(paced)), max(held(unpaced))
    assert best >= best_unpaced - HELD_SLACK, "a replay made the gateway drop more: the tunnel kept at most %d frames of a stall, %d with --replay-rate 0" % (best, best_unpaced)