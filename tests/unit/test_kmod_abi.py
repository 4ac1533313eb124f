"""The kernel module's ABI as the cffi extension sees it, and the ring
helpers of the kernel backend on a synthetic shared-memory area.

These run on the host: no module needed.  The layout numbers are those of
kmod/include/uapi/multistack.h (netmap's layout, see docs/architecture.md);
the cffi build (API mode) also makes the C compiler check every declared
field.
"""

import errno
import re
from pathlib import Path

import pytest

from multistack import kernel
from multistack._native import ffi, lib

UAPI = Path(__file__).resolve().parents[2] / "kmod" / "include" / "uapi" / "multistack.h"


@pytest.mark.parametrize("struct, fields, size", [
    ("struct ms_netmap_slot", {"buf_idx": 0, "len": 4, "flags": 6, "ptr": 8}, 16),
    ("struct ms_netmap_ring", {"buf_ofs": 0, "num_slots": 8, "nr_buf_size": 12, "ringid": 16,
                               "dir": 18, "head": 20, "cur": 24, "tail": 28, "flags": 32,
                               "ts_sec": 40, "ts_usec": 48, "reserved1": 56}, 256),
    ("struct ms_netmap_if", {"ni_name": 0, "ni_version": 16, "ni_flags": 20, "ni_tx_rings": 24,
                             "ni_rx_rings": 28, "ni_bufs_head": 32, "ni_host_tx_rings": 36,
                             "ni_host_rx_rings": 40, "ni_mem_size": 44, "ring_ofs": 48,
                             "ni_nbufs": 64, "ni_buf_size": 68, "reserved": 72}, 128),
    ("struct ms_if_req", {"version": 0, "flags": 4, "ifname": 8, "reserved": 24}, 48),
    ("struct ms_port_req", {"version": 0, "flags": 4, "ifname": 8, "tx_slots": 24,
                            "rx_slots": 28, "buf_size": 32, "mem_size": 36, "ifindex": 40,
                            "port_id": 44, "reserved": 48}, 80),
    ("struct ms_reg_req", {"version": 0, "flags": 4, "family": 8, "proto": 9, "port": 10,
                           "sockfd": 12, "addr": 16, "reserved": 32}, 48),
    ("struct ms_stats", {"version": 0, "flags": 4, "ifname": 8, "reserved": 24, "port": 32,
                         "iface": 32 + 8 * 32}, 544),
    ("struct ms_rej_entry", {"time_ns": 0, "reason": 8, "len": 12, "caplen": 16,
                             "reserved": 20, "data": 24}, 152),
    ("struct ms_rej_req", {"version": 0, "flags": 4, "port_id": 8, "count": 12,
                           "entries": 16, "total": 24, "kept": 32, "ifindex": 36,
                           "ifname": 40, "reserved": 56}, 64),
])
def test_layout(struct, fields, size):
    assert ffi.sizeof(struct) == size
    for name, offset in fields.items():
        assert ffi.offsetof(struct, name) == offset, name


def test_slots_start_at_256():
    assert lib.MS_RING_SLOTS_OFS == 256
    assert ffi.sizeof("struct ms_netmap_ring") == lib.MS_RING_SLOTS_OFS


def test_constants():
    assert lib.MS_ABI_VERSION == 1
    assert (lib.MS_FAMILY_INET, lib.MS_FAMILY_INET6) == (2, 10)
    assert (lib.MS_PROTO_TCP, lib.MS_PROTO_UDP) == (6, 17)
    assert lib.MS_STAT_MAX == 32
    assert lib.MS_MIN_FRAME == 42
    # _IOW/_IOWR encode the size of the argument: a changed struct changes
    # the request number.
    assert lib.MS_IOC_ATTACH == (1 << 30) | (48 << 16) | (0xB7 << 8) | 1
    assert lib.MS_IOC_PORT_BIND == (3 << 30) | (80 << 16) | (0xB7 << 8) | 3
    assert lib.MS_IOC_REGISTER == (1 << 30) | (48 << 16) | (0xB7 << 8) | 4
    assert lib.MS_IOC_STATS == (3 << 30) | (544 << 16) | (0xB7 << 8) | 8
    assert lib.MS_IOC_REJECTS == (3 << 30) | (64 << 16) | (0xB7 << 8) | 10
    assert (lib.MS_REJ_RING, lib.MS_REJ_SNAPLEN) == (64, 128)
    assert lib.MS_IOC_TXSYNC == (0xB7 << 8) | 6
    assert lib.MS_IOC_RXSYNC == (0xB7 << 8) | 7


