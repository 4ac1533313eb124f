"""A bounded stress run: the module's control paths racing each other and
its packet paths, with both vCPUs busy.

Marked ``stress``: it runs by default only on the debug kernel (``uname
-r`` ends in ``-msdebug``: ``scripts/vm --kernel debug``, built by
``scripts/debug-kernel``), where KASAN, lockdep, KFENCE, UBSAN and
kmemleak watch it; elsewhere only with ``MULTISTACK_STRESS=1`` or when
selected with ``-k stress`` (``scripts/test-vm -k stress``).
``MULTISTACK_STRESS_SECONDS`` sets the length of the racing phase
(default 120 s).

For that long, as separate processes (so that both vCPUs work):

* two workers in the VM's namespace and one in a second namespace
  (``msstress``) open ports, claim UDP tuples (the two share their port
  numbers, so claims collide), send bursts (``send_batch`` + ``sync``),
  receive, unregister and close, in random order, sometimes in qdisc
  bypass mode; every error they get must be one of the module's documented
  ones (a ``MultiStackError``) or an ``OSError`` of a vanished interface;
* a peer floods UDP (IPv4 and IPv6) at those tuples, so RX delivery runs
  against every change, and another sender floods the second namespace;

while the test itself detaches and re-attaches, takes the link down and up,
deletes and re-creates the interface, deletes the second namespace while
its worker is being killed (then re-creates both), and tries ``rmmod``
(refused while a port is open; when it gets through, the module is loaded
again and re-attached).

At the end, with the floods still running: no port is left, no vmalloc
area of the module, kmemleak (where there is one) reports nothing of the
module, ``rmmod`` succeeds under traffic with interfaces attached in both
namespaces, and the kernel log since the start of the test has no report
and no "leak at exit" line: the module checks at exit that its live
interface, port and registration counts (ms_live_*) are back to zero.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

import kmodutil as ku
from multistack import kernel

pytestmark = pytest.mark.stress

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
SECONDS = float(os.environ.get("MULTISTACK_STRESS_SECONDS") or 120)
NS2, IF2, IF2_PEER = "msstress", "mss0", "mss1"
X4, Y4 = "10.78.0.1", "10.78.0.2"
NUMBERS = [9100, 9101, 9102, 9103]
MARK = "multistack-stress: start"

WORKER = r"""
import errno, json, os, random, signal, socket, sys, time
sys.path[:0] = [{repo!r}, {here!r}]
import kmodutil as ku
from multistack import kernel
from multistack.errors import MultiStackError

ifname, addr, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
numbers = [int(n) for n in sys.argv[4].split(",")]
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
rnd = random.Random(seed)
n = dict(ports=0, claims=0, unregisters=0, bursts=0, sent=0, received=0, errors=0)
errs = {{}}

def err(e):
    n["errors"] += 1
    k = type(e).__name__ + ":" + str(getattr(e, "errno", ""))
    errs[k] = errs.get(k, 0) + 1

while not stop:
    try:
        p = kernel.KernelPort(ifname, tx_slots=64, rx_slots=64,
                              qdisc_bypass=rnd.random() < 0.3)
    except (MultiStackError, OSError) as e:
        err(e)
        time.sleep(0.05)
        continue
    n["ports"] += 1
    claimed = []
    try:
        for _ in range(rnd.randint(1, 12)):
            if stop:
                break
            op = rnd.random()
            try:
                if op < 0.25:
                    num = rnd.choice(numbers)
                    p.claim("udp", addr, num).close()
                    claimed.append(num)
                    n["claims"] += 1
                elif op < 0.35 and claimed:
                    p.unregister("udp", addr, claimed.pop())
                    n["unregisters"] += 1
                elif op < 0.75:
                    src = claimed[-1] if claimed else rnd.choice(numbers)
                    fr = ku.frame(p.mac, b"\xff" * 6, socket.IPPROTO_UDP, addr,
                                  "255.255.255.255", src, 9, b"stress" * 8)
                    n["sent"] += p.send_batch([fr] * rnd.randint(1, 48))
                    p.sync()
                    n["bursts"] += 1
                else:
                    n["received"] += len(p.recv_batch())
            except (MultiStackError, OSError) as e:
                err(e)
                if isinstance(e, OSError) and e.errno == errno.EBADF:
                    raise
    finally:
        p.close()
