"""Port memory is charged to its opener: to the user's locked memory against
RLIMIT_MEMLOCK (ENOBUFS past it; CAP_IPC_LOCK exempt) and to the memory
cgroup (ENOMEM past its limit), and given back when the port ends.

The unprivileged side runs in a forked child as uid 65534 (kmodutil.Child);
/dev/multistack is mode 0666, so it may open ports on the interface root
attached."""

import errno
import os
import socket

import pytest

import kmodutil as ku
from multistack import kernel
from multistack._native import lib

UDP = socket.IPPROTO_UDP
SMALL = dict(tx_slots=8, rx_slots=8, buf_size=2048)
BIG = dict(tx_slots=1024, rx_slots=1024, buf_size=4096)
MTU = 1500                      # the veth's


def charge(params) -> int:
    """Bytes a port charges to RLIMIT_MEMLOCK (uapi: mem_size + MS_TX_MEM_MAX)."""
    return kernel.port_memory(MTU, **params) + lib.MS_TX_MEM_MAX


def _fill(ifname, params, most=64):
    """Open ports until the limit refuses one: (ports, that error)."""
    ports = []
    while len(ports) < most:
        try:
            ports.append(kernel.KernelPort(ifname, **params))
        except kernel.LockedMemoryLimitError as exc:
            return ports, exc
    raise AssertionError(f"{most} ports and no limit")


def _ports_of(uid):
    return [p for p in kernel.list_ports() if p.get("uid") == uid]


