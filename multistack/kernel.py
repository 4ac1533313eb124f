"""The kernel backend: a :class:`~multistack.port.Port` on ``multistack.ko``.

The module (``kmod/``) hooks an attached interface; a port is a descriptor
of ``/dev/multistack`` bound to that interface, with one TX and one RX ring
in shared memory (netmap layout, see ``kmod/include/uapi/multistack.h``).
The kernel delivers to a port only frames addressed to the 3-tuples it
registered, and sends from it only frames whose source 3-tuple it owns.

Everything here goes through the cffi extension ``multistack._native``
(``multistack/native/kmod.*``), which includes the module's ABI header, so
structure layouts and constants are checked by the C compiler.

Module-level functions drive the administrative side::

    attach("eth0")            # needs CAP_NET_ADMIN
    with KernelPort("eth0") as port:
        sock = port.claim("udp", "10.0.0.2", 5000)
        frames = port.recv_batch()
    detach("eth0")

Errors: every errno the module documents becomes a specific exception
(subclasses of :class:`KernelModuleError`, :class:`RegistrationError` or
:class:`PortClosedError`), with ``errno`` set.
"""

from __future__ import annotations

import errno as E
import fcntl
import ipaddress
import mmap
import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import MultiStackError, PortClosedError, RegistrationError
from .port import PROTOCOLS, Frame, Port, PortStats
from .text import printable

try:
    from ._native import ffi, lib
except ImportError as _exc:  # pragma: no cover - build problem
    raise ImportError(f"multistack._native is not built: {_exc}") from _exc

DEVICE = "/dev/multistack"
PROC_FILE = "/proc/net/multistack"
ABI_VERSION = lib.MS_ABI_VERSION
IFNAMSIZ = lib.MS_IFNAMSIZ

#: Statistics names, indexed like MS_STAT_* (same names as /proc/net/multistack),
#: from the ABI header's MS_STAT_LIST through the extension.
STAT_NAMES: dict[int, str] = {
    i: ffi.string(lib.ms_stat_name(i)).decode()
    for i in range(lib.MS_STAT_MAX) if lib.ms_stat_name(i) != ffi.NULL
}
#: One-line description of each counter, from the same list.
STAT_DOCS: dict[str, str] = {
    name: ffi.string(lib.ms_stat_doc(i)).decode() for i, name in STAT_NAMES.items()
}
_RX_DROPS = ("rx_drop_full", "rx_drop_size", "rx_drop_bad_slot")
_TX_DROPS = tuple(n for n in STAT_NAMES.values() if n.startswith("tx_rej_")) + ("tx_error",)


# --------------------------------------------------------------------------
# errors


class KernelModuleError(MultiStackError):
    """The module refused a request; ``errno`` tells why."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


class ModuleNotLoadedError(KernelModuleError):
    """``/dev/multistack`` does not exist: the module is not loaded."""


class PermissionDeniedError(KernelModuleError):
    """EPERM/EACCES on the device: attach and detach need CAP_NET_ADMIN."""


class NoSuchInterfaceError(KernelModuleError):
    """ENODEV: no interface of that name in this network namespace (or not Ethernet)."""


class AlreadyAttachedError(KernelModuleError):
    """EEXIST: the interface is already attached."""


class InterfaceBusyError(KernelModuleError):
    """EBUSY: the interface has another receive handler (bridge, bond, ...)."""


class NotAttachedError(KernelModuleError):
    """ENOENT: the interface is not attached to MultiStack."""


class InvalidRequestError(KernelModuleError):
    """EINVAL: a malformed request (bad sizes, flags, reserved bytes...)."""


class LockedMemoryLimitError(KernelModuleError):
    """ENOBUFS on a new port: its memory would take this user's locked
    memory past RLIMIT_MEMLOCK (``ulimit -l``; CAP_IPC_LOCK is exempt)."""


class PortDeadError(PortClosedError):
    """ENXIO: the port's interface was detached or vanished; only close() helps."""

    def __init__(self, message: str, errno: int | None = E.ENXIO):
        super().__init__(message)
        self.errno = errno


class NotASocketError(RegistrationError):
    """EBADF/ENOTSOCK: the proof is not an open socket of the caller."""


class SocketMismatchError(RegistrationError):
    """EPROTOTYPE: the socket's family, type or protocol differ from the request."""


class NotBoundError(RegistrationError):
    """EACCES: the socket is not bound to that port on that address (or the wildcard)."""


