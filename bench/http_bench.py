#!/usr/bin/env python3
"""HTTP fetches and bulk transfer: UTCP against kernel TCP, same trio app.

    http_bench.py [--quick] [--backend tap|module] [--bin DIR]

Backends (namespaces this script creates and deletes; needs root):

* ``tap`` (on the host): the client namespace ``mshb-cli`` reaches
  - UTCP: the app on UTCP over a TAP port (user-level IP host 10.78.0.2,
    the TAP's kernel side 10.78.0.1 in mshb-cli), port 80;
  - kernel: the same app on kernel sockets in namespace ``mshb-srv``,
    over a veth (10.79.0.2), port 8080.
* ``module`` (inside the VM, multistack.ko loaded): one veth between
  mshb-cli (10.79.0.1) and mshb-srv (10.79.0.2), MultiStack attached on
  the server side; UTCP on a module port that registered TCP 10.79.0.2:80,
  the kernel-socket app on 10.79.0.2:8080 of the same interface.

The client is bench/http_get.c: one TCP connection per request, several
in parallel.  Every figure is measured in this run, beside its baseline;
nothing is asserted; what cannot run prints n/a (reason).

Also the per-frame cost of the Python layer: a bulk transfer between two
UTCP endpoints on two Hosts over the in-memory port pair, timed with
perf_counter; no kernel in that path.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

CLI, SRV = "mshb-cli", "mshb-srv"
CIF, SIF = "hc0", "hs0"
CADDR, SADDR = "10.79.0.1", "10.79.0.2"
TAP_KERNEL, TAP_STACK = "10.78.0.1", "10.78.0.2"
UTCP_PORT, KERNEL_PORT = 80, 8080

SIZES_KB = [1, 8, 16, 32]


def log(msg):
    print("http_bench: " + msg, file=sys.stderr, flush=True)


def run(cmd, check=True, timeout=60):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    return r


def nsx(ns, *cmd, check=True, timeout=60):
    return run(["ip", "netns", "exec", ns] + list(cmd), check=check, timeout=timeout)


def first_line(text):
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return "no output"


def kv(text):
    for line in reversed(text.strip().splitlines()):
        pairs = re.findall(r"(\w+)=([-\d.]+)", line)
        if pairs:
            return {k: float(v) for k, v in pairs}
    return None


class Unavailable(Exception):
    pass


# --------------------------------------------------------------------------
# topology


def teardown():
    for ns in (CLI, SRV):
        run(["ip", "netns", "del", ns], check=False)


def setup():
    teardown()
    for ns in (CLI, SRV):
        run(["ip", "netns", "add", ns])
        nsx(ns, "ip", "link", "set", "lo", "up")
    run(["ip", "link", "add", CIF, "netns", CLI, "type", "veth", "peer", "name", SIF,
         "netns", SRV])
    nsx(CLI, "ip", "addr", "add", CADDR + "/24", "dev", CIF)
    nsx(SRV, "ip", "addr", "add", SADDR + "/24", "dev", SIF)
    nsx(CLI, "ip", "link", "set", CIF, "up")
    nsx(SRV, "ip", "link", "set", SIF, "up")


def taskset(cpu):
    if cpu is None or not os.path.exists("/usr/bin/taskset"):
        return []
    return ["taskset", "-c", str(cpu)]


class Server:
    """bench/http_serve.py in a child process."""

    def __init__(self, label, ns, args, cpu=None, startup=60, reason=None):
        self.label = label
        self.proc = None
        self.app = None
        self.reason = reason
        self.counters = {}
        if reason:
            return          # cannot run: every row with it says why
        cmd = taskset(cpu) + [sys.executable, os.path.join(HERE, "http_serve.py")] + args
        if ns:
            cmd = ["ip", "netns", "exec", ns] + cmd
        self.stderr = []
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, cwd=ROOT)
        except OSError as e:
            self.reason = str(e)
            return
        threading.Thread(target=self._pump_err, daemon=True).start()
        ready = threading.Event()
        out = []
        self._stats = queue.Queue()

        def pump_out():
            for line in self.proc.stdout:
                if line.startswith("stats "):
                    self._stats.put(line[6:])
                    continue
                out.append(line)
                if line.startswith("ready"):
                    self.app = line.split(" ", 1)[1].strip()
                    ready.set()
            ready.set()
            self._stats.put(None)

        self._out = out
        self._t = threading.Thread(target=pump_out, daemon=True)
        self._t.start()
        ready.wait(startup)
        if self.app is None:
            self.reason = "server did not start: " + self.last_error()
            self.stop()

    def stats(self, timeout=30):
        """The server's CPU seconds so far (and its runtime's, on UTCP): cpu_stats
        in bench/http_serve.py; None if it does not answer."""
        try:
            self.proc.stdin.write("stats\n")
            self.proc.stdin.flush()
            line = self._stats.get(timeout=timeout)
        except (OSError, ValueError, queue.Empty):
            return None
        return json.loads(line) if line else None

    def _pump_err(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def last_error(self):
        lines = [ln.strip() for ln in self.stderr if ln.strip()]
        if self.proc is not None and self.proc.poll() is None and not lines:
            return "timed out"
        return lines[-1] if lines else "exit %s" % (self.proc.poll() if self.proc else "?")

    @property
    def ok(self):
        return self.app is not None and self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._t.join(2)
        for line in self._out:
            if line.startswith("counters "):
                try:
                    self.counters = json.loads(line[9:])
                except ValueError:
                    pass


# --------------------------------------------------------------------------
# measurements


class Fetcher:
    def __init__(self, bin_dir, secs, conc, cpu):
        self.prog = os.path.join(bin_dir, "http_get")
        self.secs = secs
        self.conc = conc
        self.cpu = cpu

    def fetch(self, server, addr, port, size, count=None, conc=None):
        if isinstance(server, Server) and not server.ok:
            raise Unavailable(server.reason or "server not running")
        if not os.access(self.prog, os.X_OK):
            raise Unavailable("http_get not built")
        cmd = taskset(self.cpu) + [self.prog, "-a", addr, "-p", str(port), "-u", "/%d" % size,
                                   "-e", str(size), "-c", str(conc or self.conc), "-T", "10"]
        cmd += ["-n", str(count)] if count else ["-t", str(self.secs)]
        before = server.stats() if isinstance(server, Server) else None
        r = nsx(CLI, *cmd, check=False, timeout=max(self.secs, 60) + 60)
        after = server.stats() if before is not None else None
        if r.returncode != 0:
            raise Unavailable(first_line(r.stderr))
        res = kv(r.stdout)
        if not res:
            raise Unavailable("no result")
        if not res.get("requests"):
            raise Unavailable("no request succeeded (%d errors)" % res.get("errors", 0))
        if after is not None:
            # the server's CPU per request in this cell (µs), and its runtime's
            for key, name in (("cpu.seconds", "cpu_us"), ("cpu.system_seconds", "system_us"),
                              ("runtime.cpu_seconds", "runtime_us")):
                if key in before and key in after:
                    res[name] = 1e6 * (after[key] - before[key]) / res["requests"]
        return res


def attempt(fn, *a, **kw):
    try:
        return fn(*a, **kw)
    except Unavailable as e:
        return "n/a (%s)" % e
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        return "n/a (%s)" % str(e).splitlines()[0]


def best(results, key):
    good = [r for r in results if isinstance(r, dict)]
    return max(good, key=key) if good else results[-1]


def rps(r):
    return r["requests"] / r["seconds"]


def gbps(r):
    return r["bytes"] * 8 / r["seconds"] / 1e9


def http_table(rows, notes):
    print("%7s | %-24s | %-24s | %7s" % ("fetch", "B: kernel TCP (trio)", "A: UTCP (trio)",
                                         "A/B"))
    print("%7s | %10s %8s %4s | %10s %8s %4s | %7s" % ("", "req/s", "Gbit/s", "err",
                                                      "req/s", "Gbit/s", "err", "req/s"))
    print("-" * 72)
    for label, a, b in rows:
        def side(r):
            if isinstance(r, str):
                return "%10s %8s %4s" % ("n/a", "", "")
            return "%10.1f %8.4f %4d" % (rps(r), gbps(r), r.get("errors", 0))
        ratio = "%6.2fx" % (rps(a) / rps(b)) if isinstance(a, dict) and \
            isinstance(b, dict) else "    n/a"
        print("%7s | %s | %s | %7s" % (label, side(b), side(a), ratio))
    grouped = {}
    for label, a, b in rows:
        for name, r in (("B", b), ("A", a)):
            if isinstance(r, str):
                grouped.setdefault((name, r), []).append(label)
    for (name, r), labels in grouped.items():
        notes.append("%s, %s: %s" % (name, ", ".join(labels), r))
    for n in dict.fromkeys(notes):
        print("  note: " + n)


def cpu_table(rows):
    """Each server's CPU per request in the cells above, UTCP's split in two."""
    print("Server CPU per request (µs: the process's user + system time), in the cells "
          "above.")
    print("UTCP's runtime: frames in and out, the host layer and the TCP core "
          "(Host.runtime_cpu);")
    print("the rest: the application, its streams and trio's scheduling, which the "
          "kernel-socket")
    print("app has too. The kernel's TCP work in softirq outside its process is not counted.")
    print("%7s | %-17s | %-17s %9s %9s" % ("fetch", "B: kernel", "A: UTCP", "runtime",
                                          "the rest"))
    print(("%7s | %8s %8s | %8s %8s" % ("", "all", "system", "all", "system")).rstrip())
    print("-" * 68)
    for label, a, b in rows:
        def us(r, key, width=8):
            if isinstance(r, dict) and key in r:
                return "%*.0f" % (width, r[key])
            return "%*s" % (width, "n/a")
        rest = "%9s" % "n/a"
        if isinstance(a, dict) and "cpu_us" in a and "runtime_us" in a:
            rest = "%9.0f" % (a["cpu_us"] - a["runtime_us"])
        print("%7s | %s %s | %s %s %s %s" % (
            label, us(b, "cpu_us"), us(b, "system_us"), us(a, "cpu_us"), us(a, "system_us"),
            us(a, "runtime_us", 9), rest))


def bulk_table(a, b, size):
    print("%7s | %-24s | %-24s | %7s" % ("bulk", "B: kernel TCP", "A: UTCP", "A/B"))

    def side(r):
        if isinstance(r, str):
            return "%24s" % "n/a"
        return "%10.4f Gbit/s %5.2f s " % (gbps(r), r["seconds"])
    ratio = "%6.2fx" % (gbps(a) / gbps(b)) if isinstance(a, dict) and \
        isinstance(b, dict) else "    n/a"
    print("%6dM | %s | %s | %7s" % (size >> 20, side(b), side(a), ratio))
    for name, r in (("B", b), ("A", a)):
        if isinstance(r, str):
            print("  note: bulk, %s: %s" % (name, r))


# --------------------------------------------------------------------------
# the Python layer's cost per frame, on the in-memory pair


def gc_note(server):
    """What the server's cyclic garbage collector took (bench/http_serve.py measures it)."""
    c = server.counters
    return "%s: %.1f%% (%.2f s of %.1f s; %d full passes, the longest %.0f ms)" % (
        server.label, 100 * c["gc.seconds"] / c["cpu.seconds"], c["gc.seconds"],
        c["cpu.seconds"], c["gc.full_passes"], c["gc.longest_ms"])


