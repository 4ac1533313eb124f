"""The kernel module's ICMP error classifier (multistack.classify.classify_icmp_error,
the same C code multistack.ko runs on every received ICMP message): an error
about a TCP/UDP packet this host sent names the quoted SOURCE tuple, the one
the module looks up; anything else says why it stays with the OS."""

from ipaddress import IPv4Address, IPv6Address

from hypothesis import given, strategies as st

from multistack.classify import classify, classify_icmp_error
from stacks.wire import ipv6
from stacks.wire.frame import build_frame
from stacks.wire.icmpv4 import DestUnreachable, Icmpv4Repr, Icmpv4Type
from stacks.wire.icmpv6 import Icmpv6Repr, Icmpv6Type
from stacks.wire.ipv4 import Ipv4Repr
from stacks.wire.ipv6 import Ipv6ExtensionHeader, Ipv6Repr
from stacks.wire.tcp import TcpFlags, TcpRepr
from stacks.wire.udp import UdpRepr

from .strategies import frame_layers, ipv4_addresses, ipv6_addresses, tcp_reprs, udp_reprs

MAC_US, MAC_ROUTER = b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\x02"
US4, PEER4, ROUTER4 = IPv4Address("10.0.0.1"), IPv4Address("10.9.0.2"), IPv4Address("10.0.0.254")
US6, PEER6, ROUTER6 = IPv6Address("fd00::1"), IPv6Address("fd09::2"), IPv6Address("fd00::fe")


def eth(ethertype: int, packet: bytes) -> bytes:
    return MAC_US + MAC_ROUTER + ethertype.to_bytes(2, "big") + packet


def tcp4(src=US4, dst=PEER4, *, payload=bytes(1400), **ip) -> bytes:
    """The packet we sent: TCP 80 -> 50000 with DF, as UTCP does."""
    seg = TcpRepr(80, 50000, 1000, 1, TcpFlags.ACK, 100, payload=payload).emit(src, dst)
    return Ipv4Repr(src, dst, 6, dont_fragment=True, **ip).emit(seg)


def tcp6(src=US6, dst=PEER6, *, payload=bytes(1400), ext=()) -> bytes:
    seg = TcpRepr(80, 50000, 1000, 1, TcpFlags.ACK, 100, payload=payload).emit(src, dst)
    return Ipv6Repr(src, dst, 6, extension_headers=tuple(ext)).emit(seg)


def icmp4(icmp: Icmpv4Repr, dst=US4, src=ROUTER4, **ip) -> bytes:
    return eth(0x0800, Ipv4Repr(src, dst, 1, **ip).emit(icmp.emit()))


def icmp6(icmp: Icmpv6Repr, dst=US6, src=ROUTER6, ext=()) -> bytes:
    return eth(0x86DD, Ipv6Repr(src, dst, 58, extension_headers=tuple(ext)).emit(
        icmp.emit(src, dst)))


def frag_needed(quote: bytes, **kw) -> bytes:
    return icmp4(Icmpv4Repr.dest_unreachable(DestUnreachable.FRAGMENTATION_NEEDED, quote, 1280),
                 **kw)


def too_big(quote: bytes, **kw) -> bytes:
    return icmp6(Icmpv6Repr.packet_too_big(1280, quote), **kw)


# -- errors the module hands to the port --------------------------------------


def test_fragmentation_needed_names_the_quoted_source():
    quote = tcp4()[:548]                        # what Linux quotes: up to 576 bytes in all
    frame = frag_needed(quote)
    r = classify_icmp_error(frame)
    assert r.verdict == "ok" and not r.malformed
    assert (r.family, r.proto, r.icmp_type, r.icmp_code) == (4, "tcp", 3, 4)
    assert (r.src, r.src_port, r.dst, r.dst_port) == (US4, 80, PEER4, 50000)
    assert (r.l3_offset, r.icmp_offset, r.quote_offset) == (14, 34, 42)
    assert r.icmp_length == 8 + len(quote)
    assert frame[r.quote_offset:] == quote
    # the frame classifier still calls it "not TCP/UDP": TX refuses it, RX never
    # looks up its destination
    assert classify(frame).verdict == "not-tcp-udp"


