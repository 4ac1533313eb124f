"""Helpers of the kernel-module suite: network namespaces, frames, waiting.

The suite runs inside the VM (``scripts/test-vm``) as root.  Side A is the
VM's own network namespace, where the tests run and MultiStack is attached
to ``ms0``; side B is the namespace ``mspeer`` holding the other end of the
veth, ``ms1``.  Sockets on side B are created from a thread that has
entered that namespace (a socket stays in the namespace it was made in),
so a test drives both sides without helper processes.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import re
import select
import socket
import struct
import subprocess
import threading
import time

NS_PEER = "mspeer"
IF_A, IF_B = "ms0", "ms1"
A4, B4 = "10.77.0.1", "10.77.0.2"
A6, B6 = "fd77::1", "fd77::2"
CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003

# scripts/vm builds the module per kernel and names it in MULTISTACK_KO.
KO_PATH = os.environ.get("MULTISTACK_KO") or os.path.join(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))), "kmod", "multistack.ko")

_libc = ctypes.CDLL(None, use_errno=True)


def sh(cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a shell command; raise with its output when it fails."""
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"`{cmd}` failed ({r.returncode}): {r.stdout}{r.stderr}")
    return r


def ip_batch(commands: str, netns: str | None = None, check: bool = True) -> None:
    """Run iproute2 commands (one a line) with a single ``ip -batch`` process."""
    lines = "\n".join(c.strip() for c in commands.strip().splitlines() if c.strip()) + "\n"
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    r = subprocess.run(cmd, input=lines, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"ip -batch failed: {r.stderr.strip()}\n{lines}")


