"""The measurements of bench/run.sh, run inside one UML boot (see docs/benchmark.md).

Ways across from vcan0 to vcan1 measured side by side: the kernel's gateway
(cangw, the rig's upper bound), tcpcan server+client over loopback TCP, the
Python tcpcan 0.0.2 in the same roles and canbench's minimal C relay. Frames
come from and are counted by bench/target/canbench (bench/tools/canbench.c).
Results go to a JSON file that bench/report.py turns into the tables.

Rows of issue 23 carry the same frames through ssh: `tcpcan --stdio` as the
forced command of a key on dropbear or OpenSSH's sshd (on loopback, in a
mount namespace with an empty /root, as tests/kernel/test_via_ssh.py runs
them), `tcpcan --via 'ssh ...'` at the far end, beside plain TCP, at 1 and
5 kfps: loss, latency, and CPU per 1000 frames of the two tcpcans and of
the two tcpcans with ssh's processes.

Two groups of rows measure tcpcan alone, each only when its binary has the
option (from --help; otherwise they are recorded as not measured): the
socketcand listener (issue 13; a socketcand client in raw mode, canbench
sc-in, in place of the v1 client) and adaptive coalescing (issue 14;
--latency-budget MS at several budgets, 0 being off). The round-trip rows
(issue 26) time a desk's request turn (tests/roundtrip.py) through tcpcan's
server: python-can's socketcand interface with and without its TCP tuning,
and v1 clients. The protocol rows (issue 24) measure tcpcan on both ends in
version 2 beside the same pair pinned to version 1 (--protocol 1).

usage: bench.py RESULTS.json
env: TCPCAN_BIN, BENCH_QUICK=1 (short run), BENCH_ALT (another build to
compare), BENCH_STATIC (the static build, for its idle memory),
BENCH_ONLY=round-trip, via or protocol (those rows alone: bench/run.sh --only)
"""

import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import can

REPO = Path(__file__).resolve().parents[1]
# The desk's request turn, as the kernel scenario times it.
sys.path.insert(0, str(REPO / "tests"))
from roundtrip import REQUEST_ID, CanDesk, Ecu, RawDesk, interleaved  # noqa: E402
TOOL = str(REPO / "bench/target/canbench")
OURS = str(REPO / os.environ.get("TCPCAN_BIN", "target/release/tcpcan"))
PYREF = str(REPO / "target/pyenv/bin/tcpcan")
# Another build of ours measured in the same boot (bench/run.sh --compare).
ALT = os.environ.get("BENCH_ALT")
# The static musl dist build (what ships): only its idle memory is measured.
STATIC = os.environ.get("BENCH_STATIC")
QUICK = os.environ.get("BENCH_QUICK") == "1"
ONLY = os.environ.get("BENCH_ONLY")
LOGS = REPO / "bench/target/logs"
# Coalescing (issue 14): the budgets of the CPU curve, in ms; 0 is off.
BUDGETS = [0, 0.25, 0.5, 1, 2]
# Latency with coalescing at a rate where frames come faster than one per
# wake-up; the probe sends the frames due every LAT_TICK_US (canbench lat -g).
LAT_BUSY_RATE, LAT_TICK_US = 5000, 1000
# 2 s of frames (0.5 s quick): a run of 3000 (0.6 s) was too short for one
# host stall not to move its median by a millisecond.
LAT_BUSY_FRAMES = 2500 if QUICK else 10000
# System calls per frame under load (strace -c): seconds of load per run.
SC_LOAD_SECS = 1
# At CPU_RATE the generator sends the frames due every ~1 ms together (5 per
# batch on average), so even an uncoalesced tunnel finds several per wake-up.
# With this tick (0.5-1.5 x 250 us) they come about one at a time, as on a bus.
SPREAD_TICK_US = 250

