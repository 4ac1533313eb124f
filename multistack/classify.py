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


def classify(frame: bytes | bytearray | memoryview, *, vlan: bool = False) -> Classification:
    """Classify one Ethernet frame (from the destination MAC); ``vlan`` parses
    through a single 802.1Q/802.1ad tag instead of stopping at it."""
    data = ffi.from_buffer("uint8_t[]", frame)
    out = ffi.new("struct ms_cls_result *")
    code = lib.ms_classify(data, len(data), lib.MS_CLS_F_VLAN if vlan else 0, out)
    verdict = VERDICTS.get(code, f"unknown-{code}")
    if code != lib.MS_CLS_OK:
        return Classification(verdict, code)
    if out.family == 2:
        family, make, size = 4, IPv4Address, 4
    else:
        family, make, size = 6, IPv6Address, 16
    return Classification(
        verdict, code, family=family, proto=PROTOCOLS[out.proto],
        src=make(bytes(ffi.buffer(out.src_addr, size))),
        dst=make(bytes(ffi.buffer(out.dst_addr, size))),
        src_port=out.src_port, dst_port=out.dst_port,
        vlan_tci=out.vlan_tci if vlan else None,
        l3_offset=out.l3_off, l4_offset=out.l4_off, l3_length=out.l3_len,
        l4_length=out.l4_len)
