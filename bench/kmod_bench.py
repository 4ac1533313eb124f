#!/usr/bin/env python3
"""Throughput of multistack.ko against the OS path, run inside the VM.

Started by ``scripts/bench kmod`` through ``scripts/vm run``; needs root,
the benchmark programs built in ``--bin`` (``.cache/bench``), and, for the
module rows, ``/dev/multistack``.

Topology (two namespaces this script creates and deletes)::

    msb-gen: msg0 10.77.0.1/24  <== veth ==>  msd0 10.77.0.2/24 :msb-dut
    pktgen (kpktgend_0, CPU 0)                 MultiStack attached here

* RX: pktgen sends UDP frames to 10.77.0.2:9000 as fast as it can.  The
  OS baseline is a UDP socket drained with recvmmsg() (bench/udp_rx.c);
  the module figure is a port that registered UDP 10.77.0.2:9000 and
  drains its RX ring (bench/ms_rx.c).  Receive processing of msd0 is
  steered to CPU 1 with RPS and the receiver is pinned there, so the
  generator and the system under test do not share a CPU.  A second RX
  table sends pktgen's frames through a netem qdisc on msg0 that releases
  them once per slot (COALESCE_SLOT), so both receivers get bursts, as
  from a NIC with interrupt moderation, instead of an RPS IPI for most
  frames.
* TX: the same UDP frame is sent from msd0 by a raw AF_PACKET socket with
  sendmmsg() (bench/pkt_tx.c) and by a port through its TX ring and
  MS_IOC_TXSYNC (bench/ms_tx.c), which validates every frame.  Frames
  are addressed to an Ethernet address msg0 does not have, so the peer
  discards them at once, in the sender's softirq on CPU 1 (the same
  cost for both senders).  The same two senders then send out of msx0, a
  dummy device in msb-dut whose xmit frees the frame: no receiver's cost
  in the figure, only the sending path; once through dev_queue_xmit
  (ms_tx vs pkt_tx) and once with the qdisc bypassed (ms_tx -q, the
  port's MS_PORT_F_QDISC_BYPASS, vs pkt_tx -q, PACKET_QDISC_BYPASS).

Sizes are Ethernet frame sizes including the 4-byte FCS (64 B = a 60-byte
frame in memory); Gbit/s counts those bytes (no preamble or gap).  Every
figure is measured in this run; a row that cannot be measured says n/a and
why.  Nothing is asserted.  The main RX and TX tables also go out as one
line, ``@bench-json kmod {...}``, which scripts/bench stores as
bench/results/kmod.json and plots (bench/plot.py).
"""

import argparse
import json
import os
import re
import select
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

GEN, DUT = "msb-gen", "msb-dut"
GIF, DIF = "msg0", "msd0"
GADDR, DADDR = "10.77.0.1", "10.77.0.2"
# TX also goes to a dummy device, whose xmit frees the frame: what is
# measured there is the sending path alone, as towards a NIC.
XIF, XADDR, XPEER = "msx0", "10.77.1.2", "10.77.1.1"
RX_PORT, TX_PORT, SINK_PORT = 9000, 9001, 9
# RX buffering: the port's RX ring (MS_MAX_SLOTS) and the socket's buffer,
# both large enough to ride out the VM's scheduling hiccups.
RX_SLOTS = 4096
SOCK_RCVBUF = 4 << 20
NOWHERE_MAC = "02:00:5e:00:00:01"   # no interface has it: the peer drops
# Coalesced RX arrivals: one burst per slot, about 30 frames at 64 B.
COALESCE_SLOT = "200us"
# A port's kernel-private TX frame pages at most: MS_TX_PAGES (4) pages of
# order MS_TX_PAGE_ORDER (3), kmod/ms_internal.h
TX_PAGES_MAX = 4 * (os.sysconf("SC_PAGE_SIZE") << 3)

SIZES = [64, 128, 256, 512, 1024, 1518]
QUICK_SIZES = [64, 512, 1518]


def log(msg):
    print("kmod_bench: " + msg, file=sys.stderr, flush=True)


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    return r


class NsShell:
    """A shell kept running inside a namespace.

    Under TCG every ``ip netns exec`` costs the better part of a second;
    commands sent to this shell cost a fork.  Output goes through files in
    a private directory under /run (a tmpfs inside the VM).
    """

    def __init__(self, ns):
        self.ns = ns
        self.dir = tempfile.mkdtemp(prefix="msbench.", dir="/run")
        self.n = 0
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, "sh"],
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        self.buf = b""

    def _do(self, line, timeout):
        """Runs one shell line; returns its exit status (None: timeout)."""
        self.n += 1
        marker = b"__msbench_%d__" % self.n
        self.p.stdin.write(line.encode() + b"\necho " + marker + b" $?\n")
        self.p.stdin.flush()
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while marker not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if r:
                data = os.read(fd, 65536)
                if not data:
                    raise RuntimeError("the shell in %s died" % self.ns)
                self.buf += data
        before, _, after = self.buf.partition(marker)
        status, _, rest = after.lstrip(b" ").partition(b"\n")
        self.buf = rest
        return int(status or b"1")

    def _files(self, n):
        base = os.path.join(self.dir, str(n))
        return base + ".out", base + ".err"

    @staticmethod
    def _read(path):
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def run(self, script, timeout=120):
        out, err = self._files(self.n + 1)
        rc = self._do("( %s ) >%s 2>%s </dev/null" % (script, out, err),
                      timeout)
        if rc is None:
            raise RuntimeError("timeout in %s: %s" % (self.ns, script))
        r = subprocess.CompletedProcess(script, rc, self._read(out),
                                        self._read(err))
        for f in (out, err):
            try:
                os.unlink(f)
            except OSError:
                pass
        return r

    def spawn(self, script):
        """Starts script in the background; returns a Job."""
        out, err = self._files(self.n + 1)
        pidf = out + ".pid"
        self._do("( %s ) >%s 2>%s </dev/null & echo $! >%s" % (
            script, out, err, pidf), 30)
        with open(pidf) as f:
            pid = int(f.read())
        return Job(self, pid, out, err)

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Job:
    def __init__(self, shell, pid, out, err):
        self.shell, self.pid, self.out, self.err = shell, pid, out, err

    def running(self):
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False

    def stderr(self):
        return NsShell._read(self.err)

    def wait(self, timeout):
        """(status, stdout, stderr); kills the job on timeout."""
        rc = self.shell._do("wait %d" % self.pid, timeout)
        if rc is None:
            try:
                os.kill(self.pid, 9)
            except OSError:
                pass
            rc = self.shell._do("wait %d" % self.pid, 10)
        return rc, NsShell._read(self.out), NsShell._read(self.err)