REPS = 1 if QUICK else 3  # saturation, CPU and latency runs per figure
SAT_SECS = 1 if QUICK else 2  # length of one saturation blast
CPU_RATE, CPU_SECS = 5000, 2 if QUICK else 4
LAT_RATE, LAT_FRAMES = 1000, 1000 if QUICK else 3000
FANOUT = [1, 8, 64]
FANOUT_PY = [1, 8]  # 64 interpreters would need more memory and minutes to start
# Fan-out keeps the delivered rate constant (FANOUT_DELIVERED frames/s over
# all clients): 64 clients at 1000 frames/s each would overload the one UML CPU.
FANOUT_DELIVERED, FANOUT_SECS = 1000, 2 if QUICK else 4
# strace makes every system call slow: a low rate keeps one frame per wake-up.
SC_RATE, SC_FRAMES = 100, 300
# The reference under callgrind keeps up with a few hundred frames/s only.
CG_RATE, CG_FRAMES = 100, 300 if QUICK else 500
# Round trip (issue 26): counted request turns per desk and run, after one
# uncounted round; desks that share a server take rounds in turn.
RT_ROUNDS, RT_TURNS = 4, 10
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Issue 23: through ssh at these rates (the 5 kfps frames sent every ms
# together, as LAT_BUSY_RATE's), for VIA_SECS of CPU and VIA_FRAMES of latency.
VIA_RATES = [1000, 5000]
VIA_SERVERS = ["dropbear", "openssh"]
VIA_SECS = 2 if QUICK else 4
VIA_FRAMES = 2000 if QUICK else 5000

_tag = 100
_port = 21000


def descendants(pid):
    """Pids of every process below `pid` (children, theirs, ...)."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    found, todo = [], [pid]
    while todo:
        kids = [p for p, pp in parent.items() if pp == todo[-1]]
        todo.pop()
        found += kids
        todo += kids
    return found


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class SshServer:
    """An ssh server on loopback (KIND dropbear or openssh) in a mount
    namespace with an empty /root, and a user key whose forced command is
    `tcpcan --stdio vcan0`: the gateway side of --via."""

    def __init__(self, kind, port, args=()):
        self.kind, self.port = kind, port
        self.dir = Path(tempfile.mkdtemp(dir=REPO / "bench/target", prefix="ssh-"))
        d = self.dir
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "user")], check=True)
        pub = (d / "user.pub").read_text().strip()
        command = " ".join([OURS, "--stdio", *args, "vcan0"])
        (d / "keys").write_text(f'command="{command}",restrict {pub}\n')
        if kind == "openssh":
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host")], check=True)
            (d / "config").write_text(
                f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {d / 'host'}\nAuthorizedKeysFile {d / 'keys'}\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
                "StrictModes no\nUsePAM no\nPidFile none\n"
            )
            server = f"/usr/sbin/sshd -D -e -f {d / 'config'}"
        else:
            subprocess.run(["dropbearkey", "-t", "ed25519", "-f", str(d / "host")], check=True, capture_output=True)
            server = f"/usr/sbin/dropbear -F -E -s -r {d / 'host'} -p 127.0.0.1:{port}"
        self.argv = [
            "unshare", "--mount", "--propagation", "private", "sh", "-c",
            f"mount -t tmpfs -o mode=0700 tmpfs /root && mkdir -m 700 /root/.ssh && "
            f"ln -s {d / 'keys'} /root/.ssh/authorized_keys && exec {server}",
        ]
        self.ssh = (
            f"ssh -T -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o UserKnownHostsFile={d / 'known'} "
            f"-o StrictHostKeyChecking=accept-new -o ServerAliveInterval=5 -i {d / 'user'} -p {port} root@127.0.0.1"
        )


def next_tag():
    """A fresh run tag: counters ignore frames left over from earlier runs."""
    global _tag
    _tag += 1
    return _tag


def next_port():
    global _port
    _port += 1
    return _port


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def kv(line):
    """Parses canbench's key=value output line."""
    out = {}
    for item in line.split():
        k, _, v = item.partition("=")
        try:
            out[k] = float(v) if "." in v else int(v)
        except ValueError:
            out[k] = v
    return out


def tool(*args, timeout=60):
    r = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if r.returncode not in (0, 1) or not r.stdout.strip():
        raise RuntimeError(f"canbench {args}: exit {r.returncode}: {r.stderr.strip()}")
    return kv(r.stdout.strip().splitlines()[-1])


class Counter:
    """A canbench counter running in the background while frames are sent."""

    def __init__(self, ifname, tag, *extra):
        self.p = subprocess.Popen(
            [TOOL, "count", ifname, "-t", str(tag), *map(str, extra)],
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.p.stdout.readline().strip() != "ready":
            raise RuntimeError("counter did not start")

    def result(self, timeout=60):
        out, _ = self.p.communicate(timeout=timeout)
        return kv(out.strip().splitlines()[-1])


def cpu_ticks(pid):
    """utime+stime of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def proc_status(pid, field):
    """A numeric field of /proc/PID/status (KiB for memory, a count for
    context switches), or None."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def vmrss_kib(pid, field="VmRSS"):
    return proc_status(pid, field)


def idle_rss(kind):
    """Resident memory of an idle, connected server and client: VmRSS, and
    RssAnon, the part that is the process's own (not shared file pages)."""
    with Tunnel(kind) as t:
        time.sleep(0.5)
        out = {
            role: {"vmrss": vmrss_kib(pid), "anon": vmrss_kib(pid, "RssAnon")}
            for role, pid in zip(("server", "client"), t.pids)
        }
    log(f"idle RSS {kind}: {out}")
    return out


def sh(*cmd):
    subprocess.run(cmd, check=True)


def help_text(binary):
    r = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    return r.stdout + r.stderr


def budget_default(text):
    """The default of --latency-budget as --help states it ('(default: 1)'
    or '(default: 0.5 ms)' in the option's paragraph), or None."""
    m = re.search(r"^[ \t]+--latency-budget\b(.*?)(?=\n[ \t]+-|\n\S|\Z)", text, re.S | re.M)
    d = m and re.search(r"\(default:\s*([0-9.]+)", m.group(1))
    return float(d.group(1)) if d else None


def budget_args(budget):
    """Daemon arguments for a budget; None is the binary's default."""
    return [] if budget is None else ["--latency-budget", f"{budget:g}"]


class Tunnel:
    """One way across from vcan0: 'cangw', 'tcpcan', 'alt' (BENCH_ALT),
    'python', 'relay' (canbench's minimal C tunnel: what any user-space
    TCP tunnel costs on this rig), or 'sc' (tcpcan's server with a
    socketcand client, canbench sc-in, in raw mode), with N clients on
    vcan1..vcanN. ARGS go to both daemons (server and v1 client). CLIENT:
    the v1 clients' build when it is not the server's ('python' beside a
    tcpcan server); with no clients, the server alone."""

    def __init__(self, kind, fd=False, clients=1, wrap=None, args=(), client=None):
        self.kind = kind
        self.client = client or kind
        self.fd = fd
        self.clients = clients
        self.wrap = wrap or (lambda role, argv: argv)
        self.args = list(args)
        # Log names say which clients and arguments a run had.
        self.name = kind + (f"-{client}" if client else "") + "".join(a.replace("--", "-") for a in self.args)
        self.procs = []
        self.logs = []

    def __enter__(self):
        if self.kind == "cangw":
            sh("cangw", "-F")
            sh("cangw", "-A", "-s", "vcan0", "-d", "vcan1", "-e", *(["-X"] if self.fd else []))
            return self
        port = str(next_port())
        if self.kind == "relay":
            self._spawn("server", [TOOL, "relay-out", "vcan0", port])
            self._wait_listening(port)
            self._spawn("client1", [TOOL, "relay-in", "vcan1", port])
            self._wait_ready()
            return self
        if self.kind.startswith("via-"):
            ssh = SshServer(self.kind[4:], int(port), self.args)
            self._spawn("server", ssh.argv)
            self._wait_listening(port)
            self._spawn("client1", [OURS, "--via", ssh.ssh, *self.args, "vcan1"])
            self._wait_ready()
            return self
        if self.kind == "sc":
            sc_port = str(next_port())
            argv = [OURS, "--serve", "--host", "127.0.0.1", "--port", port, "--socketcand", sc_port, *self.args, "vcan0"]
            self._spawn("server", self.wrap("server", argv))
            self._wait_listening(sc_port)
            self._spawn("client1", [TOOL, "sc-in", "vcan1", sc_port, "vcan0"])
            self._wait_ready()
            return self
        binaries = {"tcpcan": OURS, "alt": ALT, "static": STATIC, "python": PYREF}
        common = ["--host", "127.0.0.1", "--port", port, *self.args]
        self._spawn("server", self.wrap("server", [binaries[self.kind], "--serve", *common, "vcan0"]))
        self._wait_listening(port)
        for i in range(1, self.clients + 1):
            self._spawn(f"client{i}", self.wrap("client", [binaries[self.client], *common, f"vcan{i}"]))
        if self.clients:
            self._wait_ready()
        return self

    def _spawn(self, name, argv):
        LOGS.mkdir(parents=True, exist_ok=True)
        path = LOGS / f"{self.name}-{name}.log"
        with open(path, "w") as f:
            self.procs.append(subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT))
        self.logs.append(path)

    def _wait_listening(self, port):
        hexport = f":{int(port):04X}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open("/proc/net/tcp") as f:
                if any(hexport in line.split()[1] and line.split()[3] == "0A" for line in f.readlines()[1:]):
                    return
            if self.procs[0].poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.kind} server did not listen; see {self.logs[0]}")

    def _wait_ready(self):
        # Ours logs the agreement; then one probe proves the last path. The
        # reference logs nothing at its default level: probe every path.
        deadline = time.monotonic() + 60
        if self.kind == "sc":
            # canbench sc-in says "ready" once open and rawmode are acknowledged.
            while "ready" not in self.logs[1].read_text():
                if time.monotonic() > deadline or self.procs[1].poll() is not None:
                    raise RuntimeError(f"socketcand client not ready; see {self.logs}")
                time.sleep(0.05)
            targets = [1]
        elif self.client in ("tcpcan", "alt", "static") or self.kind.startswith("via-"):
            for path in self.logs[1:]:
                while "agreed protocol version" not in path.read_text():
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no agreement; see {path}")
                    time.sleep(0.05)
            targets = [self.clients]
        else:
            targets = range(1, self.clients + 1)
        for i in targets:
            r = tool("probe", "vcan0", f"vcan{i}", "-W", 30000)
            if r.get("probe") != "ok":
                raise RuntimeError(f"{self.kind}: no path vcan0 -> vcan{i}; see {self.logs}")

    @property
    def pids(self):
        return [p.pid for p in self.procs]

    def pid_groups(self):
        """(tcpcan's processes, every process of the path): for --via the
        desk's tcpcan and the gateway's tcpcan --stdio, then with them ssh,
        the server's session processes and any shell between."""
        if not self.kind.startswith("via-"):
            return self.pids, self.pids
        listener, desk = self.pids
        below = descendants(listener) + descendants(desk)
        ours = [desk] + [p for p in below if "--stdio" in cmdline(p)]
        return ours, [desk] + below

    def cpu(self):
        return [cpu_ticks(pid) for pid in self.pids]

    def alive(self):
        return all(p.poll() is None for p in self.procs)

    def __exit__(self, *exc):
        if self.kind == "cangw":
            sh("cangw", "-F")
            return
        # The reference exits cleanly only on SIGINT (KeyboardInterrupt).
        # Clients first, or they would log reconnect attempts.
        sig = signal.SIGINT if "python" in (self.kind, self.client) else signal.SIGTERM
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(sig)
        for p in self.procs:
            try:
                p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def saturation(kind, fd, args=()):
    """Blast frames on vcan0 for SAT_SECS; count what reaches the far bus."""
    tag = next_tag()
    far = "vcan0" if kind == "direct" else "vcan1"
    f = ["-f"] if fd else []
    if kind == "direct":
        c = Counter(far, tag, "-w", 1000, *f)
        g = tool("gen", "vcan0", "-t", tag, "-d", SAT_SECS, *f)
        r = c.result()
        alive = True
        tunnel_ms = []
    else:
        with Tunnel(kind, fd, args=args) as t:
            c = Counter(far, tag, "-w", 1000, *f)
            before = t.cpu()
            g = tool("gen", "vcan0", "-t", tag, "-d", SAT_SECS, *f)
            r = c.result()
            after = t.cpu()
            alive = t.alive()
        tunnel_ms = [(a - b) * 1000 / CLK_TCK for a, b in zip(after, before)]
    loss = 100.0 * (g["sent"] - r["unique"]) / g["sent"]
    out = {
        "sent": g["sent"],
        "gen_rate": g["rate"],
        "delivered": r["unique"],
        "rate": r["rate"],
        "loss_pct": loss,
        "dup": r["dup"],
        "reordered": r["reordered"],
        "counter_drops": r["own_drops"],
        "tunnel_survived": alive,
        # Where the CPU went: generator, counter, then the tunnel's processes.
        "cpu_ms": {"gen": g["cpu_ms"], "counter": r["cpu_ms"], "tunnel": tunnel_ms},
    }
    log(f"saturation {kind} {' '.join(args)} {'FD' if fd else 'classic'}: {out}")
    return out