def memory_pair_cost(total_bytes, timeout=120.0):
    """Bulk transfer UTCP -> UTCP over two Hosts on the memory pair."""
    import trio

    from multistack.memport import memory_pair
    from stacks.host import Host, OwnNeighbours
    from stacks.utcp import TcpConfig
    from stacks.utcp.trio_api import TcpLayer, open_tcp_listener, open_tcp_stream

    result = {}

    async def main():
        a, b = memory_pair(rx_capacity=4096, tx_capacity=4096)
        config = TcpConfig(nagle=False)
        client = Host(a, ["10.7.0.1/24"], neighbours=OwnNeighbours())
        server = Host(b, ["10.7.0.2/24"], neighbours=OwnNeighbours())
        TcpLayer(client, config=config, seed=1)
        TcpLayer(server, config=config, seed=2)
        chunk = bytes(64 * 1024)
        with trio.fail_after(timeout):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.run)
                nursery.start_soon(server.run)
                listener = await open_tcp_listener(server, "10.7.0.2", 5001, config=config)
                received = 0

                async def sink():
                    nonlocal received
                    stream = await listener.accept()
                    while data := await stream.receive_some(256 * 1024):
                        received += len(data)
                    await stream.aclose()

                async with trio.open_nursery() as inner:
                    inner.start_soon(sink)
                    stream = await open_tcp_stream(client, "10.7.0.2", 5001, config=config)
                    s0, s1 = a.stats(), b.stats()
                    f0 = s0.tx_frames + s1.tx_frames
                    t0 = time.perf_counter()
                    c0 = time.process_time()
                    left = total_bytes
                    while left > 0:
                        n = min(left, len(chunk))
                        await stream.send_all(chunk[:n])
                        left -= n
                    await stream.aclose()
                # sink returned: every byte arrived, FIN included
                t1 = time.perf_counter()
                c1 = time.process_time()
                s0, s1 = a.stats(), b.stats()
                result.update(frames=s0.tx_frames + s1.tx_frames - f0,
                              data_frames=s0.tx_frames, ack_frames=s1.tx_frames,
                              seconds=t1 - t0, cpu=c1 - c0, bytes=received)
                nursery.cancel_scope.cancel()

    trio.run(main)
    return result