SHELLS = {}


def nsx(ns, *cmd, check=True):
    sh = SHELLS.get(ns)
    if sh is None:
        r = run(["ip", "netns", "exec", ns] + list(cmd), check=False)
    else:
        r = sh.run(shlex.join(cmd))
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    return r


def nsh(ns, script, check=True):
    sh = SHELLS.get(ns)
    if sh is None:
        return nsx(ns, "sh", "-c", script, check=check)
    r = sh.run(script)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (script, r.stderr.strip()))
    return r


def kv(text):
    """The last key=value line of a program's output, as a dict."""
    for line in reversed(text.strip().splitlines()):
        pairs = re.findall(r"(\w+)=([-\d.]+)", line)
        if pairs:
            return {k: float(v) for k, v in pairs}
    return None


def first_line(text):
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return "no output"


class Unavailable(Exception):
    """A measurement that cannot be made: the row prints n/a (reason)."""


# --------------------------------------------------------------------------
# topology


def teardown():
    for sh in SHELLS.values():
        sh.close()
    SHELLS.clear()
    for ns in (GEN, DUT):
        run(["ip", "netns", "del", ns], check=False)


def setup(ncpu, rps=True):
    teardown()
    run(["modprobe", "veth"], check=False)
    for ns in (GEN, DUT):
        run(["ip", "netns", "add", ns])
        run(["ip", "netns", "exec", ns, "sh", "-c",
             "ip link set lo up; "
             "sysctl -qw net.ipv6.conf.all.disable_ipv6=1; "
             "sysctl -qw net.ipv6.conf.default.disable_ipv6=1"], check=False)
    for ns in (GEN, DUT):
        SHELLS[ns] = NsShell(ns)
    run(["ip", "link", "add", GIF, "netns", GEN, "type", "veth",
         "peer", "name", DIF, "netns", DUT])
    nsx(GEN, "ip", "addr", "add", GADDR + "/24", "dev", GIF)
    nsx(DUT, "ip", "addr", "add", DADDR + "/24", "dev", DIF)
    nsx(GEN, "ip", "link", "set", GIF, "up")
    nsx(DUT, "ip", "link", "set", DIF, "up")
    notes = []
    if ncpu >= 2 and rps:
        # receive work of the DUT on CPU 1 (pktgen runs on CPU 0).  msg0
        # has no RPS: what the TX tests send is discarded by msg0 in the
        # sender's own softirq, the same small cost for both senders.
        nsh(DUT, "echo 2 > /sys/class/net/%s/queues/rx-0/rps_cpus" % DIF)
        notes.append("pktgen on CPU 0; msd0 receive processing steered to "
                     "CPU 1 (RPS); receivers and senders pinned to CPU 1")
    else:
        notes.append("no RPS: receive processing runs where the frame was "
                     "sent" if ncpu >= 2 else
                     "one vCPU: generator and system under test share it")
    notes.append("RX buffering: %d-slot port ring, %d MiB socket buffer" % (
        RX_SLOTS, SOCK_RCVBUF >> 20))
    run(["modprobe", "dummy"], check=False)
    r = nsh(DUT, "ip link add %s type dummy && ip addr add %s/24 dev %s && "
            "ip link set %s up" % (XIF, XADDR, XIF, XIF), check=False)
    if r.returncode != 0:
        notes.append("no dummy device (%s): the TX-to-dummy rows are n/a"
                     % first_line(r.stderr))
    mac = {
        "gen": nsx(GEN, "cat", "/sys/class/net/%s/address" % GIF)
        .stdout.strip(),
        "dut": nsx(DUT, "cat", "/sys/class/net/%s/address" % DIF)
        .stdout.strip(),
    }
    return mac, notes


# --------------------------------------------------------------------------
# pktgen


