"""The RX fast path agrees with the full parse on every frame, valid or mangled."""

from hypothesis import given, strategies as st

from stacks.wire.udp import UdpRepr

from hostkit import HOST_V4, HOST_V6, PEER_V4, PEER_V6, RecordingHandler, ipv4, ipv6, make_host

VALID = [
    ipv4(PEER_V4, HOST_V4, UdpRepr(5000, 7, b"fast path v4")),
    ipv6(PEER_V6, HOST_V6, UdpRepr(5000, 7, b"fast path v6")),
]


def outcome(frame, *, fast: bool):
    host, clock = make_host()
    handler = RecordingHandler()
    host.attach(17, handler)
    host.attach(6, handler)
    if fast:
        host.handle_frame(frame, clock.now)
    else:
        host.counters["rx_frames"] += 1
        host._handle_frame_slowly(frame, clock.now)
    return dict(host.counters), handler.packets


@given(st.sampled_from(VALID),
       st.lists(st.tuples(st.integers(0, 79), st.integers(0, 255)), max_size=4),
       st.integers(0, 100))
def test_fast_path_decides_like_the_full_parse(frame, flips, cut):
    mangled = bytearray(frame)
    for index, value in flips:
        if index < len(mangled):
            mangled[index] = value
    mangled = bytes(mangled[:len(mangled) - cut % 12 if cut < 50 else len(mangled)])
    assert outcome(mangled, fast=True) == outcome(mangled, fast=False)


def test_valid_frames_take_the_fast_path_and_are_delivered():
    for frame, fast in zip(VALID, ("_fast_ipv4", "_fast_ipv6")):
        host, clock = make_host()
        handler = RecordingHandler()
        host.attach(17, handler)
        assert getattr(host, fast)(memoryview(frame), clock.now) is True
        assert len(handler.packets) == 1 and host.counters == {"rx_delivered": 1}