def test_packet_too_big_names_the_quoted_source():
    frame = too_big(tcp6()[:1232])
    r = classify_icmp_error(frame)
    assert r.verdict == "ok"
    assert (r.family, r.proto, r.icmp_type, r.icmp_code) == (6, "tcp", 2, 0)
    assert (r.src, r.src_port, r.dst, r.dst_port) == (US6, 80, PEER6, 50000)
    assert (r.icmp_offset, r.quote_offset) == (54, 62)


def test_the_minimum_quote_is_the_ip_header_and_eight_bytes():
    assert classify_icmp_error(frag_needed(tcp4()[:28])).verdict == "ok"
    assert classify_icmp_error(too_big(tcp6()[:48])).verdict == "ok"
    options = tcp4(options=b"\x01\x01\x01\x00")          # IHL 6
    assert classify_icmp_error(frag_needed(options[:32])).verdict == "ok"
    assert classify_icmp_error(frag_needed(options[:31])).verdict == "bad-icmp-quote"
    assert classify_icmp_error(frag_needed(tcp4()[:27])).verdict == "bad-icmp-quote"
    assert classify_icmp_error(too_big(tcp6()[:47])).verdict == "bad-icmp-quote"
    assert classify_icmp_error(frag_needed(b"")).verdict == "bad-icmp-quote"


def test_every_error_type_and_code():
    udp = Ipv4Repr(US4, PEER4, 17).emit(UdpRepr(5353, 53, b"query").emit(US4, PEER4))
    for code in range(16):
        r = classify_icmp_error(icmp4(Icmpv4Repr.dest_unreachable(code, udp)))
        assert (r.verdict, r.proto, r.src_port, r.icmp_code) == ("ok", "udp", 5353, code)
    assert classify_icmp_error(icmp4(Icmpv4Repr.time_exceeded(0, udp))).verdict == "ok"
    param = Icmpv4Repr(Icmpv4Type.PARAMETER_PROBLEM, 0, pointer=9, data=udp)
    assert classify_icmp_error(icmp4(param)).verdict == "ok"
    quote = tcp6()[:200]
    for icmp in (Icmpv6Repr.dest_unreachable(4, quote), Icmpv6Repr(3, 0, data=quote),
                 Icmpv6Repr(Icmpv6Type.PARAMETER_PROBLEM, 0, pointer=6, data=quote)):
        assert classify_icmp_error(icmp6(icmp)).verdict == "ok", icmp


def test_a_first_fragment_is_quoted_fine():
    first = tcp4(more_fragments=True)
    assert classify_icmp_error(frag_needed(first[:100])).verdict == "ok"


def test_outer_extension_headers_are_walked():
    hop = Ipv6ExtensionHeader(ipv6.HOP_BY_HOP, bytes(6))
    assert classify_icmp_error(too_big(tcp6()[:100], ext=[hop])).verdict == "ok"


# -- what stays with the OS ---------------------------------------------------


def test_other_icmp_is_not_an_error():
    assert classify_icmp_error(icmp4(Icmpv4Repr.echo_request(1, 2, b"ping"))).verdict \
        == "not-icmp-error"
    redirect = Icmpv4Repr(5, 1, data=bytes(4) + tcp4()[:28])
    assert classify_icmp_error(icmp4(redirect)).verdict == "not-icmp-error"
    quench = Icmpv4Repr(4, 0, data=bytes(4) + tcp4()[:28])
    assert classify_icmp_error(icmp4(quench)).verdict == "not-icmp-error"
    for icmp in (Icmpv6Repr.echo_request(1, 2, b"ping"),
                 Icmpv6Repr(Icmpv6Type.NEIGHBOR_SOLICIT, 0, target=US6),
                 Icmpv6Repr(134, 0, data=bytes(12)),
                 Icmpv6Repr(137, 0, data=bytes(36) + tcp6()[:48])):       # redirect
        r = classify_icmp_error(icmp6(icmp))
        assert r.verdict == "not-icmp-error" and r.icmp_type == icmp.type


