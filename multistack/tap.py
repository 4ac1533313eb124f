"""A Port on a Linux TAP device, and the network namespace its kernel side lives in.

The user-level stack owns the file descriptor of a TAP device; the kernel
side of that device, moved into a network namespace and given an address,
is an ordinary Linux host on the same link.  That gives real interop with
the kernel's ARP, ND, ICMP, UDP and TCP while stacks are developed, on one
machine.  The stack has its own MAC (``TapPort.mac``), distinct from the
kernel side's (``TapPort.kernel_mac``).

Namespaces and addresses are set up with iproute2's ``ip`` (installed by
``scripts/setup``); this needs CAP_NET_ADMIN.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
import struct
import subprocess
from collections.abc import Iterable, Sequence

from .errors import MultiStackError, PortClosedError
from .port import Frame, Port, PortStats, queue_frames

TUN_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFNAMSIZ = 16
ETHERNET_HEADER = 14
VLAN_TAG = 4
# What the tun driver answers once the device is detached (its namespace was deleted).
_DEVICE_GONE = (errno.EBADFD, errno.ENODEV)


class TapError(MultiStackError):
    """A TAP device or namespace could not be set up."""


def random_mac() -> bytes:
    """A random unicast, locally administered Ethernet address."""
    first = (os.urandom(1)[0] & 0xFC) | 0x02
    return bytes([first]) + os.urandom(5)


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    """Run ``ip [-n netns] args...`` and return its stdout; errors name the command."""
    cmd = ["ip"] + (["-n", netns] if netns else []) + list(args)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except FileNotFoundError as exc:
        raise TapError("iproute2's `ip` is not installed (run scripts/setup)") from exc
    if check and done.returncode != 0:
        raise TapError(f"`{' '.join(cmd)}` failed: {done.stderr.strip()}")
    return done.stdout


_netns_counter = itertools.count()


def unique_netns_name(prefix: str = "ms") -> str:
    """A namespace name no other process on this machine picks (pid + counter)."""
    return f"{prefix}{os.getpid()}-{next(_netns_counter)}"


def create_netns(name: str) -> None:
    """Create a network namespace with loopback up (replacing a stale one)."""
    if name in list_netns():
        delete_netns(name)
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)


def delete_netns(name: str) -> None:
    """Delete a namespace if it exists; idempotent."""
    if name in list_netns():
        ip("netns", "del", name, check=False)


def list_netns() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


class TapPort(Port):
    """A Port on a TAP device (``IFF_TAP | IFF_NO_PI``, non-blocking).

    Receiving reads frames until the device has none left (or the batch is
    full); sending queues frames and :meth:`sync` writes them, one write per
    frame, keeping the rest queued if the device pushes back.  Closing the
    descriptor removes the device.
    """

    def __init__(self, ifname: str | None = None, *, mtu: int = 1500, mac: bytes | None = None,
                 tx_capacity: int = 1024):
        if mac is not None and len(mac) != 6:
            raise ValueError("mac must be 6 bytes")
        if ifname is not None and not 0 < len(ifname.encode()) < IFNAMSIZ:
            raise ValueError(f"interface name {ifname!r} must be 1..{IFNAMSIZ - 1} bytes")
        try:
            fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise TapError(f"cannot open {TUN_DEVICE}: {exc.strerror}") from exc
        try:
            request = struct.pack("16sH", (ifname or "mstap%d").encode(), IFF_TAP | IFF_NO_PI)
            answer = fcntl.ioctl(fd, TUNSETIFF, request)
        except OSError as exc:
            os.close(fd)
            raise TapError(f"TUNSETIFF {ifname or 'mstap%d'}: {exc.strerror}") from exc
        self._fd = fd
        self.name = answer[:IFNAMSIZ].rstrip(b"\0").decode()
        self.mac = mac or random_mac()
        self.mtu = mtu
        #: Namespace the kernel side lives in (None: this one); set by open_tap_in_netns.
        self.netns: str | None = None
        self.kernel_mac: bytes | None = None
        self._tx_capacity = tx_capacity
        self._tx_queue: list[bytes] = []
        self._read_size = max(2048, mtu + ETHERNET_HEADER + VLAN_TAG)
        self._stats = PortStats()
        self._closed = False
        try:
            ip("link", "set", "dev", self.name, "mtu", str(mtu))
        except TapError:
            self.close()
            raise

    def recv_batch(self, max_frames: int = 256) -> list[memoryview]:
        self._check_open()
        batch = []
        while len(batch) < max_frames:
            try:
                frame = os.read(self._fd, self._read_size)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in _DEVICE_GONE:
                    raise self._gone(exc) from exc
                self._stats.rx_dropped += 1
                self._count(f"rx_error_{errno.errorcode.get(exc.errno, exc.errno)}")
                break
            batch.append(memoryview(frame))
            self._stats.rx_frames += 1
            self._stats.rx_bytes += len(frame)
        return batch

    def send_batch(self, frames: Iterable[Frame]) -> int:
        self._check_open()
        return queue_frames(self._tx_queue, self._tx_capacity, frames)

    def sync(self) -> None:
        self._check_open()
        sent = 0
        for frame in self._tx_queue:
            if len(frame) < ETHERNET_HEADER:
                self._drop_tx("tx_runt")
            elif len(frame) > ETHERNET_HEADER + VLAN_TAG + self.mtu:
                self._drop_tx("tx_oversize")
            else:
                try:
                    os.write(self._fd, frame)
                except BlockingIOError:
                    break  # the device pushes back: keep the rest for the next sync
                except OSError as exc:
                    if exc.errno in _DEVICE_GONE:
                        raise self._gone(exc) from exc
                    # EIO: the device is down; EINVAL: the kernel refused the frame.
                    self._drop_tx(f"tx_error_{errno.errorcode.get(exc.errno, exc.errno)}")
                else:
                    self._stats.tx_frames += 1
                    self._stats.tx_bytes += len(frame)
            sent += 1
        del self._tx_queue[:sent]

    def fileno(self) -> int:
        self._check_open()
        return self._fd

    def stats(self) -> PortStats:
        return self._stats.snapshot()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._tx_queue.clear()
        os.close(self._fd)
        self._fd = -1

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise PortClosedError(f"TAP port {self.name} is closed")

    def _count(self, key: str) -> None:
        self._stats.extra[key] = self._stats.extra.get(key, 0) + 1

    def _drop_tx(self, reason: str) -> None:
        self._stats.tx_dropped += 1
        self._count(reason)

    def _gone(self, exc: OSError) -> PortClosedError:
        # The device went away (its namespace was deleted, say).
        self.close()
        return PortClosedError(f"TAP device {self.name} is gone: {exc.strerror}")


def open_tap_in_netns(netns: str, addresses: Sequence[str] = (), *, ifname: str | None = None,
                      mtu: int = 1500, mac: bytes | None = None) -> TapPort:
    """Create a TAP port whose kernel side sits in ``netns`` with ``addresses``.

    ``addresses`` are interface addresses such as ``"10.7.0.1/24"`` or
    ``"fd00:7::1/64"`` (IPv6 ones skip duplicate address detection, so they
    are usable at once).  ``ifname`` names the kernel side inside the
    namespace (default: the first free ``tapN`` there).  The namespace must
    exist.  Returns the port, up, with ``name`` (the name inside the
    namespace), ``netns`` and ``kernel_mac`` filled in.
    """
    port = TapPort(mtu=mtu, mac=mac)
    try:
        links = json.loads(ip("-j", "link", "show", netns=netns))
        taken = {link["ifname"] for link in links}
        inside = ifname or next(f"tap{i}" for i in range(len(taken) + 1) if f"tap{i}" not in taken)
        ip("link", "set", "dev", port.name, "netns", netns, "name", inside)
        port.name = inside
        port.netns = netns
        for address in addresses:
            extra = ["nodad"] if ":" in address else []
            ip("addr", "add", address, "dev", inside, *extra, netns=netns)
        ip("link", "set", "dev", inside, "up", netns=netns)
        info = json.loads(ip("-j", "link", "show", "dev", inside, netns=netns))
        port.kernel_mac = bytes.fromhex(info[0]["address"].replace(":", ""))
    except Exception:
        port.close()
        raise
    return port
