"""`multistack-ctl capture` against the real module, inside the VM.

Port d (default TX path, dev_queue_xmit) owns udp a4:7800 and tcp a6:7801;
port b (qdisc bypass, netdev_start_xmit with the packet taps fed by hand)
owns udp a4:7802.  While both are captured at once, each exchanges frames
with the peer -- UDP both ways, a TCP SYN answered by the peer's RST over
IPv6, a UDP datagram to a closed port answered by an ICMP error that the
module hands to d -- and the OS of both ends talks on the same link (an OS
UDP socket, UDP to a port d owns only for TCP, ping, ARP and ND).  Each
file holds exactly its port's frames, as tshark reads them.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

import kmodutil as ku

UDP, TCP = socket.IPPROTO_UDP, socket.IPPROTO_TCP
START_TIMEOUT = 300         # a Python and a dumpcap start under TCG


class Capture:
    """``multistack-ctl capture PORT ARGS...`` as its own process, started
    once it reports that it captures."""

    def __init__(self, port_id: int, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "multistack.ctl", "capture", str(port_id), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.err = b""
        deadline = time.monotonic() + START_TIMEOUT
        while b"capturing port" not in self.err:
            left = deadline - time.monotonic()
            assert left > 0 and self.proc.poll() is None, self.err
            if select.select([self.proc.stderr], [], [], min(left, 1.0))[0]:
                self.err += os.read(self.proc.stderr.fileno(), 4096)

    def finish(self, interrupt: bool = False, timeout: float = START_TIMEOUT):
        """Exit status, standard output and error of the command."""
        if interrupt:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.communicate()
        return self.proc.returncode, out.decode(), (self.err + err).decode()


FIELDS = ("ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "ip.proto", "ipv6.nxt",
          "udp.srcport", "udp.dstport", "tcp.srcport", "tcp.dstport", "icmp.type",
          "tcp.flags.syn", "tcp.flags.reset")


def tshark_rows(path: str) -> list[tuple]:
    """(proto, src, sport, dst, dport, detail) of every frame of a pcapng
    file, as tshark decodes it; for an ICMP error, the ports are those of
    the packet it quotes."""
    r = subprocess.run(["tshark", "-r", path, "-n", "-T", "fields", "-E", "occurrence=f",
                        "-E", "separator=|"] + [a for f in FIELDS for a in ("-e", f)],
                       capture_output=True, text=True, timeout=START_TIMEOUT)
    assert r.returncode == 0, r.stderr
    rows = []
    for line in r.stdout.splitlines():
        v = dict(zip(FIELDS, line.split("|")))
        proto = int(v["ip.proto"] or v["ipv6.nxt"])
        if proto == 1:
            name, detail = "icmp", v["icmp.type"]
        elif proto == UDP:
            name, detail = "udp", ""
        else:
            name, detail = "tcp", "syn" if v["tcp.flags.syn"] in ("1", "True") else (
                "rst" if v["tcp.flags.reset"] in ("1", "True") else "")
        sport = v["udp.srcport"] or v["tcp.srcport"]
        dport = v["udp.dstport"] or v["tcp.dstport"]
        rows.append((name, v["ip.src"] or v["ipv6.src"], int(sport),
                     v["ip.dst"] or v["ipv6.dst"], int(dport), detail))
    return rows


def os_chatter(topo):
    """Traffic of the two OSes on the same link, none of it a port's."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mine:
        mine.bind((topo.a4, 0))
        peer = topo.peer()
        for _ in range(2):
            peer.sendto(b"os", mine.getsockname())
        assert mine.recv(100) == b"os"
    peer.sendto(b"tcp only", (topo.a4, 7801))    # d owns 7801 for TCP, not UDP
    ku.sh(f"ip netns exec {topo.ns} ping -c 1 -W 5 {topo.a4}")
    ku.sh(f"ip netns exec {topo.ns} ping -6 -c 1 -W 5 {topo.a6}")