def ladder(kind, fd=False, args=()):
    """Highest paced rate (1 s per step, doubling) that the path carries with zero loss."""
    best = 0
    steps = []
    with Tunnel(kind, fd, args=args) as t:
        for rate in [2500, 5000, 10000, 20000, 40000, 80000, 160000]:
            tag = next_tag()
            c = Counter("vcan1", tag, "-w", 500, "-n", rate)
            g = tool("gen", "vcan0", "-t", tag, "-r", rate, "-d", 1)
            r = c.result()
            ok = r["unique"] == g["sent"] and g["rate"] >= 0.95 * rate and r["own_drops"] == 0
            steps.append({"rate": rate, "sent": g["sent"], "delivered": r["unique"], "gen_rate": g["rate"]})
            if not ok or not t.alive():
                break
            best = rate
    log(f"lossless ladder {kind} {' '.join(args)}: best {best}: {steps}")
    return {"lossless_rate": best, "steps": steps}


def cpu_at_rate(kind, args=(), tick_us=None):
    """CPU of the tunnel's processes while carrying CPU_RATE frames/s; also
    their wake-ups (voluntary context switches: each time a process slept,
    as in poll(2)) per frame, which no tracer disturbs. TICK_US: the
    generator's mean interval between batches (default 1000)."""
    tick = ["-g", tick_us] if tick_us else []
    with Tunnel(kind, args=args) as t:
        time.sleep(0.5)
        rss = [vmrss_kib(pid) for pid in t.pids]
        anon = [vmrss_kib(pid, "RssAnon") for pid in t.pids]
        tag = next_tag()
        n = CPU_RATE * CPU_SECS
        c = Counter("vcan1", tag, "-w", 1000, "-n", n)
        before = t.cpu()
        sw_before = [proc_status(pid, "voluntary_ctxt_switches") for pid in t.pids]
        g = tool("gen", "vcan0", "-t", tag, "-r", CPU_RATE, "-d", CPU_SECS, *tick)
        r = c.result()
        after = t.cpu()
        sw_after = [proc_status(pid, "voluntary_ctxt_switches") for pid in t.pids]
    ticks = [a - b for a, b in zip(after, before)]
    per_k = [x / CLK_TCK / (r["unique"] / 1000) if r["unique"] else None for x in ticks]
    wakes = [(a - b) / r["unique"] if r["unique"] and a is not None else None for a, b in zip(sw_after, sw_before)]
    out = {
        "args": list(args),
        "tick_us": tick_us,
        "sent": g["sent"],
        "gen_rate": g["rate"],
        "gen_secs": g["secs"],
        # Share of the one CPU the tunnel's processes took while the
        # generator ran: what they left to the rest of the "gateway".
        "tunnel_cpu_share": sum(ticks) / CLK_TCK / g["secs"],
        "wakeups_per_frame": {"server": wakes[0], "client": wakes[1]},
        "delivered": r["unique"],
        "loss_pct": 100.0 * (g["sent"] - r["unique"]) / g["sent"],
        "counter_drops": r["own_drops"],
        "ticks": ticks,
        "cpu_s_per_1000": {"server": per_k[0], "client": per_k[1], "total": sum(per_k)},
        "idle_rss_kib": {"server": rss[0], "client": rss[1]},
        "idle_anon_kib": {"server": anon[0], "client": anon[1]},
    }
    log(f"cpu {kind} {' '.join(args)} tick {tick_us or 1000} us: {out}")
    return out