class Pktgen:
    """pktgen on kpktgend_0 (CPU 0).

    mode "veth": frames start at msg0 in the generator namespace and cross
    the veth (ndo_start_xmit), as a NIC would deliver them to msd0.
    mode "inject": pktgen hands the frames straight to msd0's receive path
    (xmit_mode netif_receive) in the DUT namespace, so the generating thread
    also runs the receive processing (the rx_handler, or IP/UDP and the
    socket) synchronously: that path, not the veth, limits the rate.
    """

    PG = "/proc/net/pktgen"

    def __init__(self, dut_mac, mode="veth"):
        self.ok = False
        self.reason = ""
        self.proc = None
        self.mode = mode
        self.ns, self.dev = (GEN, GIF) if mode == "veth" else (DUT, DIF)
        self.dut_mac = dut_mac
        r = run(["modprobe", "pktgen"], check=False)
        if r.returncode != 0:
            self.reason = "modprobe pktgen: " + first_line(r.stderr)
            return
        # kpktgend threads of a new namespace appear asynchronously
        for _ in range(50):
            r = nsh(self.ns, "ls %s/kpktgend_0" % self.PG, check=False)
            if r.returncode == 0:
                break
            time.sleep(0.1)
        else:
            self.reason = "no %s/kpktgend_0 in namespace %s" % (self.PG,
                                                                 self.ns)
            return
        try:
            self.pgset("kpktgend_0", "rem_device_all",
                       "add_device " + self.dev)
            if mode == "inject":
                self.pgset(self.dev, "xmit_mode netif_receive")
        except RuntimeError as e:
            self.reason = "pktgen: %s" % str(e).splitlines()[0]
            return
        self.ok = True

    def close(self):
        if self.ok:
            self.pgset("kpktgend_0", "rem_device_all")

    def pgset(self, file, *cmds):
        script = "".join('echo "%s" > %s/%s || exit 1\n' % (c, self.PG, file)
                         for c in cmds)
        nsh(self.ns, script)

    def configure(self, frame_len):
        self.pgset(self.dev, "count 0", "clone_skb 0", "burst 1", "delay 0",
                   "pkt_size %d" % frame_len,
                   "dst_mac " + self.dut_mac,
                   "src_min " + GADDR, "src_max " + GADDR, "dst " + DADDR,
                   "udp_src_min 9", "udp_src_max 9",
                   "udp_dst_min %d" % RX_PORT, "udp_dst_max %d" % RX_PORT)

    def run_count(self, count, timeout=180):
        """Sends ``count`` frames and returns pktgen's own elapsed time per
        frame, microseconds.  In inject mode that is the generator plus the
        receive path it runs synchronously."""
        self.pgset(self.dev, "count %d" % count)
        try:
            r = SHELLS[self.ns].run("echo start > %s/pgctrl" % self.PG,
                                    timeout=timeout)
            # read before any write: each write replaces the Result line
            out = nsh(self.ns, "cat %s/%s" % (self.PG, self.dev)).stdout
        finally:
            self.pgset(self.dev, "count 0")
        if r.returncode != 0:
            raise Unavailable("pktgen start: " + first_line(r.stderr))
        m = re.search(r"Result: OK: (\d+)\(c\d+\+d\d+\) usec, (\d+)", out)
        if not m or not int(m.group(2)):
            raise Unavailable("pktgen: no result")
        return int(m.group(1)) / int(m.group(2))

    def start(self):
        # "start" blocks until "stop": run it in the background
        self.proc = SHELLS[self.ns].spawn("echo start > %s/pgctrl" % self.PG)

    def stop(self):
        nsh(self.ns, "echo stop > %s/pgctrl" % self.PG, check=False)
        if self.proc is not None:
            self.proc.wait(15)
            self.proc = None


# --------------------------------------------------------------------------
# measurements


def coalesce(pg, on):
    """Frames from pktgen through a netem qdisc on the generator's side
    that releases them once per COALESCE_SLOT (on), or straight to the
    veth again (off)."""
    if on:
        r = run(["modprobe", "sch_netem"], check=False)
        if r.returncode != 0:
            raise RuntimeError("modprobe sch_netem: " + first_line(r.stderr))
        nsh(GEN, "tc qdisc replace dev %s root netem slot %s %s"
            % (GIF, COALESCE_SLOT, COALESCE_SLOT))
        pg.pgset(pg.dev, "xmit_mode queue_xmit")
    else:
        pg.pgset(pg.dev, "xmit_mode start_xmit")
        nsh(GEN, "tc qdisc del dev %s root" % GIF, check=False)