def test_tcp_udp_and_other_protocols_are_not_icmp_errors():
    assert classify_icmp_error(eth(0x0800, tcp4())).verdict == "not-icmp-error"
    assert classify_icmp_error(eth(0x86DD, tcp6())).verdict == "not-icmp-error"
    gre = Ipv4Repr(ROUTER4, US4, 47).emit(bytes(8))
    assert classify_icmp_error(eth(0x0800, gre)).verdict == "not-icmp-error"
    # ICMPv6 numbers over IPv4 and ICMPv4's over IPv6 are not ICMP
    wrong = Ipv4Repr(ROUTER4, US4, 58).emit(Icmpv4Repr.dest_unreachable(3, tcp4()[:28]).emit())
    assert classify_icmp_error(eth(0x0800, wrong)).verdict == "not-icmp-error"
    assert classify_icmp_error(eth(0x0806, bytes(28))).verdict == "not-ip"


def test_the_quote_must_be_a_tcp_or_udp_packet_of_ours():
    icmp_quote = Ipv4Repr(US4, PEER4, 1).emit(Icmpv4Repr.echo_request(1, 1, b"x").emit())
    assert classify_icmp_error(frag_needed(icmp_quote)).verdict == "not-tcp-udp"
    later = tcp4(fragment_offset=1480)
    assert classify_icmp_error(frag_needed(later[:28])).verdict == "fragment"
    # quoted extension headers are not followed
    dest = Ipv6ExtensionHeader(ipv6.DEST_OPTIONS, bytes(6))
    assert classify_icmp_error(too_big(tcp6(ext=[dest])[:100])).verdict == "not-tcp-udp"
    frag = Ipv6ExtensionHeader.fragment(0, True, 7)
    assert classify_icmp_error(too_big(tcp6(ext=[frag])[:100])).verdict == "not-tcp-udp"
    # an error about someone else's packet, sent to us
    r = classify_icmp_error(frag_needed(tcp4(src=IPv4Address("10.0.0.7"))[:28]))
    assert r.verdict == "icmp-not-ours" and not r.malformed
    r = classify_icmp_error(too_big(tcp6(src=IPv6Address("fd00::7"))[:48]))
    assert r.verdict == "icmp-not-ours"


def test_malformed_quotes_and_headers():
    bad = "bad-icmp-quote"
    # the other family's packet
    assert classify_icmp_error(frag_needed(tcp6()[:48])).verdict == bad
    assert classify_icmp_error(too_big(tcp4()[:48])).verdict == bad
    quote = bytearray(tcp4()[:28])
    quote[0] = 0x44                                  # IHL 4
    assert classify_icmp_error(frag_needed(bytes(quote))).verdict == bad
    quote = bytearray(tcp4()[:28])
    quote[2:4] = (27).to_bytes(2, "big")             # total length short of the ports
    assert classify_icmp_error(frag_needed(bytes(quote))).verdict == bad
    quote = bytearray(tcp6()[:48])
    quote[4:6] = (7).to_bytes(2, "big")              # payload length short of the ports
    assert classify_icmp_error(too_big(bytes(quote))).verdict == bad
    # an ICMP message shorter than its header
    short = eth(0x0800, Ipv4Repr(ROUTER4, US4, 1).emit(b"\x03\x04\0\0"))
    assert classify_icmp_error(short).verdict == "bad-icmp"
    assert classify_icmp_error(short).malformed
    # the outer header is checked as for any frame
    frame = bytearray(frag_needed(tcp4()[:28]))
    frame[24] ^= 1                                   # IPv4 header checksum
    assert classify_icmp_error(bytes(frame)).verdict == "bad-ip-checksum"
    outer_fragment = frag_needed(tcp4()[:28], more_fragments=True)
    assert classify_icmp_error(outer_fragment).verdict == "fragment"


