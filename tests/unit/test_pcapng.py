"""multistack.pcapng: what the writer produces is what Wireshark's reader
(tshark) and our reader see, comments included; and `multistack-ctl
rejects`' frame summary."""

import io
import shutil
import struct
import subprocess

import pytest

from multistack.ctl_kernel import describe_frame
from multistack.pcapng import (PcapngFormatError, PcapngWriter, iter_pcapng,
                               read_pcapng)

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def _ipv4_udp(src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02", sport=5000, dport=6000,
              payload=b"hello", frag=0):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, frag, 64, 17, 0,
                                src, dst))
    s = sum(struct.unpack("!10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    struct.pack_into("!H", hdr, 10, ~s & 0xFFFF)
    return MAC_B + MAC_A + b"\x08\x00" + bytes(hdr) + udp


def _ipv6_tcp():
    tcp = struct.pack("!HHIIBBHHH", 443, 51000, 1, 0, 0x50, 0x02, 1024, 0, 0)
    hdr = struct.pack("!IHBB16s16s", 0x60000000, len(tcp), 6, 64,
                      bytes.fromhex("fd770000000000000000000000000001"),
                      bytes.fromhex("fd770000000000000000000000000002"))
    return MAC_B + MAC_A + b"\x86\xdd" + hdr + tcp


T0 = 1_700_000_000_123_456_789


def _sample(path_or_file):
    """Two interfaces, frames with and without comments, one cut at snaplen."""
    with PcapngWriter(path_or_file, application="test") as w:
        a = w.add_interface("port 3 (ms0)", snaplen=128)
        b = w.add_interface("port 4 (ms0)", snaplen=128)
        w.write(_ipv4_udp(), T0, interface=a, comment="tx_rej_not_owned")
        w.write(_ipv6_tcp(), T0 + 1, interface=b, comment="tx_rej_other_port")
        w.write(_ipv4_udp(payload=b"x" * 400), T0 + 2_000, interface=a,
                comment="tx_rej_oversize")
        w.write(b"", T0 + 3_000, interface=a, original_length=60, comment="tx_rej_bad_slot")
        w.write(_ipv4_udp()[:30], T0 + 4_000, interface=b)
        assert w.frames_written == 5


def test_read_back(tmp_path):
    path = tmp_path / "s.pcapng"
    _sample(path)
    ifaces, packets = read_pcapng(path)
    assert [(i.name, i.snaplen, i.linktype, i.tsresol) for i in ifaces] == [
        ("port 3 (ms0)", 128, 1, 9), ("port 4 (ms0)", 128, 1, 9)]
    assert [(p.interface, p.time_ns, p.comments) for p in packets] == [
        (0, T0, ["tx_rej_not_owned"]), (1, T0 + 1, ["tx_rej_other_port"]),
        (0, T0 + 2000, ["tx_rej_oversize"]), (0, T0 + 3000, ["tx_rej_bad_slot"]),
        (1, T0 + 4000, [])]
    big = _ipv4_udp(payload=b"x" * 400)
    assert (packets[2].data, packets[2].original_length) == (big[:128], len(big))
    assert (packets[3].data, packets[3].original_length) == (b"", 60)
    assert packets[0].data == _ipv4_udp()
    assert [p.data for p in iter_pcapng(path.read_bytes())] == [p.data for p in packets]


def test_tshark_reads_the_comments(tmp_path):
    tshark = shutil.which("tshark")
    assert tshark, "tshark is not installed (scripts/setup installs it)"
    path = tmp_path / "s.pcapng"
    _sample(path)
    r = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-E", "occurrence=a",
                        "-e", "frame.comment", "-e", "frame.len", "-e", "frame.cap_len",
                        "-e", "frame.interface_name", "-e", "frame.time_epoch",
                        "-e", "udp.srcport", "-e", "tcp.srcport"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [ln.split("\t") for ln in r.stdout.splitlines()]
    big = len(_ipv4_udp(payload=b"x" * 400))
    assert [row[:4] for row in rows] == [
        ["tx_rej_not_owned", str(len(_ipv4_udp())), str(len(_ipv4_udp())), "port 3 (ms0)"],
        ["tx_rej_other_port", str(len(_ipv6_tcp())), str(len(_ipv6_tcp())), "port 4 (ms0)"],
        ["tx_rej_oversize", str(big), "128", "port 3 (ms0)"],
        ["tx_rej_bad_slot", "60", "0", "port 3 (ms0)"],
        ["", "30", "30", "port 4 (ms0)"]]
    # nanosecond time stamps (if_tsresol 9) survive
    assert rows[0][4] == "1700000000.123456789" and rows[1][4] == "1700000000.123456790"
    assert (rows[0][5], rows[1][6]) == ("5000", "443")


def test_written_to_a_stream():
    buf = io.BytesIO()
    _sample(buf)
    assert buf.getvalue()[:4] == b"\x0a\x0d\x0d\x0a"
    assert len(buf.getvalue()) % 4 == 0
    assert len(read_pcapng(buf.getvalue())[1]) == 5


def test_big_endian_files_are_read():
    """A section written by a big-endian host (hand-built: SHB, IDB, EPB)."""
    def block(btype, body):
        return struct.pack(">II", btype, 12 + len(body)) + body + struct.pack(">I", 12 + len(body))
    shb = block(0x0A0D0D0A, struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = block(1, struct.pack(">HHI", 1, 0, 64))         # default resolution: us
    data = b"\x01\x02\x03"
    epb = block(6, struct.pack(">IIIII", 0, 0, 1_500_000, 3, 3) + data + b"\0" +
                struct.pack(">HH", 1, 4) + b"why?" + struct.pack(">HH", 0, 0))
    ifaces, (pkt,) = read_pcapng(shb + idb + epb)
    assert ifaces[0].tsresol == 6
    assert (pkt.time_ns, pkt.data, pkt.comments) == (1_500_000_000, data, ["why?"])


@pytest.mark.parametrize("raw", [
    b"", b"\xd4\xc3\xb2\xa1" + b"\0" * 20,               # empty; a classic pcap
    b"\x0a\x0d\x0d\x0a\x1c\0\0\0\x4d\x3c\x2b\x1a" + b"\0" * 16,    # bad byte-order magic
])
def test_not_pcapng(raw):
    with pytest.raises(PcapngFormatError):
        read_pcapng(raw)


def test_cut_short(tmp_path):
    path = tmp_path / "s.pcapng"
    _sample(path)
    raw = path.read_bytes()
    with pytest.raises(PcapngFormatError):
        read_pcapng(raw[:-6])


def test_writer_refuses_nonsense():
    w = PcapngWriter(io.BytesIO())
    with pytest.raises(ValueError):
        w.write(b"x" * 60, T0)                  # no interface yet
    w.add_interface(snaplen=64)
    with pytest.raises(ValueError):
        w.write(b"x" * 60, T0, original_length=10)
    w.write(b"x" * 100, T0)                     # cut at snaplen, length kept
    (pkt,) = read_pcapng(w._file.getvalue())[1]
    assert (len(pkt.data), pkt.original_length) == (64, 100)


@pytest.mark.parametrize("frame, length, text", [
    (_ipv4_udp(), None, "udp 10.0.0.1:5000 > 10.0.0.2:6000"),
    (_ipv6_tcp(), None, "tcp [fd77::1]:443 > [fd77::2]:51000"),
    (_ipv4_udp(frag=0x2000), None, "ipv4 10.0.0.1 > 10.0.0.2 proto 17 fragment"),
    (_ipv4_udp()[:30], None, "ipv4 (header cut short)"),
    (_ipv4_udp()[:36], None, "ipv4 10.0.0.1 > 10.0.0.2 proto 17"),   # ports cut off
    (MAC_B + MAC_A + b"\x88\xb5" + b"x" * 50, None, "ethertype 0x88b5"),
    (b"\x01" * 10, None, "(10 bytes: no Ethernet header)"),
    (b"", 60, "(no bytes kept of 60)"),
    (b"", 0, "(empty)"),
])
def test_describe_frame(frame, length, text):
    assert describe_frame(frame, len(frame) if length is None else length) == text
