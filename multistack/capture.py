"""`multistack-ctl capture PORT [-w FILE] [-c N]`: what one port receives
and sends, as pcapng, live.

The capture itself is dumpcap's (Wireshark's capture tool, libpcap): it
captures on the port's interface with a libpcap filter built here from the
port's claims, read once at the start from /proc/net/multistack.  A claim
(protocol, address, port) whose proof is held selects:

  RX    frames to this host's MAC whose destination tuple is the claim
        (IPv4 fragments excluded: the module passes them to the OS);
  ICMP  ICMP/ICMPv6 errors (unreachable, too big, time exceeded, parameter
        problem) to this host's MAC quoting a packet that left from the
        claim (quoted source tuple = claim, quoted source address = outer
        destination), as ms_classify_icmp (multistack_classify.h) checks;
  TX    frames from this host's MAC whose source tuple is the claim (the
        module sends nothing else for the port).

A wildcard claim (0.0.0.0 or ::) matches any address of its family except
the exact claims other ports hold for the same protocol and port (those
win in the module).  What libpcap cannot say, and the filter approximates:
IPv6 extension headers are not walked (libpcap reads the transport header
at offset 40; the module walks them), and a wildcard matches addresses not
configured on the interface (the module delivers only to configured ones).

Without ``-w`` the pcapng stream goes to ``tshark -r - -l -n``, which
prints one summary line per packet.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from .errors import CtlError
from .text import one_line, printable

PROTO_NUMBERS = {"tcp": 6, "udp": 17}
ICMP4_ERRORS = (3, 11, 12)          # unreachable, time exceeded, param. problem
ICMP6_ERRORS = (1, 4)               # 1..4: unreachable, too big, time exc., param.


@dataclass(frozen=True)
class Claim:
    """A tuple a port owns: frames to it are the port's, frames from it are
    the port's."""

    proto: str                      # "tcp" or "udp"
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int

    @property
    def wildcard(self) -> bool:
        return self.address.is_unspecified

    def __str__(self) -> str:
        addr = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.proto} {addr}:{self.port}"


def _claim(reg: dict) -> Claim:
    return Claim(reg["proto"], ipaddress.ip_address(reg["address"]), int(reg["port"]))


def port_claims(ifaces: list[dict], port_id: int) -> tuple[str, list[Claim], list[Claim]]:
    """The interface of port ``port_id``, its claims, and the exact claims
    of the other ports of that interface (they win over its wildcards).
    ``ifaces`` is multistack.kernel.status().  CtlError when the port is
    unknown, dead or owns nothing."""
    for iface in ifaces:
        for port in iface["ports"]:
            if port["id"] != port_id:
                continue
            if port["dead"]:
                raise CtlError(f"port {port_id} is dead: its interface "
                               f"{printable(iface['name'])} was detached or removed")
            claims = [_claim(r) for r in port["registrations"]
                      if r.get("proof", "held") == "held" and r["proto"] in PROTO_NUMBERS]
            if not claims:
                raise CtlError(f"port {port_id} owns no tuple: nothing to capture")
            others = [_claim(r) for p in iface["ports"] if p["id"] != port_id
                      for r in p["registrations"]
                      if r.get("proof", "held") == "held" and r["proto"] in PROTO_NUMBERS
                      and not ipaddress.ip_address(r["address"]).is_unspecified]
            return iface["name"], claims, others
    raise CtlError(f"no port {port_id} in this network namespace "
                   "(multistack-ctl list shows the ports)")


def _words(addr: ipaddress.IPv6Address) -> list[int]:
    return list(struct.unpack("!4I", addr.packed))


def _shadowed(claim: Claim, others: list[Claim]) -> list:
    """Addresses a wildcard claim does not get: other ports' exact claims."""
    if not claim.wildcard:
        return []
    return sorted({o.address for o in others
                   if (o.proto, o.port, o.address.version)
                   == (claim.proto, claim.port, claim.address.version)})


