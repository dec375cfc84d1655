"""Turns bench.py's results (and run.sh's host facts) into Markdown tables:
the main one, then socketcand clients beside v1 clients (issue 13),
tcpcan's coalescing budgets (issue 14), a desk's request round trip
(issue 26) and the path through ssh (--stdio / --via, issue 23), all from
the same boot; with --only round-trip, via or protocol, those rows alone.

usage: report.py RESULTS.json HOST.json
"""

import json
import statistics
import sys

NAMES = {
    "cangw": "cangw (kernel)",
    "tcpcan": "tcpcan",
    "alt": "tcpcan --compare",
    "python": "Python 0.0.2",
    "relay": "minimal C relay",
}


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=0):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if digits == 0:
        return f"{v:,.0f}".replace(",", " ")
    return f"{v:.{digits}f}"


def spread(values, digits=0):
    """median [min–max] of repeated runs."""
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    m = fmt(med(values), digits)
    if len(values) == 1:
        return m
    return f"{m} [{fmt(min(values), digits)}–{fmt(max(values), digits)}]"


def ratio(a, b):
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    if r is None:
        return "—"
    return f"{r:.2f}" if r < 10 else f"{r:.0f}"


class Table:
    def __init__(self, cols, compare):
        self.cols = cols
        self.compare = compare
        self.rows = []

    def row(self, label, runs, digits=0, goal=""):
        """runs: candidate -> list of values (or one value)."""
        cells, medians = [], {}
        for c in self.cols:
            v = runs.get(c)
            if isinstance(v, list):
                cells.append(spread(v, digits))
                medians[c] = med(v)
            else:
                cells.append(fmt(v, digits))
                medians[c] = v
        ours = medians.get("tcpcan")
        ratios = [fmt_ratio(ratio(ours, medians.get("cangw"))), fmt_ratio(ratio(ours, medians.get("python")))]
        if self.compare:
            ratios.append(fmt_ratio(ratio(medians.get("alt"), ours)))
        self.rows.append([label, *cells, *ratios, goal])
        return medians

    def markdown(self):
        head = ["figure", *(NAMES[c] for c in self.cols), "tcpcan ÷ cangw", "tcpcan ÷ Python"]
        if self.compare:
            head.append("compare ÷ tcpcan")
        head.append("goal")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines)


def relay_note(medians, base):
    """What the minimal relay reaches on the same row: what this rig allows."""
    r = ratio(medians.get("relay"), medians.get(base))
    return f" (minimal relay: {fmt_ratio(r)})" if r is not None else ""


def verdict(ok, text):
    return ("met: " if ok else "MISSED: ") + text


NA = "n/a"


def md_table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def cell(values, digits=0, measured=True):
    """A cell of repeated runs, or n/a when the binary could not run them."""
    if not measured:
        return NA
    if isinstance(values, list):
        return spread(values, digits)
    return fmt(values, digits)


