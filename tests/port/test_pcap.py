"""The pcap writer and reader."""

import io
import struct

import pytest

from multistack.pcap import PcapFormatError, PcapWriter, read_pcap


def test_round_trip_keeps_data_and_time_stamps():
    buf = io.BytesIO()
    writer = PcapWriter(buf)
    writer.write(b"\x01" * 60, 1.25)
    writer.write(memoryview(b"\x02" * 1514), 2.000001)
    writer.write(b"\x03" * 70, -5.0)  # clamped: pcap has no negative times
    records = read_pcap(buf.getvalue())
    assert [r.data for r in records] == [b"\x01" * 60, b"\x02" * 1514, b"\x03" * 70]
    assert [r.timestamp for r in records] == [1.25, pytest.approx(2.000001), 0.0]
    assert writer.frames_written == 3


def test_snaplen_truncates_but_keeps_the_original_length():
    buf = io.BytesIO()
    PcapWriter(buf, snaplen=100).write(b"\x07" * 300, 0)
    (record,) = read_pcap(buf.getvalue())
    assert record.data == b"\x07" * 100
    assert record.original_length == 300


def test_reads_big_endian_nanosecond_files():
    data = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    data += struct.pack(">IIII", 3, 500_000_000, 4, 4) + b"abcd"
    (record,) = read_pcap(data)
    assert record.timestamp == 3.5 and record.data == b"abcd"


@pytest.mark.parametrize("data", [b"", b"\x00" * 24, b"\xd4\xc3\xb2\xa1" + b"\x00" * 10])
def test_not_a_pcap_file(data):
    with pytest.raises(PcapFormatError):
        read_pcap(data)


def test_truncated_record_is_reported():
    buf = io.BytesIO()
    PcapWriter(buf).write(b"\x01" * 60, 0)
    with pytest.raises(PcapFormatError):
        read_pcap(buf.getvalue()[:-1])
    with pytest.raises(PcapFormatError):
        read_pcap(buf.getvalue()[:24 + 8])


def test_write_after_close_is_an_error(tmp_path):
    writer = PcapWriter(tmp_path / "x.pcap")
    writer.close()
    with pytest.raises(ValueError):
        writer.write(b"\x00" * 60, 0)


def test_capture_port_hands_the_in_flight_callback_to_the_memory_port():
    from multistack.memport import memory_pair
    from multistack.pcap import CapturePort

    a, b = memory_pair(delay=0.1, clock=lambda: 5.0)
    captured = CapturePort(b, PcapWriter(io.BytesIO()), clock=lambda: 5.0)
    calls = []
    captured.on_in_flight = lambda: calls.append(captured.poll_at())
    a.send_batch([b"\x02" * 60])
    a.sync()
    assert calls == [5.1]
    assert not hasattr(CapturePort(_NoHooks(), PcapWriter(io.BytesIO()), clock=lambda: 0), "on_in_flight")


class _NoHooks:
    name, mac, mtu = "x", b"\x02" * 6, 1500
