"""TX: a frame leaves only if the sending port owns its source 3-tuple and
it is well formed; every rejection is counted by reason."""

import os
import socket
import struct

import pytest

import kmodutil as ku
from multistack import kernel

UDP, TCP = socket.IPPROTO_UDP, socket.IPPROTO_TCP
MARK = b"MSTX-"


@pytest.fixture
def tx_setup(topo):
    """Port p owns udp a4:7500 and tcp a4:7600; port q owns udp a4:7501; the
    peer listens on udp b4:7502 and sniffs its interface."""
    p, q = topo.port(), topo.port()
    topo.track(p.claim("udp", topo.a4, 7500))
    topo.track(p.claim("tcp", topo.a4, 7600))
    topo.track(q.claim("udp", topo.a4, 7501))
    rx = topo.peer()
    rx.bind((topo.b4, 7502))
    rx.setblocking(False)
    sniff = topo.track(ku.peer_sniffer())
    return topo, p, q, rx, sniff


def _marked(frames):
    return [f for f in frames if MARK in f]


def test_owned_tuple_is_sent(tx_setup):
    topo, p, _, rx, sniff = tx_setup
    fr = ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, 7500, 7502, MARK + b"ok")
    ku.send_frames(p, [fr, fr])
    got = ku.drain(rx, 1.0)
    assert got == [MARK + b"ok"] * 2
    assert p.stats().tx_frames == 2 and p.stats().tx_bytes == 2 * len(fr)
    tcp = ku.frame(topo.mac_a, topo.mac_b, TCP, topo.a4, topo.b4, 7600, 7602, MARK + b"t",
                   tcp_flags=0x10)
    ku.send_frames(p, [tcp])
    seen = _marked(ku.drain(sniff, 0.5))
    assert any(ku.parse(f)["proto"] == TCP for f in seen)


REASONS = ["other_port", "not_owned", "bad_mac", "garbage", "runt", "oversize", "fragment",
           "not_ip", "bad_ip_checksum", "truncated_ip"]


def _bad_frame(reason, topo):
    good = dict(src_mac=topo.mac_a, dst_mac=topo.mac_b, proto=UDP, src=topo.a4, dst=topo.b4,
                sport=7500, dport=7502, payload=MARK + reason.encode())
    if reason == "other_port":
        return ku.frame(**{**good, "sport": 7501}), "tx_rej_other_port"
    if reason == "not_owned":
        return ku.frame(**{**good, "sport": 7999}), "tx_rej_not_owned"
    if reason == "bad_mac":
        return ku.frame(**{**good, "src_mac": b"\x02\x00\x00\x00\x00\x99"}), "tx_rej_bad_mac"
    if reason == "garbage":
        # IPv4 ethertype, then junk that is not an IP header (version 0).
        return ku.eth(topo.mac_b, topo.mac_a, 0x0800,
                      b"\x00" + MARK + os.urandom(80)), "tx_rej_malformed"
    if reason == "runt":
        return ku.frame(**good)[:30], "tx_rej_runt"
    if reason == "oversize":
        return ku.frame(**{**good, "payload": MARK + b"o" * 1500}), "tx_rej_oversize"
    if reason == "fragment":
        seg = ku.l4(UDP, topo.a4, topo.b4, 7500, 7502, MARK + b"frag" * 10)
        pkt = ku.ip_packet(UDP, topo.a4, topo.b4, seg, frag=0x2000)  # MF set
        return ku.eth(topo.mac_b, topo.mac_a, 0x0800, pkt), "tx_rej_fragment"
    if reason == "not_ip":
        return ku.eth(topo.mac_b, topo.mac_a, 0x88B5, MARK + b"x" * 60), "tx_rej_malformed"
    if reason == "bad_ip_checksum":
        fr = bytearray(ku.frame(**good))
        fr[24] ^= 0xFF
        return bytes(fr), "tx_rej_malformed"
    if reason == "truncated_ip":
        fr = bytearray(ku.frame(**good))
        struct.pack_into("!H", fr, 16, 2000)  # IP total length past the frame
        fr[24:26] = b"\0\0"
        c = ku.csum(bytes(fr[14:34]))
        struct.pack_into("!H", fr, 24, c)
        return bytes(fr), "tx_rej_malformed"
    raise AssertionError(reason)


def _mixed_batch(topo, sport, dport, other_port_sport=None):
    """Every bad frame of REASONS twice, each followed by a good one from
    ``sport`` to ``dport``; returns (frames, {counter: expected count}, good
    payloads).  ``other_port_sport`` replaces the source port of the
    other-port frames."""
    frames, expect, good = [], {}, []
    for i, reason in enumerate(REASONS * 2):
        fr, counter = _bad_frame(reason, topo)
        if reason == "other_port" and other_port_sport is not None:
            fr = ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, other_port_sport,
                          dport, b"MSTX-other")
        frames.append(fr)
        expect[counter] = expect.get(counter, 0) + 1
        good.append(b"good-%d" % i)
        frames.append(ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, sport, dport,
                               good[-1]))
    return frames, expect, good