def via_table(res):
    """Issue 23: the same frames through ssh (tcpcan --stdio as a key's forced
    command, tcpcan --via ssh at the far end) beside plain TCP, per rate."""
    via = res.get("via")
    out = ["### Through ssh: --stdio behind dropbear / OpenSSH, --via ssh (issue 23)", ""]
    if via is None:
        return out + ["n/a: this tcpcan has no --stdio.", ""]
    names = {"tcpcan": "plain TCP", "via-dropbear": "ssh, dropbear", "via-openssh": "ssh, OpenSSH sshd"}
    head = [
        "path", "rate (frames/s)", "loss %", "latency p50 (µs)", "p99 (µs)", "p50 ÷ TCP",
        "CPU s/1000 frames: tcpcan", "tcpcan + ssh", "tcpcan + ssh ÷ TCP",
    ]
    rows = []
    for rate in sorted(next(iter(via.values())), key=int):
        base = via["tcpcan"][rate]
        base_p50 = med([x["lat"].get("p50_us") for x in base])
        base_cpu = med([x["cpu_s_per_1000"]["all"] for x in base])
        for kind, rates in via.items():
            runs = rates[rate]
            p50 = med([x["lat"].get("p50_us") for x in runs])
            cpu_all = [x["cpu_s_per_1000"]["all"] for x in runs]
            # Loss over both runs of each repetition: the latency frames and the CPU frames.
            lost = [x["lat"].get("lost", 0) * 100.0 / max(x["lat"].get("sent", 1), 1) + x["loss_pct"] for x in runs]
            rows.append([
                names.get(kind, kind), rate, spread(lost, 2),
                spread([x["lat"].get("p50_us") for x in runs]),
                spread([x["lat"].get("p99_us") for x in runs]),
                fmt_ratio(ratio(p50, base_p50)),
                spread([x["cpu_s_per_1000"]["tcpcan"] for x in runs], 3),
                spread(cpu_all, 3),
                fmt_ratio(ratio(med(cpu_all), base_cpu)),
            ])
    out.append(md_table(head, [[str(c) for c in row] for row in rows]))
    out += [
        "",
        "Loss must be 0. Latency is one way, vcan0 → vcan1 (what the path adds to a bus); "
        "at 5 kfps the frames due are sent together every ms (canbench lat -g). "
        "CPU: the two tcpcans, then with ssh, the server's session processes and any shell between.",
        "",
    ]
    return out


def socketcand_table(res):
    """tcpcan's server with a socketcand client (canbench sc-in, raw mode)
    beside the same server with a v1 client (the main table's tcpcan runs)."""
    sc = res.get("socketcand")
    on = sc is not None
    p = res["params"]
    v1_sat = res["saturation"]["tcpcan"]["classic"]
    v1_cpu = res["cpu"]["tcpcan"]
    v1_lat = res["latency"]["tcpcan"]
    rows = []

    def row(label, v1, other, digits=0):
        r = ratio(med(other), med(v1)) if on else None
        rows.append([label, cell(v1, digits), cell(other, digits, on), fmt_ratio(r) if on else NA])

    row("saturation classic 8-byte: frames/s on vcan1", [r["rate"] for r in v1_sat],
        [r["rate"] for r in sc["saturation"]] if on else [])
    row("saturation classic 8-byte: loss %", [r["loss_pct"] for r in v1_sat],
        [r["loss_pct"] for r in sc["saturation"]] if on else [], 1)
    for q in ("p50", "p99", "max"):
        row(f"latency {q} µs at {p['lat_rate']} frames/s", [r[f"{q}_us"] for r in v1_lat],
            [r[f"{q}_us"] for r in sc["latency"]] if on else [])
    row(f"CPU s per 1000 frames at {p['cpu_rate']} frames/s, server only",
        [r["cpu_s_per_1000"]["server"] for r in v1_cpu],
        [r["cpu_s_per_1000"]["server"] for r in sc["cpu"]] if on else [], 3)
    row(f"loss % at {p['cpu_rate']} frames/s", [r["loss_pct"] for r in v1_cpu],
        [r["loss_pct"] for r in sc["cpu"]] if on else [], 1)
    head = ["figure (tcpcan server, classic frames)", "v1 client (tcpcan)", "socketcand client (raw mode)",
            "socketcand ÷ v1"]
    out = ["### socketcand clients beside v1 clients (issue 13)", ""]
    if not on:
        out += ["n/a: this tcpcan has no --socketcand.", ""]
    out.append(md_table(head, rows))
    return out


