"""The XDP backend's programs and maps (xdp/ms_xdp.bpf.c), from Python.

MultiStack without the kernel module, design (a) of docs/architecture.md
("XDP backend"): each port is a veth pair; ``ms_xdp_rx`` on the NIC
redirects claimed frames to the owning port's veth, ``ms_xdp_tx`` on the
host end of each port's veth checks what the port sends and redirects good
frames to the NIC.  This module compiles the programs (clang, cached by
source digest), loads them through libbpf (``multistack._xdp_native``),
fills their maps, attaches them and runs them on test frames::

    progs = XdpPrograms.load()
    progs.set_iface(nic_ifindex, nic_mac)
    progs.add_local_addr(ip_address("10.0.0.1"))
    progs.add_port(veth_ifindex, max_rx_len=2048, max_tx_len=1514)
    progs.claim("udp", ip_address("10.0.0.1"), 5000, veth_ifindex)
    progs.attach("ms_xdp_rx", nic_ifindex)
    progs.attach("ms_xdp_tx", veth_ifindex)

Needs CAP_BPF and CAP_NET_ADMIN (root): this is the privileged side.
"""

from __future__ import annotations

import errno as errno_mod
import hashlib
import os
import subprocess
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from .errors import MultiStackError
from .kernel import STAT_NAMES

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = ROOT / "xdp"
KMOD_INCLUDE = ROOT / "kmod" / "include"
SOURCE = SOURCE_DIR / "ms_xdp.bpf.c"
#: what the object is compiled from: a change to any of these rebuilds it
SOURCES = (SOURCE, SOURCE_DIR / "ms_xdp.h", KMOD_INCLUDE / "multistack_classify.h",
           KMOD_INCLUDE / "uapi" / "multistack.h")
PROGRAMS = ("ms_xdp_rx", "ms_xdp_tx")
PROTOCOLS = {"tcp": 6, "udp": 17}
FAMILIES = {4: 2, 6: 10}       # IP version -> MS_FAMILY_*
MODES = ("native", "generic")

#: XDP verdicts by value, as bpf.h numbers them
VERDICTS = {0: "aborted", 1: "drop", 2: "pass", 3: "tx", 4: "redirect"}