def cost_section(quick):
    total = (2 if quick else 8) << 20
    print()
    from stacks.utcp import COMPILED
    print("Python layer cost: UTCP -> UTCP bulk transfer of %d MiB over two Hosts on the "
          "in-memory port pair (one process, no kernel in the path; UTCP core %s)"
          % (total >> 20, "compiled by mypyc" if COMPILED else "as Python"))
    try:
        r = memory_pair_cost(total)
    except Exception as e:    # noqa: BLE001 - any failure is reported as n/a
        print("  n/a (%s: %s)" % (type(e).__name__, str(e).splitlines()[0] if str(e) else ""))
        return
    if not r.get("frames"):
        print("  n/a (no frame crossed the pair)")
        return
    per = r["seconds"] / r["frames"] * 1e6
    per_cpu = r["cpu"] / r["frames"] * 1e6
    print("  %d frames (%d data, %d ACK) in %.3f s wall, %.3f s CPU of this process" % (
        r["frames"], r["data_frames"], r["ack_frames"], r["seconds"], r["cpu"]))
    print("  per frame (built and sent by one Host + UTCP, received and processed by the "
          "other): %.1f us CPU, %.1f us wall" % (per_cpu, per))
    print("  %.1f us per data frame including its ACKs; goodput %.4f Gbit/s "
          "(%d bytes delivered)" % (r["seconds"] / max(r["data_frames"], 1) * 1e6,
                                    r["bytes"] * 8 / r["seconds"] / 1e9, r["bytes"]))


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--backend", choices=("tap", "module"), default="tap")
    ap.add_argument("--bin", default=os.path.join(ROOT, ".cache", "bench"))
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--conc", type=int, default=8)
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--no-cost", action="store_true")
    args = ap.parse_args()
    if args.seconds is None:
        args.seconds = 1.5 if args.quick else 3.0
    if args.reps is None:
        args.reps = 1 if args.quick else 2
    in_vm = args.backend == "module"
    bulk = (4 if args.quick else 16) << 20
    if in_vm:
        bulk = (1 if args.quick else 4) << 20
    started = time.monotonic()
    ncpu = os.cpu_count() or 1
    srv_cpu, cli_cpu = (1, 0) if ncpu >= 2 else (None, None)

    if args.backend == "tap":
        print("== HTTP fetches: UTCP (over TAP) vs kernel TCP (over veth), same trio app "
              "==")
        print("On this machine, in namespaces; one TCP connection per request, %d in "
              "parallel; %.1f s per cell, best of %d." % (args.conc, args.seconds, args.reps))
        print("Both servers are one Python process; the kernel's TCP work runs in softirq "
              "outside it, UTCP's inside it.")
    else:
        print("== HTTP fetches over multistack.ko: UTCP on a module port vs kernel TCP, "
              "same veth ==")
        print("Inside a qemu VM (TCG): absolute figures are far below hardware; only the "
              "ratios of this run mean anything.")
        print("One TCP connection per request, %d in parallel; %.1f s per cell, best of %d."
              % (args.conc, args.seconds, args.reps))
    if srv_cpu is not None:
        print("Servers pinned to CPU %d, the client (bench/http_get.c) to CPU %d." %
              (srv_cpu, cli_cpu))

    try:
        setup()
    except (RuntimeError, OSError) as e:
        print("cannot set up the namespaces: %s" % e)
        return 1
    servers = []
    try:
        kernel = Server("kernel", SRV, ["kernel", "--addr", SADDR, "--port",
                                        str(KERNEL_PORT)], cpu=srv_cpu,
                        startup=120 if in_vm else 30)
        servers.append(kernel)
        if args.backend == "tap":
            utcp = Server("utcp", None, ["utcp-tap", "--netns", CLI, "--kernel-addr",
                                         TAP_KERNEL + "/24", "--stack-addr",
                                         TAP_STACK + "/24", "--port", str(UTCP_PORT)],
                          cpu=srv_cpu)
            utcp_addr = TAP_STACK
        else:
            r = nsx(SRV, os.path.join(args.bin, "ms_if"), "attach", SIF, check=False)
            if not os.path.exists("/dev/multistack"):
                reason = "/dev/multistack missing: module not loaded"
            elif r.returncode != 0:
                reason = first_line(r.stderr)
            else:
                reason = None
            utcp = Server("utcp", SRV, ["utcp-module", "--ifname", SIF, "--stack-addr",
                                        SADDR + "/24", "--port", str(UTCP_PORT)],
                          cpu=srv_cpu, startup=120, reason=reason)
            utcp_addr = SADDR
        servers.append(utcp)
        print("Application: %s" % (kernel.app or "n/a"))
        print("UTCP server: %s" % (utcp.app or "n/a"))

        f = Fetcher(args.bin, args.seconds, args.conc, cli_cpu)
        # warm-up: the first requests pay for lazy imports and cold caches
        for srv, addr, port in ((kernel, SADDR, KERNEL_PORT),
                                (utcp, utcp_addr, UTCP_PORT)):
            attempt(f.fetch, srv, addr, port, 1024, count=4, conc=2)
        rows, notes = [], []
        for kb in SIZES_KB:
            size = kb * 1024
            ka, ua = [], []
            for _ in range(args.reps):
                ka.append(attempt(f.fetch, kernel, SADDR, KERNEL_PORT, size))
                ua.append(attempt(f.fetch, utcp, utcp_addr, UTCP_PORT, size))
            rows.append(("%d KB" % kb, best(ua, rps), best(ka, rps)))
        print()
        http_table(rows, notes)
        print()
        cpu_table(rows)

        print()
        kb_, ub_ = [], []
        for _ in range(args.reps):
            kb_.append(attempt(f.fetch, kernel, SADDR, KERNEL_PORT, bulk, count=1, conc=1))
            ub_.append(attempt(f.fetch, utcp, utcp_addr, UTCP_PORT, bulk, count=1, conc=1))
        bulk_table(best(ub_, gbps), best(kb_, gbps), bulk)
    finally:
        for s in servers:
            if s is not None and s.proc is not None:
                s.stop()
        teardown()
    for s in servers:
        if s is not None and s.counters:
            keys = [k for k in sorted(s.counters) if s.counters[k] and (
                "drop" in k or "retrans" in k or "error" in k or "timeout" in k
                or "reset" in k)]
            if keys:
                print("  %s counters: %s" % (s.label, ", ".join(
                    "%s=%s" % (k, s.counters[k]) for k in keys[:12])))
    gc_notes = [gc_note(s) for s in servers if s is not None and s.counters.get("cpu.seconds")]
    if gc_notes:
        print("Cyclic garbage collector, share of each server's CPU time over the whole run:")
        for note in gc_notes:
            print("  " + note)

    if not args.no_cost:
        cost_section(args.quick)
    print("(http benchmark, %s: %.0f s)" % (args.backend, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