def _stat_list():
    """(NAME, index, name) of each MS_STAT_LIST entry, read from the header."""
    text = UAPI.read_text()
    body = text[text.index("#define MS_STAT_LIST(X)"):]
    body = body[:body.index("\n\n")]
    return [(m.group(1), int(m.group(2)), m.group(3))
            for m in re.finditer(r'\bX\((\w+),\s*(\d+),\s*"(\w+)"', body)]


def test_stat_list_is_the_only_source():
    entries = _stat_list()
    assert len(entries) >= 22
    # the constants the header had before the list: ABI, never renumbered
    assert entries[:22] == [(n.upper(), i, n) for i, n in enumerate((
        "rx_delivered", "rx_bytes", "rx_passed", "rx_drop_full", "rx_drop_size",
        "rx_malformed", "rx_fragment", "rx_vlan", "tx_sent", "tx_bytes",
        "tx_rej_not_owned", "tx_rej_other_port", "tx_rej_bad_mac", "tx_rej_malformed",
        "tx_rej_runt", "tx_rej_oversize", "tx_rej_bad_slot", "tx_rej_fragment",
        "tx_error", "rx_not_ip", "rx_drop_bad_slot", "tx_bypass_fallback"))]
    assert len({i for _, i, _ in entries}) == len(entries)
    for const, index, name in entries:
        assert name == const.lower()
        assert 0 <= index < lib.MS_STAT_MAX
        assert getattr(lib, f"MS_STAT_{const}") == index
    assert kernel.STAT_NAMES == {index: name for _, index, name in sorted(entries, key=lambda e: e[1])}
    # no other MS_STAT_ constant than the list's and MS_STAT_MAX
    defined = set(re.findall(r"#define\s+(MS_STAT_\w+)", UAPI.read_text()))
    assert defined == {"MS_STAT_MAX", "MS_STAT_LIST", "MS_STAT_ENUM_ENTRY"}


# -- ring helpers on a synthetic area ------------------------------------

class FakeArea:
    """The shared memory of a port as the module lays it out."""

    def __init__(self, tx_slots=8, rx_slots=8, buf_size=256):
        self.tx_ofs, self.rx_ofs = 4096, 8192
        self.pool = 12288
        self.nbufs = tx_slots + rx_slots
        self.size = self.pool + self.nbufs * buf_size
        self.mem = ffi.new("char[]", self.size)
        nifp = ffi.cast("struct ms_netmap_if *", self.mem)
        nifp.ring_ofs[0], nifp.ring_ofs[1] = self.tx_ofs, self.rx_ofs
        nifp.ni_nbufs, nifp.ni_buf_size = self.nbufs, buf_size
        self.tx = self._ring(self.tx_ofs, tx_slots, buf_size, 0)
        self.rx = self._ring(self.rx_ofs, rx_slots, buf_size, tx_slots)
        self.tx.tail = tx_slots - 1
        self.buf_size = buf_size

    def _ring(self, ofs, n, buf_size, first_buf):
        ring = ffi.cast("struct ms_netmap_ring *", self.mem + ofs)
        ring.buf_ofs = self.pool - ofs
        ring.num_slots = n
        ring.nr_buf_size = buf_size
        for i in range(n):
            self.slot(ring, i).buf_idx = first_buf + i
        return ring

    def slot(self, ring, i):
        return ffi.cast("struct ms_netmap_slot *", ffi.cast("char *", ring) + 256) + i

    def buf(self, idx, n):
        return ffi.buffer(self.mem + self.pool + idx * self.buf_size, n)[:]

    def kernel_rx(self, frame):
        """What the module does on RX: fill slot[tail], advance tail."""
        s = self.slot(self.rx, self.rx.tail)
        ffi.memmove(self.mem + self.pool + s.buf_idx * self.buf_size, frame, len(frame))
        s.len = len(frame)
        self.rx.tail = (self.rx.tail + 1) % self.rx.num_slots


def collect(area, max_frames=64):
    offs = ffi.new("uint64_t[]", 64)
    lens = ffi.new("uint32_t[]", 64)
    n = lib.ms_kmod_rx_collect(area.mem, area.size, area.rx_ofs, max_frames, offs, lens)
    return [ffi.buffer(area.mem + offs[i], lens[i])[:] for i in range(n)]