class Bench:
    def __init__(self, args):
        self.args = args
        self.bin = args.bin
        self.ncpu = os.cpu_count() or 1
        self.cpu = "1" if self.ncpu >= 2 else "0"
        self.secs = args.seconds
        self.module = os.path.exists("/dev/multistack")
        self.module_reason = "" if self.module else \
            "/dev/multistack missing: module not loaded"
        self.attached = set()      # devices the module is attached to

    def prog(self, name):
        p = os.path.join(self.bin, name)
        if not os.access(p, os.X_OK):
            raise Unavailable("%s not built" % name)
        return p

    def attach(self, on, dev=DIF):
        if not self.module:
            raise Unavailable(self.module_reason)
        if on == (dev in self.attached):
            return
        r = nsx(DUT, self.prog("ms_if"), "attach" if on else "detach", dev,
                check=False)
        if r.returncode != 0:
            raise Unavailable(first_line(r.stderr))
        if on:
            self.attached.add(dev)
        else:
            self.attached.discard(dev)

    def receiver(self, cmd, pktgen):
        """Runs a receiver in the DUT namespace while pktgen sends."""
        job = SHELLS[DUT].spawn(shlex.join(cmd))
        # the generator starts once the receiver says "ready"
        deadline = time.monotonic() + 30
        while (job.running() and "ready" not in job.stderr()
               and time.monotonic() < deadline):
            time.sleep(0.02)
        started = job.running()
        if started:
            pktgen.start()
        try:
            rc, out, err = job.wait(self.secs + 60)
        finally:
            if started:
                pktgen.stop()
        if rc != 0:
            raise Unavailable(first_line(err))
        res = kv(out)
        if not res:
            raise Unavailable("no result: " + first_line(err + out))
        if not res.get("packets"):
            raise Unavailable("nothing received")
        return res

    def rx_os(self, pktgen):
        return self.receiver(
            [self.prog("udp_rx"), "-a", DADDR, "-p", str(RX_PORT),
             "-t", str(self.secs), "-c", self.cpu, "-i", DIF,
             "-r", str(SOCK_RCVBUF)], pktgen)

    def rx_port(self, pktgen, extra_ports=0):
        self.attach(True)
        return self.receiver(
            [self.prog("ms_rx"), "-i", DIF, "-a", DADDR, "-p", str(RX_PORT),
             "-t", str(self.secs), "-c", self.cpu, "-n", str(extra_ports),
             "-s", str(RX_SLOTS)],
            pktgen)

    def rx_py(self, pktgen):
        self.attach(True)
        py = self.args.py
        if not py or not os.access(py, os.X_OK):
            raise Unavailable("no Python with the project installed (--py)")
        here = os.path.dirname(os.path.abspath(__file__))
        return self.receiver(
            [py, os.path.join(here, "py_rx.py"), "-i", DIF, "-a", DADDR,
             "-p", str(RX_PORT), "-t", str(self.secs), "-c", self.cpu,
             "-W", "30", "-s", str(RX_SLOTS)], pktgen)

    def path_cost(self, pg, kind, count):
        """pktgen's time per frame (inject mode) with ``kind`` behind msd0.

        kind "null": frames for another Ethernet address, which the core
        drops at once (PACKET_OTHERHOST): the generator's own cost, to be
        subtracted.  "os" / "port": the receiver busy-polls on CPU 1
        (udp_rx -b, ms_rx -b), as at saturation, so no wakeup is paid per
        frame; it is stopped with SIGTERM once pktgen is done.
        """
        if kind == "null":
            self.attach(False)
            pg.pgset(pg.dev, "dst_mac " + NOWHERE_MAC)
            try:
                return {"us": pg.run_count(count), "drops": 0}
            finally:
                pg.pgset(pg.dev, "dst_mac " + pg.dut_mac)
        if kind == "os":
            self.attach(False)
            cmd = [self.prog("udp_rx"), "-a", DADDR, "-p", str(RX_PORT),
                   "-r", str(SOCK_RCVBUF)]
            drops = "rcvbuf_errors"
        else:
            self.attach(True)
            cmd = [self.prog("ms_rx"), "-i", DIF, "-a", DADDR, "-p",
                   str(RX_PORT), "-s", str(RX_SLOTS)]
            drops = "drop_full"
        cmd += ["-t", "600", "-w", "0.2", "-c", self.cpu, "-b"]
        job = SHELLS[DUT].spawn("exec " + shlex.join(cmd))
        deadline = time.monotonic() + 30
        while (job.running() and "ready" not in job.stderr()
               and time.monotonic() < deadline):
            time.sleep(0.02)
        if not job.running():
            raise Unavailable(first_line(job.stderr()))
        try:
            us = pg.run_count(count)
        finally:
            try:
                os.kill(job.pid, 15)
            except OSError:
                pass
            rc, out, err = job.wait(30)
        res = kv(out)
        if rc != 0 or not res or not res.get("packets"):
            raise Unavailable("receiver: " + first_line(err + out))
        return {"us": us, "drops": res.get(drops, 0)}

    def sender(self, name, frame_len, dev=DIF, addr=DADDR, peer=GADDR,
               bypass=False):
        cmd = [self.prog(name), "-i", dev, "-a", addr, "-p", str(TX_PORT),
               "-d", peer, "-D", str(SINK_PORT), "-M", NOWHERE_MAC,
               "-l", str(frame_len), "-t", str(self.secs), "-c", self.cpu]
        if bypass:
            cmd.append("-q")    # qdisc bypass: pkt_tx and ms_tx alike
        r = nsx(DUT, *cmd, check=False)
        if r.returncode != 0:
            raise Unavailable(first_line(r.stderr))
        res = kv(r.stdout)
        if not res:
            raise Unavailable("no result: " + first_line(r.stderr))
        if not res.get("packets"):
            why = "nothing left the interface"
            if res.get("rejected"):
                why += " (%d rejected by the module)" % res["rejected"]
            raise Unavailable(why)
        return res


def attempt(fn, *a):
    """fn(*a), or "n/a (reason)" when it cannot be measured."""
    t0 = time.monotonic()
    try:
        return fn(*a)
    except Unavailable as e:
        return "n/a (%s)" % e
    except (RuntimeError, OSError) as e:
        return "n/a (%s)" % str(e).splitlines()[0]
    finally:
        if os.environ.get("BENCH_VERBOSE"):
            log("%s%r: %.2f s" % (fn.__name__, a[1:], time.monotonic() - t0))


def pps(res):
    return res["packets"] / res["seconds"] if res["seconds"] else 0.0


def cost_us(res, per="packets"):
    """Busy time of the system-under-test CPU per packet received (or per
    frame that reached the interface, per="offered"), microseconds."""
    if not isinstance(res, dict) or not res.get("cpu_busy") or \
            not res.get(per):
        return None
    return res["cpu_busy"] / res[per] * 1e6


def side(res, size):
    if isinstance(res, str):
        return "%9s %7s %7s" % ("n/a", "", "")
    c = cost_us(res)
    return "%9.1f %7.4f %7s" % (pps(res) / 1e3, pps(res) * size * 8 / 1e9,
                                "%.2f" % c if c else "-")


def ratios(a, b):
    if isinstance(a, str) or isinstance(b, str) or not pps(b):
        return "%6s %6s" % ("n/a", "n/a")
    ca, cb = cost_us(a), cost_us(b)
    return "%5.2fx %5.2fx" % (pps(a) / pps(b),
                              cb / ca if ca and cb else float("nan"))


def table(title, header_a, header_b, rows, notes, offered=True):
    print()
    print(title)
    print("%6s | %-25s | %-25s | %-13s | %s" % (
        "size", header_b, header_a, "A vs B",
        "offered kpps (B, A)" if offered else ""))
    print("%6s | %9s %7s %7s | %9s %7s %7s | %6s %6s |" % (
        "B", "kpps", "Gbit/s", "us/pkt", "kpps", "Gbit/s", "us/pkt",
        "pps", "1/cost"))
    print("-" * 90)
    for size, a, b in rows:
        rates = ""
        for r in (b, a):
            if offered and isinstance(r, dict) and r.get("offered"):
                rates += "%.1f " % (r["offered"] / r["seconds"] / 1e3)
        print("%6d | %s | %s | %s | %s" % (
            size, side(b, size), side(a, size), ratios(a, b),
            rates.strip()))
    grouped = {}
    for size, a, b in rows:
        for label, r in (("B", b), ("A", a)):
            if isinstance(r, str):
                grouped.setdefault((label, r), []).append("%d B" % size)
    for (label, r), sizes in grouped.items():
        notes.append("%s, %s: %s" % (label, ", ".join(sizes), r))
    for n in dict.fromkeys(notes):
        print("  note: " + n)


