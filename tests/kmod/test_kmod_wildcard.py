"""Wildcard registrations: the unspecified address claims a port on every
address of the interface; a registration of one address wins over it there."""

import errno
import socket

import pytest

import kmodutil as ku
from multistack import kernel

UDP, TCP = socket.IPPROTO_UDP, socket.IPPROTO_TCP
SECOND = "10.77.0.5"        # another address of the attached interface
ELSEWHERE = "10.77.0.99"    # on the link's subnet, configured nowhere


def _add_second_address(topo):
    ku.sh(f"ip addr add {SECOND}/24 dev {topo.if_a}")


def _reusable_udp(bind, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(bind)
    return s


def _payloads(port, count):
    return sorted(ku.parse(f)["payload"] for f in ku.wait_frames(port, count))


def test_wildcard_claim_is_registered_and_listed(topo):
    p = topo.port()
    s4 = topo.track(p.claim("udp", "0.0.0.0", 8400))
    s6 = topo.track(p.claim("tcp", "::", 8401))
    assert s4.getsockname() == ("0.0.0.0", 8400)
    # The IPv6 claim holds the IPv6 port only: the IPv4 one stays free.
    assert s6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("0.0.0.0", 8401))
    (mine,) = [x for x in kernel.list_ports() if x["id"] == p.port_id]
    assert {(r["proto"], r["address"], r["port"]) for r in mine["registrations"]} == {
        ("udp", "0.0.0.0", 8400), ("tcp", "::", 8401)}
    assert set(p.registrations) == {("udp", "0.0.0.0", 8400), ("tcp", "::", 8401)}


def test_wildcard_needs_a_wildcard_bound_socket(topo):
    p = topo.port()
    s = topo.track(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    s.bind((topo.a4, 8402))
    with pytest.raises(kernel.NotBoundError) as ei:
        p.register("udp", "0.0.0.0", 8402, s)
    assert ei.value.errno == errno.EACCES


def test_wildcard_twice_is_eaddrinuse(topo):
    p, q = topo.port(), topo.port()
    s1 = topo.track(_reusable_udp(("0.0.0.0", 8403)))
    s2 = topo.track(_reusable_udp(("0.0.0.0", 8403)))
    p.register("udp", "0.0.0.0", 8403, s1)
    with pytest.raises(kernel.AlreadyRegisteredError) as ei:
        q.register("udp", "0.0.0.0", 8403, s2)
    assert ei.value.errno == errno.EADDRINUSE


def test_wildcard_receives_on_every_address_even_one_added_later(topo):
    p = topo.port()
    s = topo.track(p.claim("udp", "0.0.0.0", 8410))
    s.setblocking(False)
    _add_second_address(topo)
    tx = topo.peer()
    tx.sendto(b"first", (topo.a4, 8410))
    tx.sendto(b"second", (SECOND, 8410))
    frames = ku.wait_frames(p, 2)
    assert sorted((ku.parse(f)["dst"], ku.parse(f)["payload"]) for f in frames) == [
        (topo.a4, b"first"), (SECOND, b"second")]
    assert ku.drain(s, 0.2) == []       # none went to the OS stack
    # The other protocol and the other family on that port are not claimed.
    topo.peer(socket.AF_INET6).sendto(b"v6", (topo.a6, 8410))
    assert ku.quiet_for(p) == []


def test_a_frame_for_an_address_not_on_the_interface_goes_to_the_os(topo):
    p = topo.port()
    topo.track(p.claim("udp", "0.0.0.0", 8420))
    before = kernel.interface_stats(topo.if_a)["rx_passed"]
    raw = topo.track(ku.peer_raw_sender())
    raw.send(ku.frame(topo.mac_b, topo.mac_a, UDP, topo.b4, ELSEWHERE, 9000, 8420, b"not-ours"))
    raw.send(ku.frame(topo.mac_b, topo.mac_a, UDP, topo.b4, "0.0.0.0", 9000, 8420, b"zero"))
    raw.send(ku.frame(topo.mac_b, topo.mac_a, UDP, topo.b4, topo.a4, 9000, 8420, b"ours"))
    assert [ku.parse(f)["payload"] for f in ku.wait_frames(p, 1)] == [b"ours"]
    assert ku.quiet_for(p) == []
    assert kernel.interface_stats(topo.if_a)["rx_passed"] >= before + 2


def test_an_address_registered_by_another_port_wins_over_the_wildcard(topo):
    _add_second_address(topo)
    wild, one = topo.port(), topo.port()
    wild.register("udp", "0.0.0.0", 8430, topo.track(_reusable_udp(("0.0.0.0", 8430))))
    one.register("udp", topo.a4, 8430, topo.track(_reusable_udp((topo.a4, 8430))))
    tx = topo.peer()
    tx.sendto(b"to-a4", (topo.a4, 8430))
    tx.sendto(b"to-second", (SECOND, 8430))
    assert _payloads(one, 1) == [b"to-a4"]
    assert _payloads(wild, 1) == [b"to-second"]
    # TX follows the same owner: the wildcard port may not send as a4:8430.
    rx = topo.peer()
    rx.bind((topo.b4, 8431))
    rx.setblocking(False)
    as_a4 = ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, 8430, 8431, b"w-as-a4")
    as_second = ku.frame(topo.mac_a, topo.mac_b, UDP, SECOND, topo.b4, 8430, 8431, b"w-2nd")
    ku.send_frames(wild, [as_a4, as_second])
    assert ku.drain(rx, 1.0) == [b"w-2nd"]
    assert wild.raw_stats()[0]["tx_rej_other_port"] == 1
    ku.send_frames(one, [as_a4])
    assert ku.drain(rx, 1.0) == [b"w-as-a4"]
    # Once the address is let go, the wildcard takes it.
    one.unregister("udp", topo.a4, 8430)
    tx.sendto(b"to-a4-again", (topo.a4, 8430))
    assert _payloads(wild, 1) == [b"to-a4-again"]


