#!/usr/bin/env python3
"""Draws scripts/bench's figures from the data it stored.

    plot.py DIR            reads DIR/kmod.json and DIR/scaling.json (those
                           present) and writes the SVG figures into DIR

kmod.json (bench/kmod_bench.py) gives throughput.svg: RX and TX against
frame size, port and OS path, in kpps, Gbit/s and CPU time per frame of
the CPU under test.  scaling.json
(bench/scale_bench.py) gives rx-cost-tuples.svg and rx-cost-ports.svg (RX
cost per frame, log x) and rtt.svg (UDP echo round trip, median and 99th
percentile).  A point that could not be measured is left out; a figure
with nothing to show is not written.  Prints the files it wrote.
Exit 2 when DIR holds neither file or one is not readable JSON.
"""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PORT, OS = "#1f77b4", "#d62728"     # MultiStack port, OS path
# SVGs that differ only where the data differ
matplotlib.rcParams["svg.hashsalt"] = "multistack-bench"
matplotlib.rcParams["svg.fonttype"] = "none"


def caption(data, what):
    how = "scripts/bench%s %s" % (" --quick" if data.get("quick") else "",
                                  what)
    return "%s; kernel %s, %s vCPU, qemu TCG: compare the lines, not the " \
        "absolute values" % (how, data.get("kernel", "?"),
                             data.get("vcpus", "?"))


def save(fig, data, what, path, written):
    fig.text(0.5, 0.005, caption(data, what), ha="center", va="bottom",
             fontsize=7, color="0.35")
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    written.append(path)


def value(side, key):
    return side.get(key) if isinstance(side, dict) else None


def throughput(data, out, written):
    panels = [(d, key, label) for d in ("rx", "tx") if data.get(d)
              for key, label in (("pps", "kpps"), ("gbps", "Gbit/s"),
                                 ("us_per_pkt", "µs of CPU per frame"))]
    if not panels:
        return
    fig, axes = plt.subplots(len(panels) // 3, 3, squeeze=False,
                             figsize=(12, 3.3 * (len(panels) // 3) + 0.4))
    base = {"rx": "OS: UDP socket, recvmmsg", "tx": "OS: AF_PACKET sendmmsg"}
    drawn = False
    for ax, (d, key, label) in zip(axes.flat, panels):
        for side, color, name in (("port", PORT, "MultiStack port"),
                                  ("os", OS, base[d])):
            pts = [(r["size"], value(r[side], key)) for r in data[d]]
            pts = [(x, y / 1e3 if key == "pps" else y) for x, y in pts
                   if y is not None]
            if pts:
                drawn = True
                ax.plot(*zip(*pts), marker="o", color=color, label=name)
        ax.set_title("%s, %s" % (d.upper(), label), fontsize=10)
        ax.set_xlabel("frame size, bytes (with FCS)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if not drawn:
        plt.close(fig)
        return
    fig.suptitle("multistack.ko throughput against frame size")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    save(fig, data, "kmod", os.path.join(out, "throughput.svg"), written)


def cost(data, key, xlabel, title, series, path, written):
    rows = data.get(key) or []
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = False
    for field, color, style, name in series:
        # log scale: a cost the noise put at or below the null sink's is
        # left out (the table shows it)
        pts = [(r["n"], r[field]) for r in rows
               if r.get(field) is not None and r[field] > 0]
        if pts:
            drawn = True
            ax.plot(*zip(*pts), marker="o", color=color, linestyle=style,
                    label=name)
    if not drawn:
        plt.close(fig)
        return
    ax.set_xscale("log", base=2)
    ax.set_xticks([r["n"] for r in rows])
    ax.set_xticklabels(["{:,}".format(r["n"]) for r in rows])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ns per frame beyond the generator")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    save(fig, data, "scaling", path, written)


def rtt(data, out, written):
    r = data.get("rtt") or {}
    sides = [(s, c, n) for s, c, n in (
        ("port", PORT, "echo on a MultiStack port"),
        ("os", OS, "echo on an OS UDP socket")) if r.get(s)]
    if not sides:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / len(sides)
    for i, (s, color, name) in enumerate(sides):
        vals = [r[s]["p50_us"], r[s]["p99_us"]]
        xs = [j + (i - (len(sides) - 1) / 2) * width for j in range(2)]
        bars = ax.bar(xs, vals, width, color=color, label=name)
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks([0, 1])
    ax.set_xticklabels(["median", "99th percentile"])
    ax.set_ylabel("round-trip time, µs")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("UDP echo over a veth, %d sequential pings" % r["count"],
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    save(fig, data, "scaling", os.path.join(out, "rtt.svg"), written)


def scaling(data, out, written):
    cost(data, "tuples", "registered UDP tuples (over 64 ports)",
         "RX cost per frame against registered tuples",
         [("port_spread", PORT, "-", "port, frames spread over all tuples"),
          ("port_one", PORT, "--", "port, frames to one tuple"),
          ("os_spread", OS, "-", "OS sockets, spread"),
          ("os_one", OS, "--", "OS sockets, one")],
         os.path.join(out, "rx-cost-tuples.svg"), written)
    cost(data, "ports", "ports (one tuple each)",
         "RX cost per frame against ports",
         [("port_spread", PORT, "-", "ports, frames spread over them"),
          ("os_spread", OS, "-", "OS sockets, as many")],
         os.path.join(out, "rx-cost-ports.svg"), written)
    rtt(data, out, written)


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise SystemExit("plot.py: %s: %s" % (path, e))


def main(argv):
    if len(argv) != 1:
        print("usage: plot.py DIR", file=sys.stderr)
        return 2
    out = argv[0]
    kmod = load(os.path.join(out, "kmod.json"))
    scale = load(os.path.join(out, "scaling.json"))
    if kmod is None and scale is None:
        print("plot.py: %s holds neither kmod.json nor scaling.json" % out,
              file=sys.stderr)
        return 2
    written = []
    if kmod is not None:
        throughput(kmod, out, written)
    if scale is not None:
        scaling(scale, out, written)
    for path in written:
        print("wrote " + path)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            sys.exit(2)
        raise