def coalescing_tables(res, cpu_python):
    """The --latency-budget curve at 5 kfps, then budget 0 (off) beside the
    binary's default. Rows the binary cannot run say n/a; the default's own
    figures are measured whatever the binary (for one without the option,
    they are the figures before coalescing)."""
    co = res["coalescing"]
    feat = res["features"]
    on = feat["latency_budget"]
    d = feat["budget_default"]
    p = res["params"]
    rate = p["cpu_rate"]
    py = med(cpu_python)
    if not on:
        default_name = "no --latency-budget (this binary)"
    elif d is None:
        default_name = "default (not stated by --help)"
    else:
        default_name = f"default ({d:g} ms)"

    def curve_row(label, runs, wakes=True):
        if runs is None:
            return [label, *[NA] * 8]
        cpu = [r["cpu_s_per_1000"]["total"] for r in runs]
        w = "—"
        if wakes:
            w = " / ".join(fmt(med([r["wakeups_per_frame"][k] for r in runs]), 2) for k in ("server", "client"))
        return [
            label,
            spread(cpu, 3),
            fmt_ratio(ratio(med(cpu), py)),
            spread([r["cpu_s_per_1000"]["server"] for r in runs], 3),
            spread([r["cpu_s_per_1000"]["client"] for r in runs], 3),
            w,
            spread([r["gen_rate"] for r in runs]),
            spread([100 * r["tunnel_cpu_share"] for r in runs]),
            spread([r["loss_pct"] for r in runs], 1),
        ]

    rows = []
    for b in feat["budgets"]:
        label = f"--latency-budget {b:g}" + (" (off)" if b == 0 else "") + (" (default)" if on and d == b else "")
        rows.append(curve_row(label, co["cpu"][f"{b:g}"] if on else None))
    rows.append(curve_row(f"{default_name}, main table's runs", res["cpu"]["tcpcan"]))
    rows.append(curve_row("Python 0.0.2, main table's runs", res["cpu"]["python"], wakes=False))
    head = [
        f"tcpcan at {rate} frames/s",
        "CPU s per 1000 frames, server + client",
        "÷ Python",
        "… server",
        "… client",
        "wake-ups per frame, server / client",
        f"generator achieved, frames/s (of {rate})",
        "tunnel's share of the CPU, %",
        "loss %",
    ]
    out = ["### Coalescing: --latency-budget (issue 14)", ""]
    if not on:
        out += ["n/a: this tcpcan has no --latency-budget; its own figures are those before coalescing.", ""]
    out += [md_table(head, rows), ""]

    # Budget 0 beside the default.
    rows = []
    busy = feat["lat_busy_rate"]

    def pair(label, off, default, digits=0, goal=""):
        """off, default: lists of runs, or one figure."""
        off, default = ([] if v is None else v if isinstance(v, list) else [v] for v in (off, default))
        r = ratio(med(default), med(off)) if on else None
        rows.append([label, cell(off, digits, on), cell(default, digits), fmt_ratio(r) if on else NA, goal])

    curve_off = co["cpu"].get("0", []) if on else []
    cpu_default = [r["cpu_s_per_1000"]["total"] for r in res["cpu"]["tcpcan"]]
    r = ratio(med(cpu_default), py)
    lossless = all(x["loss_pct"] == 0 for x in res["cpu"]["tcpcan"])
    ok = r is not None and r <= 0.1 and lossless
    pair(f"CPU s per 1000 frames at {rate} frames/s, server + client",
         [x["cpu_s_per_1000"]["total"] for x in curve_off], cpu_default, 3,
         verdict(ok, f"≤ 0.10 × Python with no loss (default: {fmt_ratio(r)})"))
    pair(f"generator achieved at {rate} frames/s, frames/s", [x["gen_rate"] for x in curve_off],
         [x["gen_rate"] for x in res["cpu"]["tcpcan"]])
    # Results of a bench.py from before the spread rows have none.
    spread_runs = co.get("cpu_spread", {"off": [], "default": []})
    tick = feat.get("spread_tick_us", "?")
    pair(f"… frames spread (generator tick {tick} µs): CPU s per 1000 frames, server + client",
         [x["cpu_s_per_1000"]["total"] for x in spread_runs["off"]],
         [x["cpu_s_per_1000"]["total"] for x in spread_runs["default"]], 3)
    for role in ("server", "client"):
        pair(f"… frames spread: wake-ups per frame, {role}",
             [x["wakeups_per_frame"][role] for x in spread_runs["off"]],
             [x["wakeups_per_frame"][role] for x in spread_runs["default"]], 2)
    pair("… frames spread: generator achieved, frames/s", [x["gen_rate"] for x in spread_runs["off"]],
         [x["gen_rate"] for x in spread_runs["default"]])
    sc = co["syscalls"]
    for load, what in (("busy", f"at {rate} frames/s"), ("saturation", "at saturation")):
        for role in ("server", "client"):
            pair(f"system calls per frame {what}, {role} (strace -c)",
                 sc["off"][load][role] if on else None, sc["default"][load][role], 2)
    pair("… frames/s the generator reached under strace at saturation",
         sc["off"]["saturation"]["gen_rate"] if on else None, sc["default"]["saturation"]["gen_rate"])
    lat1 = res["latency"]["tcpcan"]
    for q in ("p50", "p99"):
        pair(f"latency {q} µs at {p['lat_rate']} frames/s", [x[f"{q}_us"] for x in co["latency_off"]],
             [x[f"{q}_us"] for x in lat1])
    lb = co["latency_busy"]
    for q in ("p50", "p99"):
        pair(f"latency {q} µs at {busy} frames/s", [x[f"{q}_us"] for x in lb["off"]],
             [x[f"{q}_us"] for x in lb["default"]])
    for q in ("p50", "p99"):
        added = None
        goal = ""
        if on:
            added = med([x[f"{q}_us"] for x in lb["default"]]) - med([x[f"{q}_us"] for x in lb["off"]])
            if d is not None:
                goal = verdict(added <= d * 1000, f"≤ the budget ({d * 1000:g} µs)")
        rows.append([f"added latency {q} µs at {busy} frames/s (default − off, medians)", NA if not on else "",
                     fmt(added) if on else NA, "", goal])
    pair("saturation classic 8-byte: frames/s on vcan1", [x["rate"] for x in co["saturation_off"]],
         [x["rate"] for x in res["saturation"]["tcpcan"]["classic"]])
    pair("saturation classic 8-byte: loss %", [x["loss_pct"] for x in co["saturation_off"]],
         [x["loss_pct"] for x in res["saturation"]["tcpcan"]["classic"]], 1)
    pair("highest lossless paced rate, frames/s", co["lossless_off"]["lossless_rate"] if on else None,
         res["lossless"]["tcpcan"]["lossless_rate"])
    head = ["figure (tcpcan)", "--latency-budget 0 (off)", default_name, "default ÷ off", "goal"]
    out.append(md_table(head, rows))
    return out