def test_rx_collect_reads_head_to_tail():
    area = FakeArea()
    assert collect(area) == []
    for i in range(3):
        area.kernel_rx(bytes([i]) * (60 + i))
    frames = collect(area)
    assert [len(f) for f in frames] == [60, 61, 62]
    assert frames[2] == b"\x02" * 62
    assert collect(area, 2) == frames[:2]
    lib.ms_kmod_ring_set_head(area.mem, area.rx_ofs, 2)
    assert area.rx.head == area.rx.cur == 2
    assert collect(area) == frames[2:]


def test_rx_collect_wraps():
    area = FakeArea(rx_slots=8)
    for i in range(7):
        area.kernel_rx(bytes([i]) * 50)
    lib.ms_kmod_ring_set_head(area.mem, area.rx_ofs, 7)
    for i in range(5):
        area.kernel_rx(bytes([10 + i]) * 50)
    frames = collect(area)
    assert [f[0] for f in frames] == [10, 11, 12, 13, 14]
    assert lib.ms_kmod_ring_avail(area.mem, area.rx_ofs) == 5


def test_rx_collect_never_reads_outside_the_area():
    area = FakeArea()
    area.kernel_rx(b"x" * 60)
    area.kernel_rx(b"y" * 60)
    area.kernel_rx(b"z" * 60)
    area.slot(area.rx, 0).buf_idx = 10**6          # corrupt index
    area.slot(area.rx, 1).len = area.buf_size + 1  # longer than a buffer
    frames = collect(area)
    assert frames == [b"", b"", b"z" * 60]
    area.rx.tail = 99                              # outside the ring
    assert collect(area) == []
    assert lib.ms_kmod_ring_avail(area.mem, area.rx_ofs) == 0


def test_tx_put_fills_slots_until_one_is_left():
    area = FakeArea(tx_slots=8)
    assert lib.ms_kmod_ring_avail(area.mem, area.tx_ofs) == 7
    put = [lib.ms_kmod_tx_put(area.mem, area.size, area.tx_ofs, bytes([i]) * 64, 64)
           for i in range(8)]
    assert put == [1] * 7 + [0]
    assert area.tx.head == area.tx.cur == 7
    assert area.slot(area.tx, 3).len == 64
    assert area.buf(area.slot(area.tx, 3).buf_idx, 64) == b"\x03" * 64


def test_tx_put_refuses_what_does_not_fit():
    area = FakeArea(buf_size=256)
    assert lib.ms_kmod_tx_put(area.mem, area.size, area.tx_ofs, b"a" * 257, 257) == -1
    area.slot(area.tx, 0).buf_idx = 10**6
    assert lib.ms_kmod_tx_put(area.mem, area.size, area.tx_ofs, b"a" * 60, 60) == -2
    assert area.tx.head == 0


def test_tx_put_raw_sets_any_slot():
    area = FakeArea()
    assert lib.ms_kmod_tx_put_raw(area.mem, area.tx_ofs, 12345, 9000) == 1
    s = area.slot(area.tx, 0)
    assert (s.buf_idx, s.len, area.tx.head) == (12345, 9000, 1)


# -- /proc/net/multistack and errors -------------------------------------

PROC = """\
iface veth0 ifindex 7 ports 2 rx_delivered 5 rx_bytes 300 rx_passed 12 tx_sent 1
port 1 iface veth0 pid 321 tx_slots 1024 rx_slots 1024 buf_size 2048 mem 4300800 txmem 32768 regs 2 dead 0 rx_delivered 5 tx_rej_bad_mac 2 tx_bypass_fallback 3
reg 1 inet udp 10.0.0.2 5000 proof held
reg 1 inet6 tcp fd00::2 80 proof released
port 2 iface veth0 pid 322 tx_slots 64 rx_slots 64 buf_size 2048 mem 200000 regs 0 dead 1 rx_delivered 0
iface dummy0 ifindex 9 ports 0 rx_passed 0
"""


def test_parse_proc():
    ifaces = kernel.parse_proc(PROC)
    assert [i["name"] for i in ifaces] == ["veth0", "dummy0"]
    veth = ifaces[0]
    assert veth["ifindex"] == 7 and veth["counters"]["rx_passed"] == 12
    p1, p2 = veth["ports"]
    assert (p1["id"], p1["pid"], p1["dead"], p2["dead"]) == (1, 321, False, True)
    assert p1["counters"]["tx_rej_bad_mac"] == 2
    assert p1["counters"]["tx_bypass_fallback"] == 3
    # mem (mmap size) and txmem (TX frame pages) are fields, not counters;
    # a line without txmem (older module) still parses
    assert (p1["mem"], p1["txmem"], p1["regs"]) == (4300800, 32768, 2)
    assert p2["mem"] == 200000 and "txmem" not in p2
    assert p1["registrations"] == [
        {"family": "inet", "proto": "udp", "address": "10.0.0.2", "port": 5000,
         "proof": "held"},
        {"family": "inet6", "proto": "tcp", "address": "fd00::2", "port": 80,
         "proof": "released"}]
    assert p2["registrations"] == [] and ifaces[1]["ports"] == []


