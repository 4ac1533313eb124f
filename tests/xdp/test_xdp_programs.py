"""The XDP programs (xdp/ms_xdp.bpf.c) run by the kernel on test frames
(BPF_PROG_TEST_RUN, natively on the host), against the module's policy on
top of the shared classifier (xdputil.expect_rx / expect_tx): the same
verdict, the same counters, for hand-made frames of every kind and for
generated ones."""

import errno
import os
import subprocess
import sys
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from hypothesis import assume, event, given, strategies as st

import xdputil as xu
from multistack.classify import classify
from multistack.xdp import XdpError, XdpPrograms
from stacks.wire.frame import build_frame

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/: wire.strategies
from wire.strategies import frame_layers  # noqa: E402

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF programs needs root"),
]

A4, B4, C4 = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"), IPv4Address("10.0.0.3")
A6, B6 = IPv6Address("fd00::1"), IPv6Address("fd00::2")
UDP, TCP = 17, 6
MAX_RX, MAX_TX = 2048, 1514


@pytest.fixture(scope="module")
def env():
    """A namespace with a NIC (veth) and two port veths, the programs
    loaded with the NIC's MAC and addresses and the two ports."""
    with xu.inside_new_netns() as netns:
        nic, _ = xu.add_veth("nic0", "wire0")
        p1, _ = xu.add_veth("port1", "port1p")
        p2, _ = xu.add_veth("port2", "port2p")
        progs = XdpPrograms.load()
        cfg = xu.Config(local={A4, A6})
        progs.set_iface(nic, xu.NIC_MAC)
        for addr in cfg.local:
            progs.add_local_addr(addr)
        for port in (p1, p2):
            progs.add_port(port, MAX_RX, MAX_TX)
            cfg.ports[port] = (MAX_RX, MAX_TX)
        try:
            yield progs, cfg, netns, nic, p1, p2
        finally:
            progs.close()


class Claims:
    """Claims put in the map and in the oracle's Config, taken back by clear()."""

    def __init__(self, env):
        self.progs, self.cfg = env[0], env[1]

    def add(self, proto, addr, port, owner, version=None):
        self.progs.claim(proto, addr, port, owner, version=version)
        self.cfg.claims[(proto, addr.version if addr else version, addr, port)] = owner

    def add_local(self, addr):
        self.progs.add_local_addr(addr)
        self.cfg.local.add(addr)

    def clear(self):
        for (proto, version, addr, port) in list(self.cfg.claims):
            assert self.progs.unclaim(proto, addr, port, version=version)
        self.cfg.claims.clear()
        for addr in list(self.cfg.local - {A4, A6}):
            assert self.progs.remove_local_addr(addr)
            self.cfg.local.discard(addr)


@pytest.fixture
def claims(env):
    c = Claims(env)
    yield c
    c.clear()


def check(env, prog, frame, ingress=0):
    """Runs the program on frame; asserts the oracle's verdict and counters."""
    progs, cfg = env[0], env[1]
    if prog == "ms_xdp_rx":
        want = xu.expect_rx(cfg, frame)
    else:
        want = xu.expect_tx(cfg, ingress, frame)
    before = progs.iface_stats()
    port_before = progs.port_stats(want.port) if want.port else None
    verdict, _ = progs.test_run(prog, frame, ingress_ifindex=ingress)
    assert verdict == want.verdict
    assert xu.deltas(before, progs.iface_stats()) == want.iface
    if want.port:
        assert xu.deltas(port_before, progs.port_stats(want.port)) == want.port_deltas
    return want


# ---- RX: what goes to a port ----

def test_claimed_udp_frame_is_redirected_to_its_port(env, claims):
    _, _, _, _, p1, _ = env
    claims.add("udp", A4, 5000, p1)
    want = check(env, "ms_xdp_rx", xu.frame4(UDP, B4, 40000, A4, 5000))
    assert want.verdict == "redirect" and want.port == p1