def latency(kind, args=(), rate=LAT_RATE, tick_us=None, frames=LAT_FRAMES):
    """One-way latency vcan0 -> vcan1; with TICK_US, the frames due are sent
    together every TICK_US (canbench lat -g), as at LAT_BUSY_RATE."""
    batch = ["-g", tick_us] if tick_us else []
    with Tunnel(kind, args=args):
        r = tool("lat", "vcan0", "vcan1", "-r", rate, "-n", frames, "-t", next_tag(), *batch)
    log(f"latency {kind} {' '.join(args)} at {rate}/s: {r}")
    return r


def via_figures(kind, rate):
    """Through KIND (tcpcan over TCP, or via-dropbear / via-openssh) at RATE:
    latency and loss of VIA_FRAMES frames, then CPU per 1000 frames over
    VIA_SECS, of tcpcan's processes and of all the path's processes."""
    tick = ["-g", LAT_TICK_US] if rate > 1000 else []
    with Tunnel(kind):
        lat = tool("lat", "vcan0", "vcan1", "-r", rate, "-n", VIA_FRAMES, "-t", next_tag(), *tick)
    with Tunnel(kind) as t:
        time.sleep(0.5)
        ours, every = t.pid_groups()
        tag = next_tag()
        c = Counter("vcan1", tag, "-w", 1000, "-n", rate * VIA_SECS)
        before = {p: cpu_ticks(p) for p in every}
        g = tool("gen", "vcan0", "-t", tag, "-r", rate, "-d", VIA_SECS, *tick)
        r = c.result()
        used = {p: cpu_ticks(p) - before[p] for p in every}
    per_k = lambda pids: sum(used[p] for p in pids) / CLK_TCK / (r["unique"] / 1000) if r["unique"] else None
    out = {
        "rate": rate,
        "lat": lat,
        "sent": g["sent"],
        "delivered": r["unique"],
        "loss_pct": 100.0 * (g["sent"] - r["unique"]) / g["sent"],
        "counter_drops": r["own_drops"],
        "cpu_s_per_1000": {"tcpcan": per_k(ours), "all": per_k(every)},
        "processes": len(every),
    }
    log(f"via {kind} at {rate}/s: {out}")
    return out


