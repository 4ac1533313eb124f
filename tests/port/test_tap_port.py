"""TAP specifics: the kernel side in a namespace, and a vanished device."""

import json
import select
import subprocess

import pytest

from multistack.errors import PortClosedError
from multistack.tap import (TapError, TapPort, create_netns, delete_netns, ip, open_tap_in_netns,
                            unique_netns_name)

pytestmark = pytest.mark.netns


def wait_readable(port, timeout: float) -> None:
    poller = select.poll()  # not select(): descriptor numbers may be past 1024
    poller.register(port.fileno(), select.POLLIN)
    poller.poll(timeout * 1000)


@pytest.fixture
def netns():
    name = unique_netns_name("mstap")
    create_netns(name)
    try:
        yield name
    finally:
        delete_netns(name)


def test_kernel_side_gets_its_addresses_and_talks_arp(netns):
    with open_tap_in_netns(netns, ["10.9.0.1/24", "fd00:9::1/64"]) as port:
        info = json.loads(ip("-j", "addr", "show", "dev", port.name, netns=netns))[0]
        assert {a["local"] for a in info["addr_info"]} >= {"10.9.0.1", "fd00:9::1"}
        assert port.kernel_mac != port.mac
        assert port.mac[0] & 0x03 == 0x02  # unicast, locally administered
        # The kernel resolves a neighbour on the link: its ARP request reaches the port.
        subprocess.run(["ip", "netns", "exec", netns, "ping", "-c1", "-W0.3", "10.9.0.2"],
                       capture_output=True)
        frames = []
        for _ in range(20):
            wait_readable(port, 0.2)
            frames += [bytes(f) for f in port.recv_batch()]
            if any(f[12:14] == b"\x08\x06" for f in frames):
                break
        arp = next(f for f in frames if f[12:14] == b"\x08\x06")
        assert arp[:6] == b"\xff" * 6 and arp[6:12] == port.kernel_mac
        assert arp[14 + 24:14 + 28] == bytes([10, 9, 0, 2])  # target protocol address


def test_two_taps_in_one_namespace_get_distinct_names(netns):
    with open_tap_in_netns(netns) as a, open_tap_in_netns(netns) as b:
        assert a.name != b.name


def test_deleted_namespace_closes_the_port(netns):
    port = open_tap_in_netns(netns, ["10.9.0.1/24"])
    delete_netns(netns)
    with pytest.raises(PortClosedError):
        for _ in range(50):
            wait_readable(port, 0.1)
            port.recv_batch()
    assert port.closed


def test_bad_names_are_refused():
    with pytest.raises(ValueError):
        TapPort("x" * 20)
    with pytest.raises(TapError):
        open_tap_in_netns("no-such-namespace-here")
