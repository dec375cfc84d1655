"""Turns bench.py's results (and run.sh's host facts) into one Markdown table.

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


def main():
    res = json.load(open(sys.argv[1]))
    host = json.load(open(sys.argv[2]))
    compare = "alt" in res["candidates"]
    cols = ["cangw", "tcpcan", *(["alt"] if compare else []), "python", "relay"]
    if compare:
        NAMES["alt"] = f"compare: {host['alt']}"
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
    out.append(
        f"Host: {host['host_nproc']} × {host['host_cpu']}, load average {host['load_before']} before, "
        f"{host.get('load_after', '?')} after. UML: {res['uml']['nproc']} CPU, kernel {res['uml']['kernel']}, "
        f"{res['uml']['mem_kib'] // 1024} MiB. tcpcan {host['describe']}"
        + (f"; compared with {host['alt']}" if compare else "")
        + f". {p['reps']} runs per figure where a range is shown (median [min–max])"
        + (" — QUICK run" if res.get("quick") else "")
        + f"; {res['uml_seconds']:.0f} s in UML."
    )
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
    return n


if __name__ == "__main__":
    main()
