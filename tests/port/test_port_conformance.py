"""What every Port backend does, run over each backend (see conftest.port_pair)."""

import os
import select
import time

import pytest
import trio

from multistack.errors import PortClosedError, UnsupportedOperation
from multistack.pcap import CapturePort, PcapWriter, read_pcap
from multistack.port import Port

TEST_ETHERTYPE = b"\x88\xb5"  # IEEE local experimental: nothing else on the link uses it


def make_frame(src: bytes, dst: bytes, index: int, size: int) -> bytes:
    header = dst + src + TEST_ETHERTYPE + index.to_bytes(4, "big")
    return header + bytes((index + i) & 0xFF for i in range(size - len(header)))


def is_test_frame(frame) -> bool:
    return bytes(frame[12:14]) == TEST_ETHERTYPE


def wait_readable(port: Port, timeout: float) -> bool:
    # poll, not select: other tests may have pushed descriptor numbers past 1024.
    poller = select.poll()
    poller.register(port.fileno(), select.POLLIN)
    return bool(poller.poll(max(0.0, timeout) * 1000))


def receive(port: Port, count: int, timeout: float = 3.0) -> list[bytes]:
    """Collect ``count`` test frames (copied), waiting on fileno()."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        wait_readable(port, left)
        got += [bytes(f) for f in port.recv_batch() if is_test_frame(f)]
    return got


def readable(port: Port, timeout: float = 0.0) -> bool:
    return wait_readable(port, timeout)


@pytest.mark.parametrize("direction", ["a->b", "b->a"])
def test_batch_round_trips_in_order(port_pair, direction):
    a, b = port_pair if direction == "a->b" else port_pair[::-1]
    sizes = [60, 61, 64, 100, 512, 1000, 1513, 1514] * 6
    frames = [make_frame(a.mac, b.mac, i, size) for i, size in enumerate(sizes)]
    assert a.send_batch(frames) == len(frames)
    a.sync()
    assert receive(b, len(frames)) == frames
    assert a.stats().tx_frames >= len(frames)
    assert a.stats().tx_bytes >= sum(sizes)
    assert b.stats().rx_frames >= len(frames)


def test_fileno_readable_only_while_frames_wait(port_pair):
    a, b = port_pair
    b.recv_batch()
    assert not readable(b)
    a.send_batch([make_frame(a.mac, b.mac, 1, 80)])
    assert not readable(b, 0.05), "nothing may arrive before sync()"
    a.sync()
    assert readable(b, 2.0)
    assert receive(b, 1) == [make_frame(a.mac, b.mac, 1, 80)]
    assert not readable(b)


def test_trio_wait_readable_wakes_on_arrival(port_pair):
    a, b = port_pair
    frame = make_frame(a.mac, b.mac, 7, 200)

    async def main():
        async def send_later():
            await trio.sleep(0.05)
            a.send_batch([frame])
            a.sync()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_later)
            with trio.fail_after(3):
                while True:
                    await trio.lowlevel.wait_readable(b.fileno())
                    got = [bytes(f) for f in b.recv_batch() if is_test_frame(f)]
                    if got:
                        return got

    assert trio.run(main) == [frame]


def test_recv_batch_honours_max_frames(port_pair):
    a, b = port_pair
    frames = [make_frame(a.mac, b.mac, i, 60) for i in range(10)]
    a.send_batch(frames)
    a.sync()
    assert readable(b, 2.0)
    time.sleep(0.05)
    first = [bytes(f) for f in b.recv_batch(3)]
    assert 1 <= len(first) <= 3
    rest = receive(b, 10 - len([f for f in first if is_test_frame(f)]))
    assert [f for f in first if is_test_frame(f)] + rest == frames


def test_runt_and_oversize_frames_are_dropped_and_counted(port_pair):
    a, b = port_pair
    good = make_frame(a.mac, b.mac, 1, 64)
    a.send_batch([b"\x01" * 10, b"\x02" * (14 + 4 + a.mtu + 1), good])
    a.sync()
    assert receive(b, 1) == [good]
    assert receive(b, 1, timeout=0.1) == []
    stats = a.stats()
    assert stats.tx_dropped == 2
    assert stats.extra["tx_runt"] == 1
    assert stats.extra["tx_oversize"] == 1


def test_send_batch_stops_when_the_queue_is_full(port_pair):
    a, b = port_pair
    frames = [make_frame(a.mac, b.mac, i, 60) for i in range(5000)]
    queued = a.send_batch(frames)
    assert 0 < queued < len(frames)
    assert a.send_batch(frames[queued:]) == 0
    a.sync()
    # After the sync there is room again.
    assert a.send_batch(frames[queued:queued + 1]) == 1


def test_close_is_idempotent_and_releases_the_descriptor(port_pair):
    a, b = port_pair
    fd = a.fileno()
    os.fstat(fd)
    a.close()
    a.close()
    assert a.closed
    with pytest.raises(OSError):
        os.fstat(fd)
    with pytest.raises(PortClosedError):
        a.recv_batch()
    with pytest.raises(PortClosedError):
        a.send_batch([make_frame(a.mac, b.mac, 0, 60)])
    with pytest.raises(PortClosedError):
        a.fileno()
    assert isinstance(a.stats().tx_frames, int)  # stats stay readable after close


def test_link_backends_refuse_registration(port_pair):
    a, _ = port_pair
    with pytest.raises(UnsupportedOperation):
        a.claim("udp", "10.0.0.1", 7)


def test_capture_port_writes_a_readable_pcap(port_pair, tmp_path):
    a, b = port_pair
    path = tmp_path / "capture.pcap"
    writer = PcapWriter(path)
    clock = time.monotonic
    ca, cb = (CapturePort(p, writer, clock, close_writer=False) for p in (a, b))
    frames = [make_frame(a.mac, b.mac, i, 60 + 10 * i) for i in range(5)]
    ca.send_batch(frames)
    ca.sync()
    got = receive(cb, 5)
    assert got == frames
    writer.close()
    records = read_pcap(path)
    test_records = [r.data for r in records if is_test_frame(r.data)]
    assert test_records == frames + frames  # sent by a, then received by b
    assert all(r.original_length == len(r.data) for r in records)

    from scapy.layers.l2 import Ether
    from scapy.utils import rdpcap

    packets = [p for p in rdpcap(str(path)) if p[Ether].type == 0x88B5]
    assert [bytes(p) for p in packets] == frames + frames
    assert packets[0][Ether].src == ":".join(f"{x:02x}" for x in a.mac)