def via_rows():
    """Issue 23's rows: plain TCP and each ssh server at each rate,
    repetitions interleaved."""
    kinds = ["tcpcan", *(f"via-{s}" for s in VIA_SERVERS)]
    rows = {k: {str(r): [] for r in VIA_RATES} for k in kinds}
    for _ in range(REPS):
        for rate in VIA_RATES:
            for k in kinds:
                rows[k][str(rate)].append(via_figures(k, rate))
    return rows


def fanout(kind, clients):
    """One server, N clients each on its own vcanN; CPU per delivered frame.

    Clients share no bus: a client on a bus with another client would send
    that client's frames back to the server, and the server to everyone.
    """
    with Tunnel(kind, clients=clients) as t:
        time.sleep(0.5)
        rss_server = vmrss_kib(t.pids[0])
        tag = next_tag()
        rate = FANOUT_DELIVERED / clients
        n = round(rate * FANOUT_SECS)
        c = Counter("any", tag, "-x", "vcan0", "-w", 1500, "-n", n * clients)
        before = t.cpu()
        g = tool("gen", "vcan0", "-t", tag, "-r", rate, "-n", n)
        r = c.result(timeout=120)
        after = t.cpu()
    ticks = [a - b for a, b in zip(after, before)]
    delivered = r["recv"]
    per = (lambda x: x / CLK_TCK / delivered * 1e6) if delivered else (lambda x: None)
    out = {
        "clients": clients,
        "rate": rate,
        "sent": g["sent"],
        "delivered": delivered,
        "loss_pct": 100.0 * (g["sent"] * clients - delivered) / (g["sent"] * clients),
        "counter_drops": r["own_drops"],
        "cpu_us_per_frame": {"server": per(ticks[0]), "total": per(sum(ticks))},
        "server_rss_kib": rss_server,
    }
    log(f"fan-out {kind} x{clients}: {out}")
    return out