def plot(title, rows, width=40):
    """Throughput vs frame size as horizontal bars (A = #, B = =)."""
    vals = [pps(r) for _, a, b in rows for r in (a, b) if isinstance(r, dict)]
    if not vals:
        return
    top = max(vals)
    print("  %s (kpps; # = A, = = B)" % title)
    for size, a, b in rows:
        for mark, r in (("=", b), ("#", a)):
            if isinstance(r, dict):
                n = max(1, int(round(pps(r) / top * width)))
                print("  %5s %s %.1f" % ("%d" % size if mark == "=" else "",
                                         mark * n, pps(r) / 1e3))
            else:
                print("  %5s %s" % ("%d" % size if mark == "=" else "",
                                    "n/a"))


def spread(size, a_all, b_all):
    """A note with the range of repeated measurements, or None."""
    parts = []
    for label, rs in (("B", b_all), ("A", a_all)):
        v = [pps(r) / 1e3 for r in rs if isinstance(r, dict)]
        if len(v) > 1:
            parts.append("%s %.1f-%.1f" % (label, min(v), max(v)))
    return "%d B: kpps over the repetitions: %s" % (size, ", ".join(parts)) \
        if parts else None


def batching(size, a_all, b_all):
    """A note with each repetition's CPU cost, frames per wakeup and RPS
    IPIs per frame, or None.

    Frames per wakeup (per read that found some) shows how far below
    saturation a receiver runs: one that keeps up wakes for every frame or
    two and pays the wakeup for each, one that is behind finds a full
    batch every time.  IPIs per frame show how often the receiving CPU's
    backlog ran empty and RPS had to wake it."""
    parts = []
    for label, rs in (("B", b_all), ("A", a_all)):
        runs = ["%.2f us/%.1f/%.2f" % (cost_us(r), r["packets"] / r["batches"],
                                       r.get("ipis", 0) / r["packets"])
                for r in rs if isinstance(r, dict) and r.get("batches")
                and cost_us(r) is not None]
        if runs:
            parts.append("%s %s" % (label, ", ".join(runs)))
    return ("%d B: us/pkt / frames per wakeup / IPIs per frame, each "
            "repetition: %s" % (size, "; ".join(parts))) if parts else None