def test_unclaimed_port_and_address_are_passed(env, claims):
    p1 = env[4]
    claims.add("udp", A4, 5000, p1)
    assert check(env, "ms_xdp_rx", xu.frame4(UDP, B4, 1, A4, 5001)).verdict == "pass"
    assert check(env, "ms_xdp_rx", xu.frame4(TCP, B4, 1, A4, 5000)).verdict == "pass"
    assert check(env, "ms_xdp_rx", xu.frame4(UDP, B4, 1, C4, 5000)).verdict == "pass"


def test_exact_claim_wins_over_wildcard(env, claims):
    p1, p2 = env[4], env[5]
    claims.add("udp", None, 6000, p1, version=4)
    claims.add("udp", A4, 6000, p2)
    assert check(env, "ms_xdp_rx", xu.frame4(UDP, B4, 1, A4, 6000)).port == p2


def test_wildcard_owns_only_the_nics_addresses(env, claims):
    p1 = env[4]
    claims.add("udp", None, 6001, p1, version=4)
    assert check(env, "ms_xdp_rx", xu.frame4(UDP, B4, 1, A4, 6001)).port == p1
    assert check(env, "ms_xdp_rx", xu.frame4(UDP, B4, 1, C4, 6001)).verdict == "pass"
    assert check(env, "ms_xdp_rx", xu.frame4(UDP, B4, 1, "0.0.0.0", 6001)).verdict == "pass"


def test_ipv6_exact_and_wildcard(env, claims):
    p1, p2 = env[4], env[5]
    claims.add("tcp", A6, 443, p1)
    claims.add("tcp", None, 444, p2, version=6)
    assert check(env, "ms_xdp_rx", xu.frame6(TCP, B6, 1, A6, 443)).port == p1
    assert check(env, "ms_xdp_rx", xu.frame6(TCP, B6, 1, A6, 444)).port == p2
    assert check(env, "ms_xdp_rx", xu.frame6(TCP, B6, 1, B6, 444)).verdict == "pass"


def test_frame_longer_than_the_ports_buffers_is_dropped_and_counted(env, claims):
    p1 = env[4]
    claims.add("udp", A4, 5002, p1)
    want = check(env, "ms_xdp_rx", xu.frame4(UDP, B4, 1, A4, 5002, b"y" * (MAX_RX - 41)))
    assert want.verdict == "drop" and want.iface == {"rx_drop_size": 1}


def test_icmp_error_about_a_claimed_source_goes_to_its_port(env, claims):
    p1 = env[4]
    claims.add("udp", A4, 5003, p1)
    quoted = xu.frame4(UDP, A4, 5003, B4, 53)[14:]
    want = check(env, "ms_xdp_rx", xu.icmp4_error(B4, A4, quoted))
    assert want.port == p1 and want.iface["rx_icmp_delivered"] == 1
    # about a tuple nobody claimed: the OS's
    other = xu.frame4(UDP, A4, 5004, B4, 53)[14:]
    assert check(env, "ms_xdp_rx", xu.icmp4_error(B4, A4, other)).iface == {
        "rx_passed": 1, "rx_not_ip": 1}


@pytest.mark.parametrize("frame, reason", [
    (xu.NIC_MAC + xu.PEER_MAC + b"\x08\x06" + bytes(28), "rx_not_ip"),            # ARP
    (xu.NIC_MAC + xu.PEER_MAC + b"\x81\x00\x00\x05\x08\x00" + bytes(40), "rx_vlan"),
    (xu.frame4(UDP, B4, 1, A4, 5000, frag=0x2000), "rx_fragment"),                 # MF
    (xu.frame4(UDP, B4, 1, A4, 5000)[:14 + 20 + 4], "rx_malformed"),               # cut UDP
    (xu.frame6(UDP, B6, 1, A6, 5000, ext=bytes([17, 0]) + bytes(6), first_nh=44),
     "rx_fragment"),
])
def test_what_the_module_passes_is_passed_and_counted(env, claims, frame, reason):
    claims.add("udp", A4, 5000, env[4])
    claims.add("udp", A6, 5000, env[4])
    assert check(env, "ms_xdp_rx", frame).iface == {"rx_passed": 1, reason: 1}