class SharedBindingError(RegistrationError):
    """EPERM on register: the socket shares its binding (SO_REUSEADDR; on TCP
    while not listening), so any user's socket could bind the same tuple."""


class AddressNotOnInterfaceError(RegistrationError):
    """EADDRNOTAVAIL: the address is not configured on the port's interface."""


class AlreadyRegisteredError(RegistrationError):
    """EADDRINUSE: the 3-tuple is already registered on this interface."""


class UnsupportedProtocolError(RegistrationError):
    """EPROTONOSUPPORT/EAFNOSUPPORT: only TCP and UDP over IPv4 and IPv6."""


class TooManyRegistrationsError(RegistrationError):
    """ENOSPC: the port already holds MS_MAX_REGS 3-tuples."""


class MalformedRegistrationError(RegistrationError):
    """EINVAL: a malformed registration (port 0, multicast address, ...)."""


class NotRegisteredError(RegistrationError):
    """ENOENT on unregister: the 3-tuple is not registered to this port."""


_COMMON = {
    E.EPERM: (PermissionDeniedError, "permission denied (needs CAP_NET_ADMIN)"),
    E.EINVAL: (InvalidRequestError, "malformed request"),
    E.ENOTTY: (KernelModuleError, "the module does not know this request "
                                  "(version mismatch?)"),
    E.ENOMEM: (KernelModuleError, "the kernel is out of memory"),
    E.EFAULT: (KernelModuleError, "bad address"),
}
_ATTACH = {
    E.ENODEV: (NoSuchInterfaceError, "no such Ethernet interface in this network namespace"),
    E.EEXIST: (AlreadyAttachedError, "already attached"),
    E.EBUSY: (InterfaceBusyError, "the interface has another receive handler "
                                  "(bridge, bond, macvlan...)"),
    E.ENOENT: (NotAttachedError, "not attached to MultiStack"),
}
_PORT = {
    E.ENXIO: (PortDeadError, "the port's interface was detached or vanished"),
    E.ENOTCONN: (PortClosedError, "the descriptor is not bound to a port"),
    E.ENETDOWN: (KernelModuleError, "the interface is down"),
}
_REGISTER = {
    E.EBADF: (NotASocketError, "not an open descriptor"),
    E.ENOTSOCK: (NotASocketError, "not a socket"),
    E.EPROTOTYPE: (SocketMismatchError, "the socket's family, type or protocol "
                                        "differ from the request"),
    E.EACCES: (NotBoundError, "the socket is not bound to that port on that address"),
    E.EPERM: (SharedBindingError, "the socket shares its binding (SO_REUSEADDR): "
                                  "a proof must hold the tuple alone"),
    E.EADDRNOTAVAIL: (AddressNotOnInterfaceError, "the address is not configured "
                                                  "on the interface"),
    E.EADDRINUSE: (AlreadyRegisteredError, "already registered"),
    E.EPROTONOSUPPORT: (UnsupportedProtocolError, "unsupported protocol"),
    E.EAFNOSUPPORT: (UnsupportedProtocolError, "unsupported address family"),
    E.ENOSPC: (TooManyRegistrationsError, "too many registrations on this port"),
    E.EINVAL: (MalformedRegistrationError, "malformed registration"),
    E.ENOENT: (NotRegisteredError, "not registered to this port"),
}


_BIND = {
    E.ENOBUFS: (LockedMemoryLimitError, "the port's memory would pass this user's "
                                        "locked-memory limit (RLIMIT_MEMLOCK)"),
    E.ENOMEM: (KernelModuleError, "out of memory for the port (the kernel's, or "
                                  "this memory cgroup's limit)"),
}


