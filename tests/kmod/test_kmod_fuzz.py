"""Random ioctl arguments, bad pointers, corrupt rings and odd mmaps: the
module answers with errnos and keeps working (bounded, seeded)."""

import errno
import mmap
import os
import random
import re
import socket
import subprocess

import kmodutil as ku
from multistack import kernel
from multistack._native import ffi, lib

SEED = int(os.environ.get("MULTISTACK_FUZZ_SEED", "20261122"))
ROUNDS = int(os.environ.get("MULTISTACK_FUZZ_ROUNDS", "3000"))

CMDS = {
    lib.MS_IOC_ATTACH: "struct ms_if_req", lib.MS_IOC_DETACH: "struct ms_if_req",
    lib.MS_IOC_PORT_BIND: "struct ms_port_req", lib.MS_IOC_INFO: "struct ms_port_req",
    lib.MS_IOC_REGISTER: "struct ms_reg_req", lib.MS_IOC_UNREGISTER: "struct ms_reg_req",
    lib.MS_IOC_STATS: "struct ms_stats", lib.MS_IOC_TXSYNC: None, lib.MS_IOC_RXSYNC: None,
}
KNOWN_ERRNOS = {getattr(errno, n) for n in (
    "EINVAL", "EPERM", "ENODEV", "EEXIST", "EBUSY", "ENOENT", "ENOTCONN", "ENXIO",
    "EAFNOSUPPORT", "EPROTONOSUPPORT", "EBADF", "ENOTSOCK", "EPROTOTYPE", "EACCES",
    "EADDRNOTAVAIL", "EADDRINUSE", "ENOSPC", "ENOMEM", "ENETDOWN", "EFAULT", "ENOTTY")}


def _payload(rnd, ctype, topo, socks):
    size = ffi.sizeof(ctype)
    buf = ffi.new(ctype + " *")
    raw = ffi.buffer(buf)
    mode = rnd.random()
    if mode < 0.3:
        raw[:] = bytes(rnd.getrandbits(8) for _ in range(size))
        return buf
    # Mostly valid header, random fields.
    buf.version = lib.MS_ABI_VERSION if rnd.random() < 0.9 else rnd.getrandbits(32)
    buf.flags = 0 if rnd.random() < 0.9 else 1 << rnd.randrange(32)
    if ctype in ("struct ms_if_req", "struct ms_port_req", "struct ms_stats"):
        names = [topo.if_a, topo.if_b, "lo", "", "x" * 15, "ms0\x01"]
        name = rnd.choice(names).encode()
        buf.ifname = name
        if rnd.random() < 0.05:
            ffi.memmove(buf.ifname, b"A" * 16, 16)   # unterminated
    if ctype == "struct ms_port_req":
        buf.tx_slots = rnd.choice([0, 8, 16, 3, 1 << rnd.randrange(32), rnd.getrandbits(32)])
        buf.rx_slots = rnd.choice([0, 8, 4096, 8192, rnd.getrandbits(32)])
        buf.buf_size = rnd.choice([0, 2048, 16384, 16448, 63, rnd.getrandbits(32)])
    if ctype == "struct ms_reg_req":
        buf.family = rnd.choice([2, 10, 0, 99, rnd.getrandbits(8)])
        buf.proto = rnd.choice([6, 17, 0, 132, rnd.getrandbits(8)])
        # Often a proving socket's own port, so that some requests succeed.
        buf.port = rnd.choice([rnd.getrandbits(16)] + [s.getsockname()[1] for s in socks])
        buf.sockfd = rnd.choice([s.fileno() for s in socks] + [-1, 0, 1, 2, 4096,
                                                                rnd.getrandbits(31)])
        addr = rnd.choice([socket.inet_aton(topo.a4), socket.inet_pton(socket.AF_INET6, topo.a6),
                           bytes(16),       # the wildcard, of either family
                           bytes(rnd.getrandbits(8) for _ in range(16))])
        buf.addr = addr.ljust(16, b"\0")
    if rnd.random() < 0.1 and ctype != "struct ms_stats":
        buf.reserved[rnd.randrange(len(buf.reserved))] = rnd.randrange(1, 256)
    return buf


def _new_port(topo):
    try:
        return kernel.KernelPort(topo.if_a, tx_slots=8, rx_slots=8)
    except kernel.NotAttachedError:
        kernel.attach(topo.if_a)
        topo.attached = True
        return kernel.KernelPort(topo.if_a, tx_slots=8, rx_slots=8)