print(json.dumps(dict(n, errs=errs)), flush=True)
"""

FLOOD = r"""
import signal, socket, sys, time
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
targets = [(a, int(x)) for a, x in (t.rsplit(":", 1) for t in sys.argv[1:])]
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
sent = errors = 0
while not stop:
    for a, p in targets:
        try:
            (s6 if ":" in a else s4).sendto(b"flood" * 10, (a, p))
            sent += 1
        except OSError:
            errors += 1
            time.sleep(0.01)
print(sent, errors, flush=True)
"""


def _spawn(code, args, netns=None, **fmt):
    cmd = [sys.executable, "-c", code.format(**fmt) if fmt else code] + list(args)
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _worker(ifname, addr, seed, netns=None):
    return _spawn(WORKER, [ifname, addr, str(seed), ",".join(map(str, NUMBERS))],
                  netns=netns, repo=REPO, here=HERE)


def _stop(proc, sig=signal.SIGTERM, timeout=120):
    """Stop a worker; (status, stdout, stderr).  A worker that SIGTERM
    reaches before its handler is installed (still starting: a Python
    start takes seconds under TCG) did nothing: status 0, no output."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, errout = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, errout = proc.communicate()
    if proc.returncode == -signal.SIGTERM and not out and not errout:
        return 0, "", ""
    return proc.returncode, out, errout


def _loaded():
    return os.path.exists("/sys/module/multistack")


def _ns2_up():
    ku.sh(f"ip netns del {NS2}", check=False)
    ku.sh(f"ip link del {IF2_PEER}", check=False)
    # A deleted namespace is dismantled asynchronously (cleanup_net): its
    # veth, and with it our end, goes a little later.
    assert ku.eventually(lambda: not os.path.exists(f"/sys/class/net/{IF2_PEER}"),
                         timeout=60)
    ku.sh(f"ip netns add {NS2} && ip -n {NS2} link set lo up")
    ku.ip_batch(f"""
        link add {IF2_PEER} type veth peer name {IF2} netns {NS2}
        addr add {Y4}/24 dev {IF2_PEER}
        link set {IF2_PEER} up
        """)
    ku.ip_batch(f"""
        addr add {X4}/24 dev {IF2}
        link set {IF2} up
        """, netns=NS2)
    ku.in_netns(NS2, kernel.attach, IF2)


def _recreate_if_a(topo):
    ku.ip_batch(f"link del {topo.if_a}", check=False)
    topo.make_links()


def _attach(ifname):
    try:
        kernel.attach(ifname)
    except (kernel.AlreadyAttachedError, kernel.NoSuchInterfaceError):
        pass