def test_unprivileged_ports_are_charged_to_rlimit_memlock(topo):
    """4.5 ports' worth of RLIMIT_MEMLOCK: 4 open, the 5th fails with
    ENOBUFS naming the limit; root's ports and the OS stack work meanwhile;
    closing gives the charge back (4 again)."""
    limit = 4 * charge(SMALL) + charge(SMALL) // 2

    def child(chan):
        ports, exc = _fill(topo.if_a, SMALL)
        first = {"count": len(ports), "errno": exc.errno, "message": str(exc),
                 "sizes": sorted({p.mem_size for p in ports}),
                 "listed": len(_ports_of(ku.NOBODY))}
        chan.send(first)
        chan.recv()
        for p in ports:
            p.close()
        again, exc = _fill(topo.if_a, SMALL)
        for p in again:
            p.close()
        return {"again": len(again), "errno": exc.errno}

    c = ku.Child(child, uid=ku.NOBODY, memlock=limit)
    try:
        first = c.recv()
        # at its limit: root (CAP_IPC_LOCK, not charged) and the OS stack
        p = topo.port()
        topo.track(p.claim("udp", topo.a4, 7700))
        os_sock = topo.track(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        os_sock.bind((topo.a4, 7701))
        os_sock.setblocking(False)
        tx = topo.peer()
        tx.sendto(b"to-port", (topo.a4, 7700))
        tx.sendto(b"to-os", (topo.a4, 7701))
        assert [ku.parse(f)["payload"] for f in ku.wait_frames(p, 1)] == [b"to-port"]
        assert ku.drain(os_sock, 1.0) == [b"to-os"]
        c.send("close")
        again = c.result()
    finally:
        c.kill()
    assert first["count"] == 4, first
    assert first["listed"] == 4          # the refused bind left no port behind
    assert first["sizes"] == [kernel.port_memory(MTU, **SMALL)]
    assert first["errno"] == errno.ENOBUFS
    assert "RLIMIT_MEMLOCK" in first["message"] and str(limit) in first["message"]
    assert str(charge(SMALL)) in first["message"]
    assert again == {"again": 4, "errno": errno.ENOBUFS}
    assert _ports_of(ku.NOBODY) == []


def test_charge_returns_when_the_opener_dies(topo):
    limit = 3 * charge(SMALL)

    def holder(chan):
        ports, _ = _fill(topo.if_a, SMALL)
        chan.send(len(ports))
        chan.recv(600)                   # killed here
        return None

    def count(chan):
        ports, exc = _fill(topo.if_a, SMALL)
        return [len(ports), exc.errno]

    c = ku.Child(holder, uid=ku.NOBODY, memlock=limit)
    try:
        assert c.recv() == 3
    finally:
        c.kill()
    assert ku.eventually(lambda: _ports_of(ku.NOBODY) == [])
    assert ku.Child(count, uid=ku.NOBODY, memlock=limit).result() == [3, errno.ENOBUFS]


def test_cap_ipc_lock_is_not_charged(topo):
    def open_one(chan):
        try:
            kernel.KernelPort(topo.if_a, **SMALL).close()
        except kernel.KernelModuleError as exc:
            return exc.errno
        return 0

    # root keeps CAP_IPC_LOCK: a zero limit does not apply to it
    assert ku.Child(open_one, memlock=0).result() == 0
    assert ku.Child(open_one, uid=ku.NOBODY, memlock=0).result() == errno.ENOBUFS
    assert ku.Child(open_one, uid=ku.NOBODY,
                    memlock=charge(SMALL)).result() == 0


def test_refused_binds_keep_no_charge(topo):
    """Binds that fail (bad sizes, interface not attached) leave the
    user's locked memory as it was: one port's worth still opens one."""
    def child(chan):
        errs = []
        for ifname, params in ((topo.if_a, dict(tx_slots=3)), ("lo", SMALL)):
            try:
                kernel.KernelPort(ifname, **params)
            except kernel.KernelModuleError as exc:
                errs.append(exc.errno)
        kernel.KernelPort(topo.if_a, **SMALL).close()
        return errs

    r = ku.Child(child, uid=ku.NOBODY, memlock=charge(SMALL)).result()
    assert r == [errno.EINVAL, errno.ENOENT]


@pytest.fixture
def memcg():
    """A cgroup v2 with the memory controller (skips when the kernel has
    none): the path of a fresh child cgroup."""
    root = "/run/ms-cgroup"
    os.makedirs(root, exist_ok=True)
    r = ku.sh(f"mount -t cgroup2 none {root}", check=False)
    if r.returncode:
        pytest.skip(f"cgroup v2 cannot be mounted: {r.stderr.strip()}")
    path = os.path.join(root, "mstest")
    try:
        with open(os.path.join(root, "cgroup.controllers")) as f:
            controllers = f.read().split()
        if "memory" not in controllers:
            pytest.skip(f"no memory controller in cgroup v2 (has: {controllers})")
        with open(os.path.join(root, "cgroup.subtree_control"), "w") as f:
            f.write("+memory")
        os.makedirs(path, exist_ok=True)
        yield path
    finally:
        if os.path.isdir(path):
            ku.eventually(lambda: _rmdir(path))
        ku.sh(f"umount -l {root}", check=False)


def _rmdir(path) -> bool:
    try:
        os.rmdir(path)
        return True
    except OSError:
        return False


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_port_memory_is_charged_to_the_memory_cgroup(topo, memcg):
    """A port's pages show in its opener's memory.current and leave it at
    close; past memory.max the bind fails with ENOMEM (no OOM kill), and
    that failure gives its RLIMIT_MEMLOCK charge back."""
    size = kernel.port_memory(MTU, **BIG)
    limit = 2 * charge(BIG) - 4096           # room for one BIG port

    def child(chan):
        def current():
            with open(os.path.join(memcg, "memory.current")) as f:
                return int(f.read())
        out = {}
        chan.send("joined")
        chan.recv()                          # memory.max is current + 2 MiB
        try:
            kernel.KernelPort(topo.if_a, **BIG).close()
            out["over_max"] = 0
        except kernel.KernelModuleError as exc:
            out["over_max"] = exc.errno
        chan.send("lift")
        chan.recv()                          # memory.max is max again
        before = current()
        p = kernel.KernelPort(topo.if_a, **BIG)
        out["with_port"] = current() - before
        try:
            kernel.KernelPort(topo.if_a, **BIG).close()
            out["second"] = 0
        except kernel.KernelModuleError as exc:
            out["second"] = exc.errno
        out["mem_size"] = p.mem_size
        p.close()
        out["after_close"] = current() - before
        return out

    c = ku.Child(child, uid=ku.NOBODY, memlock=limit, cgroup=memcg)
    try:
        assert c.recv() == "joined"
        with open(os.path.join(memcg, "memory.current")) as f:
            _write(os.path.join(memcg, "memory.max"), str(int(f.read()) + (2 << 20)))
        c.send("try")
        assert c.recv() == "lift"
        _write(os.path.join(memcg, "memory.max"), "max")
        c.send("go")
        r = c.result()
    finally:
        c.kill()
    assert r["over_max"] == errno.ENOMEM, r
    assert r["mem_size"] == size
    # memory.current moves in per-CPU batches (MEMCG_CHARGE_BATCH pages)
    assert r["with_port"] >= size - 2 * 64 * 4096, r
    assert r["second"] == errno.ENOBUFS, r   # the ENOMEM bind's charge came back
    assert r["after_close"] < size // 8, r
    with open(os.path.join(memcg, "memory.events")) as f:
        events = dict(line.split() for line in f)
    assert events.get("oom_kill") == "0"