def test_unicast_to_another_mac_is_not_for_this_host(env, claims):
    claims.add("udp", A4, 5000, env[4])
    frame = xu.frame4(UDP, B4, 1, A4, 5000, dst_mac=bytes.fromhex("02aabbccddee"))
    assert check(env, "ms_xdp_rx", frame).iface == {"rx_passed": 1}


def test_headers_past_the_first_copy_are_classified_whole(env, claims):
    """Hop-by-hop options longer than MS_CLS_HDR_MAX in front of a claimed
    tuple: the frame is still delivered (the second, whole copy)."""
    claims.add("udp", A6, 5005, env[4])
    hbh = bytes([17, 36]) + bytes(6 + 36 * 8)               # 296 bytes
    frame = xu.frame6(UDP, B6, 1, A6, 5005, ext=hbh, first_nh=0)
    assert check(env, "ms_xdp_rx", frame).verdict == "redirect"


# ---- TX: what a port may send ----

def tx_ok_frame(src=A4, sport=5000, **kw):
    return xu.frame4(UDP, src, sport, B4, 53, src_mac=xu.NIC_MAC,
                     dst_mac=xu.PEER_MAC, **kw)


def test_owned_frame_from_the_nics_mac_goes_to_the_nic(env, claims):
    p1 = env[4]
    claims.add("udp", A4, 5000, p1)
    assert check(env, "ms_xdp_tx", tx_ok_frame(), ingress=p1).verdict == "redirect"


def test_ipv4_options_in_front_of_an_owned_tuple_go_out(env, claims):
    p1 = env[4]
    claims.add("udp", A4, 5000, p1)
    frame = tx_ok_frame(options=b"\x01\x01\x01\x00")        # NOP NOP NOP EOL
    assert check(env, "ms_xdp_tx", frame, ingress=p1).verdict == "redirect"


def test_ipv6_hop_by_hop_in_front_of_an_owned_tuple_goes_out(env, claims):
    p1 = env[4]
    claims.add("udp", A6, 5000, p1)
    hbh = bytes([UDP, 0, 1, 4]) + bytes(4)                # PadN
    frame = xu.frame6(UDP, A6, 5000, B6, 53, src_mac=xu.NIC_MAC, dst_mac=xu.PEER_MAC,
                      ext=hbh, first_nh=0)
    assert check(env, "ms_xdp_tx", frame, ingress=p1).verdict == "redirect"


def test_the_oversize_limit_is_the_ports(env, claims):
    """max_tx_len is per port: exactly at it goes out, one byte more does not."""
    p1 = env[4]
    claims.add("udp", A4, 5000, p1)
    at_limit = tx_ok_frame(payload=b"z" * (MAX_TX - 42))
    assert len(at_limit) == MAX_TX
    assert check(env, "ms_xdp_tx", at_limit, ingress=p1).verdict == "redirect"
    over = tx_ok_frame(payload=b"z" * (MAX_TX - 41))
    assert check(env, "ms_xdp_tx", over, ingress=p1).iface == {"tx_rej_oversize": 1}


@pytest.mark.parametrize("make, reason", [
    (lambda: tx_ok_frame()[:xu.MIN_FRAME - 1], "tx_rej_runt"),
    (lambda: tx_ok_frame(payload=b"z" * (MAX_TX - 41)), "tx_rej_oversize"),
    (lambda: tx_ok_frame(frag=0x2000), "tx_rej_fragment"),
    (lambda: xu.PEER_MAC + xu.NIC_MAC + b"\x08\x06" + bytes(28),
     "tx_rej_malformed"),                                                           # ARP
    (lambda: xu.icmp4_error(A4, B4, tx_ok_frame()[14:], src_mac=xu.NIC_MAC), "tx_rej_malformed"),
    (lambda: xu.PEER_MAC + xu.NIC_MAC + b"\x81\x00\x00\x05" + tx_ok_frame()[12:],
     "tx_rej_malformed"),                                                           # VLAN
    (lambda: xu.frame6(UDP, A6, 5000, B6, 53, src_mac=xu.NIC_MAC,
                       ext=bytes([17, 0, 0, 0]) + bytes(4), first_nh=43), "tx_rej_malformed"),
    (lambda: tx_ok_frame()[:6] + xu.PEER_MAC + tx_ok_frame()[12:], "tx_rej_bad_mac"),
    (lambda: tx_ok_frame(sport=5999), "tx_rej_not_owned"),
    (lambda: tx_ok_frame(sport=5001), "tx_rej_other_port"),
])
def test_every_rejection_reason(env, claims, make, reason):
    _, _, _, _, p1, p2 = env
    claims.add("udp", A4, 5000, p1)
    claims.add("udp", A6, 5000, p1)
    claims.add("udp", A4, 5001, p2)
    want = check(env, "ms_xdp_tx", make(), ingress=p1)
    assert want.verdict == "drop" and want.iface == {reason: 1}
    assert want.port_deltas == {reason: 1}