def mean_ms(seconds):
    return sum(seconds) / len(seconds) * 1000


def round_trip(kind):
    """Mean request turn (tests/roundtrip.py), ms, of desks at tcpcan's
    server (`kind`: tcpcan or alt) with the ECU on vcan0: python-can's
    socketcand interface at its defaults and with tcp_tune (TCP_NODELAY and
    TCP_QUICKACK at the desk), which take rounds in turn on one server; then
    a v1 client of the Python 0.0.2 and one of the same tcpcan, each on
    vcan1 with a desk on a raw socket there; last, that tcpcan as the client
    of a Python 0.0.2 server."""
    out = {}
    sc_port = next_port()
    tunes = {"sc_default": False, "sc_tuned": True}
    ids = {name: REQUEST_ID + i for i, name in enumerate(tunes)}
    with Tunnel(kind, clients=0, args=["--socketcand", str(sc_port)]), Ecu("vcan0", ids.values()):
        desks = {
            name: (CanDesk(can.Bus(interface="socketcand", host="127.0.0.1", port=sc_port, channel="vcan0", tcp_tune=tune)), ids[name])
            for name, tune in tunes.items()
        }
        try:
            took = interleaved(desks, RT_ROUNDS, RT_TURNS)
        finally:
            for desk, _ in desks.values():
                desk.close()
    out.update({name: mean_ms(t) for name, t in took.items()})
    for name, server, client in (("v1_python", kind, "python"), ("v1_ours", kind, None), ("v1_python_server", "python", kind)):
        with Tunnel(server, client=client), Ecu("vcan0"):
            desk = RawDesk("vcan1")
            try:
                out[name] = mean_ms(interleaved({name: (desk, REQUEST_ID)}, RT_ROUNDS, RT_TURNS)[name])
            finally:
                desk.close()
    log(f"round trip {kind}: {out}")
    return out


def round_trips(ours):
    """round_trip of each build in `ours`, REPS times, interleaved."""
    runs = {k: [] for k in ours}
    for _ in range(REPS):
        for k in ours:
            runs[k].append(round_trip(k))
    return runs


def strace_counts(path):
    """System calls by name from `strace -c` output."""
    counts = {}
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[3].isdigit():
            counts[f[-1]] = int(f[3])
    return counts


@contextlib.contextmanager
def strace_counting(pids, outs):
    """`strace -c` attached to each of `pids` (after the tunnel has settled)
    for the body of the block, its counts written to the paths `outs`."""
    time.sleep(0.5)
    tracers = [
        subprocess.Popen(["strace", "-c", "-o", str(out), "-p", str(pid)], stderr=subprocess.DEVNULL)
        for out, pid in zip(outs, pids)
    ]
    time.sleep(1)
    try:
        yield
    finally:
        for tr in tracers:
            tr.send_signal(signal.SIGINT)
            tr.wait(timeout=60)


def syscalls(kind):
    """System calls per frame of server and client (strace -c) while they
    carry SC_FRAMES frames at SC_RATE: on this rig, where a system call costs
    tens of microseconds and CPU accounting is sampled (see docs), the most
    dependable measure of what a frame costs."""
    outs = [LOGS / f"strace-{kind}-{role}.txt" for role in ("server", "client")]
    with Tunnel(kind) as t, strace_counting(t.pids, outs):
        tag = next_tag()
        c = Counter("vcan1", tag, "-w", 2000, "-n", SC_FRAMES)
        tool("gen", "vcan0", "-t", tag, "-r", SC_RATE, "-n", SC_FRAMES)
        r = c.result()
    out = {}
    for role, path in zip(("server", "client"), outs):
        counts = strace_counts(path)
        out[role] = {
            "per_frame": counts.get("total", 0) / r["unique"] if r["unique"] else None,
            "by_name": {k: v / r["unique"] for k, v in counts.items() if k != "total" and r["unique"]},
        }
    log(f"syscalls {kind}: {out}")
    return out


def syscalls_under_load(args, rate):
    """System calls per delivered frame of tcpcan's server and client
    (strace -c) while the generator sends at RATE frames/s for
    SC_LOAD_SECS, or as fast as it can (RATE 0, saturation). A traced
    daemon is slower, so it finds more frames per wake-up than an untraced
    one: read with the untraced wake-ups per frame of cpu_at_rate."""
    with Tunnel("tcpcan", args=args) as t:
        outs = [LOGS / f"strace-load-{t.name}-{rate}-{role}.txt" for role in ("server", "client")]
        with strace_counting(t.pids, outs):
            tag = next_tag()
            c = Counter("vcan1", tag, "-w", 2000)
            pace = ["-r", rate] if rate else []
            g = tool("gen", "vcan0", "-t", tag, *pace, "-d", SC_LOAD_SECS)
            r = c.result()
    out = {"sent": g["sent"], "gen_rate": g["rate"], "delivered": r["unique"]}
    for role, path in zip(("server", "client"), outs):
        total = strace_counts(path).get("total", 0)
        out[role] = total / r["unique"] if r["unique"] else None
    log(f"syscalls under load {' '.join(args)} at {rate or 'saturation'}: {out}")
    return out


