"""scripts/demo end to end: user-level UDP echo, UTCP HTTP and ping answer Linux clients over TAP."""

import re
import subprocess
from pathlib import Path

import pytest

from multistack.tap import list_netns

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.netns


def test_demo_shows_the_echo_exchange_and_cleans_up():
    before = set(list_netns())
    done = subprocess.run([str(ROOT / "scripts" / "demo"), "--backend", "tap", "--count", "2"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    # The transcript: a Linux client sent, the user-level stack echoed, the client got it back.
    assert re.search(r"linux  10\.200\.0\.1:\d+ +-> 10\.200\.0\.2:7 +sends 'hello over IPv4 #1'", out)
    assert re.search(r"stack  10\.200\.0\.2:7 +-> 10\.200\.0\.1:\d+ +echoes 'hello over IPv4 #1'", out)
    assert re.search(r"stack  \[fd00:200::2\]:7 +-> \[fd00:200::1\]:\d+ +echoes 'hello over IPv6 #2'", out)
    assert "got its echo back" in out
    # The table: every service served by the user-level stack.
    for service, result in [("UDP echo, IPv4", "2/2 echoed"), ("UDP echo, IPv6", "2/2 echoed"),
                            ("ping, IPv4", "2/2 answered"), ("ping, IPv6", "2/2 answered")]:
        assert re.search(rf"{re.escape(service)} .* {re.escape(result)} +ok", out), service
    assert re.search(r"netcat \(nc -u\) .* echoed +ok", out)
    for version in (4, 6):
        assert re.search(rf"HTTP GET :80, IPv{version} +curl +HTTP/1.1 on UTCP .* 200, 16384 B intact +ok", out)
    assert re.search(r"stack  10\.200\.0\.2:80 +-> 10\.200\.0\.1:\d+ +UTCP accepted the connection", out)
    # Counters of both sides.
    assert re.search(r"UDP echo service: bytes=\d+, echoed=5", out)
    # The two curl fetches and the connection held open while ss looks.
    assert re.search(r"UTCP: connections_accepted=3\b", out)
    # multistack-ctl ss on the running stack: its listener, the held connection, UDP echo.
    assert re.search(r"sockets of the stack +multistack-ctl ss +control socket +\d+ sockets listed +ok", out)
    assert re.search(r"tcp +LISTEN +0 +128 +\*:80 ", out)
    assert re.search(r"tcp +ESTAB +\d+ +\d+ +10\.200\.0\.2:80 +10\.200\.0\.1:\d+ +pid=\d+ port=tap", out)
    assert re.search(r"bytes_received:2\d\b", out)                  # the half request
    assert re.search(r"udp +UNCONN +0 +0 +\[::\]:7 ", out)
    assert "arp_replies_sent=1" in out and "nd_adverts_sent=1" in out
    assert re.search(r"RESULT: (\d+)/\1 checks passed \(all passed\)", out)
    assert "FAILED" not in out
    # Its namespace is gone.
    namespace = re.search(r"namespaces removed: (msdemo\d+-\d+)", out).group(1)
    assert namespace not in list_netns()
    assert not {n for n in set(list_netns()) - before if n.startswith("msdemo")}


def test_demo_refuses_a_bad_argument():
    done = subprocess.run([str(ROOT / "scripts" / "demo"), "--backend", "tap", "--count", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2
    assert "--count must be at least 1" in done.stderr


def test_demo_capture_holds_the_exchange(tmp_path):
    capture = tmp_path / "demo.pcap"
    done = subprocess.run([str(ROOT / "scripts" / "demo"), "--backend", "tap", "--count", "1", "--pcap", str(capture)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.utils import rdpcap

    packets = rdpcap(str(capture))
    echoes = [p for p in packets if IP in p and UDP in p and p[UDP].sport == 7 and p[IP].src == "10.200.0.2"]
    assert echoes and bytes(echoes[0][UDP].payload) == b"hello over IPv4 #1"
    assert any(TCP in p and p[TCP].sport == 80 for p in packets)  # the HTTP answer over UTCP
