"""Any bytes from the link end as a delivery, an answer or a counted drop; never an exception."""

from hypothesis import given, strategies as st

from stacks.udp import UdpLayer
from stacks.wire.ethernet import MacAddress

from hostkit import HOST_MAC, RecordingHandler, make_host

HEADERS = st.sampled_from([
    HOST_MAC + MacAddress("02:00:00:00:00:02") + b"\x08\x00",
    HOST_MAC + MacAddress("02:00:00:00:00:02") + b"\x86\xdd",
    b"\xff" * 6 + MacAddress("02:00:00:00:00:02") + b"\x08\x06",
    b"\x33\x33\xff\x00\x00\x01" + MacAddress("02:00:00:00:00:02") + b"\x86\xdd",
    b"",
])


@given(HEADERS, st.binary(max_size=200))
def test_random_frames_never_raise(header, body):
    host, clock = make_host()
    UdpLayer.of(host)
    host.attach(6, RecordingHandler())
    host.handle_frame(header + body, clock.now)
    assert host.counters["rx_frames"] == 1
    # Every frame is accounted for: delivered, answered, learned from, or dropped with a reason.
    outcomes = ("rx_delivered", "arp_replies_sent", "nd_adverts_sent", "echo_replies_sent",
                "icmp_errors_received", "arp_not_for_us", "nd_adverts_ignored", "neighbours_learned")
    assert sum(host.counters[k] for k in outcomes) + sum(host.drops().values()) >= 1, host.counters


@given(st.binary(max_size=100))
def test_random_udp_payloads_never_raise(payload):
    host, clock = make_host()
    layer = UdpLayer.of(host)
    layer.bind("0.0.0.0", 7)
    from ipaddress import IPv4Address

    layer.on_packet(IPv4Address("10.1.0.2"), IPv4Address("10.1.0.1"), memoryview(payload), clock.now)
    assert sum(layer.counters.values()) >= 1