def test_capture_holds_exactly_the_ports_frames_on_both_tx_paths(topo):
    t = topo
    d, b = t.port(), t.port(qdisc_bypass=True)
    t.track(d.claim("udp", t.a4, 7800))
    t.track(d.claim("tcp", t.a6, 7801))
    t.track(b.claim("udp", t.a4, 7802))
    sink = t.peer()
    sink.bind((t.b4, 7702))
    tmp = tempfile.mkdtemp()
    fd, fb = os.path.join(tmp, "d.pcapng"), os.path.join(tmp, "b.pcapng")
    cap_d = Capture(d.port_id, "-w", fd, "-c", "7")
    cap_b = Capture(b.port_id, "-w", fb)           # until interrupted

    os_chatter(t)
    for port in (7800, 7802):
        t.peer().sendto(b"in", (t.a4, port))
    ku.send_frames(d, [ku.frame(t.mac_a, t.mac_b, UDP, t.a4, t.b4, 7800, 7702, b"out%d" % i)
                       for i in range(2)]
                   + [ku.frame(t.mac_a, t.mac_b, UDP, t.a4, t.b4, 7800, 9, b"closed"),
                      ku.frame(t.mac_a, t.mac_b, TCP, t.a6, t.b6, 7801, 9)])
    ku.send_frames(b, [ku.frame(t.mac_a, t.mac_b, UDP, t.a4, t.b4, 7802, 7702, b"by%d" % i)
                       for i in range(3)])
    got = [ku.parse(f) for f in ku.wait_frames(d, 3, timeout=30)]
    assert sorted(g["proto"] for g in got) == [1, 6, 17], got      # ICMP, RST, UDP
    assert len(ku.wait_frames(b, 1, timeout=30)) == 1
    sink.settimeout(30)
    assert sorted(sink.recv(100) for _ in range(5)) == [b"by0", b"by1", b"by2", b"out0", b"out1"]
    os_chatter(t)

    rc, out, err = cap_d.finish()                  # ends by itself after 7 frames
    assert rc == 0 and out == "", err
    rc, out, err = cap_b.finish(interrupt=True)    # ^C: exit 0, the file complete
    assert rc == 0 and out == "", err
    assert err.startswith(f"capturing port {b.port_id} on {t.if_a}: udp {t.a4}:7802\n")

    rows = tshark_rows(fd)
    peer_port = {r[2] for r in rows if r[0] == "udp" and r[4] == 7800}
    assert len(peer_port) == 1, rows                # the peer's socket's port
    (pp,) = peer_port
    assert sorted(rows) == sorted([
        ("udp", t.b4, pp, t.a4, 7800, ""),                              # RX
        ("udp", t.a4, 7800, t.b4, 7702, ""), ("udp", t.a4, 7800, t.b4, 7702, ""),
        ("udp", t.a4, 7800, t.b4, 9, ""),                               # TX, default path
        ("icmp", t.b4, 7800, t.a4, 9, "3"),         # the error, with its quote's ports
        ("tcp", t.a6, 7801, t.b6, 9, "syn"), ("tcp", t.b6, 9, t.a6, 7801, "rst"),
    ])
    rows = tshark_rows(fb)
    peer_port = [r[2] for r in rows if r[4] == 7802]
    assert len(peer_port) == 1, rows
    assert sorted(rows) == sorted(
        [("udp", t.b4, peer_port[0], t.a4, 7802, "")]                   # RX
        + [("udp", t.a4, 7802, t.b4, 7702, "")] * 3), rows              # TX, bypass path


def test_without_w_one_line_per_packet(topo):
    t = topo
    d = t.port()
    t.track(d.claim("udp", t.a6, 7810))
    cap = Capture(d.port_id, "-c", "2")
    os_chatter(t)
    peer = t.peer(socket.AF_INET6)
    for i in range(2):
        peer.sendto(b"line%d" % i, (t.a6, 7810))
    assert len(ku.wait_frames(d, 2, timeout=30)) == 2
    rc, out, err = cap.finish()
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 2, out
    for n, line in enumerate(lines, 1):
        fields = line.split()
        assert fields[0] == str(n) and t.b6 in fields and t.a6 in fields, line
        assert "UDP" in fields and "7810" in fields, line


def run_ctl(*argv) -> tuple[int, str, str]:
    """multistack-ctl in this process (or a forked child of it)."""
    from multistack import ctl
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = ctl.main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def test_without_permission_one_line_and_exit_2(topo):
    """A user without CAP_NET_RAW may own a port but not capture it (nor
    any other): dumpcap has no capabilities of its own."""
    path = os.path.join(tempfile.mkdtemp(), "f.pcapng")
    os.chmod(os.path.dirname(path), 0o777)
    root_port = topo.port()
    topo.track(root_port.claim("udp", topo.a4, 7821))

    def child(chan):
        from multistack import kernel
        p = kernel.KernelPort(topo.if_a, tx_slots=8, rx_slots=8, buf_size=2048)
        sock = p.claim("udp", topo.a4, 7820)
        results = [run_ctl("capture", str(p.port_id), "-w", path, "-c", "1"),
                   run_ctl("capture", str(root_port.port_id), "-c", "1")]
        sock.close()
        p.close()
        return results

    c = ku.Child(child, uid=ku.NOBODY, memlock=8 << 20)
    try:
        results = c.result(timeout=START_TIMEOUT)
    finally:
        c.kill()
    for rc, out, err in results:
        assert rc == 2 and out == "" and err.count("\n") == 1, (rc, out, err)
        assert err == (f"multistack-ctl: capture on {topo.if_a}: permission denied "
                       "(capturing needs CAP_NET_RAW and CAP_NET_ADMIN)\n")
    assert not os.path.exists(path)


def test_ports_that_cannot_be_captured(topo):
    empty = topo.port()
    gone = topo.port()
    topo.track(gone.claim("udp", topo.a4, 7830))
    rc, out, err = run_ctl("capture", "999999")
    assert (rc, out) == (2, "") and err == (
        "multistack-ctl: no port 999999 in this network namespace "
        "(multistack-ctl list shows the ports)\n")
    rc, out, err = run_ctl("capture", str(empty.port_id))
    assert (rc, out) == (2, "") and err == (
        f"multistack-ctl: port {empty.port_id} owns no tuple: nothing to capture\n")
    topo.detach()
    rc, out, err = run_ctl("capture", str(gone.port_id), "-c", "1")
    assert (rc, out) == (2, "") and err.count("\n") == 1, err
    assert f"port {gone.port_id}" in err or "no port" in err, err
