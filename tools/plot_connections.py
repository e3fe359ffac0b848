#!/usr/bin/env python3
"""Plots docs/bench/connections.csv (written by tools/bench_connections.sh): throughput against
the number of connections, one panel for GET (cache hit) and one for SET, a line per server and
client, the median of the rounds with the range of the rounds as a band.

Needs matplotlib:
    python3 -m venv .build/plot-venv && .build/plot-venv/bin/pip install matplotlib
    .build/plot-venv/bin/python tools/plot_connections.py --date 2026-11-25
"""
import argparse
import csv
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

SERIES = {  # (server, client) -> label, style
    ("nanad", "nanabench"): ("nanad, NanaClient (nanabench c / d)", dict(color="tab:blue", marker="o")),
    ("nanad", "loadgen"): ("nanad, loadgen", dict(color="tab:blue", marker="s", linestyle="--")),
    ("redis", "loadgen"): ("Redis 7.0, loadgen (no persistence)", dict(color="tab:red", marker="^")),
}
PANELS = [("get", "GET (cache hit)"), ("set", "SET (nanad: durable, group-committed)")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", default="docs/bench/connections.csv")
    ap.add_argument("--out", default="docs/bench/throughput-vs-connections.png")
    ap.add_argument("--date", required=True, help="the sitting's date, for the title")
    ap.add_argument("--note", default="", help="appended to the title (e.g. the machine's load)")
    args = ap.parse_args()

    data = defaultdict(list)  # (server, client, op) -> [(n, median, lo, hi)]
    with open(args.csv) as f:
        for row in csv.DictReader(f):
            runs = [float(x) for x in row["rate_runs"].split()]
            data[(row["server"], row["client"], row["op"])].append(
                (int(row["connections"]), float(row["rate_median"]), min(runs), max(runs)))

    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=False)
    for ax, (op, name) in zip(axes, PANELS):
        for (server, client), (label, style) in SERIES.items():
            points = sorted(data.get((server, client, op), []))
            if not points:
                continue
            xs = [p[0] for p in points]
            ax.plot(xs, [p[1] for p in points], label=label, **style)
            ax.fill_between(xs, [p[2] for p in points], [p[3] for p in points], color=style["color"], alpha=0.12)
        ax.set_xscale("log", base=2)
        ax.set_xticks([1, 2, 4, 8, 16, 32, 64])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k"))
        ax.set_xlabel("connections (one call in flight each)")
        ax.set_ylabel("calls per second (median of rounds; band: range)")
        ax.set_title(name)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    title = f"Throughput against connections, Unix socket, {args.date}, 2 cores, shared machine"
    if args.note:
        title += f"\n{args.note}"
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