def test_wildcard_sends_only_from_the_interfaces_addresses(topo):
    _add_second_address(topo)
    p = topo.port()
    topo.track(p.claim("udp", "0.0.0.0", 8440))
    rx = topo.peer()
    rx.bind(("0.0.0.0", 8441))
    rx.setblocking(False)
    good = [ku.frame(topo.mac_a, topo.mac_b, UDP, src, topo.b4, 8440, 8441, b"from-" +
                     src.encode()) for src in (topo.a4, SECOND)]
    forged = ku.frame(topo.mac_a, topo.mac_b, UDP, ELSEWHERE, topo.b4, 8440, 8441, b"forged")
    unspecified = ku.frame(topo.mac_a, topo.mac_b, UDP, "0.0.0.0", topo.b4, 8440, 8441, b"zero")
    other_port = ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, 8442, 8441, b"8442")
    ku.send_frames(p, good + [forged, unspecified, other_port])
    assert sorted(ku.drain(rx, 1.0)) == [b"from-" + topo.a4.encode(), b"from-" + SECOND.encode()]
    stats = p.raw_stats()[0]
    assert stats["tx_sent"] == 2 and stats["tx_rej_not_owned"] == 3
    # An address removed from the interface is no longer the port's.
    ku.sh(f"ip addr del {SECOND}/24 dev {topo.if_a}")
    ku.send_frames(p, good[1:])
    assert ku.drain(rx, 0.5) == []
    assert p.raw_stats()[0]["tx_rej_not_owned"] == 4


def test_ipv6_wildcard(topo):
    p = topo.port()
    topo.track(p.claim("udp", "::", 8450))
    topo.peer(socket.AF_INET6).sendto(b"six", (topo.a6, 8450))
    assert [(ku.parse(f)["dst"], ku.parse(f)["payload"]) for f in ku.wait_frames(p, 1)] == [
        (topo.a6, b"six")]
    topo.peer().sendto(b"four", (topo.a4, 8450))
    assert ku.quiet_for(p) == []
    rx = topo.peer(socket.AF_INET6)
    rx.bind((topo.b6, 8451))
    rx.setblocking(False)
    ku.send_frames(p, [ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a6, topo.b6, 8450, 8451, b"out6"),
              ku.frame(topo.mac_a, topo.mac_b, UDP, "fd77::99", topo.b6, 8450, 8451, b"forged")])
    assert ku.drain(rx, 1.0) == [b"out6"]
    assert p.raw_stats()[0]["tx_rej_not_owned"] == 1


def test_releasing_the_wildcard_gives_the_port_back_to_the_os(topo):
    p = topo.port()
    s = topo.track(p.claim("udp", "0.0.0.0", 8460))
    s.setblocking(False)
    tx = topo.peer()
    tx.sendto(b"port", (topo.a4, 8460))
    assert _payloads(p, 1) == [b"port"]
    p.unregister("udp", "0.0.0.0", 8460)
    tx.sendto(b"os-1", (topo.a4, 8460))
    assert ku.drain(s, 1.0) == [b"os-1"]
    # So does closing the port that held it; a new port may claim it again.
    q = topo.port()
    q.register("udp", "0.0.0.0", 8460, s)
    q.close()
    tx.sendto(b"os-2", (topo.a4, 8460))
    assert ku.drain(s, 1.0) == [b"os-2"]
    r = topo.port()
    r.register("udp", "0.0.0.0", 8460, s)
    tx.sendto(b"port-again", (topo.a4, 8460))
    assert _payloads(r, 1) == [b"port-again"]
