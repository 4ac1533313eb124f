#!/usr/bin/env python3
"""RX through the Python binding: multistack.kernel.KernelPort.recv_batch.

    py_rx.py -i IFNAME -a ADDR -p PORT [-t SECONDS] [-w WARMUP] [-W WAIT] [-c CPU]
             [-s RX_SLOTS]

Like bench/ms_rx.c, but the ring is drained by the project's Python
backend: poll the port's descriptor, recv_batch(256), read each frame's
UDP destination port.  Prints the same key=value line:
    packets=N bytes=B seconds=S drop_full=D offered=O cpu_busy=C
Exit 3 when the module or the binding is missing (reason on stderr).
"""

import argparse
import os
import select
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_busy(cpu):
    """(busy, total) USER_HZ ticks of one CPU from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu%d " % cpu):
                v = [int(x) for x in line.split()[1:9]]
                return sum(v) - v[3] - v[4], sum(v)
    return 0, 0


def dev_rx(ifname):
    try:
        with open("/sys/class/net/%s/statistics/rx_packets" % ifname) as f:
            return int(f.read())
    except OSError:
        return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-i", required=True)
    ap.add_argument("-a", required=True)
    ap.add_argument("-p", type=int, required=True)
    ap.add_argument("-t", type=float, default=2.0)
    ap.add_argument("-w", type=float, default=0.5)
    ap.add_argument("-W", type=float, default=10.0)
    ap.add_argument("-c", type=int, default=-1)
    ap.add_argument("-s", type=int, default=0)
    a = ap.parse_args()
    if a.c >= 0:
        os.sched_setaffinity(0, {a.c})
    try:
        from multistack.kernel import KernelPort
        port = KernelPort(a.i, rx_slots=a.s)
        sock = port.claim("udp", a.a, a.p)
    except Exception as e:     # noqa: BLE001 - reported, exit 3
        print("py_rx: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 3
    want = a.p.to_bytes(2, "big")
    poller = select.poll()
    poller.register(port.fileno(), select.POLLIN)
    print("py_rx: ready on %s udp %s:%d" % (a.i, a.a, a.p), file=sys.stderr, flush=True)

    t0 = time.monotonic()
    while not port.recv_batch(256):
        poller.poll(100)
        if time.monotonic() - t0 > a.W:
            print("packets=0 bytes=0 seconds=0 drop_full=0 offered=0 cpu_busy=0")
            return 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < a.w:
        if not port.recv_batch(256):
            poller.poll(100)
    d0 = port.raw_stats()[0].get("rx_drop_full", 0)
    o0, c0 = dev_rx(a.i), cpu_busy(max(a.c, 0))
    pk = by = 0
    t0 = time.monotonic()
    tend = t0 + a.t
    t = t0
    while t < tend:
        frames = port.recv_batch(256)
        if not frames:
            poller.poll(100)
        for f in frames:
            if f[36:38] == want:
                pk += 1
                by += len(f)
        t = time.monotonic()
    o1, c1 = dev_rx(a.i), cpu_busy(max(a.c, 0))
    d1 = port.raw_stats()[0].get("rx_drop_full", 0)
    hz = os.sysconf("SC_CLK_TCK")
    print("packets=%d bytes=%d seconds=%.6f drop_full=%d offered=%d cpu_busy=%.4f" % (
        pk, by, t - t0, d1 - d0, o1 - o0, (c1[0] - c0[0]) / hz))
    port.close()
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
