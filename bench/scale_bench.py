#!/usr/bin/env python3
"""How multistack.ko's costs grow with work, run inside the VM.

Started by ``scripts/bench scaling`` through ``scripts/vm run``; the same
namespaces, programs and pktgen as bench/kmod_bench.py (its topology).

* RX cost per frame against the number of registered tuples (1 .. 65,536)
  and of ports (1 .. 64).  The cost is path_cost's: pktgen injects COUNT
  64-byte frames into msd0's receive path on CPU 0 and runs that path
  synchronously; its time per frame, less the same run's with frames for
  an Ethernet address msd0 does not have (the null sink: the generator
  alone), is what the receive path costs: the rx_handler's lookup and the
  copy into a ring, or IP, UDP and the socket queue.  Bursts are short
  (COUNT fits the rings) and repeated; each figure keeps the least time,
  the burst the host disturbed least.  The receiver (bench/ms_scale.c,
  CPU 1) is held while a burst is sent and drains between bursts: on a
  busy host a vCPU that holds a ring or socket lock while descheduled
  would make the other spin, and that would be measured instead.
    - tuples: T UDP tuples registered over 64 ports (MS_MAX_REGS is 1024
      a port; 65,536 take every port and two addresses), each proven by a
      bound socket; frames spread at random over all T (pktgen's
      IPDST_RND/UDPDST_RND), and, separately, all to tuple 0, the one
      registered first.
    - ports: P ports holding one tuple each, frames spread over the P.
  The OS baseline keeps the same bound sockets without the module and
  drains them through epoll and recvmmsg.
* UDP echo round-trip time: udp_ping in the generator namespace sends
  sequential pings over the veth to an echo on a MultiStack port
  (bench/ms_echo.c) and to one on an OS socket (bench/udp_echo.c); both
  sleep until a datagram arrives.  Median and 99th percentile.

Prints tables, each figure beside its OS baseline with the ratio, and a
last line ``@bench-json scaling {...}`` that scripts/bench stores as
bench/results/scaling.json and plots (bench/plot.py).  Asserts nothing.
"""

import argparse
import json
import os
import shlex
import signal
import sys
import time

import kmod_bench as kb
from kmod_bench import DADDR, DIF, DUT, GEN, SHELLS, Unavailable, nsh

TUPLES = [1, 16, 256, 4096, 65536]
QUICK_TUPLES = [1, 256, 4096, 65536]
PORTS = [1, 4, 16, 64]
QUICK_PORTS = [1, 8, 64]
TUPLE_PORTS = 64          # ports the tuples are spread over
BASE_PORT = 20000         # tuple k: port BASE_PORT + k % per_addr
PER_ADDR = 32768          # tuples per address at most
DRAIN_S = 0.2             # the receiver's time to empty its rings
ECHO_PORT = 9100


def addr_plus(addr, n):
    a = [int(x) for x in addr.split(".")]
    v = (a[0] << 24 | a[1] << 16 | a[2] << 8 | a[3]) + n
    return "%d.%d.%d.%d" % (v >> 24, v >> 16 & 255, v >> 8 & 255, v & 255)


