"""`multistack-ctl capture`: the filter builder, checked by compiling each
filter with libpcap and running it on frames (pcap_offline_filter), and the
command's errors on the host, where the module is absent (the VM suite,
tests/kmod/test_kmod_capture.py, captures real traffic)."""

import ctypes
import ctypes.util
import ipaddress
import os

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6EchoRequest, ICMPv6PacketTooBig,
                                IPv6, IPv6ExtHdrDestOpt)
from scapy.layers.l2 import ARP, Ether

from multistack import ctl, kernel
from multistack.capture import Claim, capture_filter, port_claims
from multistack.errors import CtlError

MAC = "02:00:00:00:00:01"           # the port's interface
PEER = "02:00:00:00:00:02"
A4, B4, P4 = "10.0.0.2", "10.0.0.3", "10.0.0.9"     # ours, ours (another port), peer
A6, P6 = "fd00::2", "fd00::9"


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


class _PktHdr(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long),
                ("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32)]


class Libpcap:
    """libpcap's own compiler and interpreter on an Ethernet pcap_t."""

    def __init__(self):
        name = ctypes.util.find_library("pcap")
        assert name, "libpcap is missing (scripts/setup installs tshark, which needs it)"
        lib = ctypes.CDLL(name)
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram),
                                     ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_offline_filter.argtypes = [ctypes.POINTER(_BpfProgram),
                                            ctypes.POINTER(_PktHdr), ctypes.c_char_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
        self.lib = lib
        self.pcap = lib.pcap_open_dead(1, 262144)       # DLT_EN10MB

    def compile(self, expr: str) -> "_BpfProgram":
        prog = _BpfProgram()
        if self.lib.pcap_compile(self.pcap, ctypes.byref(prog), expr.encode(), 1,
                                 0xFFFFFFFF) != 0:
            raise ValueError(self.lib.pcap_geterr(self.pcap).decode())
        return prog

    def matches(self, prog: "_BpfProgram", frame: bytes) -> bool:
        hdr = _PktHdr(0, 0, len(frame), len(frame))
        return self.lib.pcap_offline_filter(ctypes.byref(prog), ctypes.byref(hdr),
                                            frame) != 0


@pytest.fixture(scope="module")
def pcap():
    return Libpcap()


def claim(proto, addr, port):
    return Claim(proto, ipaddress.ip_address(addr), port)


def rx(l3):         # a frame to the port's interface
    return bytes(Ether(src=PEER, dst=MAC) / l3)


def tx(l3):         # a frame the interface sends
    return bytes(Ether(src=MAC, dst=PEER) / l3)


def test_a_bad_filter_does_not_compile(pcap):
    with pytest.raises(ValueError, match="syntax"):
        pcap.compile("udp port 53 and")


def test_exact_ipv4_udp_claim(pcap):
    prog = pcap.compile(capture_filter([claim("udp", A4, 5000)], MAC))
    ours = [
        rx(IP(src=P4, dst=A4) / UDP(sport=7, dport=5000)),
        tx(IP(src=A4, dst=P4) / UDP(sport=5000, dport=7)),
        # errors about a packet the port sent: unreachable, frag needed,
        # time exceeded, parameter problem; a quote with IP options
        rx(IP(src=P4, dst=A4) / ICMP(type=3, code=3) / IP(src=A4, dst=P4) / UDP(sport=5000, dport=7)),
        rx(IP(src=P4, dst=A4) / ICMP(type=3, code=4) / IP(src=A4, dst=P4) / UDP(sport=5000, dport=7)),
        rx(IP(src=P4, dst=A4) / ICMP(type=11) / IP(src=A4, dst=P4) / UDP(sport=5000, dport=7)),
        rx(IP(src=P4, dst=A4) / ICMP(type=12) / IP(src=A4, dst=P4) / UDP(sport=5000, dport=7)),
        rx(IP(src=P4, dst=A4) / ICMP(type=3, code=1)
           / IP(src=A4, dst=P4, options=b"\x01\x01\x01\x00") / UDP(sport=5000, dport=7)),
    ]
    theirs = [
        rx(IP(src=P4, dst=A4) / UDP(sport=7, dport=5001)),               # another port
        rx(IP(src=P4, dst=B4) / UDP(sport=7, dport=5000)),               # another address
        rx(IP(src=P4, dst=A4) / TCP(sport=7, dport=5000)),               # another protocol
        rx(IP(src=P4, dst=A4, flags="MF") / UDP(sport=7, dport=5000)),   # a fragment: the OS's
        rx(IP(src=P4, dst=A4, frag=100) / UDP(sport=7, dport=5000)),
        tx(IP(src=A4, dst=P4) / UDP(sport=5001, dport=7)),
        tx(IP(src=P4, dst=A4) / UDP(sport=7, dport=5000)),   # to the port, but leaving
        rx(IP(src=A4, dst=P4) / UDP(sport=5000, dport=7)),   # from the port, but arriving
        # ICMP that is not an error about the port's packet
        rx(IP(src=P4, dst=A4) / ICMP(type=8) / IP(src=A4, dst=P4) / UDP(sport=5000, dport=7)),
        rx(IP(src=P4, dst=A4) / ICMP(type=5) / IP(src=A4, dst=P4) / UDP(sport=5000, dport=7)),
        rx(IP(src=P4, dst=A4) / ICMP(type=3) / IP(src=A4, dst=P4) / UDP(sport=5001, dport=7)),
        rx(IP(src=P4, dst=A4) / ICMP(type=3) / IP(src=A4, dst=P4) / TCP(sport=5000, dport=7)),
        rx(IP(src=P4, dst=A4) / ICMP(type=3) / IP(src=P4, dst=A4) / UDP(sport=7, dport=5000)),
        rx(IP(src=P4, dst=A4) / ICMP(type=3) / IP(src=A4, dst=P4, frag=3) / UDP(sport=5000, dport=7)),
        rx(IP(src=P4, dst=B4) / ICMP(type=3) / IP(src=A4, dst=P4) / UDP(sport=5000, dport=7)),
        bytes(Ether(src=PEER, dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=A4)),
    ]
    assert [pcap.matches(prog, f) for f in ours] == [True] * len(ours)
    assert [pcap.matches(prog, f) for f in theirs] == [False] * len(theirs)


def test_exact_ipv6_tcp_claim(pcap):
    prog = pcap.compile(capture_filter([claim("tcp", A6, 80)], MAC))
    ours = [
        rx(IPv6(src=P6, dst=A6) / TCP(sport=7, dport=80)),
        tx(IPv6(src=A6, dst=P6) / TCP(sport=80, dport=7, flags="SA")),
        rx(IPv6(src=P6, dst=A6) / ICMPv6DestUnreach() / IPv6(src=A6, dst=P6) / TCP(sport=80, dport=7)),
        rx(IPv6(src=P6, dst=A6) / ICMPv6PacketTooBig(mtu=1280)
           / IPv6(src=A6, dst=P6) / TCP(sport=80, dport=7) / (b"x" * 64)),
    ]
    theirs = [
        rx(IPv6(src=P6, dst=A6) / UDP(sport=7, dport=80)),
        rx(IPv6(src=P6, dst="fd00::3") / TCP(sport=7, dport=80)),
        tx(IPv6(src=A6, dst=P6) / TCP(sport=81, dport=7)),
        rx(IPv6(src=P6, dst=A6) / ICMPv6EchoRequest()),
        rx(IPv6(src=P6, dst=A6) / ICMPv6DestUnreach() / IPv6(src=A6, dst=P6) / TCP(sport=81, dport=7)),
        rx(IPv6(src=P6, dst=A6) / ICMPv6DestUnreach() / IPv6(src=A6, dst=P6) / UDP(sport=80, dport=7)),
        rx(IPv6(src=P6, dst=A6) / ICMPv6DestUnreach() / IPv6(src="fd00::3", dst=P6) / TCP(sport=80, dport=7)),
        rx(IP(src=P4, dst=A4) / TCP(sport=7, dport=80)),                  # IPv4: not claimed
    ]
    assert [pcap.matches(prog, f) for f in ours] == [True] * len(ours)
    assert [pcap.matches(prog, f) for f in theirs] == [False] * len(theirs)


def test_ipv6_extension_headers_are_not_walked(pcap):
    """The documented approximation: the module walks them, libpcap's
    transport offsets do not, so such a frame is missed."""
    prog = pcap.compile(capture_filter([claim("udp", A6, 53)], MAC))
    assert not pcap.matches(prog, rx(IPv6(src=P6, dst=A6) / IPv6ExtHdrDestOpt()
                                     / UDP(sport=7, dport=53)))


def test_wildcards_leave_other_ports_exact_claims_out(pcap):
    mine = [claim("udp", "0.0.0.0", 53), claim("udp", "::", 53)]
    others = [claim("udp", B4, 53), claim("udp", "fd00::3", 53), claim("udp", A4, 54)]
    prog = pcap.compile(capture_filter(mine, MAC, others))
    ours = [
        rx(IP(src=P4, dst=A4) / UDP(sport=7, dport=53)),
        rx(IP(src=P4, dst="10.0.0.7") / UDP(sport=7, dport=53)),
        tx(IP(src=A4, dst=P4) / UDP(sport=53, dport=7)),
        rx(IPv6(src=P6, dst=A6) / UDP(sport=7, dport=53)),
        tx(IPv6(src=A6, dst=P6) / UDP(sport=53, dport=7)),
        rx(IP(src=P4, dst=A4) / ICMP(type=3) / IP(src=A4, dst=P4) / UDP(sport=53, dport=7)),
        rx(IPv6(src=P6, dst=A6) / ICMPv6DestUnreach() / IPv6(src=A6, dst=P6) / UDP(sport=53, dport=7)),
    ]
    theirs = [
        rx(IP(src=P4, dst=B4) / UDP(sport=7, dport=53)),           # the other port's exact claim
        tx(IP(src=B4, dst=P4) / UDP(sport=53, dport=7)),
        rx(IPv6(src=P6, dst="fd00::3") / UDP(sport=7, dport=53)),
        rx(IP(src=P4, dst=B4) / ICMP(type=3) / IP(src=B4, dst=P4) / UDP(sport=53, dport=7)),
        # the quote's source must be the outer destination (ms_classify_icmp step 6)
        rx(IP(src=P4, dst=A4) / ICMP(type=3) / IP(src="10.0.0.7", dst=P4) / UDP(sport=53, dport=7)),
        rx(IPv6(src=P6, dst=A6) / ICMPv6DestUnreach() / IPv6(src="fd00::7", dst=P6)
           / UDP(sport=53, dport=7)),
        rx(IP(src=P4, dst=A4) / UDP(sport=7, dport=54)),
        rx(IP(src=P4, dst=A4) / TCP(sport=7, dport=53)),
    ]
    assert [pcap.matches(prog, f) for f in ours] == [True] * len(ours)
    assert [pcap.matches(prog, f) for f in theirs] == [False] * len(theirs)


def test_many_claims_compile(pcap):
    claims = [claim(proto, addr, 1000 + i) for i in range(8) for proto in ("tcp", "udp")
              for addr in (A4, A6, "0.0.0.0", "::")]
    prog = pcap.compile(capture_filter(claims, MAC, [claim("tcp", B4, 1003)]))
    assert pcap.matches(prog, tx(IP(src=A4, dst=P4) / TCP(sport=1007, dport=7)))
    assert not pcap.matches(prog, tx(IP(src=A4, dst=P4) / TCP(sport=1008, dport=7)))


def test_no_claims_is_not_a_filter():
    with pytest.raises(ValueError):
        capture_filter([], MAC)


# --------------------------------------------------------------------------
# claims from the module's listing

def _status(regs, dead=False, other_regs=()):
    reg = lambda r: {"family": "inet6" if ":" in r[1] else "inet", "proto": r[0],
                     "address": r[1], "port": r[2], "proof": r[3] if len(r) > 3 else "held"}
    return [{"name": "veth0", "ifindex": 7, "counters": {}, "ports": [
        {"id": 4, "dead": dead, "pid": 1, "counters": {}, "registrations": [reg(r) for r in regs]},
        {"id": 5, "dead": False, "pid": 1, "counters": {},
         "registrations": [reg(r) for r in other_regs]}]}]


def test_port_claims_skips_released_proofs():
    st = _status([("udp", A4, 5000), ("tcp", "::", 80, "released")],
                 other_regs=[("udp", B4, 53), ("udp", "0.0.0.0", 9), ("tcp", A6, 81, "released")])
    assert port_claims(st, 4) == ("veth0", [claim("udp", A4, 5000)], [claim("udp", B4, 53)])


@pytest.mark.parametrize("status,port,message", [
    (_status([("udp", A4, 5000)]), 9, "no port 9"),
    (_status([("udp", A4, 5000)], dead=True), 4, "port 4 is dead"),
    (_status([]), 4, "owns no tuple"),
    (_status([("udp", A4, 5000, "released")]), 4, "owns no tuple"),
    ([], 4, "no port 4"),
])
def test_port_claims_errors(status, port, message):
    with pytest.raises(CtlError, match=message):
        port_claims(status, port)


# --------------------------------------------------------------------------
# the command's errors, with the module absent or faked

@pytest.fixture
def proc_file(monkeypatch, tmp_path):
    monkeypatch.setattr(kernel, "DEVICE", str(tmp_path / "multistack"))
    monkeypatch.setattr(kernel, "PROC_FILE", str(tmp_path / "proc"))
    return tmp_path


def _fake(tmp_path, text):
    (tmp_path / "multistack").write_text("")
    (tmp_path / "proc").write_text(text)


@pytest.mark.parametrize("argv,proc,message", [
    (["capture", "4"], None, "not loaded"),
    (["capture", "4"], "", "no port 4"),
    (["capture", "four"], "", "invalid int value"),
    (["capture"], "", "required: port"),
    (["capture", "4", "-c", "0"], "", "at least 1"),
    (["capture", "4", "-c"], "", "expected one argument"),
    (["capture", "4", "-x"], "", "unrecognized arguments"),
    (["capture", "4"], "iface veth0 ifindex 7 ports 1\n"
     "port 4 iface veth0 pid 1 regs 0 dead 0\n", "owns no tuple"),
    (["capture", "4"], "iface veth0 ifindex 7 ports 1\n"
     "port 4 iface veth0 pid 1 regs 1 dead 1\nreg 4 inet udp 10.0.0.2 5000\n", "is dead"),
    # the listing names an interface this namespace does not have
    (["capture", "4", "-w", "f.pcapng"], "iface nosuch0 ifindex 7 ports 1\n"
     "port 4 iface nosuch0 pid 1 regs 1 dead 0\nreg 4 inet udp 10.0.0.2 5000\n",
     "interface nosuch0: No such device"),
])
def test_command_errors_are_one_line(proc_file, capsys, monkeypatch, argv, proc, message):
    if proc is not None:
        _fake(proc_file, proc)
    monkeypatch.chdir(proc_file)
    assert ctl.main(argv) == 2
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and message in out.err, out.err
    assert out.out == "" and not os.path.exists(proc_file / "f.pcapng")