def _tuple_match(claim: Claim, side: str, others: list[Claim]) -> str:
    """Frames whose ``side`` ("src" or "dst") tuple is the claim."""
    ip = "ip" if claim.address.version == 4 else "ip6"
    terms = [ip, f"{claim.proto} {side} port {claim.port}"]
    if not claim.wildcard:
        terms.append(f"{ip} {side} host {claim.address}")
    terms += [f"not {ip} {side} host {a}" for a in _shadowed(claim, others)]
    if ip == "ip":
        terms.append("ip[6:2] & 0x3fff = 0")       # neither MF nor an offset
    return "(" + " and ".join(terms) + ")"


def _icmp4_match(claim: Claim, others: list[Claim]) -> str:
    """ICMP errors quoting an IPv4 packet sent from the claim.  icmp[8] is
    the quoted IPv4 header, its transport header at 8 + IHL * 4."""
    ihl = "(icmp[8] & 0xf) * 4"
    terms = [
        "icmp", "ip[6:2] & 0x3fff = 0",
        "(" + " or ".join(f"icmp[0] = {t}" for t in ICMP4_ERRORS) + ")",
        "icmp[8] & 0xf0 = 0x40", "icmp[8] & 0xf >= 5",
        f"icmp[10:2] >= {ihl} + 8",                 # quoted total length
        "icmp[14:2] & 0x1fff = 0",                  # quoted: no fragment offset
        f"icmp[17] = {PROTO_NUMBERS[claim.proto]}",
        "icmp[20:4] = ip[16:4]",                    # quoted source = outer destination
        f"icmp[8 + {ihl} : 2] = {claim.port}",
    ]
    if not claim.wildcard:
        terms.append(f"ip dst host {claim.address}")
    terms += [f"not ip dst host {a}" for a in _shadowed(claim, others)]
    return "(" + " and ".join(terms) + ")"


def _icmp6_match(claim: Claim, others: list[Claim]) -> str:
    """ICMPv6 errors quoting an IPv6 packet sent from the claim.  Offsets
    are from the outer IPv6 header: ICMPv6 at 40, the quote at 48, its
    source address at 56, its ports at 88 (no extension headers walked)."""
    lo, hi = ICMP6_ERRORS
    terms = [
        "ip6 proto 58", f"ip6[40] >= {lo}", f"ip6[40] <= {hi}",
        "ip6[48] & 0xf0 = 0x60",
        "ip6[52:2] >= 8",                           # quoted payload length
        f"ip6[54] = {PROTO_NUMBERS[claim.proto]}",
    ]
    # quoted source = outer destination (ip6[24..39]), four 32-bit words
    terms += [f"ip6[{56 + 4 * i}:4] = ip6[{24 + 4 * i}:4]" for i in range(4)]
    terms.append(f"ip6[88:2] = {claim.port}")
    if not claim.wildcard:
        terms.append(f"ip6 dst host {claim.address}")
    terms += [f"not ip6 dst host {a}" for a in _shadowed(claim, others)]
    return "(" + " and ".join(terms) + ")"


def capture_filter(claims: list[Claim], mac: str, others: list[Claim] = ()) -> str:
    """The libpcap filter for a port's frames on its interface (MAC
    ``mac``): received ones (and ICMP errors about its packets) addressed
    to ``mac``, sent ones from it."""
    if not claims:
        raise ValueError("a port without claims has no frames")
    others = list(others)
    rx = []
    for c in claims:
        rx.append(_tuple_match(c, "dst", others))
        rx.append(_icmp4_match(c, others) if c.address.version == 4
                  else _icmp6_match(c, others))
    tx = [_tuple_match(c, "src", others) for c in claims]
    return (f"(ether dst {mac} and ({' or '.join(rx)})) or "
            f"(ether src {mac} and ({' or '.join(tx)}))")


# --------------------------------------------------------------------------
# running the capture


def _mac_of(ifname: str) -> str:
    import fcntl
    SIOCGIFHWADDR = 0x8927
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            res = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR,
                              struct.pack("16s16x", os.fsencode(ifname)[:15]))
    except OSError as exc:
        raise CtlError(f"interface {printable(ifname)}: {exc.strerror}") from None
    return ":".join(f"{b:02x}" for b in res[18:24])


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise CtlError(f"{name} is not installed (Debian: apt-get install tshark; "
                       "scripts/setup installs it)")
    return path