@pytest.mark.parametrize("reason", REASONS)
def test_rejected_and_counted_by_reason(tx_setup, reason):
    topo, p, q, rx, sniff = tx_setup
    fr, counter = _bad_frame(reason, topo)
    before, before_if = p.raw_stats()
    ku.send_frames(p, [fr])
    after, after_if = p.raw_stats()
    assert after[counter] == before[counter] + 1, {
        k: after[k] - before[k] for k in after if after[k] != before[k]}
    assert after["tx_sent"] == before["tx_sent"]
    assert _marked(ku.drain(sniff, 0.3)) == []
    assert ku.drain(rx, 0.01) == []
    # The interface counts it too, and a good frame still goes out.
    assert after_if[counter] == before_if[counter] + 1
    assert after_if["tx_sent"] == before_if["tx_sent"]
    good = ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, 7500, 7502, b"after")
    ku.send_frames(p, [good])
    assert ku.drain(rx, 1.0) == [b"after"]


def test_random_bytes_are_rejected(tx_setup):
    topo, p, _, _, sniff = tx_setup
    import random
    rnd = random.Random(7)
    frames = [MARK + bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 1600)))
              for _ in range(50)]
    before = p.stats()
    ku.send_frames(p, frames)
    after = p.stats()
    assert after.tx_frames == before.tx_frames
    assert after.tx_dropped == before.tx_dropped + 50
    assert _marked(ku.drain(sniff, 0.3)) == []


def test_other_ports_tuple_is_refused_but_its_owner_may_send(tx_setup):
    topo, p, q, rx, _ = tx_setup
    fr = ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, 7501, 7502, b"q-owns")
    ku.send_frames(p, [fr])
    assert ku.drain(rx, 0.3) == []
    ku.send_frames(q, [fr])
    assert ku.drain(rx, 1.0) == [b"q-owns"]
    assert p.raw_stats()[0]["tx_rej_other_port"] == 1
    assert q.raw_stats()[0]["tx_sent"] == 1


def test_bad_buffer_index_is_counted(tx_setup):
    topo, p, _, _, _ = tx_setup
    from multistack._native import lib
    assert lib.ms_kmod_tx_put_raw(p._base, p._tx_ofs, 0xFFFFFF00, 60) == 1
    p.sync()
    assert p.raw_stats()[0]["tx_rej_bad_slot"] == 1


def test_slot_longer_than_its_buffer_is_refused(tx_setup):
    topo, p, _, _, _ = tx_setup
    from multistack._native import lib
    from multistack._native import ffi
    slots = ffi.cast("struct ms_netmap_slot *", ffi.cast("char *", p.tx_ring) + 256)
    idx = slots[p.tx_ring.head].buf_idx
    assert lib.ms_kmod_tx_put_raw(p._base, p._tx_ofs, idx, p.buf_size + 100) == 1
    p.sync()
    st = p.raw_stats()[0]
    assert (st["tx_rej_oversize"], st["tx_rej_bad_slot"], st["tx_sent"]) == (1, 0, 0)


def test_batch_of_mixed_frames(tx_setup):
    topo, p, _, rx, _ = tx_setup
    frames, expect, good = _mixed_batch(topo, 7500, 7502)
    ku.send_frames(p, frames)
    st = p.raw_stats()[0]
    for counter, n in expect.items():
        assert st[counter] == n, counter
    assert st["tx_sent"] == len(good)
    assert sorted(ku.drain(rx, 1.0)) == sorted(good)


def test_ipv6_tx_rules(tx_setup):
    topo, p, _, _, _ = tx_setup
    rx6 = topo.peer(socket.AF_INET6, socket.SOCK_DGRAM)
    rx6.bind((topo.b6, 7502))
    rx6.setblocking(False)
    topo.track(p.claim("udp", topo.a6, 7500))
    good = ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a6, topo.b6, 7500, 7502, b"v6-ok")
    bad = ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a6, topo.b6, 7503, 7502, b"v6-bad")
    ku.send_frames(p, [good, bad])
    assert ku.drain(rx6, 1.0) == [b"v6-ok"]
    assert p.raw_stats()[0]["tx_rej_not_owned"] == 1


def _proc_port(port):
    (entry,) = [e for e in kernel.list_ports() if e["id"] == port.port_id]
    return entry