def round_trip_table(res, compare):
    """A desk's request turn through tcpcan's server (bench.round_trip),
    per desk, for tcpcan and the compared build."""
    runs = res.get("round_trip")
    out = ["### A desk's request round trip (issue 26)", ""]
    if runs is None:
        return out + ["n/a: these results are from a bench.py without the round-trip rows."]
    ours = ["tcpcan", *(["alt"] if compare else [])]

    def figures(k, key):
        return [r.get(key) for r in runs[k]]

    rows = []
    for key, label in (
        ("sc_default", "socketcand client: python-can at its defaults (tcp_tune=False), ms"),
        ("sc_tuned", "socketcand client: python-can with tcp_tune=True, ms"),
        ("v1_python", "v1 client: Python 0.0.2 on vcan1, desk on a raw socket there, ms"),
        ("v1_ours", "v1 client: the same tcpcan on vcan1, desk on a raw socket there, ms"),
        ("v1_python_server", "v1 client: the same tcpcan on vcan1, of a Python 0.0.2 server, ms"),
    ):
        cells = [spread(figures(k, key), 2) for k in ours]
        r = [fmt_ratio(ratio(med(figures("alt", key)), med(figures("tcpcan", key))))] if compare else []
        rows.append([label, *cells, *r, ""])
    cells, goal = [], ""
    for k in ours:
        r = ratio(med(figures(k, "sc_default")), med(figures(k, "sc_tuned")))
        cells.append(fmt_ratio(r))
        if k == "tcpcan":
            goal = verdict(r is not None and r <= 2, "≤ 2")
    rows.append(["… python-can defaults ÷ tcp_tune=True", *cells, *([""] if compare else []), goal])
    head = ["mean time of a request turn (request and answer, each a first frame, a flow control and 4 consecutive frames)",
            *(NAMES[k] for k in ours), *(["compare ÷ tcpcan"] if compare else []), "goal"]
    return out + [md_table(head, rows)]