def test_parse_proc_tolerates_junk():
    assert kernel.parse_proc("garbage\n\nreg x y\nport\n") == []


@pytest.mark.parametrize("err, cls", [
    (errno.EACCES, kernel.NotBoundError),
    (errno.EPERM, kernel.SharedBindingError),
    (errno.EADDRINUSE, kernel.AlreadyRegisteredError),
    (errno.EADDRNOTAVAIL, kernel.AddressNotOnInterfaceError),
    (errno.EPROTONOSUPPORT, kernel.UnsupportedProtocolError),
    (errno.EAFNOSUPPORT, kernel.UnsupportedProtocolError),
    (errno.ENOTSOCK, kernel.NotASocketError),
    (errno.EBADF, kernel.NotASocketError),
    (errno.EPROTOTYPE, kernel.SocketMismatchError),
    (errno.ENOSPC, kernel.TooManyRegistrationsError),
    (errno.EINVAL, kernel.MalformedRegistrationError),
    (errno.ENXIO, kernel.PortDeadError),
])
def test_register_errno_mapping(err, cls):
    exc = kernel._error(-err, "register", kernel._REGISTER, kernel._PORT)
    assert type(exc) is cls and exc.errno == err
    assert errno.errorcode[err] in str(exc)


@pytest.mark.parametrize("err, cls", [
    (errno.ENODEV, kernel.NoSuchInterfaceError),
    (errno.EEXIST, kernel.AlreadyAttachedError),
    (errno.EBUSY, kernel.InterfaceBusyError),
    (errno.ENOENT, kernel.NotAttachedError),
    (errno.EPERM, kernel.PermissionDeniedError),
    (errno.EINVAL, kernel.InvalidRequestError),
])
def test_attach_errno_mapping(err, cls):
    assert type(kernel._error(err, "attach x", kernel._ATTACH)) is cls


def test_unknown_errno_still_explains():
    exc = kernel._error(-errno.EIO, "stats")
    assert isinstance(exc, kernel.KernelModuleError) and exc.errno == errno.EIO


def test_without_module(monkeypatch, tmp_path):
    monkeypatch.setattr(kernel, "DEVICE", str(tmp_path / "absent"))
    monkeypatch.setattr(kernel, "PROC_FILE", str(tmp_path / "absent-proc"))
    with pytest.raises(kernel.ModuleNotLoadedError):
        kernel.attach("lo")
    with pytest.raises(kernel.ModuleNotLoadedError):
        kernel.list_ports()


def test_bad_interface_names():
    with pytest.raises(kernel.NoSuchInterfaceError):
        kernel._ifname_bytes("x" * 16)
    with pytest.raises(kernel.NoSuchInterfaceError):
        kernel._ifname_bytes("")


def test_port_memory_matches_the_module():
    # kmod/README.md: the default port on a 1500-byte MTU maps 4 239 360 bytes
    assert kernel.port_memory(1500) == 4239360
    assert kernel.port_memory(1500, 8, 8, 2048) == 4096 * 3 + 16 * 2048
    assert kernel.port_memory(9000) == 4096 + 2 * 20480 + 2048 * 9024
    assert lib.MS_TX_MEM_MAX == 128 * 1024


def test_memlock_error_names_the_limit():
    import resource
    exc = kernel._memlock_error("port on eth0", 45056)
    assert isinstance(exc, kernel.LockedMemoryLimitError) and exc.errno == errno.ENOBUFS
    limit = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    assert "RLIMIT_MEMLOCK" in str(exc) and "[ENOBUFS]" in str(exc)
    assert (str(limit) if limit != resource.RLIM_INFINITY else "unlimited") in str(exc)
    assert str(45056 + 128 * 1024) in str(exc)


def test_parse_proc_hidden_pid():
    line = ("iface v ifindex 2 ports 1\n"
            "port 4 iface v pid - uid 1000 tx_slots 8 rx_slots 8 buf_size 2048 mem 45056\n")
    (port,) = kernel.parse_proc(line)[0]["ports"]
    assert (port["pid"], port["uid"]) == (None, 1000)