def callgrind_totals(path):
    text = Path(path).read_text()
    m = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
    return int(m.group(1))


def instructions(kind, args=()):
    """User-space instructions per frame (callgrind), server and client, by
    difference between a run carrying CG_FRAMES frames and one carrying none."""
    totals = {}
    named = kind + "".join(a.replace("--", "-") for a in args)
    for frames in (0, CG_FRAMES):
        outs = {}

        def wrap(role, argv, outs=outs):
            out = LOGS / f"callgrind-{named}-{role}-{frames}.out"
            outs[role] = out
            return ["valgrind", "--tool=callgrind", "--quiet", f"--callgrind-out-file={out}", *argv]

        with Tunnel(kind, wrap=wrap, args=args):
            time.sleep(0.5)
            if frames:
                tag = next_tag()
                c = Counter("vcan1", tag, "-w", 3000, "-n", frames)
                tool("gen", "vcan0", "-t", tag, "-r", CG_RATE, "-n", frames)
                r = c.result()
                if r["unique"] != frames:
                    raise RuntimeError(f"callgrind run of {kind} lost frames: {r}")
            else:
                time.sleep(CG_FRAMES / CG_RATE)
        totals[frames] = {role: callgrind_totals(p) for role, p in outs.items()}
    out = {role: (totals[CG_FRAMES][role] - totals[0][role]) / CG_FRAMES for role in ("server", "client")}
    log(f"instructions {named}: {out} (totals {totals})")
    return out


# Protocol version 2 beside 1 (issue 24): the same tcpcan on both ends,
# version 1 pinned with --protocol 1 (both sides, as the Tunnel passes it).
PROTOCOLS = {"v1": ["--protocol", "1"], "v2": []}


def agreed_version(kind, args):
    """The version the last such tunnel's client logged agreeing on: a row
    that says v2 must have been carried by version 2."""
    name = kind + "".join(a.replace("--", "-") for a in args)
    m = re.search(r"agreed protocol version (\d+)", (LOGS / f"{name}-client1.log").read_text())
    return int(m.group(1)) if m else None


def protocols():
    """Version 2 beside version 1 in the same boot, repetitions interleaved:
    saturation (loss and rate), the lossless ladder, CPU at CPU_RATE and
    instructions per frame (callgrind)."""
    out = {v: {"saturation": [], "cpu": []} for v in PROTOCOLS}
    for _ in range(REPS):
        for v, args in PROTOCOLS.items():
            out[v]["saturation"].append(saturation("tcpcan", False, args))
            out[v]["agreed"] = agreed_version("tcpcan", args)
            out[v]["cpu"].append(cpu_at_rate("tcpcan", args))
    for v, args in PROTOCOLS.items():
        out[v]["lossless"] = ladder("tcpcan", args=args)
        out[v]["instructions"] = instructions("tcpcan", args)
    for v in PROTOCOLS:
        if out[v]["agreed"] != int(v[1:]):
            raise RuntimeError(f"protocol rows: the {v} tunnel agreed on {out[v]['agreed']}")
    return out


def setup_buses():
    cmds = "".join(f"link add vcan{i} type vcan\nlink set vcan{i} mtu 72 up\n" for i in range(max(FANOUT) + 1))
    subprocess.run(["ip", "-batch", "-"], input=cmds, text=True, check=True)