def test_tx_pages_are_shown_in_proc_and_bounded(tx_setup):
    """/proc/net/multistack: mem is the mmap size; txmem the kernel-private
    pages TX frames are carved from (MS_TX_PAGES = 4 of order 3): none
    before the first send, one after a frame, and 4 at most however many
    frames go through the pages in rotation."""
    topo, p, q, rx, _ = tx_setup
    page = os.sysconf("SC_PAGE_SIZE") << 3
    assert _proc_port(p)["mem"] == p.mem_size
    assert _proc_port(p)["txmem"] == 0 and _proc_port(q)["txmem"] == 0
    ku.send_frames(p, [ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, 7500, 7502,
                       MARK + b"one")])
    assert _proc_port(p)["txmem"] == page and _proc_port(q)["txmem"] == 0
    # 1514-byte frames: under 20 per page, so 600 cycle through all four
    # slots many times over
    big = ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, 7500, 7502,
                   MARK + b"b" * (1472 - len(MARK)))
    assert len(big) == 1514
    for _ in range(3):
        ku.send_frames(p, [big] * 200)
        assert _proc_port(p)["txmem"] <= 4 * page
    assert p.raw_stats()[0]["tx_sent"] == 601
    assert _proc_port(p)["txmem"] == 4 * page
    assert _proc_port(p)["mem"] == p.mem_size       # mem stays the mmap size


@pytest.mark.parametrize("bypass", [False, True], ids=["default", "qdisc_bypass"])
def test_jumbo_frames_go_out_whole_beside_small_ones(topo, bypass):
    """With a 9000-byte MTU a full frame's copy is too big for the port's
    TX pages and takes the alloc_skb path; small frames in the same burst
    still use the pages.  Both arrive intact, in order, and one byte past
    MTU + 14 is refused."""
    ku.ip_batch(f"link set {topo.if_a} mtu 9000")
    ku.ip_batch(f"link set {topo.if_b} mtu 9000", netns=topo.ns)
    p = topo.port(buf_size=16384, qdisc_bypass=bypass)
    topo.track(p.claim("udp", topo.a4, 7500))
    rx = topo.peer()
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    rx.bind((topo.b4, 7502))
    rx.setblocking(False)
    headers = 14 + 20 + 8
    big = [bytes([i]) * (9014 - headers) for i in range(1, 4)]
    small = [b"small-%d" % i for i in range(3)]
    payloads = [x for pair in zip(big, small) for x in pair]
    frames = [ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, 7500, 7502, x)
              for x in payloads]
    assert len(frames[0]) == 9014
    too_big = ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, 7500, 7502,
                       b"x" * (9015 - headers))
    ku.send_frames(p, frames + [too_big])
    assert ku.drain(rx, 1.0) == payloads
    st = p.raw_stats()[0]
    assert st["tx_sent"] == len(frames)
    assert st["tx_rej_oversize"] == 1
    assert st["tx_error"] == 0


def _ipv6_routing_frame(topo, routing_type, segments_left, payload):
    """UDP a6:7500 -> b6:7502 behind a routing header (one address: b6)."""
    import ipaddress
    seg = ku.l4(UDP, topo.a6, topo.b6, 7500, 7502, payload)
    routing = (bytes((UDP, 2, routing_type, segments_left)) + bytes(4)
               + ipaddress.ip_address(topo.b6).packed)
    ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(routing) + len(seg), 43, 64,
                      ipaddress.ip_address(topo.a6).packed,
                      ipaddress.ip_address(topo.b6).packed) + routing + seg
    return ku.eth(topo.mac_b, topo.mac_a, 0x86DD, ip6)


@pytest.mark.parametrize("segments_left", [0, 1])
def test_ipv6_routing_header_type_0_is_refused(tx_setup, segments_left):
    """RFC 5095 deprecates type 0 and the OS refuses to send it: counted as
    malformed; a routing header of another type (2, Mobile IPv6) leaves."""
    topo, p, _, _, sniff = tx_setup
    topo.track(p.claim("udp", topo.a6, 7500))
    rh0 = _ipv6_routing_frame(topo, 0, segments_left, MARK + b"rh0")
    before, before_if = p.raw_stats()
    ku.send_frames(p, [rh0])
    after, after_if = p.raw_stats()
    assert after["tx_rej_malformed"] == before["tx_rej_malformed"] + 1
    assert after_if["tx_rej_malformed"] == before_if["tx_rej_malformed"] + 1
    assert after["tx_sent"] == before["tx_sent"]
    assert _marked(ku.drain(sniff, 0.3)) == []

    rh2 = _ipv6_routing_frame(topo, 2, segments_left, MARK + b"rh2")
    ku.send_frames(p, [rh2])
    assert p.raw_stats()[0]["tx_sent"] == after["tx_sent"] + 1
    # (the peer's OS may answer with an ICMPv6 error quoting it)
    assert [f for f in _marked(ku.drain(sniff, 1.0)) if f[6:12] == topo.mac_a] == [rh2]
