"""TX with MS_PORT_F_QDISC_BYPASS: validated frames go straight to the
driver, every rejection is still counted, and the default mode still goes
through the interface's qdisc."""

import errno
import os
import re
import socket

import pytest

import kmodutil as ku
from multistack import kernel
from multistack._native import ffi, lib
from test_kmod_tx import REASONS, _bad_frame

UDP = socket.IPPROTO_UDP


@pytest.fixture
def bypass_setup(topo):
    """Port d (default) owns udp a4:7700, port b (bypass) udp a4:7701; the
    peer listens on udp b4:7702."""
    d, b = topo.port(), topo.port(qdisc_bypass=True)
    topo.track(d.claim("udp", topo.a4, 7700))
    topo.track(b.claim("udp", topo.a4, 7701))
    rx = topo.peer()
    rx.bind((topo.b4, 7702))
    rx.setblocking(False)
    return topo, d, b, rx


def _frames(topo, sport, tag, n):
    return [ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, sport, 7702,
                     b"%s-%d" % (tag, i)) for i in range(n)]


def _send(port, frames):
    assert port.send_batch(frames) == len(frames)
    port.sync()


def _netem_drops(ifname):
    out = ku.sh(f"tc -s qdisc show dev {ifname}").stdout
    m = re.search(r"qdisc netem .*?dropped (\d+)", out, re.S)
    assert m, out
    return int(m.group(1))


def test_flag_is_reported_and_unknown_flags_are_einval(bypass_setup):
    topo, d, b, _ = bypass_setup
    assert (d.qdisc_bypass, b.qdisc_bypass) == (False, True)
    assert d.info()["qdisc_bypass"] is False and b.info()["qdisc_bypass"] is True
    fd = os.open(kernel.DEVICE, os.O_RDWR)
    try:
        req = ffi.new("struct ms_port_req *")
        req.version = lib.MS_ABI_VERSION
        req.ifname = topo.if_a.encode()
        req.flags = lib.MS_PORT_F_ALL << 1
        assert lib.ms_kmod_ioctl(fd, lib.MS_IOC_PORT_BIND, req) == -errno.EINVAL
        req.flags = lib.MS_PORT_F_QDISC_BYPASS
        assert lib.ms_kmod_ioctl(fd, lib.MS_IOC_PORT_BIND, req) == 0
        assert req.flags == lib.MS_PORT_F_QDISC_BYPASS
    finally:
        os.close(fd)


def test_bypass_frames_go_out(bypass_setup):
    topo, _, b, rx = bypass_setup
    frames = _frames(topo, 7701, b"byp", 150)      # more than one burst of 64
    _send(b, frames)
    got = ku.drain(rx, 1.5)
    assert sorted(got) == sorted(b"byp-%d" % i for i in range(150))
    st = b.raw_stats()[0]
    assert st["tx_sent"] == 150 and st["tx_bytes"] == sum(len(f) for f in frames)
    assert b.raw_stats()[1]["tx_sent"] >= 150       # the interface counts them too


def test_bypass_counts_every_rejection(bypass_setup):
    topo, _, b, rx = bypass_setup
    frames, expect = [], {}
    for i, reason in enumerate(REASONS * 2):
        fr, counter = _bad_frame(reason, topo)
        if reason == "other_port":                 # port d owns 7700
            fr = ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, 7700, 7702,
                          b"MSTX-other")
        frames.append(fr)
        expect[counter] = expect.get(counter, 0) + 1
        frames.append(ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, 7701, 7702,
                               b"good-%d" % i))
    _send(b, frames)
    st = b.raw_stats()[0]
    # the other bad frames carry sport 7500, registered nowhere here: each
    # fails its own check before ownership, so only its counter moves
    for counter, n in expect.items():
        assert st[counter] == n, (counter, {k: v for k, v in st.items() if v})
    assert st["tx_sent"] == len(REASONS) * 2
    assert sorted(ku.drain(rx, 1.5)) == sorted(b"good-%d" % i for i in range(len(REASONS) * 2))


def test_default_mode_goes_through_the_qdisc_and_bypass_does_not(bypass_setup):
    topo, d, b, rx = bypass_setup
    ku.sh(f"tc qdisc add dev {topo.if_a} root netem loss 100%")
    try:
        before = _netem_drops(topo.if_a)
        _send(d, _frames(topo, 7700, b"def", 20))
        assert ku.drain(rx, 0.5) == []
        # (>=: the OS's own ARP / neighbour discovery may be dropped too)
        assert _netem_drops(topo.if_a) - before >= 20
        # the module handed them all to dev_queue_xmit: sent, not rejected
        assert d.raw_stats()[0]["tx_sent"] == 20

        before = _netem_drops(topo.if_a)
        _send(b, _frames(topo, 7701, b"byp", 20))
        assert sorted(ku.drain(rx, 1.5)) == sorted(b"byp-%d" % i for i in range(20))
        assert _netem_drops(topo.if_a) - before < 20    # none of ours
        assert b.raw_stats()[0]["tx_sent"] == 20
    finally:
        ku.sh(f"tc qdisc del dev {topo.if_a} root", check=False)
