"""Backends for the Port conformance suite.

Every backend fixture yields ``(a, b)``: two ports such that frames sent on
``a`` arrive on ``b`` and back.  For TAP, two TAP devices are bridged in a
private network namespace (IPv6 off, so the kernel adds no frames of its own).
"""

import time

import pytest

from multistack.memport import memory_pair
from multistack.pcap import CapturePort, PcapWriter
from multistack.tap import TapPort, create_netns, delete_netns, ip, open_tap_in_netns, unique_netns_name

def bridged_taps(ns: str, mtu: int = 1500) -> tuple[TapPort, TapPort]:
    create_netns(ns)
    ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
       "net.ipv6.conf.default.disable_ipv6=1")
    ip("link", "add", "br0", "type", "bridge", "mcast_snooping", "0", netns=ns)
    ip("link", "set", "br0", "up", netns=ns)
    a = open_tap_in_netns(ns, mtu=mtu)
    try:
        b = open_tap_in_netns(ns, mtu=mtu)
    except Exception:
        a.close()
        raise
    for port in (a, b):
        ip("link", "set", "dev", port.name, "master", "br0", netns=ns)
    return a, b


@pytest.fixture(params=["memory", "captured-memory", pytest.param("tap", marks=pytest.mark.netns)])
def port_pair(request, tmp_path):
    if request.param in ("memory", "captured-memory"):
        a, b = memory_pair()
        if request.param == "captured-memory":  # the pcap wrapper is a Port too
            writer = PcapWriter(tmp_path / "conformance.pcap")
            a, b = (CapturePort(p, writer, time.time, close_writer=False) for p in (a, b))
        try:
            yield a, b
        finally:
            a.close()
            b.close()
            if request.param == "captured-memory":
                writer.close()
    else:
        ns = unique_netns_name("msport")
        try:
            a, b = bridged_taps(ns)
            try:
                yield a, b
            finally:
                a.close()
                b.close()
        finally:
            delete_netns(ns)