def test_a_frame_from_a_veth_that_is_not_a_port_is_dropped(env, claims):
    nic = env[3]
    claims.add("udp", A4, 5000, env[4])
    want = check(env, "ms_xdp_tx", tx_ok_frame(), ingress=nic)
    assert want.verdict == "drop" and want.iface == {"tx_error": 1}


def test_wildcard_claim_covers_tx_from_a_local_address_only(env, claims):
    p1 = env[4]
    claims.add("udp", None, 7000, p1, version=4)
    assert check(env, "ms_xdp_tx", tx_ok_frame(sport=7000), ingress=p1).verdict == "redirect"
    assert check(env, "ms_xdp_tx", tx_ok_frame(src=C4, sport=7000), ingress=p1).iface == {
        "tx_rej_not_owned": 1}


# ---- generated frames ----

def _patch(frame: bytes, data, direction: str) -> bytes:
    """Points a generated frame at the NIC: its MAC as destination (RX) or
    source (TX), and without its VLAN tag, most of the time."""
    if frame[12:14] in (b"\x81\x00", b"\x88\xa8") and data.draw(st.integers(0, 5), label="untag"):
        frame = frame[:12] + frame[16:]
    if not data.draw(st.integers(0, 9), label="keep mac"):
        return frame
    if direction == "rx":
        return xu.NIC_MAC + frame[6:]
    return frame[:6] + xu.NIC_MAC + frame[12:]


def _claim_for(env, claims, frame, data, direction):
    """Claims the frame's tuple (exactly, by wildcard, or for another port)
    often enough that every outcome is drawn."""
    c = classify(frame)
    if c.verdict != "ok":
        return
    addr, port = (c.dst, c.dst_port) if direction == "rx" else (c.src, c.src_port)
    how = data.draw(st.sampled_from(["none", "exact", "wildcard", "other"]), label="claim")
    owner = env[4] if how != "other" else env[5]
    if how == "none" or port == 0:
        return
    if how == "wildcard":
        claims.add(c.proto, None, port, owner, version=addr.version)
        if data.draw(st.booleans(), label="address local") and addr not in env[1].local:
            claims.add_local(addr)
    elif addr.packed != bytes(len(addr.packed)):
        claims.add(c.proto, addr, port, owner)


def _mutate(frame: bytes, data) -> bytes:
    frame = bytearray(frame)
    for _ in range(data.draw(st.integers(0, 3), label="flips")):
        if frame:
            frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans(), label="cut it"):
        frame = frame[:data.draw(st.integers(0, len(frame)), label="cut")]
    return bytes(frame)


@pytest.mark.parametrize("direction", ["rx", "tx"])
@given(data=st.data())
def test_generated_frames_get_the_modules_verdicts(env, direction, data):
    claims = Claims(env)
    frame = build_frame(*data.draw(frame_layers(), label="layers"))
    frame = _patch(frame, data, direction)
    try:
        _claim_for(env, claims, frame, data, direction)
        if data.draw(st.booleans(), label="mutate"):
            frame = _mutate(frame, data)
        assume(14 <= len(frame) <= 3000)      # what BPF_PROG_TEST_RUN takes
        if direction == "rx":
            want = check(env, "ms_xdp_rx", frame)
        else:
            want = check(env, "ms_xdp_tx", frame, ingress=env[4])
        event(" ".join(sorted(want.iface)))     # --hypothesis-show-statistics
    finally:
        claims.clear()