def layout(tuples):
    """(addresses, tuples per address) for tuples registered by ms_scale."""
    naddrs = max(1, -(-tuples // PER_ADDR))
    return naddrs, -(-tuples // naddrs)


class Receiver:
    """bench/ms_scale.c running in the DUT namespace until stopped; held
    (SIGSTOP) while pktgen sends, so that no lock the path takes is held
    by a receiver whose vCPU the host has descheduled, and left to drain
    the rings between bursts."""

    def __init__(self, b, tuples, ports, os_path, count):
        naddrs, _ = layout(tuples)
        cmd = [b.prog("ms_scale"), "-a", DADDR, "-p", str(BASE_PORT),
               "-T", str(tuples), "-A", str(naddrs), "-c", b.cpu]
        if os_path:
            b.attach(False)
            cmd.append("-O")
        else:
            b.attach(True)
            # port 0 holds a whole burst (all frames to tuple 0); the
            # others their share of a spread one, twice over
            other = 64
            while other < min(1024, 2 * count // max(1, min(ports, tuples))):
                other *= 2
            cmd += ["-i", DIF, "-P", str(ports), "-s", "1024",
                    "-S", str(other)]
        t0 = time.monotonic()
        self.job = SHELLS[DUT].spawn("exec " + shlex.join(cmd))
        deadline = t0 + 600
        while (self.job.running() and "ready" not in self.job.stderr()
               and time.monotonic() < deadline):
            time.sleep(0.1)
        if not self.job.running() or "ready" not in self.job.stderr():
            self.stop()
            raise Unavailable("ms_scale: " + kb.first_line(self.job.stderr()))
        self.setup_s = time.monotonic() - t0

    def hold(self, on):
        os.kill(self.job.pid, signal.SIGSTOP if on else signal.SIGCONT)
        if not on:
            time.sleep(DRAIN_S)

    def stop(self):
        try:
            os.kill(self.job.pid, signal.SIGCONT)
            os.kill(self.job.pid, signal.SIGTERM)
        except OSError:
            pass
        rc, out, err = self.job.wait(120)
        return kb.kv(out) if rc == 0 else None


def aim(pg, tuples, spread):
    """pktgen's frames to tuple 0, or spread at random over all tuples."""
    naddrs, per_addr = layout(tuples)
    last_addr = addr_plus(DADDR, naddrs - 1 if spread else 0)
    last_port = BASE_PORT + (per_addr - 1 if spread else 0)
    flag = "" if spread else "!"
    pg.pgset(pg.dev, "dst_min " + DADDR, "dst_max " + last_addr,
             "udp_dst_min %d" % BASE_PORT, "udp_dst_max %d" % last_port,
             "flag %sIPDST_RND" % flag, "flag %sUDPDST_RND" % flag)


def burst_us(pg, rcv, count, null=False):
    """pktgen's time per frame for one burst of ``count`` frames, the
    receiver held; null: frames for an Ethernet address msd0 does not
    have, dropped at once (the generator alone)."""
    if null:
        pg.pgset(pg.dev, "dst_mac " + kb.NOWHERE_MAC)
    rcv.hold(True)
    try:
        return pg.run_count(count)
    finally:
        rcv.hold(False)
        if null:
            pg.pgset(pg.dev, "dst_mac " + pg.dut_mac)


def measure(b, pg, tuples, ports, os_path, aims, count, reps):
    """One receiver set-up; for each aim (True: spread, False: tuple 0)
    the least time per frame over reps bursts less the least of the null
    sink's, ns; and what else was seen."""
    rcv = Receiver(b, tuples, ports, os_path, count)
    runs = {a: [] for a in aims}
    nulls = []
    sent = 0
    try:
        for _ in range(reps):
            aim(pg, tuples, aims[0])
            nulls.append(burst_us(pg, rcv, count, null=True))
            for a in aims:
                aim(pg, tuples, a)
                runs[a].append(burst_us(pg, rcv, count))
                sent += count
    finally:
        res = rcv.stop()
    null = min(nulls)
    out = {a: round((min(r) - null) * 1e3, 1) for a, r in runs.items()}
    info = {"null_us": round(null, 3), "setup_s": round(rcv.setup_s, 1),
            "runs_us": {("spread" if a else "one"): [round(x, 3) for x in r]
                        for a, r in runs.items()},
            "null_runs_us": [round(x, 3) for x in nulls], "sent": sent}
    if res:
        info["delivered"] = int(res.get("packets", 0))
        info["dropped"] = int(res.get("drop_full", 0))
    return out, info


def cost_sweep(b, pg, title, points, make, aims, count, reps):
    """Rows {n, port_<aim>, os_<aim>, ...}: ns per frame beyond the null
    sink; None where it could not be measured (reason in row["na"])."""
    print()
    print(title)
    names = [("spread" if a else "one") for a in aims]
    head = " | ".join("%-25s" % ("%s: OS  port  OS/port" % n) for n in names)
    print("%6s | %s | %s" % ("n", head, "null us, setup s (port, OS)"))
    print("-" * (30 + 28 * len(names)))
    rows = []
    for n in points:
        tuples, ports = make(n)
        row = {"n": n, "tuples": tuples, "ports": ports, "na": {}}
        extra = []
        for side, os_path in (("port", False), ("os", True)):
            try:
                vals, info = measure(b, pg, tuples, ports, os_path, aims,
                                     count, reps)
            except (Unavailable, RuntimeError, OSError) as e:
                for name in names:
                    row["%s_%s" % (side, name)] = None
                row["na"][side] = str(e).splitlines()[0]
                extra.append("-")
                continue
            for a, name in zip(aims, names):
                row["%s_%s" % (side, name)] = vals[a]
            row[side + "_info"] = info
            extra.append("%.2f, %.0f s" % (info["null_us"], info["setup_s"]))
        cells = []
        for name in names:
            p, o = row["port_" + name], row["os_" + name]
            ratio = "%5.2fx" % (o / p) if p and o and p > 0 else "  n/a"
            cells.append("%7s %7s %s" % (
                "%.0f" % o if o is not None else "n/a",
                "%.0f" % p if p is not None else "n/a", ratio))
        print("%6d | %s | %s" % (n, " | ".join("%-25s" % c for c in cells),
                                 "; ".join(extra)))
        rows.append(row)
    for row in rows:
        for side, why in row["na"].items():
            print("  note: n=%d, %s: n/a (%s)" % (row["n"], side, why))
        for side in ("port", "os"):
            info = row.get(side + "_info")
            if info and "delivered" in info:
                print("  note: n=%d, %s: %d of %d frames delivered to the "
                      "receiver, %d dropped (full ring or buffer)" % (
                          row["n"], side, info["delivered"], info["sent"],
                          info["dropped"]))
    return rows


def rtt(b, count, reps):
    """Median and p99 RTT of sequential UDP pings, port echo vs OS echo."""
    print()
    print("UDP echo round-trip time over the veth: udp_ping (generator "
          "namespace, CPU 0) -> echo on CPU 1; %d pings per run, best "
          "median of %d run(s)" % (count, reps))
    results = {"port": [], "os": []}
    na = {}
    for _ in range(reps):
        for side in ("os", "port"):
            try:
                if side == "os":
                    b.attach(False)
                    cmd = [b.prog("udp_echo")]
                else:
                    b.attach(True)
                    cmd = [b.prog("ms_echo"), "-i", DIF]
                cmd += ["-a", DADDR, "-p", str(ECHO_PORT), "-c", b.cpu]
                job = SHELLS[DUT].spawn("exec " + shlex.join(cmd))
                deadline = time.monotonic() + 30
                while (job.running() and "ready" not in job.stderr()
                       and time.monotonic() < deadline):
                    time.sleep(0.02)
                if not job.running():
                    raise Unavailable(kb.first_line(job.stderr()))
                try:
                    r = nsh(GEN, shlex.join(
                        [b.prog("udp_ping"), "-a", DADDR, "-p",
                         str(ECHO_PORT), "-n", str(count), "-w", "50",
                         "-c", "0"]), check=False)
                finally:
                    os.kill(job.pid, 15)
                    job.wait(30)
                res = kb.kv(r.stdout)
                if r.returncode != 0 or not res:
                    raise Unavailable("udp_ping: " + kb.first_line(
                        r.stderr + r.stdout))
                results[side].append(res)
            except (Unavailable, RuntimeError, OSError) as e:
                na[side] = str(e).splitlines()[0]
    b.attach(False)
    best = {s: min(rs, key=lambda r: r["p50_us"]) if rs else None
            for s, rs in results.items()}
    print("%-22s | %10s | %10s | %s" % ("", "B: OS", "A: port", "B/A"))
    print("-" * 60)
    for key, label in (("p50_us", "median RTT, us"), ("p99_us", "p99 RTT, us"),
                       ("min_us", "min RTT, us"), ("lost", "lost")):
        o, p = best["os"], best["port"]

        def f(x):
            return "%10.1f" % x[key] if x else "%10s" % "n/a"
        ratio = "%.2fx" % (o[key] / p[key]) if o and p and p[key] else "-"
        print("%-22s | %s | %s | %s" % (label, f(o), f(p), ratio))
    for side, why in na.items():
        print("  note: %s: n/a (%s)" % (side, why))
    for side, rs in results.items():
        if len(rs) > 1:
            print("  note: %s medians over the runs: %s us" % (
                side, ", ".join("%.1f" % r["p50_us"] for r in rs)))
    return {"count": count, "reps": reps, "port": best["port"],
            "os": best["os"], "na": na}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--count", type=int, default=None,
                    help="frames per burst (default 500; at most 1000, "
                    "what the rings hold)")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--pings", type=int, default=None)
    ap.add_argument("--tuples", default=None, help="comma-separated counts")
    ap.add_argument("--ports", default=None, help="comma-separated counts")
    ap.add_argument("--only", choices=("cost", "rtt"), default=None)
    args = ap.parse_args()
    args.seconds, args.py = 1.0, None
    count = args.count or 500
    reps = args.reps or (9 if args.quick else 15)
    pings = args.pings or (1000 if args.quick else 5000)
    tuples = [int(x) for x in args.tuples.split(",")] if args.tuples else \
        (QUICK_TUPLES if args.quick else TUPLES)
    ports = [int(x) for x in args.ports.split(",")] if args.ports else \
        (QUICK_PORTS if args.quick else PORTS)

    # each table as it is done: a run cut short still shows what it had
    sys.stdout.reconfigure(line_buffering=True)
    started = time.monotonic()
    b = kb.Bench(args)
    print("== multistack.ko: how costs grow with work ==")
    print("Inside a qemu VM (TCG: CPU emulated in software): absolute "
          "figures are far below hardware and ratios move between runs;")
    print("compare columns of this one run only.  kernel %s, %d vCPU; "
          "64 B frames; RX costs are ns per frame beyond pktgen's null "
          "sink, least of %d bursts of %d frames" % (
              os.uname().release, b.ncpu, reps, count))
    if not b.module:
        print("module: n/a (%s)" % b.module_reason)
    data = {"kind": "scaling", "kernel": os.uname().release,
            "vcpus": b.ncpu, "quick": args.quick, "count": count,
            "reps": reps, "frame": 64}
    try:
        mac, notes = kb.setup(b.ncpu)
    except (RuntimeError, OSError) as e:
        print("cannot set up the namespaces: %s" % e)
        return 1
    try:
        if args.only in (None, "cost"):
            # the receive path runs in pktgen's thread on CPU 0: no RPS
            nsh(DUT, "echo 0 > /sys/class/net/%s/queues/rx-0/rps_cpus; "
                "ip addr add %s/24 dev %s" % (DIF, addr_plus(DADDR, 1), DIF))
            pg = kb.Pktgen(mac["dut"], mode="inject")
            if not pg.ok:
                print("RX cost: n/a (%s)" % pg.reason)
            else:
                pg.configure(60)
                data["tuples"] = cost_sweep(
                    b, pg, "RX cost per frame (ns) vs registered UDP tuples "
                    "(over %d ports; OS: as many bound sockets): frames "
                    "spread over all tuples, and all to one" % TUPLE_PORTS,
                    tuples, lambda n: (n, TUPLE_PORTS), (True, False),
                    count, reps)
                data["ports"] = cost_sweep(
                    b, pg, "RX cost per frame (ns) vs ports (one tuple "
                    "each; OS: as many sockets): frames spread over them",
                    ports, lambda n: (n, n), (True,), count, reps)
                pg.close()
            if b.ncpu >= 2:
                nsh(DUT, "echo 2 > /sys/class/net/%s/queues/rx-0/rps_cpus"
                    % DIF, check=False)
        if args.only in (None, "rtt"):
            data["rtt"] = rtt(b, pings, 1 if args.quick else 2)
    finally:
        kb.teardown()
        data["seconds"] = round(time.monotonic() - started)
        print("(scaling benchmark: %.0f s)" % (time.monotonic() - started))
    print("@bench-json scaling " + json.dumps(data, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