def protocol_table(res):
    """Version 2 beside version 1, tcpcan on both ends (bench.protocols)."""
    runs = res.get("protocol")
    out = ["### Protocol version 2 beside version 1 (issue 24)", ""]
    if runs is None:
        return out + ["n/a: this tcpcan has no --protocol."]
    p = res["params"]
    v1, v2 = runs["v1"], runs["v2"]
    rows = []

    def row(label, a, b, digits=0, goal=None):
        r = ratio(med(b) if isinstance(b, list) else b, med(a) if isinstance(a, list) else a)
        verdict_cell = verdict(r is not None and r <= goal, f"≤ {goal:.2f}") if goal else ""
        # Three decimals: the goal is a few per cent.
        rows.append([label, cell(a, digits), cell(b, digits), "—" if r is None else f"{r:.3f}", verdict_cell])

    row("saturation classic 8-byte: frames/s on vcan1", [r["rate"] for r in v1["saturation"]],
        [r["rate"] for r in v2["saturation"]])
    row("saturation classic 8-byte: loss %", [r["loss_pct"] for r in v1["saturation"]],
        [r["loss_pct"] for r in v2["saturation"]], 1)
    row("highest lossless rate, frames/s", v1["lossless"]["lossless_rate"], v2["lossless"]["lossless_rate"])
    row(f"loss % at {p['cpu_rate']} frames/s", [r["loss_pct"] for r in v1["cpu"]],
        [r["loss_pct"] for r in v2["cpu"]], 1)
    for who in ("server", "client", "total"):
        row(f"CPU s per 1000 frames at {p['cpu_rate']} frames/s, {who}",
            [r["cpu_s_per_1000"][who] for r in v1["cpu"]], [r["cpu_s_per_1000"][who] for r in v2["cpu"]], 3,
            1.05)
    for who in ("server", "client"):
        row(f"instructions per frame (callgrind, {p['cg_rate']} frames/s), {who}",
            v1["instructions"][who], v2["instructions"][who], 1, 1.05)
    head = ["figure (tcpcan on both ends, classic frames)", "version 1 (--protocol 1)", "version 2", "v2 ÷ v1",
            "goal"]
    return out + [md_table(head, rows)]


def host_line(res, host, compare, what=""):
    """Where and how the figures were measured."""
    return (
        f"Host: {host['host_nproc']} × {host['host_cpu']}, load average {host['load_before']} before, "
        f"{host.get('load_after', '?')} after. UML: {res['uml']['nproc']} CPU, kernel {res['uml']['kernel']}, "
        f"{res['uml']['mem_kib'] // 1024} MiB. tcpcan {host['describe']}"
        + (f"; compared with {host['alt']}" if compare else "")
        + f". {res['params']['reps']} runs per figure where a range is shown (median [min–max])"
        + (" — QUICK run" if res.get("quick") else "")
        + what
        + f"; {res['uml_seconds']:.0f} s in UML."
    )