class XdpError(MultiStackError):
    """A BPF program could not be built, loaded or attached, or a map
    operation failed.  ``errno`` carries the kernel's reason where there is one."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


def _native():
    # Imported late: the rest of the library works without libbpf.
    from . import _xdp_native
    return _xdp_native.ffi, _xdp_native.lib


def _check(ret: int, what: str) -> int:
    if ret < 0:
        raise XdpError(f"{what}: {os.strerror(-ret)}", -ret)
    return ret


def cache_dir() -> Path:
    """Where compiled objects and verifier logs go: $MULTISTACK_XDP_CACHE,
    else .cache/xdp in the source tree."""
    return Path(os.environ.get("MULTISTACK_XDP_CACHE") or ROOT / ".cache" / "xdp")


def build_object(clang: str = "clang") -> Path:
    """Compiles xdp/ms_xdp.bpf.c (unless an object of the same sources is
    cached) and returns the object's path."""
    digest = hashlib.sha256()
    for path in SOURCES:
        digest.update(path.read_bytes())
    out = cache_dir() / f"ms_xdp-{digest.hexdigest()[:16]}.bpf.o"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    multiarch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True,
                               text=True).stdout.strip() or "x86_64-linux-gnu"
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    cmd = [clang, "-target", "bpf", "-O2", "-g", "-Wall", "-Werror",
           "-I", str(KMOD_INCLUDE), "-I", str(SOURCE_DIR),
           "-I", f"/usr/include/{multiarch}", "-c", str(SOURCE), "-o", str(tmp)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        raise XdpError(f"{clang} not found: scripts/setup installs it") from None
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise XdpError(f"compiling {SOURCE.name} failed:\n{done.stderr.strip()}")
    os.replace(tmp, out)
    return out


def _addr_bytes(addr: IPv4Address | IPv6Address | None) -> bytes:
    if addr is None:
        return bytes(16)
    return addr.packed.ljust(16, b"\0")


class XdpPrograms:
    """One loaded copy of the programs and their maps: one NIC's."""

    def __init__(self, obj_path: Path):
        self.ffi, self.lib = _native()
        self.path = Path(obj_path)
        self.log_path = cache_dir() / f"{self.path.stem}.verifier.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        obj = self.lib.msx_open(str(self.path).encode())
        err = self.lib.libbpf_get_error(obj)
        if obj == self.ffi.NULL or err:
            raise XdpError(f"cannot open {self.path}: {os.strerror(-err or errno_mod.EINVAL)}",
                           -err or errno_mod.EINVAL)
        ret = self.lib.msx_load(obj, str(self.log_path).encode())
        if ret < 0:
            self.lib.bpf_object__close(obj)
            raise XdpError(f"loading {self.path.name} failed ({os.strerror(-ret)}); "
                           f"the verifier's log is in {self.log_path}", -ret)
        self._obj = obj
        self._ncpus = _check(self.lib.msx_possible_cpus(), "possible CPUs")
        self._attached: list[tuple[int, int, int]] = []   # (ifindex, prog fd, flags)

    @classmethod
    def load(cls) -> "XdpPrograms":
        return cls(build_object())

    # ---- objects ----

    def prog_fd(self, name: str) -> int:
        if name not in PROGRAMS:
            raise XdpError(f"no program {name!r}: one of {', '.join(PROGRAMS)}")
        return _check(self.lib.msx_prog_fd(self._obj, name.encode()), name)

    def _map(self, name: str) -> int:
        return _check(self.lib.msx_map_fd(self._obj, name.encode()), f"map {name}")

    def _update(self, name: str, key, value) -> None:
        _check(self.lib.bpf_map_update_elem(self._map(name), key, value, 0),
               f"updating {name}")

    def _delete(self, name: str, key) -> bool:
        ret = self.lib.bpf_map_delete_elem(self._map(name), key)
        if ret == -errno_mod.ENOENT:
            return False
        _check(ret, f"deleting from {name}")
        return True

    # ---- configuration ----

    def set_iface(self, ifindex: int, mac: bytes) -> None:
        """The NIC: where TX goes and whose MAC frames must carry."""
        if len(mac) != 6:
            raise XdpError(f"a MAC address is 6 bytes, not {len(mac)}")
        cfg = self.ffi.new("struct ms_xdp_iface_cfg *", {"ifindex": ifindex, "mac": list(mac)})
        self._update("ms_iface_cfg", self.ffi.new("uint32_t *", 0), cfg)

    def _addr_key(self, addr: IPv4Address | IPv6Address):
        return self.ffi.new("struct ms_xdp_addr *", {
            "addr": list(_addr_bytes(addr)),
            "family": FAMILIES[addr.version]})

    def add_local_addr(self, addr: IPv4Address | IPv6Address) -> None:
        """An address configured on the NIC (a wildcard claim owns these)."""
        self._update("ms_local_addrs", self._addr_key(addr), self.ffi.new("uint8_t *", 1))

    def remove_local_addr(self, addr: IPv4Address | IPv6Address) -> bool:
        return self._delete("ms_local_addrs", self._addr_key(addr))

    def add_port(self, ifindex: int, max_rx_len: int, max_tx_len: int) -> None:
        """A port: the host end of its veth (its identity), the longest
        frame it takes and the longest it may send."""
        key = self.ffi.new("uint32_t *", ifindex)
        stats = self.ffi.new("struct ms_xdp_stats[]", self._ncpus)
        self._update("ms_port_stats", key, stats)
        self._update("ms_port_devs", key, key)
        self._update("ms_ports", key, self.ffi.new(
            "struct ms_xdp_port_cfg *", {"max_rx_len": max_rx_len, "max_tx_len": max_tx_len}))

    def remove_port(self, ifindex: int) -> None:
        """Forgets a port and every claim it holds."""
        for key, claim in self.claims():
            if claim == ifindex:
                self._delete("ms_claims", key)
        key = self.ffi.new("uint32_t *", ifindex)
        for name in ("ms_ports", "ms_port_devs", "ms_port_stats"):
            self._delete(name, key)

    def _claim_key(self, proto: str, addr: IPv4Address | IPv6Address | None, port: int,
                   version: int | None = None):
        if proto not in PROTOCOLS:
            raise XdpError(f"protocol must be tcp or udp, not {proto!r}")
        if not 0 < port < 65536:
            raise XdpError(f"port must be 1-65535, not {port}")
        version = addr.version if addr is not None else version
        if version not in FAMILIES:
            raise XdpError("a wildcard claim needs version=4 or version=6")
        return self.ffi.new("struct ms_xdp_key *", {
            "addr": list(_addr_bytes(addr)), "family": FAMILIES[version],
            "proto": PROTOCOLS[proto], "port": port})

    def claim(self, proto: str, addr: IPv4Address | IPv6Address | None, port: int,
              port_ifindex: int, *, version: int | None = None, sock_cookie: int = 0) -> None:
        """Gives (proto, addr, port) to the port; addr None is the wildcard
        of `version`.  The caller has checked the proof socket."""
        key = self._claim_key(proto, addr, port, version)
        value = self.ffi.new("struct ms_xdp_claim *", {
            "port_ifindex": port_ifindex, "sock_cookie": sock_cookie})
        self._update("ms_claims", key, value)

    def unclaim(self, proto: str, addr: IPv4Address | IPv6Address | None, port: int,
                *, version: int | None = None) -> bool:
        return self._delete("ms_claims", self._claim_key(proto, addr, port, version))

    def claims(self) -> list[tuple[object, int]]:
        """(struct ms_xdp_key *, owning port's ifindex) of every claim."""
        fd = self._map("ms_claims")
        key = self.ffi.new("struct ms_xdp_key *")
        nxt = self.ffi.new("struct ms_xdp_key *")
        value = self.ffi.new("struct ms_xdp_claim *")
        out, prev = [], self.ffi.NULL
        while self.lib.bpf_map_get_next_key(fd, prev, nxt) == 0:
            if self.lib.bpf_map_lookup_elem(fd, nxt, value) == 0:
                out.append((bytes(self.ffi.buffer(nxt)), value.port_ifindex))
            self.ffi.memmove(key, nxt, self.ffi.sizeof(key[0]))
            prev = key
        return [(self._key_from_bytes(k), ifx) for k, ifx in out]

    def _key_from_bytes(self, raw: bytes):
        key = self.ffi.new("struct ms_xdp_key *")
        self.ffi.memmove(key, raw, len(raw))
        return key

    # ---- counters ----

    def iface_stats(self) -> dict[str, int]:
        """The NIC's counters, summed over CPUs, by MS_STAT_* name."""
        fd = self._map("ms_iface_stats")
        values = self.ffi.new("uint64_t[]", self._ncpus)
        index = self.ffi.new("uint32_t *")
        out = {}
        for i, name in STAT_NAMES.items():
            index[0] = i
            _check(self.lib.bpf_map_lookup_elem(fd, index, values), "reading ms_iface_stats")
            out[name] = sum(values)
        return out

    def port_stats(self, ifindex: int) -> dict[str, int]:
        """A port's counters, summed over CPUs, by MS_STAT_* name."""
        values = self.ffi.new("struct ms_xdp_stats[]", self._ncpus)
        _check(self.lib.bpf_map_lookup_elem(self._map("ms_port_stats"),
                                            self.ffi.new("uint32_t *", ifindex), values),
               f"reading the counters of port {ifindex}")
        return {name: sum(values[cpu].c[i] for cpu in range(self._ncpus))
                for i, name in STAT_NAMES.items()}

    # ---- running ----

    def test_run(self, prog: str, frame: bytes, *, ingress_ifindex: int = 0,
                 repeat: int = 1) -> tuple[str, int]:
        """Runs a program once (or `repeat` times) on `frame` with
        BPF_PROG_TEST_RUN: its verdict ("pass", "drop", "redirect", ...)
        and the mean time per run in ns.  Redirects are not carried out."""
        retval = self.ffi.new("uint32_t *")
        duration = self.ffi.new("uint32_t *")
        _check(self.lib.msx_test_run(self.prog_fd(prog), frame, len(frame), ingress_ifindex,
                                     repeat, retval, duration), f"test run of {prog}")
        return VERDICTS.get(retval[0], str(retval[0])), duration[0]

    def _mode_flags(self, mode: str) -> int:
        if mode not in MODES:
            raise XdpError(f"mode must be native or generic, not {mode!r}")
        return self.lib.XDP_FLAGS_DRV_MODE if mode == "native" else self.lib.XDP_FLAGS_SKB_MODE

    def attach(self, prog: str, ifindex: int, mode: str = "native") -> None:
        """Attaches a program to an interface; another XDP program already
        there is an error (EBUSY), never replaced."""
        flags = self._mode_flags(mode)
        fd = self.prog_fd(prog)
        ret = self.lib.msx_attach(ifindex, fd, flags)
        if ret == -errno_mod.EBUSY or ret == -errno_mod.EEXIST:
            raise XdpError(f"interface {ifindex} already has an XDP program: not replaced",
                           errno_mod.EBUSY)
        _check(ret, f"attaching {prog} to interface {ifindex} ({mode})")
        self._attached.append((ifindex, fd, flags))

    def attached_id(self, ifindex: int, mode: str = "native") -> int:
        """The id of the XDP program on the interface in that mode, 0 if none."""
        prog_id = self.ffi.new("uint32_t *")
        _check(self.lib.msx_query(ifindex, self._mode_flags(mode), prog_id),
               f"querying interface {ifindex}")
        return prog_id[0]

    def detach(self, prog: str, ifindex: int, mode: str = "native") -> None:
        """Detaches our program from the interface (not anyone else's)."""
        flags = self._mode_flags(mode)
        fd = self.prog_fd(prog)
        _check(self.lib.msx_detach(ifindex, fd, flags),
               f"detaching {prog} from interface {ifindex}")
        self._attached = [a for a in self._attached if a != (ifindex, fd, flags)]

    def close(self) -> None:
        """Detaches what this object attached (where the interface still
        exists) and frees the programs and maps."""
        for ifindex, fd, flags in self._attached:
            self.lib.msx_detach(ifindex, fd, flags)
        self._attached = []
        if self._obj is not None:
            self.lib.bpf_object__close(self._obj)
            self._obj = None

    def __enter__(self) -> "XdpPrograms":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