def median(results):
    """Of repeated measurements, the one with the median rate (the lower
    middle one for an even count); n/a only when every attempt was n/a."""
    good = sorted((r for r in results if isinstance(r, dict)), key=pps)
    if good:
        return good[(len(good) - 1) // 2]
    return results[-1]


def offered_cost_note(size, a, b):
    """A note with each side's CPU cost per frame that reached the
    interface, dropped ones included, or None.  An overloaded receiver
    spends CPU on frames it then drops, so its cost per frame received
    overstates what a frame costs it."""
    costs = [cost_us(r, per="offered") for r in (b, a)]
    if None in costs:
        return None
    return ("%d B: CPU cost per frame offered (received or dropped): B %.2f us, "
            "A %.2f us, 1/cost %.2fx" % (size, costs[0], costs[1], costs[0] / costs[1]))


def least_cost(results):
    """Of repeated RX measurements, the one with the lowest CPU cost per
    packet, as best() keeps the highest rate: the least disturbed run.  By
    rate where no cost was measured.  For RX, where the generator may bound
    the rate, the cost is the figure that compares the receive paths."""
    costed = [r for r in results if cost_us(r) is not None]
    if costed:
        return min(costed, key=cost_us)
    return best(results)


def best(results):
    """Of repeated measurements, the one with the highest rate (the least
    disturbed by the host); n/a only when every attempt was n/a."""
    good = [r for r in results if isinstance(r, dict)]
    if good:
        return max(good, key=pps)
    return results[-1]


def summary(res, size):
    """One side of a throughput row for the JSON record."""
    if isinstance(res, str):
        return {"na": res}
    c = cost_us(res)
    return {"pps": round(pps(res), 1),
            "gbps": round(pps(res) * size * 8 / 1e9, 5),
            "us_per_pkt": round(c, 3) if c else None}


def emit_json(args, b, rx_rows, tx_rows):
    """The throughput tables as one line, ``@bench-json kmod {...}``, which
    scripts/bench stores as bench/results/kmod.json and plots."""
    data = {"kind": "kmod", "kernel": os.uname().release, "vcpus": b.ncpu,
            "quick": args.quick, "seconds": args.seconds, "reps": args.reps}
    for key, rows in (("rx", rx_rows), ("tx", tx_rows)):
        data[key] = [{"size": size, "port": summary(a, size),
                      "os": summary(o, size)} for size, a, o in rows]
    print("@bench-json kmod " + json.dumps(data, separators=(",", ":")),
          flush=True)


def path_cost_table(b, pg, sizes, count, reps):
    """The receive paths' own cost per frame, the generator's subtracted.

    pktgen injects ``count`` frames into msd0's receive path on CPU 0 and
    runs that path synchronously, so its elapsed time per frame is the
    generator plus the path.  The same run with a null sink measures the
    generator (and the core's receive entry) alone; the difference is what
    the path costs: the rx_handler and the copy into the ring, or IP, UDP
    and the socket queue.  Receivers busy-poll, as at saturation.  Medians
    of ``reps`` interleaved runs.
    """
    print()
    print("RX path cost per frame, the generator subtracted: pktgen injects "
          "%d frames into msd0's receive path on CPU 0; receivers busy-poll "
          "on CPU 1; medians of %d interleaved runs" % (count, reps))
    print("%6s | %10s | %10s %10s | %10s %10s | %6s %6s" % (
        "size", "null sink", "B: OS", "A: port", "B - null", "A - null",
        "pps", "path"))
    print("%6s | %10s | %10s %10s | %10s %10s | %6s %6s" % (
        "B", "us/frame", "us/frame", "us/frame", "us/frame", "us/frame",
        "A/B", "B/A"))
    print("-" * 86)
    notes = []
    for size in sizes:
        if not pg.ok:
            print("%6d | n/a (%s)" % (size, pg.reason))
            continue
        pg.configure(size - 4)
        runs = {"null": [], "os": [], "port": []}
        for _ in range(reps):
            for kind in runs:
                runs[kind].append(attempt(b.path_cost, pg, kind, count))
        med, spread_ = {}, []
        for kind, rs in runs.items():
            good = [r["us"] for r in rs if isinstance(r, dict)]
            bad = [r for r in rs if isinstance(r, str)]
            if not good:
                med[kind] = None
                notes.append("%d B, %s: %s" % (size, kind, bad[-1]))
                continue
            med[kind] = statistics.median(good)
            spread_.append("%s %.2f-%.2f" % (kind, min(good), max(good)))
            dropped = sum(r["drops"] for r in rs if isinstance(r, dict))
            if dropped:
                notes.append("%d B, %s: %d frames dropped (buffer full) "
                             "over the runs" % (size, kind, dropped))
        notes.append("%d B: us/frame over the runs: %s" % (
            size, ", ".join(spread_)))
        n, o, p = med["null"], med["os"], med["port"]

        def f(x):
            return "%10.2f" % x if x is not None else "%10s" % "n/a"

        od = o - n if o is not None and n is not None else None
        pd = p - n if p is not None and n is not None else None
        raw = "%5.2fx" % (o / p) if o and p else "   n/a"
        if od is not None and pd is not None and pd > 0:
            path = "%5.2fx" % (od / pd)
        else:
            path = "   n/a"
            if pd is not None and pd <= 0:
                notes.append("%d B: the port path is within the noise of "
                             "the null sink" % size)
        print("%6d | %s | %s %s | %s %s | %s %s" % (
            size, f(n), f(o), f(p), f(od), f(pd), raw, path))
    notes.append("null sink: frames for an Ethernet address msd0 does not "
                 "have, dropped by the core as PACKET_OTHERHOST (module "
                 "detached): pktgen's own cost plus the core's receive entry")
    notes.append("pps A/B is the raw rate ratio with the generator in the "
                 "loop; path B/A compares what each path costs beyond it")
    for note in notes:
        print("  note: " + note)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--reps", type=int, default=None,
                    help="measure each cell this many times (interleaved), "
                    "keep the best")
    ap.add_argument("--sizes", default=None, help="comma-separated sizes")
    ap.add_argument("--no-rps", action="store_true",
                    help="do not steer receive processing to CPU 1")
    ap.add_argument("--only", choices=("rx", "tx", "txpath", "mem"),
                    default=None, help="txpath: only the TX tables of the "
                    "dummy device (sending path alone)")
    ap.add_argument("--py", default=None,
                    help="the project's Python (for the KernelPort row)")
    ap.add_argument("--module-reason", default=None,
                    help="why the module is not loaded (n/a rows)")
    args = ap.parse_args()
    if args.seconds is None:
        args.seconds = 1.5 if args.quick else 2.0
    sizes = QUICK_SIZES if args.quick else SIZES
    if args.sizes:
        sizes = [int(x) for x in args.sizes.split(",")]
    if args.reps is None:
        args.reps = 1 if args.quick else 2

    started = time.monotonic()
    b = Bench(args)
    if args.module_reason and not b.module:
        b.module_reason = args.module_reason
    print("== multistack.ko: RX/TX throughput vs the OS path ==")
    print("Inside a qemu VM (TCG: CPU emulated in software): absolute "
          "figures are two orders of magnitude or more below hardware;")
    print("only the ratios between columns, measured in this same run, "
          "mean anything.")
    print("kernel %s, %d vCPU, %.1f s per measurement after a warm-up; "
          "main RX/TX tables best of %d (interleaved; RX: lowest CPU cost, "
          "TX: highest rate), TX sending-path "
          "tables median of their runs, the others one run; "
          "sizes include the 4 B FCS" % (
              os.uname().release, b.ncpu, args.seconds, args.reps))
    print("us/pkt = busy time of the CPU under test (CPU 1) per packet "
          "(/proc/stat); 1/cost = B's us/pkt / A's:")
    print("  the per-CPU capacity ratio, meaningful even when the generator, "
          "not the receiver, limits pps.")
    if not b.module:
        print("module: n/a (%s)" % b.module_reason)
    try:
        mac, notes = setup(b.ncpu, not args.no_rps)
    except (RuntimeError, OSError) as e:
        print("cannot set up the namespaces: %s" % e)
        return 1
    try:
        print("setup:")
        for n in notes:
            print("  " + n)
        pg = Pktgen(mac["dut"])

        rx_sizes = sizes if args.only in (None, "rx") else []
        tx_sizes = sizes if args.only in (None, "tx") else []
        txpath_sizes = sizes if args.only in (None, "tx", "txpath") else []

        # ---- RX
        def rx_table(pg, sizes, title, extra_note=None, offered=True,
                     reps=None):
            reps = reps or args.reps
            rows, notes = [], []
            if extra_note:
                notes.append(extra_note)
            for size in sizes:
                if not pg.ok:
                    na = "n/a (%s)" % pg.reason
                    rows.append((size, na, na))
                    continue
                pg.configure(size - 4)
                os_all, port_all = [], []
                for _ in range(reps):
                    attempt(b.attach, False)
                    os_all.append(attempt(b.rx_os, pg))
                    port_all.append(attempt(b.rx_port, pg))
                os_res, port_res = least_cost(os_all), least_cost(port_all)
                notes += filter(None, (spread(size, port_all, os_all),
                                       batching(size, port_all, os_all),
                                       offered_cost_note(size, port_res, os_res)))
                if isinstance(port_res, dict) and port_res.get("drop_full"):
                    notes.append("%d B: the port's ring overflowed %d times "
                                 "(counted drops)" % (size,
                                                      port_res["drop_full"]))
                if isinstance(os_res, dict) and os_res.get("rcvbuf_errors"):
                    notes.append("%d B: the socket buffer overflowed %d times"
                                 % (size, os_res["rcvbuf_errors"]))
                rows.append((size, port_res, os_res))
            if rows:
                table(title, "A: MultiStack port", "B: OS recvmmsg", rows,
                      notes, offered)
            return rows

        rx_rows = rx_table(
            pg, rx_sizes,
            "RX over the veth: pktgen UDP -> A = MultiStack port (RX "
            "ring, poll) vs B = OS UDP socket (recvmmsg)")
        if b.ncpu < 3 and rx_sizes:
            print("  note: 2-core figures: n/a (the VM has %d vCPUs: one "
                  "generates, one is the system under test)" % b.ncpu)

        # ---- RX with arrivals coalesced, as a NIC's interrupt moderation
        # does: above, frames arrive one at a time and the receiving CPU
        # takes an RPS IPI for most of them.
        if rx_sizes and pg.ok:
            coalesce_sizes = [x for x in rx_sizes if x in (64, 1518)]
            try:
                coalesce(pg, True)
            except RuntimeError as e:
                print("\nRX with arrivals coalesced: n/a (%s)"
                      % str(e).splitlines()[0])
            else:
                try:
                    rx_table(pg, coalesce_sizes,
                             "RX over the veth, arrivals coalesced (netem "
                             "slot %s on msg0, pktgen through its qdisc: "
                             "frames reach msd0 in bursts, as from a NIC "
                             "with interrupt moderation) -> A = port vs "
                             "B = recvmmsg" % COALESCE_SLOT)
                finally:
                    coalesce(pg, False)

        # ---- RX into Python (the project's binding) vs the C ring drain
        if rx_sizes and pg.ok:
            py_rows, py_notes = [], []
            for size in sorted({rx_sizes[0], rx_sizes[-1]}):
                pg.configure(size - 4)
                c_all, py_all = [], []
                for _ in range(1):
                    c_all.append(attempt(b.rx_port, pg))
                    py_all.append(attempt(b.rx_py, pg))
                c_res, py_res = best(c_all), best(py_all)
                if isinstance(py_res, dict) and py_res.get("drop_full"):
                    py_notes.append("%d B: the Python port's ring overflowed %d "
                                    "times" % (size, py_res["drop_full"]))
                py_rows.append((size, py_res, c_res))
            table("RX into Python over the veth: A = KernelPort.recv_batch "
                  "(multistack.kernel) vs B = the C ring drain (bench/ms_rx.c)",
                  "A: Python KernelPort", "B: C port drain", py_rows, py_notes)

        if rx_sizes:
            pg.close()
            if b.ncpu >= 2 and not args.no_rps:
                nsh(DUT, "echo 0 > /sys/class/net/%s/queues/rx-0/rps_cpus"
                    % DIF, check=False)
            ipg = Pktgen(mac["dut"], mode="inject")
            inj_sizes = [x for x in rx_sizes if x in (64, 512, 1518)] \
                if not args.quick else sorted({rx_sizes[0], rx_sizes[-1]})
            rx_table(ipg, inj_sizes,
                     "RX path saturated: pktgen injects into msd0's receive "
                     "path on CPU 0 (no veth hop) -> A = port vs B = recvmmsg",
                     "here the rate is set by pktgen + the receive path "
                     "(rx_handler, or IP/UDP/socket) sharing CPU 0; "
                     "us/pkt is CPU 1 (the application) only", offered=False,
                     reps=1)
            path_cost_table(b, ipg, [64] if args.quick else [64, 1518],
                            100000 if args.quick else 150000, 3)
            ipg.close()
            if b.ncpu >= 2 and not args.no_rps:
                nsh(DUT, "echo 2 > /sys/class/net/%s/queues/rx-0/rps_cpus"
                    % DIF, check=False)
            pg = Pktgen(mac["dut"])

        # ---- RX through the module's passthrough (tuple not registered)
        if not args.quick and pg.ok and rx_sizes:
            pt_rows = []
            for size in sorted({sizes[0], sizes[-1]}):
                pg.configure(size - 4)
                plain, thru = [], []
                for _ in range(1):
                    attempt(b.attach, False)
                    plain.append(attempt(b.rx_os, pg))
                    att = attempt(b.attach, True)
                    thru.append(att if isinstance(att, str)
                                else attempt(b.rx_os, pg))
                pt_rows.append((size, best(thru), best(plain)))
            table("RX, OS path with the module attached (unregistered "
                  "traffic passes through): A = attached vs B = not attached",
                  "A: OS, attached", "B: OS, detached", pt_rows, [])

        # ---- RX vs number of ports (lookup table size)
        if not args.quick and pg.ok and rx_sizes:
            np_rows = []
            pg.configure(60)
            for n in (1, 16, 64):
                np_rows.append((n, attempt(b.rx_port, pg, n - 1)))
            print()
            print("RX at 64 B vs number of ports on the interface (one "
                  "3-tuple each; traffic to one of them)")
            print("%6s | %10s | %s" % ("ports", "kpps", "vs 1 port"))
            base = None
            for n, many in np_rows:
                if n == 1 and isinstance(many, dict):
                    base = pps(many)
                if isinstance(many, str):
                    print("%6d | %s" % (n, many))
                else:
                    print("%6d | %10.1f | %s" % (
                        n, pps(many) / 1e3,
                        "%.2fx" % (pps(many) / base) if base else "n/a"))

        # ---- TX
        def tx_table(sizes, dev, addr, peer, title, reps, bypass=False,
                     pick=best):
            rows, notes = [], []
            attempt(b.attach, False, dev)
            for size in sizes:
                os_all, port_all = [], []
                for _ in range(reps):
                    os_all.append(attempt(b.sender, "pkt_tx", size - 4, dev,
                                          addr, peer, bypass))
                    attached = attempt(b.attach, True, dev)
                    if isinstance(attached, str):
                        port_all.append(attached)
                    else:
                        port_all.append(attempt(b.sender, "ms_tx", size - 4,
                                                dev, addr, peer, bypass))
                    attempt(b.attach, False, dev)
                os_res, port_res = pick(os_all), pick(port_all)
                if spread(size, port_all, os_all):
                    notes.append(spread(size, port_all, os_all))
                for label, r in (("port", port_res), ("AF_PACKET", os_res)):
                    if isinstance(r, dict) and r.get("dev_dropped"):
                        notes.append(
                            "%d B, %s: %d of the frames counted were dropped "
                            "by %s" % (size, label, r["dev_dropped"], dev))
                    if isinstance(r, dict) and r.get("rejected"):
                        notes.append("%d B, port: %d frames rejected by the "
                                     "module" % (size, r["rejected"]))
                rows.append((size, port_res, os_res))
            if rows:
                table(title, "A: MultiStack port", "B: AF_PACKET", rows,
                      notes, offered=False)
            return rows

        # ---- TX
        tx_rows = tx_table(
            tx_sizes, DIF, DADDR, GADDR,
            "TX: UDP frames out of msd0 -> A = MultiStack port (TX ring + "
            "TXSYNC, validated) vs B = AF_PACKET sendmmsg", args.reps)
        # The sending path alone, twice, like for like: through the qdisc
        # layer (dev_queue_xmit) and straight to the driver (qdisc bypass:
        # MS_PORT_F_QDISC_BYPASS against PACKET_QDISC_BYPASS).  Medians:
        # the host's other work makes single runs spread widely.
        path_reps = max(3, args.reps) | 1
        tx_table(
            txpath_sizes, XIF, XADDR, XPEER,
            "TX, the sending path alone: out of msx0, a dummy device that "
            "frees each frame -> A = port vs B = AF_PACKET sendmmsg, both "
            "through dev_queue_xmit; median of %d" % path_reps, path_reps,
            pick=median)
        tx_table(
            txpath_sizes, XIF, XADDR, XPEER,
            "TX, the sending path alone, qdisc bypass: A = port with "
            "MS_PORT_F_QDISC_BYPASS vs B = AF_PACKET sendmmsg with "
            "PACKET_QDISC_BYPASS; median of %d" % path_reps, path_reps,
            bypass=True, pick=median)

        # ---- plots of the two main tables
        if rx_rows or tx_rows:
            print()
        if rx_rows:
            plot("RX over the veth, throughput vs frame size", rx_rows)
        if tx_rows:
            plot("TX, throughput vs frame size", tx_rows)
        if rx_rows or tx_rows:
            emit_json(args, b, rx_rows, tx_rows)

        # ---- memory per port
        if args.only not in (None, "mem"):
            return 0
        print()
        print("Memory per port (1024-slot TX and RX rings)")
        try:
            b.attach(True)
            r = nsx(DUT, b.prog("ms_if"), "mem", DIF, "8", DADDR, check=False)
            m = kv(r.stdout) if r.returncode == 0 else None
            if not m:
                raise Unavailable(first_line(r.stderr))
            print("  shared memory (mem_size from MS_IOC_PORT_BIND): "
                  "%d bytes = %.2f MiB (%d buffers of %d B)" % (
                      m["mem_size"], m["mem_size"] / 2**20, m["nbufs"],
                      m["buf_size"]))
            print("  kernel accounting over %d ports, per port: vmalloc "
                  "%.2f MiB, percpu %.1f KiB, slab %.1f KiB  "
                  "(/proc/meminfo deltas)" % (
                      m["ports"], m["vmalloc_per_port"] / 2**20,
                      m["percpu_per_port"] / 1024,
                      m["slab_per_port"] / 1024))
            if m.get("proc_mem", -1) >= 0:
                print("  module's own accounting (/proc/net/multistack, "
                      "\"mem\" of a port): %d bytes" % m["proc_mem"])
            else:
                print("  module's own accounting: n/a (no \"mem\" for the "
                      "port in /proc/net/multistack)")
            # TX frame pages: kernel-private (alloc_pages), taken on the
            # first send, so neither in mem_size nor in the deltas above;
            # ms_if sent one full ring of MTU-sized frames through port 0
            if m.get("proc_txmem", -1) >= 0:
                print("  TX frame pages (kernel-private, not in mem_size; "
                      "\"txmem\" after %d frames of %d B, no FCS): %d bytes; the "
                      "module holds at most %d" % (
                          m["tx_frames"], m["tx_len"], m["proc_txmem"], TX_PAGES_MAX))
                total = m["mem_size"] + max(m["proc_txmem"], TX_PAGES_MAX)
                print("  per port in all, mem_size + TX pages at most: "
                      "%d bytes = %.2f MiB" % (total, total / 2**20))
            else:
                print("  TX frame pages: n/a (%s)" % (
                    first_line(r.stderr) if r.stderr.strip() else
                    "no \"txmem\" for the port in /proc/net/multistack"))
        except Unavailable as e:
            print("  n/a (%s)" % e)
        attempt(b.attach, False)
    finally:
        teardown()
        print("(kmod benchmark: %.0f s)" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
