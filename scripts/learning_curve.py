#!/usr/bin/env python3
"""Plots a mining node's learning curve from its log (docs/training.md, "A model that learns").

Reads the `rnetd -mine` log given as the first argument and writes an SVG (second argument) with
`benchmark_loss` (the tip model on the held-out benchmark slice) and each mined block's `val_loss`
in bits per byte against minutes since the miner started, the xz anchors measured on the same
slice, and the issue's 1.5 bits/byte target. Prints the points as CSV on stdout. Standard library
only, so it runs wherever the node does.

    python3 scripts/learning_curve.py ~/.resonancenet/testnet/debug.log docs/img/learning-curve.svg
"""

import datetime
import math
import re
import sys

LN2 = math.log(2)
# Anchors on the benchmark slice (the last 64 KiB of data/kjv.txt), reproduced with xz 5.4.1:
# `xz -9e` of the slice alone, and the extra bytes of the slice when xz has seen the rest first.
ANCHORS = [(2.220, "xz -9e alone 2.220"), (1.767, "xz given the rest of the corpus 1.767")]
TARGET = (1.5, "target 1.5")


def stamp(line):
    return datetime.datetime.fromisoformat(line.split()[0].rstrip("Z"))


def parse(path):
    start = None
    bench, blocks = [], []
    for line in open(path, encoding="utf-8", errors="replace"):
        if "in-node miner started" in line and start is None:
            start = stamp(line)
        if start is None:
            continue
        minutes = (stamp(line) - start).total_seconds() / 60
        m = re.search(r"benchmark loss of the tip model height=(\d+) benchmark_loss=(\d+)", line)
        if m:
            bench.append((minutes, int(m.group(1)), int(m.group(2)) / 1e6 / LN2))
        m = re.search(r"mined block height=(\d+) val_loss=(\d+) .* required=(\d+) .*shape=\(d=(\d+), L=(\d+)\)", line)
        if m:
            blocks.append((minutes, int(m.group(1)), int(m.group(2)) / 1e6 / LN2, int(m.group(3)),
                           int(m.group(4)), int(m.group(5))))
    return bench, blocks


def svg(bench, blocks, out):
    w, h, left, right, top, bottom = 760, 420, 60, 20, 30, 50
    t_max = max([b[0] for b in bench] + [b[0] for b in blocks] + [60.0])
    ys = [b[2] for b in bench[1:]] + [b[2] for b in blocks]
    y_lo = min(ys + [TARGET[0]]) - 0.05
    y_hi = min(max(ys + [ANCHORS[0][0]]) + 0.1, 3.0)

    def x(t):
        return left + (w - left - right) * t / t_max

    def y(v):
        v = min(max(v, y_lo), y_hi)
        return top + (h - top - bottom) * (y_hi - v) / (y_hi - y_lo)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="{left}" y="18" font-size="14">Solo testnet miner on 2 cores: loss in bits/byte against minutes</text>']
    step = 0.25
    v = math.ceil(y_lo / step) * step
    while v <= y_hi:
        parts.append(f'<line x1="{left}" x2="{w - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
        v += step
    for t in range(0, int(t_max) + 1, 10):
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{h - bottom}" stroke="#eee"/>')
        parts.append(f'<text x="{x(t):.1f}" y="{h - bottom + 16}" text-anchor="middle">{t}</text>')
    parts.append(f'<text x="{(left + w - right) / 2}" y="{h - 12}" text-anchor="middle">minutes since the miner started</text>')
    for value, label in ANCHORS + [TARGET]:
        color = "#888" if value != TARGET[0] else "#2a7"
        parts.append(f'<line x1="{left}" x2="{w - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="{color}" stroke-dasharray="5,4"/>')
        parts.append(f'<text x="{w - right - 4}" y="{y(value) - 4:.1f}" text-anchor="end" fill="{color}">{label}</text>')
    if blocks:
        pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, _, v, *_ in blocks)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#9ab" stroke-width="1"/>')
    if len(bench) > 1:
        pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, _, v in bench[1:])
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#d1242f" stroke-width="2"/>')
    parts.append(f'<text x="{w - right - 4}" y="{top + 16}" text-anchor="end" fill="#d1242f">benchmark_loss (held-out slice)</text>')
    parts.append(f'<text x="{w - right - 4}" y="{top + 32}" text-anchor="end" fill="#789">val_loss of each block on its own sample</text>')
    parts.append("</svg>")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(parts) + "\n")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    bench, blocks = parse(sys.argv[1])
    if not bench:
        sys.exit(f"{sys.argv[1]}: no 'benchmark loss of the tip model' lines after the miner started")
    svg(bench, blocks, sys.argv[2])
    print("minutes,height,benchmark_bits_per_byte")
    for t, height, v in bench:
        print(f"{t:.2f},{height},{v:.4f}")


if __name__ == "__main__":
    main()