def in_netns(name: str, fn, *args, **kwargs):
    """Call fn(*args) in a thread that has entered network namespace ``name``."""
    result: dict = {}

    def body():
        try:
            fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            result["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller
            result["error"] = exc

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def peer_socket(family=socket.AF_INET, kind=socket.SOCK_DGRAM, proto=0) -> socket.socket:
    return in_netns(NS_PEER, socket.socket, family, kind, proto)


def peer_sniffer(ifname: str = IF_B) -> socket.socket:
    """A non-blocking AF_PACKET socket seeing every frame on the peer's end."""
    def make():
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((ifname, 0))
        s.setblocking(False)
        return s
    return in_netns(NS_PEER, make)


def peer_raw_sender(ifname: str = IF_B) -> socket.socket:
    """An AF_PACKET socket that sends whole frames out of the peer's end."""
    def make():
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        s.bind((ifname, 0))
        return s
    return in_netns(NS_PEER, make)


def drain(sock: socket.socket, wait: float = 0.3) -> list[bytes]:
    """Everything a non-blocking socket receives within ``wait`` seconds."""
    out = []
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        r, _, _ = select.select([sock], [], [], left)
        if not r:
            return out
        while True:
            try:
                out.append(sock.recv(65536))
            except BlockingIOError:
                break


def _mac_here(ifname: str) -> bytes:
    import fcntl
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        res = fcntl.ioctl(s.fileno(), 0x8927, struct.pack("16s16x", ifname.encode()))
    return res[18:24]


def mac_of(ifname: str, netns: str | None = None) -> bytes:
    """The interface's Ethernet address (SIOCGIFHWADDR, in ``netns``)."""
    if netns:
        return in_netns(netns, _mac_here, ifname)
    return _mac_here(ifname)


def ifindex_of(ifname: str, netns: str | None = None) -> int:
    if netns:
        return in_netns(netns, socket.if_nametoindex, ifname)
    return socket.if_nametoindex(ifname)


# -- frames -----------------------------------------------------------------

def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pseudo(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, proto, length)
    return src + dst + struct.pack("!IxxxB", length, proto)


def l4(proto: int, src: str, dst: str, sport: int, dport: int, payload: bytes = b"",
       tcp_flags: int = 0x02, seq: int = 1000) -> bytes:
    """A UDP datagram or a TCP segment (default SYN) with a correct checksum."""
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    if proto == socket.IPPROTO_UDP:
        hdr = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
        seg = hdr + payload
        c = csum(_pseudo(s, d, proto, len(seg)) + seg) or 0xFFFF
        return seg[:6] + struct.pack("!H", c) + seg[8:]
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, tcp_flags, 65535, 0, 0)
    seg = hdr + payload
    c = csum(_pseudo(s, d, proto, len(seg)) + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def ip_packet(proto: int, src: str, dst: str, payload: bytes, *, ident: int = 1,
              frag: int = 0x4000, ttl: int = 64) -> bytes:
    """IPv4 (correct header checksum, DF by default) or IPv6 packet."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, ttl,
                          proto, 0, s.packed, d.packed)
        hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
        return hdr + payload
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), proto, ttl,
                       s.packed, d.packed) + payload


def eth(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def frame(src_mac: bytes, dst_mac: bytes, proto: int, src: str, dst: str, sport: int,
          dport: int, payload: bytes = b"", **kw) -> bytes:
    """A whole Ethernet frame carrying UDP or TCP over IPv4 or IPv6."""
    v6 = ipaddress.ip_address(src).version == 6
    seg = l4(proto, src, dst, sport, dport, payload, **kw)
    return eth(dst_mac, src_mac, 0x86DD if v6 else 0x0800, ip_packet(proto, src, dst, seg))


def parse(fr: bytes) -> dict | None:
    """(proto, src, dst, sport, dport, payload) of an untagged IP frame."""
    fr = bytes(fr)
    if len(fr) < 14:
        return None
    et = struct.unpack_from("!H", fr, 12)[0]
    if et == 0x0800 and len(fr) >= 34:
        ihl = (fr[14] & 0x0F) * 4
        proto = fr[23]
        src, dst = str(ipaddress.IPv4Address(fr[26:30])), str(ipaddress.IPv4Address(fr[30:34]))
        l4off = 14 + ihl
        total = struct.unpack_from("!H", fr, 16)[0]
        end = 14 + total
    elif et == 0x86DD and len(fr) >= 54:
        proto = fr[20]
        src, dst = str(ipaddress.IPv6Address(fr[22:38])), str(ipaddress.IPv6Address(fr[38:54]))
        l4off = 54
        end = 54 + struct.unpack_from("!H", fr, 18)[0]
    else:
        return {"ethertype": et}
    out = {"ethertype": et, "proto": proto, "src": src, "dst": dst}
    if proto in (6, 17) and len(fr) >= l4off + 4:
        out["sport"], out["dport"] = struct.unpack_from("!HH", fr, l4off)
        if proto == 17:
            out["payload"] = fr[l4off + 8:end]
        else:
            doff = (fr[l4off + 12] >> 4) * 4
            out["flags"] = fr[l4off + 13]
            out["payload"] = fr[l4off + doff:end]
    return out


# -- ports --------------------------------------------------------------------

def send_frames(port, frames: list[bytes]) -> None:
    """Queue every frame on a KernelPort's TX ring and sync (the checks run then)."""
    assert port.send_batch(frames) == len(frames)
    port.sync()


def wait_frames(port, count: int, timeout: float = 5.0, max_frames: int = 256) -> list[bytes]:
    """Receive (copies of) frames from a KernelPort until ``count`` arrived
    or ``timeout`` passed."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    p = select.poll()
    p.register(port.fileno(), select.POLLIN)
    while len(got) < count:
        got += [bytes(v) for v in port.recv_batch(max_frames)]
        if len(got) >= count:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            break
        p.poll(min(left, 0.05) * 1000)
    return got


def quiet_for(port, seconds: float = 0.3) -> list[bytes]:
    """Frames a port receives within ``seconds`` (expected: none)."""
    got: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got += [bytes(v) for v in port.recv_batch()]
        time.sleep(0.02)
    return got


def eventually(pred, timeout: float = 5.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


# -- other users ----------------------------------------------------------------

NOBODY = 65534


class Child:
    """``fn(chan)`` run in a forked child of this test process, optionally as
    another user (``uid``: groups dropped too, so no capability is left),
    with a RLIMIT_MEMLOCK (``memlock`` bytes) and in a cgroup (``cgroup``: a
    cgroup v2 directory, joined before the uid changes).

    The child's imports are the parent's (a fork, no exec: the venv's
    interpreter under /root is not for other users).  ``chan`` (and this
    object, in the parent) exchanges JSON values: ``send`` and ``recv``.
    :meth:`result` waits for the end and returns what ``fn`` returned, or
    raises with the child's exception as text.
    """

    def __init__(self, fn, *, uid: int | None = None, memlock: int | None = None,
                 cgroup: str | None = None):
        import json
        import resource
        self._json = json
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:                   # the child: never returns
            status = 1
            try:
                os.close(down_w)
                os.close(up_r)
                self._r, self._w = os.fdopen(down_r, "rb", 0), os.fdopen(up_w, "wb", 0)
                if cgroup is not None:
                    with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                        f.write(str(os.getpid()))
                if memlock is not None:
                    resource.setrlimit(resource.RLIMIT_MEMLOCK, (memlock, memlock))
                if uid is not None:
                    os.setgroups([])
                    os.setgid(uid)
                    os.setuid(uid)
                msg = {"result": fn(self)}
                status = 0
            except BaseException as exc:  # reported to the parent
                msg = {"error": f"{type(exc).__name__}: {exc}"}
            try:
                self.send(msg)
            finally:
                os._exit(status)
        os.close(down_r)
        os.close(up_w)
        self._r, self._w = os.fdopen(up_r, "rb", 0), os.fdopen(down_w, "wb", 0)
        self._done = False

    def send(self, value) -> None:
        self._w.write(self._json.dumps(value).encode() + b"\n")

    def recv(self, timeout: float = 120.0):
        line = b""
        deadline = time.monotonic() + timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("the child said nothing")
            chunk = self._r.read(1)
            if not chunk:
                raise EOFError(f"the child ended: {line!r}")
            line += chunk
        value = self._json.loads(line)
        if self.pid and isinstance(value, dict) and "error" in value:
            self._reap()
            raise AssertionError(f"child: {value['error']}")
        return value

    def result(self, timeout: float = 120.0):
        msg = self.recv(timeout)
        self._reap()
        return msg["result"]

    def kill(self) -> None:
        if not self._done:
            os.kill(self.pid, 9)
            self._reap()

    def _reap(self) -> None:
        if not self._done:
            os.waitpid(self.pid, 0)
            self._done = True
            self._r.close()
            self._w.close()


# ---- the kernel log (tests/kmod/test_kmod_zz_kernel_log.py, the stress test)

#: A report of a kernel checker, or the module's own complaint.  The debug
#: kernel (scripts/debug-kernel) adds KASAN, KFENCE, UBSAN, lockdep
#: (circular or recursive locking, inconsistent lock state, suspicious RCU
#: usage: all "WARNING: ..."), DEBUG_OBJECTS (ODEBUG), DEBUG_ATOMIC_SLEEP,
#: RCU stalls, kmemleak, and the netdev reference tracker.
LOG_BAD = re.compile(
    r"WARNING:|BUG:|kernel BUG|Oops|general protection fault|Call Trace|UBSAN|KASAN|"
    r"KFENCE: |ODEBUG: |refcount_t:|list_(add|del) corruption|"
    r"sleeping function called from invalid context|scheduling while atomic|"
    r"detected stall|INFO: task .* blocked|unreferenced object|"
    r"still has objects|possible circular locking|"
    r"possible recursive locking|inconsistent lock state|suspicious RCU usage|"
    r"unregister_netdevice: waiting|ref_tracker: |[Ll]eak|multistack.*([Ee]rror|fail)")
#: Expected lines: an out-of-tree, unsigned module taints the kernel; the
#: boot echoes its command line and RCU's stall timeout; the debug kernel
#: announces its checkers at boot; kmemleak's summary after a
#: scan ("N new suspected memory leaks") is judged by what the reports
#: point into (test_kmod_zz_kernel_log.py), not by the count.
LOG_BENIGN = re.compile(
    r"module verification failed|loading out-of-tree module|"
    r"[Cc]ommand line: |RCU CPU stall warnings timeout set to|"
    r"kmemleak: \d+ new suspected memory leaks|"
    r"kmemleak: Kernel memory leak detector initialized|"
    r"kmemleak: Automatic memory scanning thread|KFENCE: initialized")


def kernel_log_reports(text: str) -> list[str]:
    """The lines of a kernel log that report a problem (see LOG_BAD)."""
    return [line for line in text.splitlines()
            if LOG_BAD.search(line) and not LOG_BENIGN.search(line)]


def kernel_log_since(marker: str) -> str:
    """The kernel log after the last line containing ``marker`` (written to
    /dev/kmsg by :func:`kernel_log_mark`); all of it without one."""
    log = sh("dmesg").stdout
    i = log.rfind(marker)
    if i < 0:
        return log
    return log[log.find("\n", i) + 1:]


def kernel_log_mark(marker: str) -> None:
    with open("/dev/kmsg", "w") as f:
        f.write(marker + "\n")


def debug_kernel() -> bool:
    """Running on the debug kernel that scripts/debug-kernel builds."""
    return os.uname().release.endswith("-msdebug")


KMEMLEAK = "/sys/kernel/debug/kmemleak"


def kmemleak_scan() -> list[str]:
    """Trigger two kmemleak scans (an object is reported only once it was
    unreferenced in a scan and is old enough) and return the reports (one
    string per "unreferenced object" block).  Empty without kmemleak."""
    if not os.path.exists(KMEMLEAK):
        return []
    for _ in range(2):
        with open(KMEMLEAK, "w") as f:
            f.write("scan\n")     # synchronous
        time.sleep(1)
    with open(KMEMLEAK) as f:
        text = f.read()
    blocks = re.split(r"(?m)^(?=unreferenced object)", text)
    return [b for b in blocks if b.startswith("unreferenced object")]