def test_the_icmp_checksum_is_left_to_the_stack():
    frame = bytearray(frag_needed(tcp4()[:28]))
    frame[36] ^= 0xFF
    assert classify_icmp_error(bytes(frame)).verdict == "ok"


def test_vlan_only_when_asked():
    quote = tcp4()[:28]
    plain = frag_needed(quote)
    tagged = plain[:12] + b"\x81\x00\x00\x07" + plain[12:]
    assert classify_icmp_error(tagged).verdict == "vlan"
    r = classify_icmp_error(tagged, vlan=True)
    assert (r.verdict, r.l3_offset, r.quote_offset) == ("ok", 18, 46)


# -- properties ---------------------------------------------------------------


@st.composite
def errors_about_our_packets(draw):
    """(frame, quoted src, dst, proto, sport, dport): an ICMP error quoting a
    TCP/UDP packet we sent, cut where a router might cut it."""
    v6 = draw(st.booleans())
    proto = draw(st.sampled_from([6, 17]))
    transport = draw(tcp_reprs() if proto == 6 else udp_reprs)
    addresses = ipv6_addresses if v6 else ipv4_addresses
    us, peer, router = draw(addresses), draw(addresses), draw(addresses)
    if v6:
        packet = Ipv6Repr(us, peer, proto).emit(transport.emit(us, peer))
        header = 40
    else:
        packet = Ipv4Repr(us, peer, proto, ident=draw(st.integers(0, 0xFFFF)),
                          dont_fragment=draw(st.booleans())).emit(transport.emit(us, peer))
        header = 20
    quote = packet[:draw(st.integers(header + 8, len(packet)))]
    if v6:
        icmp = draw(st.sampled_from([Icmpv6Repr.packet_too_big(1280, quote),
                                     Icmpv6Repr.dest_unreachable(draw(st.integers(0, 6)), quote),
                                     Icmpv6Repr(3, draw(st.integers(0, 1)), data=quote)]))
        frame = eth(0x86DD, Ipv6Repr(router, us, 58).emit(icmp.emit(router, us)))
    else:
        icmp = draw(st.sampled_from([
            Icmpv4Repr.dest_unreachable(draw(st.integers(0, 15)), quote, 1280),
            Icmpv4Repr.time_exceeded(draw(st.integers(0, 1)), quote)]))
        frame = eth(0x0800, Ipv4Repr(router, us, 1).emit(icmp.emit()))
    return frame, us, peer, proto, transport.src_port, transport.dst_port


@given(errors_about_our_packets(), st.data())
def test_errors_about_our_packets_name_them(error, data):
    frame, us, peer, proto, sport, dport = error
    r = classify_icmp_error(frame)
    assert r.verdict == "ok"
    assert (r.src, r.dst, r.proto) == (us, peer, {6: "tcp", 17: "udp"}[proto])
    assert (r.src_port, r.dst_port) == (sport, dport)
    assert r.l3_offset + (20 if us.version == 4 else 40) == r.icmp_offset
    assert r.icmp_offset + r.icmp_length == len(frame)
    # cut short anywhere, the frame is malformed (the outer lengths no longer hold)
    cut = data.draw(st.integers(0, len(frame) - 1), label="cut")
    assert classify_icmp_error(frame[:cut]).malformed


@given(frame_layers(), st.booleans())
def test_no_frame_is_both_a_frame_to_a_tuple_and_an_error_about_one(layers, vlan):
    frame = build_frame(*layers)
    first, second = classify(frame, vlan=vlan), classify_icmp_error(frame, vlan=vlan)
    assert not (first.verdict == "ok" and second.verdict == "ok")
    if first.verdict == "ok":
        assert second.verdict == "not-icmp-error"
    elif first.verdict not in ("not-tcp-udp",):
        # outer verdicts come through unchanged
        assert second.verdict == first.verdict