def main():
    results_path = Path(sys.argv[1])
    t_start = time.monotonic()
    setup_buses()
    if ONLY == "via":
        res = {"quick": QUICK, "via": via_rows(), "uml_seconds": time.monotonic() - t_start}
        results_path.write_text(json.dumps(res, indent=1))
        return
    res = {
        "uml": {
            "nproc": os.cpu_count(),
            "kernel": platform.release(),
            "mem_kib": int(open("/proc/meminfo").readline().split()[1]),
        },
        "quick": QUICK,
        "params": {
            "sat_secs": SAT_SECS, "reps": REPS, "cpu_rate": CPU_RATE, "cpu_secs": CPU_SECS,
            "lat_rate": LAT_RATE, "lat_frames": LAT_FRAMES, "fanout_delivered": FANOUT_DELIVERED,
            "fanout_secs": FANOUT_SECS, "cg_rate": CG_RATE, "cg_frames": CG_FRAMES,
        },
    }

    ours = ["tcpcan"] + (["alt"] if ALT else [])
    tunnels = ["cangw", *ours, "python", "relay"]
    res["candidates"] = tunnels
    if ONLY in ("round-trip", "protocol"):
        res["only"] = ONLY
        if ONLY == "round-trip":
            res["round_trip"] = round_trips(ours)
        else:
            res["protocol"] = protocols()
        res["uml_seconds"] = time.monotonic() - t_start
        results_path.write_text(json.dumps(res, indent=1))
        log(f"done in {res['uml_seconds']:.0f} s; results in {results_path}")
        return

    # What tcpcan's binary offers decides which of the newer rows run.
    helps = help_text(OURS)
    has_sc = "--socketcand" in helps
    has_budget = "--latency-budget" in helps
    res["features"] = {
        "socketcand": has_sc,
        "latency_budget": has_budget,
        "budget_default": budget_default(helps) if has_budget else None,
        "budgets": BUDGETS,
        "lat_busy_rate": LAT_BUSY_RATE,
        "lat_tick_us": LAT_TICK_US,
        "lat_busy_frames": LAT_BUSY_FRAMES,
        "sc_load_secs": SC_LOAD_SECS,
        "spread_tick_us": SPREAD_TICK_US,
    }
    log(f"features of {OURS}: {res['features']}")
    off = budget_args(0)
    # Issue 13: tcpcan's server with a socketcand client in place of the v1 client.
    sc = {"saturation": [], "cpu": [], "latency": []}
    # Issue 14: budget 0 (off) beside the binary's default, and the CPU curve.
    co = {
        "saturation_off": [],
        "cpu": {f"{b:g}": [] for b in BUDGETS},
        "cpu_spread": {"off": [], "default": []},
        "latency_off": [],
        "latency_busy": {"off": [], "default": []},
    }

    # Repetitions are interleaved so that a slow spell of the shared host
    # hits every candidate, not one.
    sat = {k: {"classic": [], "fd": []} for k in ["direct", *tunnels]}
    for _ in range(REPS):
        for fd in (False, True):
            for k in sat:
                sat[k]["fd" if fd else "classic"].append(saturation(k, fd))
        # socketcand has no CAN FD: classic only.
        if has_sc:
            sc["saturation"].append(saturation("sc", False))
        if has_budget:
            co["saturation_off"].append(saturation("tcpcan", False, off))
    res["saturation"] = sat
    res["lossless"] = {k: ladder(k) for k in tunnels}
    if has_budget:
        co["lossless_off"] = ladder("tcpcan", args=off)

    cpu = {k: [] for k in [*ours, "python", "relay"]}
    lat = {k: [] for k in tunnels}
    for _ in range(REPS):
        for k in cpu:
            cpu[k].append(cpu_at_rate(k))
        if has_sc:
            sc["cpu"].append(cpu_at_rate("sc"))
        if has_budget:
            for b in BUDGETS:
                co["cpu"][f"{b:g}"].append(cpu_at_rate("tcpcan", budget_args(b)))
            co["cpu_spread"]["off"].append(cpu_at_rate("tcpcan", off, SPREAD_TICK_US))
        co["cpu_spread"]["default"].append(cpu_at_rate("tcpcan", tick_us=SPREAD_TICK_US))
        for k in lat:
            lat[k].append(latency(k))
        if has_sc:
            sc["latency"].append(latency("sc"))
        # The binary's default at LAT_BUSY_RATE is measured whatever the
        # binary: for one without the option, it is the figure before coalescing.
        co["latency_busy"]["default"].append(latency("tcpcan", (), LAT_BUSY_RATE, LAT_TICK_US, LAT_BUSY_FRAMES))
        if has_budget:
            co["latency_off"].append(latency("tcpcan", off))
            co["latency_busy"]["off"].append(latency("tcpcan", off, LAT_BUSY_RATE, LAT_TICK_US, LAT_BUSY_FRAMES))
    res["cpu"] = cpu
    res["latency"] = lat
    # System calls per frame under load: the default always, 0 when there is one.
    co["syscalls"] = {
        which: {"busy": syscalls_under_load(args, CPU_RATE), "saturation": syscalls_under_load(args, 0)}
        for which, args in [("default", []), *([("off", off)] if has_budget else [])]
    }
    if has_sc:
        res["socketcand"] = sc
    res["coalescing"] = co

    res["fanout"] = {k: [fanout(k, n) for n in FANOUT] for k in ours}
    res["fanout"]["python"] = [fanout("python", n) for n in FANOUT_PY]
    res["instructions"] = {k: instructions(k) for k in [*ours, "python"]}
    res["syscalls"] = {k: syscalls(k) for k in [*ours, "python", "relay"]}
    res["round_trip"] = round_trips(ours)
    if "--stdio" in helps:
        res["via"] = via_rows()
    if "--protocol" in helps:
        res["protocol"] = protocols()
    if STATIC:
        res["rss_static"] = idle_rss("static")
    res["uml_seconds"] = time.monotonic() - t_start
    results_path.write_text(json.dumps(res, indent=1))
    log(f"done in {res['uml_seconds']:.0f} s; results in {results_path}")


if __name__ == "__main__":
    main()
