"""What the XDP tests share: a private namespace the test process enters,
frames, and the module's policy (ms_rx.c, ms_tx.c) written down as the
oracle the programs are compared with, on top of the shared classifier
(multistack.classify: the same C code the programs and the module run)."""

from __future__ import annotations

import ctypes
import os
import socket
import struct
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from multistack._native import ffi, lib
from multistack.classify import classify, classify_icmp_error
from multistack.tap import create_netns, delete_netns, ip, unique_netns_name

CLONE_NEWNET = 0x40000000
NIC_MAC = bytes.fromhex("020000000a01")
PEER_MAC = bytes.fromhex("020000000a02")
MIN_FRAME = 14 + 20 + 8


@contextmanager
def inside_new_netns(prefix: str = "msxdp"):
    """Creates a namespace and moves this thread into it (BPF map updates
    and test runs resolve ifindexes in the caller's namespace); yields its
    name, then moves back and deletes it."""
    libc = ctypes.CDLL(None, use_errno=True)
    name = unique_netns_name(prefix)
    create_netns(name)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into the test namespace")
        try:
            yield name
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home")
    finally:
        os.close(target)
        os.close(home)
        delete_netns(name)


def ifindex(name: str) -> int:
    # not /sys/class/net: sysfs shows the namespace it was mounted in
    return socket.if_nametoindex(name)


def add_veth(a: str, b: str) -> tuple[int, int]:
    ip("link", "add", a, "type", "veth", "peer", "name", b)
    ip("link", "set", a, "up")
    ip("link", "set", b, "up")
    return ifindex(a), ifindex(b)


# ---- frames ----

def csum(data: bytes) -> int:
    """The Internet checksum, by the project's own (tests/unit/test_checksum.py)."""
    return lib.ms_csum_fold(lib.ms_csum_partial(ffi.from_buffer(data), len(data), 0))


def ipv4_header(proto: int, src, dst, payload_len: int, *, frag: int = 0,
                options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + payload_len, 1, frag, 64,
                      proto, 0, IPv4Address(src).packed, IPv4Address(dst).packed) + options
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]


def l4(proto: int, sport: int, dport: int, payload: bytes) -> bytes:
    if proto == 17:
        return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x18, 65535, 0, 0) + payload


def frame4(proto: int, src, sport: int, dst, dport: int, payload: bytes = b"x" * 18, *,
           dst_mac: bytes = NIC_MAC, src_mac: bytes = PEER_MAC, frag: int = 0,
           options: bytes = b"") -> bytes:
    seg = l4(proto, sport, dport, payload)
    return (dst_mac + src_mac + b"\x08\x00"
            + ipv4_header(proto, src, dst, len(seg), frag=frag, options=options) + seg)


def frame6(proto: int, src, sport: int, dst, dport: int, payload: bytes = b"x" * 18, *,
           dst_mac: bytes = NIC_MAC, src_mac: bytes = PEER_MAC, ext: bytes = b"",
           first_nh: int | None = None) -> bytes:
    seg = l4(proto, sport, dport, payload)
    nh = proto if first_nh is None else first_nh
    hdr = struct.pack("!IHBB16s16s", 6 << 28, len(ext) + len(seg), nh, 64,
                      IPv6Address(src).packed, IPv6Address(dst).packed)
    return dst_mac + src_mac + b"\x86\xdd" + hdr + ext + seg


def icmp4_error(src, dst, quoted: bytes, *, dst_mac: bytes = NIC_MAC,
                src_mac: bytes = PEER_MAC) -> bytes:
    """ICMPv4 port unreachable from src to dst quoting the IP packet `quoted`."""
    body = struct.pack("!BBHI", 3, 3, 0, 0) + quoted
    body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    return dst_mac + src_mac + b"\x08\x00" + ipv4_header(1, src, dst, len(body)) + body


# ---- the module's policy, as the oracle ----

@dataclass
class Config:
    """What is in the maps, as the test put it there."""

    nic_mac: bytes = NIC_MAC
    local: set = field(default_factory=set)                 # addresses on the NIC
    claims: dict = field(default_factory=dict)              # (proto, version, addr|None, port) -> ifindex
    ports: dict = field(default_factory=dict)               # ifindex -> (max_rx_len, max_tx_len)

    def owner(self, proto: str, addr, port: int) -> int | None:
        """ms_table_owner: exact, else the wildcard while addr is local."""
        if addr.packed == bytes(len(addr.packed)):
            return None                 # the wildcard's own key: no frame is to or from it
        exact = self.claims.get((proto, addr.version, addr, port))
        if exact is not None:
            return exact
        wild = self.claims.get((proto, addr.version, None, port))
        return wild if wild is not None and addr in self.local else None


@dataclass
class Expect:
    verdict: str                                            # "pass", "drop", "redirect"
    iface: dict                                             # counter deltas of the NIC
    port: int | None = None                                 # whose counters move too
    port_deltas: dict = field(default_factory=dict)


def expect_rx(cfg: Config, frame: bytes) -> Expect:
    def passed(reason: str | None = None) -> Expect:
        deltas = {"rx_passed": 1}
        if reason:
            deltas[reason] = 1
        return Expect("pass", deltas)

    c = classify(frame)
    if c.verdict == "vlan":
        return passed("rx_vlan")
    if len(frame) >= 14 and not frame[0] & 1 and frame[:6] != cfg.nic_mac:
        return passed()                                     # PACKET_OTHERHOST
    icmp = False
    if c.verdict == "not-tcp-udp":
        e = classify_icmp_error(frame)
        if e.verdict != "ok":
            return passed("rx_malformed" if e.malformed else "rx_not_ip")
        icmp, owner = True, cfg.owner(e.proto, e.src, e.src_port)
    elif c.verdict != "ok":
        if c.malformed:
            return passed("rx_malformed")
        return passed("rx_fragment" if c.verdict == "fragment" else "rx_not_ip")
    else:
        owner = cfg.owner(c.proto, c.dst, c.dst_port)
    if owner is None:
        return passed("rx_not_ip" if icmp else None)
    if owner not in cfg.ports:
        return passed()
    if len(frame) > cfg.ports[owner][0]:
        return Expect("drop", {"rx_drop_size": 1}, owner, {"rx_drop_size": 1})
    deltas = {"rx_delivered": 1, "rx_bytes": len(frame)}
    if icmp:
        deltas["rx_icmp_delivered"] = 1
    return Expect("redirect", deltas, owner, dict(deltas))


def expect_tx(cfg: Config, port: int, frame: bytes) -> Expect:
    def reject(reason: str) -> Expect:
        return Expect("drop", {reason: 1}, port, {reason: 1})

    if port not in cfg.ports:
        return Expect("drop", {"tx_error": 1})
    if len(frame) < MIN_FRAME:
        return reject("tx_rej_runt")
    if len(frame) > cfg.ports[port][1]:
        return reject("tx_rej_oversize")
    c = classify(frame)
    if c.verdict != "ok":
        return reject("tx_rej_fragment" if c.verdict == "fragment" else "tx_rej_malformed")
    if frame[6:12] != cfg.nic_mac:
        return reject("tx_rej_bad_mac")
    owner = cfg.owner(c.proto, c.src, c.src_port)
    if owner is None:
        return reject("tx_rej_not_owned")
    if owner != port:
        return reject("tx_rej_other_port")
    deltas = {"tx_sent": 1, "tx_bytes": len(frame)}
    return Expect("redirect", deltas, port, dict(deltas))


def deltas(before: dict, after: dict) -> dict:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}