def test_random_ioctls(topo):
    rnd = random.Random(SEED)
    socks = []
    for kind, address in ((socket.SOCK_DGRAM, topo.a4), (socket.SOCK_STREAM, topo.a4),
                          (socket.SOCK_DGRAM, "0.0.0.0")):
        s = topo.track(socket.socket(socket.AF_INET, kind))
        s.bind((address, 0))
        socks.append(s)
    ports = [_new_port(topo) for _ in range(2)]
    unbound = os.open("/dev/multistack", os.O_RDWR)
    tx = topo.peer()
    seen = {}
    try:
        for i in range(ROUNDS):
            r = rnd.random()
            if r < 0.05:
                # Traffic while we poke.
                tx.sendto(b"fuzz", (topo.a4, socks[0].getsockname()[1]))
                continue
            if r < 0.15:
                # Corrupt the rings of a port, then sync.
                p = rnd.choice(ports)
                if p.closed:
                    continue
                ring = rnd.choice([p.tx_ring, p.rx_ring])
                field = rnd.choice(["head", "cur", "tail"])
                setattr(ring, field, rnd.choice([0, 1, 7, 8, 9, rnd.getrandbits(32)]))
                slots = ffi.cast("struct ms_netmap_slot *", ffi.cast("char *", ring) + 256)
                k = rnd.randrange(8)
                slots[k].buf_idx = rnd.choice([0, 15, 16, rnd.getrandbits(32)])
                slots[k].len = rnd.getrandbits(16)
                cmd = rnd.choice([lib.MS_IOC_TXSYNC, lib.MS_IOC_RXSYNC])
                res = -lib.ms_kmod_ioctl(p.fileno(), cmd, ffi.NULL)
            else:
                if rnd.random() < 0.8:
                    cmd = rnd.choice(list(CMDS))
                else:
                    cmd = rnd.choice([rnd.getrandbits(32), (0xB7 << 8) | rnd.randrange(256),
                                      (rnd.randrange(4) << 30) | (rnd.randrange(1024) << 16)
                                      | (0xB7 << 8) | rnd.randrange(12)])
                fd = rnd.choice([unbound] + [p.fileno() for p in ports if not p.closed])
                ctype = CMDS.get(cmd)
                if rnd.random() < 0.1:
                    arg = ffi.cast("void *", rnd.choice([0, 1, 0xFFFFFFFFFFFFF000,
                                                         0xFFFF888000000000, 4096]))
                elif ctype is not None:
                    arg = _payload(rnd, ctype, topo, socks)
                else:
                    arg = ffi.new("char[]", 1024)
                res = -lib.ms_kmod_ioctl(fd, cmd, arg)
            seen[res] = seen.get(res, 0) + 1
            assert res == 0 or res in KNOWN_ERRNOS, (i, cmd, res)
            # Keep two usable ports around (detach may have killed them).
            for j, p in enumerate(ports):
                if p.closed or rnd.random() < 0.01:
                    p.close()
                    ports[j] = _new_port(topo)
            for p in ports:
                try:
                    p.rx_sync()
                except (kernel.PortDeadError, kernel.KernelModuleError):
                    p.close()
                except Exception:
                    pass
    finally:
        os.close(unbound)
        for p in ports:
            p.close()
    print("errno histogram:", {errno.errorcode.get(k, k): v for k, v in sorted(seen.items())})
    assert seen.get(0, 0) > 0
    # Still fully functional afterwards.
    if topo.if_a not in kernel.attached():
        kernel.attach(topo.if_a)
        topo.attached = True
    p = topo.port()
    topo.track(p.claim("udp", topo.a4, 9200))
    tx.sendto(b"alive", (topo.a4, 9200))
    assert [ku.parse(f)["payload"] for f in ku.wait_frames(p, 1)] == [b"alive"]


def test_random_mmaps(topo):
    rnd = random.Random(SEED + 1)
    p = topo.port(tx_slots=8, rx_slots=8)
    for _ in range(100):
        length = rnd.choice([p.mem_size, p.mem_size - 4096, p.mem_size + 4096, 4096,
                             rnd.randrange(1, 1 << 24)])
        offset = rnd.choice([0, 0, 4096, rnd.randrange(0, 1 << 20) & ~4095])
        flags = rnd.choice([mmap.MAP_SHARED, mmap.MAP_PRIVATE])
        prot = rnd.choice([mmap.PROT_READ, mmap.PROT_READ | mmap.PROT_WRITE])
        try:
            m = mmap.mmap(p.fileno(), length, flags, prot, offset=offset)
        except OSError as exc:
            assert exc.errno in (errno.EINVAL, errno.EACCES, errno.ENOMEM, errno.EPERM)
            continue
        ok = (length == p.mem_size and offset == 0 and flags == mmap.MAP_SHARED)
        try:
            assert ok, (length, offset, flags)
            _ = m[:64]
        finally:
            m.close()


FUZZER = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "kmod", "tools", "ioctl_fuzz.c")
C_FUZZ_ITERS = int(os.environ.get("MULTISTACK_C_FUZZ_ITERS", "10000"))


def test_two_c_ioctl_fuzzers_at_once(tmp_path):
    """kmod/tools/ioctl_fuzz.c, two seeded instances side by side: random ioctls,
    mmaps, ring indices and attach/detach races on interface "va" of namespace
    "msa", while a child floods UDP from "msb" into the rings being scribbled
    on.  Both must finish their iterations; the kernel log is checked at the
    end of the suite (test_kmod_zz_kernel_log)."""
    binary = str(tmp_path / "ioctl_fuzz")
    ku.sh(f"cc -O2 -Wall -Wextra -Werror -o {binary} {FUZZER}")
    ku.sh("ip netns del msa 2>/dev/null; ip netns del msb 2>/dev/null; "
          "ip netns add msa && ip netns add msb && "
          "ip link add va type veth peer name vb && "
          "ip link set va netns msa && ip link set vb netns msb && "
          "ip -n msa addr add 10.0.0.1/24 dev va && ip -n msb addr add 10.0.0.2/24 dev vb && "
          "ip -n msa link set va up && ip -n msb link set vb up && "
          "ip -n msa link set lo up && ip -n msb link set lo up")
    try:
        runs = [subprocess.Popen(["ip", "netns", "exec", "msa", binary, str(C_FUZZ_ITERS),
                                  str(seed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for seed in (11, 13)]
        outs = [run.communicate(timeout=600) for run in runs]
        for run, (out, err) in zip(runs, outs):
            assert run.returncode == 0, err[-2000:]
            assert f"ioctl_fuzz: {C_FUZZ_ITERS} iterations done" in out, out
        # Every port the fuzzers opened went with their descriptors.
        table = ku.sh("ip netns exec msa cat /proc/net/multistack").stdout
        assert not re.search(r"^port ", table, re.M), table
    finally:
        # Deleting the namespace with "va" still attached (if the last race left
        # it so) is itself a case the module must handle: the notifier detaches.
        ku.sh("ip netns del msa; ip netns del msb", check=False)