def test_stress_control_paths_against_traffic(topo):
    if not os.path.exists(ku.KO_PATH):
        pytest.skip(f"{ku.KO_PATH} not built")
    ku.kernel_log_mark(MARK)
    rnd = random.Random(int(os.environ.get("MULTISTACK_STRESS_SEED") or time.time()))
    _ns2_up()
    floods = [
        _spawn(FLOOD, [f"{topo.a4}:{n}" for n in NUMBERS] + [f"{topo.a6}:{NUMBERS[0]}"],
               netns=topo.ns),
        _spawn(FLOOD, [f"{X4}:{n}" for n in NUMBERS]),
    ]
    workers = [_worker(topo.if_a, topo.a4, 1), _worker(topo.if_a, topo.a4, 2)]
    ns_worker = _worker(IF2, X4, 3, netns=NS2)
    actions = {"detach": 0, "down_up": 0, "if_recreate": 0, "ns_delete": 0,
               "rmmod_refused": 0, "rmmod_done": 0}
    results, failures = [], []
    try:
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            time.sleep(rnd.uniform(0.5, 2.0))
            what = rnd.choice(list(actions))
            if what == "detach":
                try:
                    kernel.detach(topo.if_a)
                except kernel.KernelModuleError:
                    pass
                time.sleep(rnd.uniform(0, 0.3))
                _attach(topo.if_a)
                actions[what] += 1
            elif what == "down_up":
                ku.sh(f"ip link set {topo.if_a} down; sleep 0.2; ip link set {topo.if_a} up")
                actions[what] += 1
            elif what == "if_recreate":
                _recreate_if_a(topo)
                _attach(topo.if_a)
                actions[what] += 1
            elif what == "ns_delete":
                # The namespace goes while its worker dies (its ports and
                # claim sockets are released by the exit).
                ns_worker.send_signal(signal.SIGKILL)
                ku.sh(f"ip netns del {NS2}", check=False)
                ns_worker.communicate()
                _ns2_up()
                ns_worker = _worker(IF2, X4, rnd.randrange(1 << 30), netns=NS2)
                actions[what] += 1
            elif what.startswith("rmmod"):
                r = ku.sh("rmmod multistack", check=False)
                if r.returncode == 0:
                    ku.sh(f"insmod {ku.KO_PATH}")
                    assert ku.eventually(lambda: os.path.exists("/dev/multistack"))
                    _attach(topo.if_a)
                    ku.in_netns(NS2, _attach, IF2)
                    actions["rmmod_done"] += 1
                else:
                    actions["rmmod_refused"] += 1
            for w in workers + [ns_worker]:
                if w.poll() is not None:
                    failures.append(_stop(w))
            assert not failures, f"a worker died: {failures}"
        for w in workers:
            code, out, errout = _stop(w)
            if code != 0:
                failures.append((code, out, errout))
            else:
                results.append(json.loads(out.strip().splitlines()[-1]))
        code, out, errout = _stop(ns_worker)
        if code != 0:
            failures.append((code, out, errout))
        elif out:
            results.append(json.loads(out.strip().splitlines()[-1]))
        print("actions:", actions)
        for r in results:
            print("worker:", r)
        assert not failures, f"workers failed: {failures}"
        assert sum(r["bursts"] for r in results) > 0
        assert sum(r["claims"] for r in results) > 0

        # Every port is gone with its process; nothing of the module stays.
        assert ku.eventually(lambda: kernel.list_ports() == [], timeout=30), \
            kernel.list_ports()
        with open("/proc/vmallocinfo") as f:
            areas = [line.strip() for line in f if "[multistack]" in line]
        assert not areas, "vmalloc areas of the module with no port left:\n" + "\n".join(areas)
        leaks = [b for b in ku.kmemleak_scan() if "multistack" in b]
        assert not leaks, "kmemleak:\n" + "\n".join(leaks[:5])[:6000]

        # rmmod under traffic, attached in both namespaces.
        _attach(topo.if_a)
        ku.in_netns(NS2, _attach, IF2)
        assert all(f.poll() is None for f in floods)
        r = ku.sh("rmmod multistack", check=False)
        assert r.returncode == 0, r.stderr
        time.sleep(0.5)
        assert not _loaded()
    finally:
        for w in workers + [ns_worker]:
            if w.poll() is None:
                _stop(w, signal.SIGKILL)
        for f in floods:
            _stop(f)
        if not _loaded():
            ku.sh(f"insmod {ku.KO_PATH}", check=False)
            ku.eventually(lambda: os.path.exists("/dev/multistack"))
            topo.attached = False
        ku.sh(f"ip netns del {NS2}", check=False)
        ku.sh(f"ip link del {IF2_PEER}", check=False)
    log = ku.kernel_log_since(MARK)
    bad = ku.kernel_log_reports(log)
    assert not bad, "kernel log:\n" + "\n".join(bad[:40]) + "\n\n" + log[-8000:]
    assert "multistack: unloaded" in log
    topo.attach()
