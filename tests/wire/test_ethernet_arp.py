"""Ethernet, 802.1Q and ARP: known answers and edge cases."""

from ipaddress import IPv4Address

import pytest

from stacks.wire.arp import ArpOperation, ArpRepr
from stacks.wire.errors import MalformedPacket
from stacks.wire.ethernet import BROADCAST, EtherType, EthernetRepr, MacAddress, VlanTag

A = MacAddress("02:00:00:00:00:01")
B = MacAddress("02:00:00:00:00:02")


def test_mac_address_forms():
    assert MacAddress("02-00-00-00-00-01") == A == MacAddress(bytes.fromhex("020000000001"))
    assert str(A) == "02:00:00:00:00:01" and repr(A) == "MacAddress('02:00:00:00:00:01')"
    assert BROADCAST.is_broadcast and BROADCAST.is_multicast and not A.is_multicast
    assert MacAddress("33:33:0:0:0:1").is_multicast


@pytest.mark.parametrize("bad", ["02:00:00:00:00", "02:00:00:00:00:0g", "020000000001",
                                 "02:00:00:00:00:001", b"\0" * 5, b"\0" * 7])
def test_bad_mac_addresses(bad):
    with pytest.raises(ValueError, match="Ethernet address"):
        MacAddress(bad)


def test_untagged_known_answer():
    wire = bytes.fromhex("020000000002" "020000000001" "0800") + b"payload"
    repr_, payload = EthernetRepr.parse_with_payload(wire)
    assert repr_ == EthernetRepr(B, A, EtherType.IPV4)
    assert bytes(payload) == b"payload" and repr_.header_len == 14
    assert repr_.emit(b"payload") == wire


def test_tagged_known_answer():
    # TCI 0xA064: PCP 5, DEI 0, VID 100.
    wire = bytes.fromhex("020000000002" "020000000001" "8100" "a064" "86dd") + b"x"
    repr_, payload = EthernetRepr.parse_with_payload(wire)
    assert repr_ == EthernetRepr(B, A, EtherType.IPV6, VlanTag(vid=100, pcp=5, dei=False))
    assert bytes(payload) == b"x" and repr_.header_len == 18
    assert repr_.emit(b"x") == wire


@pytest.mark.parametrize("wire, message", [
    (b"", "shorter than the 14-byte header"),
    (bytes(13), "shorter than the 14-byte header"),
    (bytes(12) + b"\x81\x00", "no room for its inner EtherType"),          # VLAN, no tag
    (bytes(12) + b"\x81\x00\x00\x01\x08", "no room for its inner EtherType"),
])
def test_short_frames_are_malformed(wire, message):
    with pytest.raises(MalformedPacket, match=message):
        EthernetRepr.parse(wire)


def test_vlan_without_payload_is_fine():
    repr_, payload = EthernetRepr.parse_with_payload(bytes(12) + bytes.fromhex("8100000a0800"))
    assert repr_.vlan == VlanTag(10) and len(payload) == 0


def test_emit_refuses_what_it_cannot_encode():
    with pytest.raises(ValueError, match="through `vlan`"):
        EthernetRepr(A, B, EtherType.VLAN).emit()
    with pytest.raises(ValueError, match="VLAN tag out of range"):
        EthernetRepr(A, B, EtherType.IPV4, VlanTag(vid=4096)).emit()
    with pytest.raises(ValueError, match="cannot encode"):
        EthernetRepr(A, B, 0x10000).emit()
    with pytest.raises(ValueError, match="6 bytes"):
        EthernetRepr(b"\0" * 5, B, EtherType.IPV4).emit()


ARP_REQUEST = bytes.fromhex(
    "0001" "0800" "06" "04" "0001" "020000000001" "c0000201" "000000000000" "c0000202")


def test_arp_known_answer():
    repr_ = ArpRepr.parse(ARP_REQUEST + bytes(18))  # trailing Ethernet padding is ignored
    assert repr_ == ArpRepr(ArpOperation.REQUEST, A, IPv4Address("192.0.2.1"),
                            MacAddress(bytes(6)), IPv4Address("192.0.2.2"))
    assert repr_.emit() == ARP_REQUEST


@pytest.mark.parametrize("wire, message", [
    (ARP_REQUEST[:27], "shorter than the 28-byte packet"),
    (b"\x00\x06" + ARP_REQUEST[2:], "only Ethernet/IPv4"),               # IEEE 802 hardware
    (ARP_REQUEST[:2] + b"\x86\xdd" + ARP_REQUEST[4:], "only Ethernet/IPv4"),
    (ARP_REQUEST[:4] + b"\x08" + ARP_REQUEST[5:], "only Ethernet/IPv4"),   # hlen 8
])
def test_bad_arp_is_malformed(wire, message):
    with pytest.raises(MalformedPacket, match=message):
        ArpRepr.parse(wire)


def test_arp_emit_checks_addresses():
    with pytest.raises(ValueError, match="6 bytes"):
        ArpRepr(1, b"\0" * 5, IPv4Address("192.0.2.1"), A, IPv4Address("192.0.2.2")).emit()
    with pytest.raises(ValueError, match="cannot encode"):
        ArpRepr(1, A, "192.0.2.1", A, IPv4Address("192.0.2.2")).emit()
