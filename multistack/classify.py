"""The kernel module's frame classifier, called from Python.

The same C code multistack.ko runs on every received frame (RX demux) and
on every frame a port sends (TX validation), compiled into the cffi
extension from kmod/include/multistack_classify.h::

    result = classify(frame)
    if result.verdict == "ok":
        result.proto, result.dst, result.dst_port   # the tuple the module looks up

Verdicts: ``"ok"``; benign ones the module passes to the OS stack
(``"not-ip"``, ``"vlan"``, ``"not-tcp-udp"``, ``"fragment"``); and
malformed ones (``result.malformed``), never delivered and refused on TX;
among those ``"ipv6-routing-type-0"``, an IPv6 routing header of type 0
(deprecated by RFC 5095).

ICMP errors about a packet a port sent go to that port; the module picks
them with the classifier's second function::

    error = classify_icmp_error(frame)
    if error.verdict == "ok":
        error.proto, error.src, error.src_port   # the quoted source: the tuple looked up

Besides the verdicts above it says ``"not-icmp-error"`` (TCP/UDP, echo,
neighbour discovery, redirects, ...) and ``"icmp-not-ours"`` (the quoted
source is not the error's destination); ``"bad-icmp"`` and
``"bad-icmp-quote"`` are malformed.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from ._native import ffi, lib

VERDICTS = {
    lib.MS_CLS_OK: "ok",
    lib.MS_CLS_NOT_IP: "not-ip",
    lib.MS_CLS_VLAN: "vlan",
    lib.MS_CLS_NOT_TCPUDP: "not-tcp-udp",
    lib.MS_CLS_FRAGMENT: "fragment",
    lib.MS_CLS_HDR_BEYOND: "headers-beyond",
    lib.MS_CLS_TRUNC_ETH: "truncated-ethernet",
    lib.MS_CLS_TRUNC_L3: "truncated-ip",
    lib.MS_CLS_BAD_VERSION: "bad-ip-version",
    lib.MS_CLS_BAD_IHL: "bad-ihl",
    lib.MS_CLS_BAD_TOTLEN: "bad-ip-length",
    lib.MS_CLS_BAD_CSUM: "bad-ip-checksum",
    lib.MS_CLS_TRUNC_L4: "truncated-transport",
    lib.MS_CLS_BAD_L4: "bad-transport-header",
    lib.MS_CLS_BAD_EXTHDR: "bad-ipv6-extension-header",
    lib.MS_CLS_BAD_FLAGS: "bad-flags",
    lib.MS_CLS_RH0: "ipv6-routing-type-0",
    lib.MS_CLS_NOT_ICMP_ERR: "not-icmp-error",
    lib.MS_CLS_ICMP_NOT_OURS: "icmp-not-ours",
    lib.MS_CLS_BAD_ICMP: "bad-icmp",
    lib.MS_CLS_BAD_QUOTE: "bad-icmp-quote",
}
PROTOCOLS = {6: "tcp", 17: "udp"}


@dataclass(frozen=True)
class Classification:
    """What the classifier found.  Addresses, ports and offsets are None unless
    the verdict is "ok"."""

    verdict: str
    code: int
    family: int | None = None        # 4 or 6
    proto: str | None = None         # "tcp" or "udp"
    src: IPv4Address | IPv6Address | None = None
    dst: IPv4Address | IPv6Address | None = None
    src_port: int | None = None
    dst_port: int | None = None
    vlan_tci: int | None = None      # only when asked to parse through a tag
    l3_offset: int | None = None
    l4_offset: int | None = None
    l3_length: int | None = None
    l4_length: int | None = None

    @property
    def malformed(self) -> bool:
        return self.code >= lib.MS_CLS_MALFORMED_MIN


def _tuple_fields(out) -> dict:
    """family, proto, addresses and ports of a classifier result."""
    if out.family == 2:
        family, make, size = 4, IPv4Address, 4
    else:
        family, make, size = 6, IPv6Address, 16
    return {"family": family, "proto": PROTOCOLS[out.proto],
            "src": make(bytes(ffi.buffer(out.src_addr, size))),
            "dst": make(bytes(ffi.buffer(out.dst_addr, size))),
            "src_port": out.src_port, "dst_port": out.dst_port}


def classify(frame: bytes | bytearray | memoryview, *, vlan: bool = False) -> Classification:
    """Classify one Ethernet frame (from the destination MAC); ``vlan`` parses
    through a single 802.1Q/802.1ad tag instead of stopping at it."""
    data = ffi.from_buffer("uint8_t[]", frame)
    out = ffi.new("struct ms_cls_result *")
    code = lib.ms_classify(data, len(data), lib.MS_CLS_F_VLAN if vlan else 0, out)
    verdict = VERDICTS.get(code, f"unknown-{code}")
    if code != lib.MS_CLS_OK:
        return Classification(verdict, code)
    return Classification(
        verdict, code, **_tuple_fields(out),
        vlan_tci=out.vlan_tci if vlan else None,
        l3_offset=out.l3_off, l4_offset=out.l4_off, l3_length=out.l3_len,
        l4_length=out.l4_len)


@dataclass(frozen=True)
class IcmpErrorClassification:
    """What the classifier found in an ICMP error.  ``src``/``src_port`` are
    the quoted packet's source (the tuple whose port gets the error),
    ``dst``/``dst_port`` its destination; they and the offsets are None unless
    the verdict is "ok".  ``icmp_type``/``icmp_code`` are set once the ICMP
    header was read."""

    verdict: str
    code: int
    icmp_type: int | None = None
    icmp_code: int | None = None
    family: int | None = None        # 4 or 6
    proto: str | None = None         # "tcp" or "udp": the quoted packet's
    src: IPv4Address | IPv6Address | None = None
    dst: IPv4Address | IPv6Address | None = None
    src_port: int | None = None
    dst_port: int | None = None
    l3_offset: int | None = None     # the outer IP header
    icmp_offset: int | None = None
    icmp_length: int | None = None
    quote_offset: int | None = None  # the quoted IP header

    @property
    def malformed(self) -> bool:
        return self.code >= lib.MS_CLS_MALFORMED_MIN


def classify_icmp_error(frame: bytes | bytearray | memoryview, *,
                        vlan: bool = False) -> IcmpErrorClassification:
    """Classify one Ethernet frame as the module does an ICMP error about a
    port's own packet (``ms_classify_icmp``)."""
    data = ffi.from_buffer("uint8_t[]", frame)
    out = ffi.new("struct ms_cls_icmp_result *")
    code = lib.ms_classify_icmp(data, len(data), lib.MS_CLS_F_VLAN if vlan else 0, out)
    verdict = VERDICTS.get(code, f"unknown-{code}")
    typed = out.icmp_off != 0 and out.icmp_len >= 8
    kw = {"icmp_type": out.icmp_type, "icmp_code": out.icmp_code} if typed else {}
    if code != lib.MS_CLS_OK:
        return IcmpErrorClassification(verdict, code, **kw)
    return IcmpErrorClassification(
        verdict, code, **_tuple_fields(out),
        l3_offset=out.l3_off, icmp_offset=out.icmp_off, icmp_length=out.icmp_len,
        quote_offset=out.quote_off, **kw)