def main():
    res = json.load(open(sys.argv[1]))
    host = json.load(open(sys.argv[2]))
    if "candidates" not in res:
        # --only via: the ssh rows alone.
        print("\n".join(via_table(res) + [f"{res['uml_seconds']:.0f} s in UML" + (" — QUICK run" if res.get("quick") else "") + "."]))
        return
    compare = "alt" in res["candidates"]
    if compare:
        NAMES["alt"] = f"compare: {host['alt']}"
    if res.get("only") == "round-trip":
        print("\n".join([host_line(res, host, compare, " — round-trip rows only"), "", *round_trip_table(res, compare)]))
        return
    if res.get("only") == "protocol":
        print("\n".join([host_line(res, host, compare, " — protocol rows only"), "", *protocol_table(res)]))
        return
    cols = ["cangw", "tcpcan", *(["alt"] if compare else []), "python", "relay"]
    t = Table(cols, compare)
    p = res["params"]
    sat = res["saturation"]
    goals = []

    for kind, label in (("classic", "classic 8-byte"), ("fd", "FD 64-byte")):
        m = t.row(
            f"saturation {label}: frames/s on vcan1",
            {k: [r["rate"] for r in sat[k][kind]] for k in cols},
        )
        r = ratio(m["tcpcan"], m["cangw"])
        t.rows[-1][-1] = verdict(r is not None and r >= 0.5, "≥ 0.5 × cangw") + relay_note(m, "cangw")
        goals.append((f"saturation {kind} ≥ 50 % of cangw", r is not None and r >= 0.5, fmt_ratio(r)))
        t.row(
            f"saturation {label}: loss %",
            {k: [r["loss_pct"] for r in sat[k][kind]] for k in cols},
            1,
        )
    t.row(
        "highest lossless paced rate, frames/s (1 s steps, doubling)",
        {k: res["lossless"][k]["lossless_rate"] for k in cols},
    )

    cpu = res["cpu"]
    m = t.row(
        f"CPU s per 1000 frames at {p['cpu_rate']} frames/s, server + client",
        {k: [r["cpu_s_per_1000"]["total"] for r in cpu[k]] for k in cols if k in cpu},
        3,
    )
    r = ratio(m["tcpcan"], m["python"])
    t.rows[-1][-1] = verdict(r is not None and r <= 0.1, "≤ 0.1 × Python") + relay_note(m, "python")
    goals.append(("CPU per 1000 frames ≤ 1/10 of Python", r is not None and r <= 0.1, fmt_ratio(r)))
    for role in ("server", "client"):
        t.row(
            f"… of which {role}",
            {k: [r["cpu_s_per_1000"][role] for r in cpu[k]] for k in cols if k in cpu},
            3,
        )
    m = t.row(
        f"loss % at {p['cpu_rate']} frames/s",
        {k: [r["loss_pct"] for r in cpu[k]] for k in cols if k in cpu},
        1,
    )
    lossless = all(r["loss_pct"] == 0 for r in cpu["tcpcan"])
    t.rows[-1][-1] = verdict(lossless, "0 in every run")
    goals.append((f"no loss at {p['cpu_rate']} frames/s", lossless, ""))

    lat = res["latency"]
    for q in ("p50", "p99", "max"):
        m = t.row(
            f"latency {q} µs at {p['lat_rate']} frames/s",
            {k: [r[f"{q}_us"] for r in lat[k]] for k in cols},
            0 if q != "p50" else 0,
        )
        if q == "p99":
            r = ratio(m["tcpcan"], m["python"])
            t.rows[-1][-1] = verdict(r is not None and r <= 1 / 3, "≤ 1/3 × Python") + relay_note(m, "python")
            goals.append(("p99 latency ≤ 1/3 of Python", r is not None and r <= 1 / 3, fmt_ratio(r)))

    fo = res["fanout"]
    for n in [r["clients"] for r in fo["tcpcan"]]:
        runs = {}
        for k in fo:
            hit = [r for r in fo[k] if r["clients"] == n]
            if hit:
                runs[k] = hit[0]["cpu_us_per_frame"]["total"]
        t.row(f"fan-out {n} client(s): CPU µs per delivered frame, all processes", runs, 0)
        losses = {k: [r["loss_pct"] for r in fo[k] if r["clients"] == n] for k in fo}
        t.row(f"fan-out {n} client(s): loss %", {k: v for k, v in losses.items() if v}, 1)

    rss = {k: [r["idle_rss_kib"]["server"] for r in cpu[k]] for k in cols if k in cpu}
    m = t.row("idle RSS server, KiB (VmRSS)", rss)
    # The goal is judged on what ships, the static build, when it was measured.
    server_rss, which = m["tcpcan"], "release build"
    if res.get("rss_static"):
        server_rss, which = res["rss_static"]["server"]["vmrss"], "static musl dist build"
    ok = server_rss is not None and server_rss < 1024
    if not res.get("rss_static"):
        t.rows[-1][-1] = verdict(ok, "< 1024 KiB")
    goals.append(("idle server RSS < 1 MiB", ok, f"{fmt(server_rss)} KiB, {which}"))
    t.row("idle RSS client, KiB (VmRSS)", {k: [r["idle_rss_kib"]["client"] for r in cpu[k]] for k in cols if k in cpu})
    t.row(
        "RSS server with 64 clients, KiB",
        {k: [r["server_rss_kib"] for r in fo[k] if r["clients"] == 64] for k in fo},
    )
    t.row(
        "… of which private (RssAnon), server",
        {k: [r["idle_anon_kib"]["server"] for r in cpu[k]] for k in cols if k in cpu},
    )
    if res.get("rss_static"):
        rs = res["rss_static"]
        t.row(
            "idle RSS server / client of the static musl dist build, KiB (RssAnon)",
            {"tcpcan": f"{rs['server']['vmrss']} / {rs['client']['vmrss']} "
             f"({rs['server']['anon']} / {rs['client']['anon']})"},
        )
        t.rows[-1][-1] = verdict(ok, "server < 1024 KiB")
    t.row("stripped binary, bytes", {"tcpcan": host.get("size_dist"), "alt": host.get("size_alt") and f"{host['size_alt']} (strip of the binary)"})
    ins = res["instructions"]
    for role, what in (("server", "CAN→TCP"), ("client", "TCP→CAN")):
        t.row(
            f"user-space instructions per frame, {role} ({what}, callgrind)",
            {k: ins[k][role] for k in ins},
        )

    sc = res.get("syscalls", {})
    for role, what in (("server", "CAN→TCP"), ("client", "TCP→CAN")):
        t.row(
            f"system calls per frame, {role} ({what}, strace, one frame per wake-up)",
            {k: sc[k][role]["per_frame"] for k in sc},
            1,
        )

    d = res["saturation"]["direct"]
    out = []
    extra = []
    if "coalescing" in res:
        extra = ["", *socketcand_table(res), "", *coalescing_tables(res, [r["cpu_s_per_1000"]["total"] for r in cpu["python"]])]
        extra += ["", *round_trip_table(res, compare)]
        extra += ["", *via_table(res)]
        extra += ["", *protocol_table(res)]
    out.append(host_line(res, host, compare))
    out.append("")
    out.append(t.markdown())
    out.append("")
    out.append(
        "Tools check, generator → counter directly on vcan0: "
        f"classic {spread([r['rate'] for r in d['classic']])}, FD {spread([r['rate'] for r in d['fd']])} frames/s; "
        f"frames the counters themselves dropped over the whole run: {own_drops(res)}."
    )
    out.append("")
    out.append("Goals: " + "; ".join(f"{name}: {'met' if ok else 'MISSED'}{' (' + v + ')' if v else ''}" for name, ok, v in goals) + ".")
    out += extra
    print("\n".join(out))


def own_drops(res):
    n = 0
    for k in res["saturation"].values():
        for runs in k.values():
            n += sum(r["counter_drops"] for r in runs)
    for runs in res["cpu"].values():
        n += sum(r["counter_drops"] for r in runs)
    for runs in res["latency"].values():
        n += sum(r.get("own_drops", 0) for r in runs)
    # The socketcand and coalescing rows' runs.
    sc = res.get("socketcand", {})
    co = res.get("coalescing", {})
    runs = [*sc.get("saturation", []), *sc.get("cpu", []), *co.get("saturation_off", [])]
    runs += [r for v in co.get("cpu", {}).values() for r in v]
    runs += [r for v in co.get("cpu_spread", {}).values() for r in v]
    n += sum(r["counter_drops"] for r in runs)
    lat = [*sc.get("latency", []), *co.get("latency_off", [])]
    lat += [r for v in co.get("latency_busy", {}).values() for r in v]
    n += sum(r.get("own_drops", 0) for r in lat)
    for rates in res.get("via", {}).values():
        for runs in rates.values():
            n += sum(r["counter_drops"] + r["lat"].get("own_drops", 0) for r in runs)
    return n


if __name__ == "__main__":
    main()
