"""Compares the counts of tests/perf/measure.py with their committed figures.

usage: guard.py BASELINE.toml RESULTS.json [--update] [--margin FRACTION]

A count fails when it rises more than the margin above its committed figure
(or has none); a count more than the margin below it passes and says so, so
that the figure is lowered on purpose. --update rewrites BASELINE.toml with
the measured counts, keeping its margin. Exit status 1 when a count failed.
"""

import argparse
import json
import sys
import tomllib
from pathlib import Path

HEADER = """\
# Committed figures of the performance guard (tests/perf/run.sh, issue 14).
# Counts per forwarded frame, never times: user-space instructions
# (callgrind) and system calls (strace -c -f) of the tcpcan server and client
# at 100 frames/s (one frame at a time) and 5000 frames/s (bursts of 25).
# The guard fails when a count rises more than `margin` above its figure.
# One set for every kernel the guard runs on: on the same build, UML 6.1.176
# and 7.2.7 measured within 1.2 % of each other on all 8 counts.
#
# Written by `tests/perf/run.sh --update`. Change it on purpose only: commit it
# with the change that moved the counts, and say in that commit why they moved.
"""


def fail(msg):
    print(f"perf: {msg}", file=sys.stderr)
    sys.exit(2)


def load_baseline(path):
    if not path.exists():
        return {"margin": 0.10, "counts": {}}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        fail(f"{path}: not TOML: {e}")
    margin = data.get("margin")
    counts = data.get("counts")
    if not isinstance(margin, (int, float)) or not 0 <= margin < 1:
        fail(f"{path}: margin must be a fraction between 0 and 1, not {margin!r}")
    if not isinstance(counts, dict) or not all(isinstance(v, (int, float)) for v in counts.values()):
        fail(f"{path}: [counts] must map each count's name to a number")
    return {"margin": float(margin), "counts": counts}


def write_baseline(path, margin, counts):
    lines = [HEADER, f"margin = {margin}", "", "[counts]"]
    lines += [f'"{name}" = {value}' for name, value in sorted(counts.items())]
    path.write_text("\n".join(lines) + "\n")


def parse_margin(text):
    try:
        m = float(text)
    except ValueError:
        m = -1.0
    if not 0 <= m < 1:
        fail(f"margin must be a fraction between 0 and 1 (0.10 is 10 %), not {text!r}")
    return m


def verdict(measured, committed, margin):
    if committed is None:
        return None, "FAIL"
    ratio = measured / committed if committed else float("inf") if measured else 1.0
    if ratio > 1 + margin:
        return ratio, "FAIL"
    if ratio < 1 - margin:
        return ratio, "improved: update the figure"
    return ratio, "ok"


def main():
    ap = argparse.ArgumentParser(description="performance guard: counts against committed figures")
    ap.add_argument("baseline", type=Path)
    ap.add_argument("results", type=Path)
    ap.add_argument("--update", action="store_true", help="rewrite BASELINE with the measured counts")
    ap.add_argument("--margin", help="allowed rise, a fraction (default: the baseline's)")
    args = ap.parse_args()

    base = load_baseline(args.baseline)
    margin = parse_margin(args.margin) if args.margin is not None else base["margin"]
    try:
        measured = json.loads(args.results.read_text())["counts"]
    except (OSError, ValueError, KeyError) as e:
        fail(f"{args.results}: no counts ({e})")

    if args.update:
        write_baseline(args.baseline, base["margin"], measured)
        print(f"perf: wrote {len(measured)} figures to {args.baseline}; commit it and say why they changed")
        return 0

    rows = []
    failures = []
    for name in sorted(measured):
        committed = base["counts"].get(name)
        ratio, v = verdict(measured[name], committed, margin)
        rows.append((name, f"{measured[name]:.5g}", "-" if committed is None else f"{committed:.5g}",
                     "-" if ratio is None else f"{ratio:.3f}", v))
        if committed is None:
            failures.append(f"{name}: no committed figure in {args.baseline} (tests/perf/run.sh --update)")
        elif v == "FAIL":
            failures.append(f"{name} rose {100 * (ratio - 1):.1f} % above its figure "
                            f"({committed:g} -> {measured[name]:g}; margin {100 * margin:g} %)")
    for name in sorted(set(base["counts"]) - set(measured)):
        rows.append((name, "-", f"{base['counts'][name]:.5g}", "-", "FAIL"))
        failures.append(f"{name}: committed but no longer measured")

    head = ("count", "measured", "committed", "ratio", "verdict")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) if i in (0, 4) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    print(f"margin {100 * margin:g} %")
    # Version 2 beside version 1 (measure.py's `.v2` counts), measured now.
    for name in sorted(n for n in measured if n.endswith(".v2")):
        v1 = measured.get(name[: -len(".v2")])
        if v1:
            print(f"v2/v1 {name[: -len('.v2')]}: {measured[name]:.5g} / {v1:.5g} = {measured[name] / v1:.3f}")
    for f in failures:
        print(f"perf: FAIL: {f}")
    if failures:
        return 1
    improved = sum(r[4] != "ok" for r in rows)
    print(f"perf: no count rose more than {100 * margin:g} % above its figure"
          + (f"; {improved} improved: update the figures (tests/perf/run.sh --update)" if improved else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
