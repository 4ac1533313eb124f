"""Unregistered traffic keeps going to the OS stack while ports are active."""

import socket
import threading

import kmodutil as ku


def _busy_ports(topo):
    """Two ports holding tuples, so the hook has work to do."""
    p = topo.port()
    topo.track(p.claim("udp", topo.a4, 7000))
    topo.track(p.claim("tcp", topo.a4, 80))
    q = topo.port()
    topo.track(q.claim("udp", topo.a6, 7000))
    return p, q


def test_ping_and_arp_keep_working(topo):
    p, _ = _busy_ports(topo)
    ku.sh(f"ip -n {topo.ns} neigh flush dev {topo.if_b}; ip neigh flush dev {topo.if_a}",
          check=False)
    r = ku.sh(f"ip netns exec {topo.ns} ping -c 3 -i 0.2 -W 3 {topo.a4}", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    # ARP was resolved through the OS stack on both sides.
    neigh = ku.sh(f"ip -n {topo.ns} neigh show {topo.a4}").stdout
    assert topo.mac_a.hex(":") in neigh.lower()
    r = ku.sh(f"ping -c 2 -i 0.2 -W 3 {topo.b4}", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ku.quiet_for(p, 0.1) == []
    _, iface = p.raw_stats()
    assert iface["rx_passed"] >= 4


def test_ping6_and_neighbour_discovery_keep_working(topo):
    _busy_ports(topo)
    ku.sh(f"ip -n {topo.ns} -6 neigh flush dev {topo.if_b}", check=False)
    r = ku.sh(f"ip netns exec {topo.ns} ping -6 -c 3 -i 0.2 -W 3 {topo.a6}", check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_kernel_tcp_to_another_port_works(topo):
    p, _ = _busy_ports(topo)
    srv = topo.track(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((topo.a4, 8080))
    srv.listen(1)
    srv.settimeout(10)
    received = []

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(10)
            data = b""
            while len(data) < 20000:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            received.append(data)
            conn.sendall(b"ok:" + str(len(data)).encode())

    t = threading.Thread(target=serve)
    t.start()
    c = topo.peer(socket.AF_INET, socket.SOCK_STREAM)
    c.settimeout(10)
    c.connect((topo.a4, 8080))
    c.sendall(b"k" * 20000)
    assert c.recv(100) == b"ok:20000"
    t.join(10)
    assert received == [b"k" * 20000]
    assert ku.quiet_for(p, 0.1) == []


def test_udp_to_unregistered_port_reaches_the_os(topo):
    p, _ = _busy_ports(topo)
    s = topo.track(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    s.bind((topo.a4, 7001))
    s.setblocking(False)
    tx = topo.peer()
    for i in range(5):
        tx.sendto(b"os-%d" % i, (topo.a4, 7001))
    got = ku.drain(s, 1.0)
    assert sorted(got) == [b"os-%d" % i for i in range(5)]
    assert ku.quiet_for(p, 0.1) == []


def test_tuple_on_another_address_is_not_captured(topo):
    """A registration for 10.77.0.1 does not capture the same port on a
    second address of the interface."""
    ku.sh(f"ip addr add 10.77.0.3/24 dev {topo.if_a}")
    p, _ = _busy_ports(topo)
    s = topo.track(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    s.bind(("10.77.0.3", 7000))
    s.setblocking(False)
    topo.peer().sendto(b"other-addr", ("10.77.0.3", 7000))
    assert ku.drain(s, 1.0) == [b"other-addr"]
    assert ku.quiet_for(p, 0.1) == []