# ---- the loader ----

def test_bad_arguments_are_clear_errors(env):
    progs = env[0]
    with pytest.raises(XdpError, match="protocol must be tcp or udp"):
        progs.claim("sctp", A4, 1, env[4])
    with pytest.raises(XdpError, match="port must be 1-65535"):
        progs.claim("udp", A4, 0, env[4])
    with pytest.raises(XdpError, match="wildcard claim needs version"):
        progs.claim("udp", None, 1, env[4])
    with pytest.raises(XdpError, match="no program"):
        progs.prog_fd("ms_xdp_nope")
    with pytest.raises(XdpError, match="mode must be native or generic"):
        progs.attach("ms_xdp_rx", env[3], mode="offload")


def test_a_test_run_of_a_runt_is_refused_by_the_kernel(env):
    with pytest.raises(XdpError) as exc:
        env[0].test_run("ms_xdp_rx", b"\0" * 10)
    assert exc.value.errno == errno.EINVAL


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_attach_query_detach_and_never_replace(env, mode):
    progs, nic, p1 = env[0], env[3], env[4]
    progs.attach("ms_xdp_rx", nic, mode)
    try:
        assert progs.attached_id(nic, mode) != 0
        with pytest.raises(XdpError, match="already has an XDP program") as exc:
            progs.attach("ms_xdp_tx", nic, mode)
        assert exc.value.errno == errno.EBUSY
        with pytest.raises(XdpError):          # not ours there: not detached
            progs.detach("ms_xdp_tx", nic, mode)
        assert progs.attached_id(nic, mode) != 0
    finally:
        progs.detach("ms_xdp_rx", nic, mode)
    assert progs.attached_id(nic, mode) == 0
    progs.attach("ms_xdp_tx", p1, mode)
    progs.detach("ms_xdp_tx", p1, mode)
    assert progs.attached_id(p1, mode) == 0


def test_removing_a_port_drops_its_claims(env):
    progs, cfg = env[0], env[1]
    p2 = env[5]
    progs.claim("udp", A4, 8000, p2)
    progs.claim("tcp", None, 8001, p2, version=6)
    assert sum(1 for _, owner in progs.claims() if owner == p2) == 2
    progs.remove_port(p2)
    try:
        assert not any(owner == p2 for _, owner in progs.claims())
        assert progs.test_run("ms_xdp_rx", xu.frame4(UDP, B4, 1, A4, 8000))[0] == "pass"
    finally:
        progs.add_port(p2, MAX_RX, MAX_TX)
    assert cfg.ports[p2] == (MAX_RX, MAX_TX)


def test_loading_an_object_the_verifier_rejects_names_its_log(tmp_path, monkeypatch):
    """A program that reads past its packet: the error says where the log is."""
    monkeypatch.setenv("MULTISTACK_XDP_CACHE", str(tmp_path))
    src = tmp_path / "bad.bpf.c"
    src.write_text('#include <linux/bpf.h>\n'
                   '__attribute__((section("xdp"), used)) int ms_xdp_rx(struct xdp_md *c)\n'
                   '{ return *(int *)(long)c->data; }\n'
                   'char _license[] __attribute__((section("license"), used)) = "GPL";\n')
    obj = tmp_path / "bad.bpf.o"
    subprocess.run(["clang", "-target", "bpf", "-O2", "-g", "-I/usr/include/x86_64-linux-gnu",
                    "-c", str(src), "-o", str(obj)], check=True)
    with pytest.raises(XdpError, match="verifier's log is in") as exc:
        XdpPrograms(obj)
    log = tmp_path / "bad.bpf.verifier.log"
    assert str(log) in str(exc.value)
    assert "invalid access to packet" in log.read_text()