def port_memory(mtu: int, tx_slots: int = 0, rx_slots: int = 0, buf_size: int = 0) -> int:
    """The mmap size (mem_size) of a port with these parameters on an
    interface of this MTU, laid out as the module does (0 = its default)."""
    page = mmap.PAGESIZE
    up = lambda n, a: -(-n // a) * a  # noqa: E731
    tx = tx_slots or lib.MS_DEFAULT_SLOTS
    rx = rx_slots or lib.MS_DEFAULT_SLOTS
    bs = buf_size or max(lib.MS_DEFAULT_BUF_SIZE, up(mtu + 18, 64))
    rings = sum(up(lib.MS_RING_SLOTS_OFS + n * ffi.sizeof("struct ms_netmap_slot"), page)
                for n in (tx, rx))
    return lib.MS_IF_SIZE + rings + up((tx + rx) * bs, page)


def _memlock_error(what: str, mem_size: int) -> LockedMemoryLimitError:
    import resource
    limit = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    shown = "unlimited" if limit == resource.RLIM_INFINITY else f"{limit} bytes"
    need = mem_size + lib.MS_TX_MEM_MAX
    return LockedMemoryLimitError(
        f"{what}: the port's {need} bytes of locked memory ({mem_size} mapped + "
        f"{lib.MS_TX_MEM_MAX} of TX pages) would pass RLIMIT_MEMLOCK ({shown}), which "
        f"counts all of this user's ports, AF_XDP sockets and io_uring rings: raise the "
        f"limit (ulimit -l) or grant CAP_IPC_LOCK [ENOBUFS]", E.ENOBUFS)


def _error(err: int, what: str, *tables: dict) -> MultiStackError:
    """The exception for a negative/positive errno from operation ``what``."""
    err = abs(err)
    for table in tables + (_COMMON,):
        if err in table:
            cls, text = table[err]
            return cls(f"{what}: {text} [{E.errorcode.get(err, err)}]", err)
    return KernelModuleError(f"{what}: {os.strerror(err)} [{E.errorcode.get(err, err)}]", err)


def _open_device(flags: int = os.O_RDWR) -> int:
    try:
        return os.open(DEVICE, flags | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ModuleNotLoadedError(
            f"{DEVICE} does not exist: the multistack module is not loaded", E.ENOENT) from None
    except PermissionError as exc:
        raise PermissionDeniedError(f"cannot open {DEVICE}: {exc.strerror}", exc.errno) from None
    except OSError as exc:
        raise KernelModuleError(f"cannot open {DEVICE}: {exc.strerror}", exc.errno) from None


def _ifname_bytes(ifname: str) -> bytes:
    raw = os.fsencode(ifname)
    if not 0 < len(raw) < IFNAMSIZ or b"\0" in raw:
        raise NoSuchInterfaceError(f"{printable(ifname)}: not a valid interface name",
                                   E.ENODEV)
    return raw


def module_loaded() -> bool:
    """Whether ``/dev/multistack`` exists."""
    return os.path.exists(DEVICE)


# --------------------------------------------------------------------------
# administration


def _if_request(op: int, ifname: str, what: str) -> None:
    req = ffi.new("struct ms_if_req *")
    req.version = ABI_VERSION
    req.ifname = _ifname_bytes(ifname)
    fd = _open_device()
    try:
        err = lib.ms_kmod_ioctl(fd, op, req)
    finally:
        os.close(fd)
    if err:
        raise _error(err, f"{what} {printable(ifname)}", _ATTACH)


def attach(ifname: str) -> None:
    """Attach MultiStack to ``ifname`` (in this network namespace)."""
    _if_request(lib.MS_IOC_ATTACH, ifname, "attach")


def detach(ifname: str) -> None:
    """Detach MultiStack from ``ifname``; its ports become dead."""
    _if_request(lib.MS_IOC_DETACH, ifname, "detach")


def _counters(arr) -> dict[str, int]:
    return {name: int(arr[i]) for i, name in STAT_NAMES.items()}


def interface_stats(ifname: str) -> dict[str, int]:
    """Counters of an attached interface, through the STATS ioctl."""
    st = ffi.new("struct ms_stats *")
    st.version = ABI_VERSION
    st.ifname = _ifname_bytes(ifname)
    fd = _open_device()
    try:
        err = lib.ms_kmod_ioctl(fd, lib.MS_IOC_STATS, st)
    finally:
        os.close(fd)
    if err:
        raise _error(err, f"stats {printable(ifname)}", _ATTACH)
    return _counters(st.iface)


def stats(ifname: str | None = None) -> dict[str, dict[str, int]]:
    """Counters per attached interface: ``{ifname: {counter: value}}``.

    With ``ifname``, only that interface (NotAttachedError if it is not).
    """
    if ifname is not None:
        return {ifname: interface_stats(ifname)}
    return {i["name"]: i["counters"] for i in status()}


def _parse_pairs(tokens: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in zip(tokens[0::2], tokens[1::2]):
        out[key] = int(value) if value.lstrip("-").isdigit() else value
    return out


def parse_proc(text: str) -> list[dict]:
    """Parse ``/proc/net/multistack`` into a list of attached interfaces::

        [{"name", "ifindex", "counters": {...},
          "ports": [{"id", "pid", "uid", "tx_slots", ..., "mem", "txmem", "dead",
                     "counters": {...},
                     "registrations": [{"family", "proto", "address", "port",
                                        "proof"}]}]}]

    A registration's ``proof`` is "held", or "released" once the proving
    socket gave its port back, narrowed or shared its binding: then it owns
    nothing, and another registration of the tuple replaces it.

    ``pid`` is None where the module hides it (another user's port, read
    without CAP_NET_ADMIN).  Unknown keys are kept; unknown lines are ignored.
    """
    ifaces: list[dict] = []
    ports: dict[int, dict] = {}
    known = set(STAT_NAMES.values())
    for line in text.splitlines():
        tok = line.split()
        if not tok:
            continue
        if tok[0] == "iface" and len(tok) >= 2:
            pairs = _parse_pairs(tok)
            iface = {"name": str(pairs.pop("iface")), "ports": [], "counters": {}}
            for k, v in pairs.items():
                (iface["counters"] if k in known else iface)[k] = v
            iface.pop("ports", None)
            iface["ports"] = []
            ifaces.append(iface)
        elif tok[0] == "port" and len(tok) >= 2:
            pairs = _parse_pairs(tok)
            port = {"id": pairs.pop("port"), "counters": {}, "registrations": []}
            for k, v in pairs.items():
                (port["counters"] if k in known else port)[k] = v
            port["dead"] = bool(port.get("dead", 0))
            if not isinstance(port.get("pid"), int):
                port["pid"] = None          # "-": another user's port
            ports[port["id"]] = port
            owner = next((i for i in ifaces if i["name"] == port.get("iface")), None)
            if owner is None and ifaces:
                owner = ifaces[-1]
            if owner is not None:
                owner["ports"].append(port)
        elif tok[0] == "reg" and len(tok) >= 6:
            try:
                pid = int(tok[1])
                reg = {"family": tok[2], "proto": tok[3], "address": tok[4],
                       "port": int(tok[5]),
                       # "released": the proving socket let the tuple go
                       "proof": _parse_pairs(tok[6:]).get("proof", "held")}
            except ValueError:
                continue
            if pid in ports:
                ports[pid]["registrations"].append(reg)
    return ifaces


def status() -> list[dict]:
    """Attached interfaces of this network namespace, their ports and
    registrations (see :func:`parse_proc`).  Empty when nothing is attached."""
    try:
        # /proc/net follows the main thread's namespace; thread-self/net
        # the calling thread's (which setns() may have moved).
        path = PROC_FILE
        if PROC_FILE == "/proc/net/multistack" and os.path.exists("/proc/thread-self/net"):
            path = "/proc/thread-self/net/multistack"
        # an interface name may hold bytes that are not UTF-8
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except FileNotFoundError:
        if not module_loaded():
            raise ModuleNotLoadedError(
                f"{DEVICE} does not exist: the multistack module is not loaded",
                E.ENOENT) from None
        return []
    return parse_proc(text)


def attached() -> list[str]:
    """Names of the attached interfaces in this network namespace."""
    return [i["name"] for i in status()]


def list_ports() -> list[dict]:
    """Every port of this network namespace with its interface, owning pid
    and registrations."""
    return [p for i in status() for p in i["ports"]]


class NoSuchPortError(KernelModuleError):
    """ENOENT from MS_IOC_REJECTS: no port of that id in this namespace."""


_REJECTS = {
    E.ENOENT: (NoSuchPortError, "no such port on an interface attached in this "
                                "network namespace"),
    E.EPERM: (PermissionDeniedError, "another user's port (reading it needs "
                                     "CAP_NET_ADMIN)"),
}

#: Frames the module keeps per port, and bytes of each (MS_REJ_*).
REJ_RING = lib.MS_REJ_RING
REJ_SNAPLEN = lib.MS_REJ_SNAPLEN


@dataclass(frozen=True)
class RejectedFrame:
    """A TX frame the module refused: ``reason`` is the counter that counted
    it (a ``tx_rej_*`` name of :data:`STAT_NAMES`), ``length`` the frame's
    length and ``data`` its first bytes (at most :data:`REJ_SNAPLEN`)."""
    time_ns: int
    reason: str
    length: int
    data: bytes


@dataclass(frozen=True)
class PortRejects:
    """The rejected-frame ring of one port, oldest frame first."""
    port_id: int
    ifname: str
    ifindex: int
    total: int                  # refusals since the port was bound
    frames: list[RejectedFrame]

    @property
    def overwritten(self) -> int:
        """Refusals no longer kept: the ring holds the last REJ_RING."""
        return self.total - len(self.frames)


def rejected_frames(port_id: int) -> PortRejects:
    """The last TX frames port ``port_id`` (of this network namespace) had
    refused.  Needs to be the port's owner (euid) or CAP_NET_ADMIN:
    otherwise PermissionDeniedError; NoSuchPortError for an unknown id."""
    entries = ffi.new("struct ms_rej_entry[]", REJ_RING)
    req = ffi.new("struct ms_rej_req *")
    req.version = ABI_VERSION
    if not 0 <= port_id < 2**32:
        raise NoSuchPortError(f"rejects of port {port_id}: no such port", E.ENOENT)
    req.port_id = port_id
    req.count = REJ_RING
    req.entries = int(ffi.cast("uintptr_t", entries))
    fd = _open_device(os.O_RDONLY)
    try:
        err = lib.ms_kmod_ioctl(fd, lib.MS_IOC_REJECTS, req)
    finally:
        os.close(fd)
    if err:
        raise _error(err, f"rejects of port {port_id}", _REJECTS)
    frames = []
    for i in range(req.count):
        e = entries[i]
        reason = STAT_NAMES.get(e.reason, str(e.reason))
        frames.append(RejectedFrame(int(e.time_ns), reason, int(e.len),
                                    bytes(ffi.buffer(e.data, min(e.caplen, REJ_SNAPLEN)))))
    return PortRejects(port_id, os.fsdecode(ffi.string(req.ifname)), int(req.ifindex),
                       int(req.total), frames)


# --------------------------------------------------------------------------
# the port


@dataclass
class Registration:
    proto: str
    address: str
    port: int
    sock: socket.socket | None = field(default=None, repr=False)


def _proto_number(proto: str | int) -> int:
    if isinstance(proto, int):
        return proto
    try:
        return PROTOCOLS[proto.lower()]
    except KeyError:
        raise UnsupportedProtocolError(f"unsupported protocol {proto!r} (tcp or udp)",
                                       E.EPROTONOSUPPORT) from None


def _proto_name(number: int) -> str:
    for name, value in PROTOCOLS.items():
        if value == number:
            return name
    return str(number)


def _link_info(ifname: str) -> tuple[bytes, int, int]:
    """(MAC, MTU, ifindex) of an interface of this network namespace."""
    SIOCGIFHWADDR, SIOCGIFMTU = 0x8927, 0x8921
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        name = struct.pack("16s16x", os.fsencode(ifname))
        hw = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, name)
        mtu = fcntl.ioctl(s.fileno(), SIOCGIFMTU, name)
    except OSError as exc:
        raise NoSuchInterfaceError(f"{printable(ifname)}: {exc.strerror}",
                                   exc.errno) from None
    finally:
        s.close()
    return hw[18:24], struct.unpack_from("i", mtu, 16)[0], socket.if_nametoindex(ifname)


class KernelPort(Port):
    """A virtual port of ``multistack.ko`` on an attached interface.

    ``tx_slots``/``rx_slots`` (powers of two) and ``buf_size`` (multiple of
    64) default to the module's defaults.  RX frames are memoryviews into
    the ring buffers, valid until the next :meth:`recv_batch`;
    :meth:`send_batch` copies frames into TX slots and :meth:`sync` sends
    them with one ioctl.

    ``qdisc_bypass=True`` (``MS_PORT_F_QDISC_BYPASS``) has the module hand
    validated frames straight to the driver, like AF_PACKET's
    ``PACKET_QDISC_BYPASS``: cheaper per frame, but the interface's qdisc
    (tc, netem, shaping) never sees them.  Validation and counters are the
    same either way.

    The port's memory (``mem_size`` plus ``MS_TX_MEM_MAX`` of TX pages) is
    charged to this user's RLIMIT_MEMLOCK unless the process has
    CAP_IPC_LOCK (:class:`LockedMemoryLimitError` past it; see
    :func:`port_memory`) and to its memory cgroup, until the port ends.
    """

    def __init__(self, ifname: str, *, tx_slots: int = 0, rx_slots: int = 0,
                 buf_size: int = 0, qdisc_bypass: bool = False):
        self.name = ifname
        self.mac, self.mtu, self.ifindex = _link_info(ifname)
        self._closed = True
        self._fd = -1
        self._mm: mmap.mmap | None = None
        self._base = None
        self._views: list[memoryview] = []
        self.registrations: dict[tuple[str, str, int], Registration] = {}
        self._local = {"tx_oversize_local": 0}

        fd = _open_device(os.O_RDWR | os.O_NONBLOCK)
        try:
            req = ffi.new("struct ms_port_req *")
            req.version = ABI_VERSION
            req.ifname = _ifname_bytes(ifname)
            req.tx_slots, req.rx_slots, req.buf_size = tx_slots, rx_slots, buf_size
            req.flags = lib.MS_PORT_F_QDISC_BYPASS if qdisc_bypass else 0
            err = lib.ms_kmod_ioctl(fd, lib.MS_IOC_PORT_BIND, req)
            if err:
                what = f"port on {printable(ifname)}"
                if err == -E.ENOBUFS:
                    raise _memlock_error(what, port_memory(self.mtu, tx_slots, rx_slots,
                                                           buf_size))
                raise _error(err, what, _BIND, _ATTACH, _PORT)
            self.port_id = int(req.port_id)
            self.qdisc_bypass = bool(req.flags & lib.MS_PORT_F_QDISC_BYPASS)
            self.mem_size = int(req.mem_size)
            try:
                mm = mmap.mmap(fd, self.mem_size, mmap.MAP_SHARED,
                               mmap.PROT_READ | mmap.PROT_WRITE)
            except OSError as exc:
                raise _error(exc.errno or E.EINVAL, f"mmap of port on {printable(ifname)}", _PORT) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._mm = mm
        self._closed = False
        try:
            self._setup_rings()
        except BaseException:
            self.close()
            raise

    def _setup_rings(self) -> None:
        self._mv = memoryview(self._mm)
        self._base = ffi.from_buffer("char[]", self._mm, require_writable=True)
        nifp = ffi.cast("struct ms_netmap_if *", self._base)
        self.nifp = nifp
        self._tx_ofs = int(nifp.ring_ofs[0])
        self._rx_ofs = int(nifp.ring_ofs[1])
        for ofs in (self._tx_ofs, self._rx_ofs):
            if not 0 < ofs <= self.mem_size - lib.MS_RING_SLOTS_OFS:
                raise KernelModuleError(f"ring offset {ofs} outside the {self.mem_size}-byte area")
        self.tx_ring = ffi.cast("struct ms_netmap_ring *", self._base + self._tx_ofs)
        self.rx_ring = ffi.cast("struct ms_netmap_ring *", self._base + self._rx_ofs)
        for ring, ofs in ((self.tx_ring, self._tx_ofs), (self.rx_ring, self._rx_ofs)):
            end = ofs + lib.MS_RING_SLOTS_OFS + ring.num_slots * ffi.sizeof("struct ms_netmap_slot")
            if ring.num_slots == 0 or end > self.mem_size:
                raise KernelModuleError("ring slots outside the shared area")
        self.tx_slots = int(self.tx_ring.num_slots)
        self.rx_slots = int(self.rx_ring.num_slots)
        self.buf_size = int(self.tx_ring.nr_buf_size)
        self._rx_cur = int(self.rx_ring.head)
        self._offs = ffi.new("uint64_t[]", self.rx_slots)
        self._lens = ffi.new("uint32_t[]", self.rx_slots)

    # -- helpers
    def _check_open(self) -> None:
        if self._closed:
            raise PortClosedError(f"kernel port on {printable(self.name)} is closed")

    def _ioctl(self, op: int, arg, what: str, *tables: dict) -> None:
        err = lib.ms_kmod_ioctl(self._fd, op, arg if arg is not None else ffi.NULL)
        if err:
            exc = _error(err, what, *tables, _PORT)
            raise exc

    def _release_views(self) -> None:
        for v in self._views:
            try:
                v.release()
            except BufferError:
                pass
        self._views = []

    # -- Port interface
    def recv_batch(self, max_frames: int = 256) -> list[memoryview]:
        self._check_open()
        self._release_views()
        # Give back what the previous batch held.
        lib.ms_kmod_ring_set_head(self._base, self._rx_ofs, self._rx_cur)
        max_frames = max(0, min(max_frames, self.rx_slots))
        # Sync (hand freed slots back, fetch new frames) unless a whole
        # batch is already waiting.
        if lib.ms_kmod_ring_avail(self._base, self._rx_ofs) < max(max_frames, 1):
            self._ioctl(lib.MS_IOC_RXSYNC, None, "rx sync")
        n = lib.ms_kmod_rx_collect(self._base, self.mem_size, self._rx_ofs, max_frames,
                                   self._offs, self._lens)
        if not n:
            return []
        offs = ffi.unpack(self._offs, n)
        lens = ffi.unpack(self._lens, n)
        mv = self._mv
        views = [mv[o:o + ln] for o, ln in zip(offs, lens)]
        self._rx_cur = (self._rx_cur + n) % self.rx_slots
        self._views = views
        return list(views)

    def send_batch(self, frames: Iterable[Frame]) -> int:
        self._check_open()
        queued = 0
        base, size, ofs = self._base, self.mem_size, self._tx_ofs
        for frame in frames:
            if isinstance(frame, bytes):
                r = lib.ms_kmod_tx_put(base, size, ofs, frame, len(frame))
            else:
                with ffi.from_buffer(frame) as buf:
                    r = lib.ms_kmod_tx_put(base, size, ofs, buf, len(buf))
            if r == 0:
                break
            if r < 0:
                # Larger than a buffer (or a corrupt slot): cannot be queued.
                self._local["tx_oversize_local"] += 1
            queued += 1
        return queued

    def sync(self) -> None:
        """Send the queued frames (one ioctl) and reclaim the TX ring.

        While the interface is down the module consumes the slots and counts
        them as ``tx_error``, like a NIC without carrier: no exception.
        """
        self._check_open()
        err = lib.ms_kmod_ioctl(self._fd, lib.MS_IOC_TXSYNC, ffi.NULL)
        if err and err != -E.ENETDOWN:
            raise _error(err, "tx sync", _PORT)

    def rx_sync(self) -> None:
        """Publish freed RX slots and fetch new ones without reading them."""
        self._check_open()
        self._ioctl(lib.MS_IOC_RXSYNC, None, "rx sync")

    def tx_space(self) -> int:
        """Free TX slots (after the last sync)."""
        self._check_open()
        return lib.ms_kmod_ring_avail(self._base, self._tx_ofs)

    def fileno(self) -> int:
        self._check_open()
        return self._fd

    def raw_stats(self) -> tuple[dict[str, int], dict[str, int]]:
        """(port counters, interface counters) as the module reports them."""
        self._check_open()
        st = ffi.new("struct ms_stats *")
        st.version = ABI_VERSION
        self._ioctl(lib.MS_IOC_STATS, st, "stats")
        return _counters(st.port), _counters(st.iface)

    def stats(self) -> PortStats:
        port, _ = self.raw_stats()
        extra = dict(port)
        extra.update(self._local)
        return PortStats(
            rx_frames=port["rx_delivered"], rx_bytes=port["rx_bytes"],
            rx_dropped=sum(port[n] for n in _RX_DROPS),
            tx_frames=port["tx_sent"], tx_bytes=port["tx_bytes"],
            tx_dropped=sum(port[n] for n in _TX_DROPS) + self._local["tx_oversize_local"],
            extra=extra)

    def info(self) -> dict[str, int]:
        """The port's parameters as the module reports them (MS_IOC_INFO)."""
        self._check_open()
        req = ffi.new("struct ms_port_req *")
        req.version = ABI_VERSION
        self._ioctl(lib.MS_IOC_INFO, req, "info")
        return {"ifname": ffi.string(req.ifname).decode(), "tx_slots": req.tx_slots,
                "rx_slots": req.rx_slots, "buf_size": req.buf_size,
                "mem_size": req.mem_size, "ifindex": req.ifindex, "port_id": req.port_id,
                "qdisc_bypass": bool(req.flags & lib.MS_PORT_F_QDISC_BYPASS)}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._release_views()
        if self._base is not None:
            ffi.release(self._base)
            self._base = None
        self.tx_ring = self.rx_ring = self.nifp = None
        if self._mm is not None:
            try:
                self._mv.release()
                self._mm.close()
            except BufferError:
                # Someone still holds a view into the rings: the mapping, and
                # with it the module's port, lives until the last view goes.
                # The tuples must not: hand them back now.
                self._unregister_all()
            self._mm = None
        os.close(self._fd)
        self._fd = -1
        self.registrations.clear()

    def _unregister_request(self, number: int, address: str, port: int) -> int:
        """MS_IOC_UNREGISTER for one tuple: 0 or -errno."""
        family, packed = self._parse_addr(address)
        req = self._reg_request(family, number, packed, port, -1)
        return lib.ms_kmod_ioctl(self._fd, lib.MS_IOC_UNREGISTER, req)

    def _unregister_all(self) -> None:
        for proto, address, port in list(self.registrations):
            # A dead port (ENXIO) already lost its tuples; nothing else can fail here.
            self._unregister_request(_proto_number(proto), address, port)

    @property
    def closed(self) -> bool:
        return self._closed

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -- registration
    def _reg_request(self, family: int, proto: int, addr: bytes, port: int,
                     sockfd: int) -> object:
        req = ffi.new("struct ms_reg_req *")
        req.version = ABI_VERSION
        req.family = family
        req.proto = proto
        req.port = port
        req.sockfd = sockfd
        req.addr = addr.ljust(16, b"\0")
        return req

    @staticmethod
    def _parse_addr(address: str) -> tuple[int, bytes]:
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            raise MalformedRegistrationError(f"{address!r} is not an IP address", E.EINVAL) from None
        if ip.version == 4:
            return lib.MS_FAMILY_INET, ip.packed
        return lib.MS_FAMILY_INET6, ip.packed

    def register(self, proto: str | int, address: str, port: int,
                 sock: socket.socket | int) -> None:
        """Claim (proto, address, port), proving ownership with ``sock`` (a
        socket or a descriptor) bound to that port on that address or the
        wildcard.  The unspecified address ("0.0.0.0", "::") claims the port
        on every address of the interface, and needs a wildcard-bound socket.
        The module keeps a reference on the socket."""
        self._check_open()
        family, packed = self._parse_addr(address)
        number = _proto_number(proto)
        if not 0 <= port <= 0xFFFF:
            raise MalformedRegistrationError(f"port {port} out of range", E.EINVAL)
        fd = sock if isinstance(sock, int) else sock.fileno()
        req = self._reg_request(family, number, packed, port, fd)
        what = f"register {_proto_name(number)} {address} port {port}"
        self._ioctl(lib.MS_IOC_REGISTER, req, what, _REGISTER)
        key = (_proto_name(number), str(ipaddress.ip_address(address.split("%")[0])), port)
        self.registrations[key] = Registration(*key, sock=None if isinstance(sock, int) else sock)

    def unregister(self, proto: str | int, address: str, port: int) -> None:
        self._check_open()
        number = _proto_number(proto)
        err = self._unregister_request(number, address, port)
        if err:
            raise _error(err, f"unregister {_proto_name(number)} {address} port {port}",
                         _REGISTER, _PORT)
        key = (_proto_name(number), str(ipaddress.ip_address(address.split("%")[0])), port)
        self.registrations.pop(key, None)

    def claim(self, proto: str, address: str, port: int) -> socket.socket:
        """Create a socket bound to (address, port), register it, return it.

        ``address`` "0.0.0.0" or "::" claims the port on every address the
        interface has, now or later (a registration of one of those
        addresses by another port takes precedence there).

        ``port`` 0 picks a free port (read it with ``sock.getsockname()``).
        The caller keeps the socket open for as long as it holds the tuple;
        closing the port releases the registration (and the module's
        reference on the socket).
        """
        self._check_open()
        family, _ = self._parse_addr(address)
        number = _proto_number(proto)
        kind = {socket.IPPROTO_TCP: socket.SOCK_STREAM,
                socket.IPPROTO_UDP: socket.SOCK_DGRAM}.get(number)
        if kind is None:
            raise UnsupportedProtocolError(f"cannot claim protocol {proto!r}", E.EPROTONOSUPPORT)
        af = socket.AF_INET if family == lib.MS_FAMILY_INET else socket.AF_INET6
        sock = socket.socket(af, kind, number)
        try:
            host = address.split("%")[0]
            if af == socket.AF_INET6:
                ip = ipaddress.ip_address(host)
                if ip.is_unspecified:
                    # Hold the IPv6 port only, as the registration claims only IPv6.
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                scope = self.ifindex if ip.is_link_local else 0
                sock.bind((host, port, 0, scope))
            else:
                sock.bind((host, port))
            bound = sock.getsockname()[1]
            self.register(number, host, bound, sock)
        except OSError as exc:
            sock.close()
            raise _error(exc.errno or E.EINVAL, f"bind {proto} {address} port {port}",
                         {E.EADDRINUSE: (AlreadyRegisteredError, "the OS stack has "
                                         "that port in use"),
                          E.EADDRNOTAVAIL: (AddressNotOnInterfaceError, "the address is "
                                            "not configured here")}) from None
        except BaseException:
            sock.close()
            raise
        return sock

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"id {self.port_id}"
        return f"<KernelPort {self.name} {state}>"