def _dumpcap_error(ifname: str, text: str, status: int) -> str:
    """dumpcap's many-line complaint, as one line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if any("permission to capture" in ln or "Operation not permitted" in ln
           for ln in lines):
        return (f"capture on {printable(ifname)}: permission denied "
                "(capturing needs CAP_NET_RAW and CAP_NET_ADMIN)")
    for ln in lines:
        if ln.startswith("dumpcap: "):
            return f"capture on {printable(ifname)}: {ln.removeprefix('dumpcap: ')}"
    return f"capture on {printable(ifname)}: dumpcap exited with status {status}"


class _Stop:
    """SIGINT/SIGTERM while capturing: ask dumpcap to stop (it then closes
    its pcapng cleanly) and keep copying until it has."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.requested = False
        self.saved = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def __exit__(self, *exc):
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def cmd_capture(args: argparse.Namespace) -> int:
    from .ctl_kernel import _call, _kernel

    if args.count is not None and args.count < 1:
        raise CtlError(f"-c: a packet count must be at least 1, not {args.count}")
    kernel = _kernel()
    ifname, claims, others = port_claims(_call(kernel.status), args.port)
    flt = capture_filter(claims, _mac_of(ifname), others)
    dumpcap = _tool("dumpcap")
    tshark = _tool("tshark") if args.write is None else None

    if args.write is None or args.write == "-":
        out = None
    else:
        try:
            out = open(args.write, "wb")
        except OSError as exc:
            raise CtlError(f"-w {printable(args.write)}: {exc.strerror}") from None
    cmd = [dumpcap, "-q", "-n", "-i", ifname, "-f", flt, "-w", "-"]
    if args.count is not None:
        cmd += ["-c", str(args.count)]
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL)
    decoder = None
    started = False
    try:
        with _Stop(proc) as stop:
            while True:
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    break
                if not started:             # the pcapng header: capturing now
                    started = True
                    print(one_line(f"capturing port {args.port} on {printable(ifname)}: "
                                   + ", ".join(map(str, claims))), file=sys.stderr, flush=True)
                    if tshark is not None:
                        decoder = subprocess.Popen([tshark, "-r", "-", "-l", "-n"],
                                                   stdin=subprocess.PIPE,
                                                   stderr=subprocess.DEVNULL,
                                                   # it ends at end of input,
                                                   # not at the terminal's ^C
                                                   start_new_session=True)
                try:
                    if decoder is not None:
                        decoder.stdin.write(chunk)
                        decoder.stdin.flush()
                    elif out is not None:
                        out.write(chunk)
                        out.flush()
                    else:
                        sys.stdout.buffer.write(chunk)
                        sys.stdout.buffer.flush()
                except BrokenPipeError:     # the reader went away: stop
                    stop._handle(signal.SIGPIPE, None)
                    break
            status = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        if out is not None:
            out.close()
        if decoder is not None:
            try:
                decoder.stdin.close()
            except BrokenPipeError:
                pass
            decoder.wait()
    if not started:
        if out is not None:
            os.unlink(args.write)           # nothing was captured into it
        errors.seek(0)
        raise CtlError(_dumpcap_error(ifname, errors.read().decode(errors="replace"), status))
    if status != 0 and not stop.requested:
        errors.seek(0)
        print(one_line("multistack-ctl: " + _dumpcap_error(
            ifname, errors.read().decode(errors="replace"), status)), file=sys.stderr)
        return 1
    return 0


def add_subcommand(sub: argparse._SubParsersAction, parents: list) -> None:
    p = sub.add_parser("capture", parents=parents,
                       help="capture what one port receives and sends (pcapng, "
                       "needs CAP_NET_RAW)")
    p.add_argument("port", type=int, help="port id (multistack-ctl list)")
    p.add_argument("-w", dest="write", metavar="FILE",
                   help="write pcapng to FILE ('-': standard output) instead of "
                   "printing one line per packet")
    p.add_argument("-c", dest="count", type=int, metavar="N",
                   help="stop after N packets")
    p.set_defaults(func=cmd_capture)
