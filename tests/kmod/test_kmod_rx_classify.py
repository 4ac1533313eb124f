"""RX classification: malformed frames are never delivered to a port;
fragments and VLAN-tagged frames go to the OS stack (and are counted), as
kmod/include/uapi/multistack.h documents."""

import socket
import struct

import pytest

import kmodutil as ku

UDP = socket.IPPROTO_UDP


@pytest.fixture
def rx(topo):
    p = topo.port()
    s = topo.track(p.claim("udp", topo.a4, 9300))
    s.setblocking(False)
    raw = topo.track(ku.peer_raw_sender())
    return topo, p, s, raw


def _good(topo, payload=b"good"):
    return ku.frame(topo.mac_b, topo.mac_a, UDP, topo.b4, topo.a4, 9301, 9300, payload)


def test_raw_good_frame_is_delivered(rx):
    topo, p, _, raw = rx
    raw.send(_good(topo))
    assert [ku.parse(f)["payload"] for f in ku.wait_frames(p, 1)] == [b"good"]


def _bad_ip_checksum(topo):
    fr = bytearray(_good(topo, b"badsum"))
    fr[24] ^= 0x55
    return bytes(fr)


def _bad_ihl(topo):
    fr = bytearray(_good(topo, b"badihl"))
    fr[14] = 0x44                                   # IHL 4 < 5
    return bytes(fr)


def _total_length_too_long(topo):
    fr = bytearray(_good(topo, b"toolong"))
    struct.pack_into("!H", fr, 16, 1400)
    struct.pack_into("!H", fr, 24, 0)
    struct.pack_into("!H", fr, 24, ku.csum(bytes(fr[14:34])))
    return bytes(fr)


def _truncated_udp(topo):
    return _good(topo, b"trunc")[:14 + 20 + 4]


def _udp_length_lies(topo):
    fr = bytearray(_good(topo, b"udplen"))
    struct.pack_into("!H", fr, 14 + 20 + 4, 200)   # UDP length past the packet
    return bytes(fr)


@pytest.mark.parametrize("make", [_bad_ip_checksum, _bad_ihl, _total_length_too_long,
                                  _truncated_udp, _udp_length_lies])
def test_malformed_frames_are_never_delivered(rx, make):
    topo, p, _, raw = rx
    before = p.raw_stats()[1]
    raw.send(make(topo))
    assert ku.quiet_for(p, 0.4) == []
    after = p.raw_stats()[1]
    # Counted as malformed, and passed to the OS stack (which drops it in turn;
    # rx_passed also counts the link's own traffic, such as IPv6 neighbour discovery).
    assert after["rx_malformed"] == before["rx_malformed"] + 1
    assert after["rx_passed"] > before["rx_passed"]
    # The port still gets good frames.
    raw.send(_good(topo))
    assert [ku.parse(f)["payload"] for f in ku.wait_frames(p, 1)] == [b"good"]


def test_fragments_go_to_the_os_stack(rx):
    topo, p, s, _ = rx
    before = p.raw_stats()[1]
    tx = topo.peer()
    tx.setsockopt(socket.IPPROTO_IP, 10, 0)         # IP_MTU_DISCOVER: PMTUDISC_DONT
    tx.sendto(b"F" * 3000, (topo.a4, 9300))          # three fragments on a 1500 MTU
    # Reassembled by the OS stack and given to the (bound) proving socket.
    assert ku.drain(s, 1.5) == [b"F" * 3000]
    assert ku.quiet_for(p, 0.2) == []
    after = p.raw_stats()[1]
    assert after["rx_fragment"] == before["rx_fragment"] + 3


def test_vlan_tagged_frames_go_to_the_os_stack(rx):
    topo, p, _, raw = rx
    fr = _good(topo, b"vlan")
    tagged = fr[:12] + struct.pack("!HH", 0x8100, 42) + fr[12:]
    before = p.raw_stats()[1]
    raw.send(tagged)
    assert ku.quiet_for(p, 0.4) == []
    assert p.raw_stats()[1]["rx_vlan"] == before["rx_vlan"] + 1


def test_frame_to_another_mac_is_not_delivered(rx):
    """Frames not addressed to the interface (promiscuous leftovers) are the
    OS stack's business (it drops PACKET_OTHERHOST)."""
    topo, p, _, raw = rx
    fr = ku.frame(topo.mac_b, b"\x02\x11\x22\x33\x44\x55", UDP, topo.b4, topo.a4, 9301, 9300,
                  b"otherhost")
    raw.send(fr)
    got = ku.quiet_for(p, 0.4)
    assert all(b"otherhost" not in f for f in got)
