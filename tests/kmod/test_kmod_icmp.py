"""ICMP errors about a port's own packets reach that port, inside the VM.

Three namespaces, joined through a router:

    server (the VM's own)      router (msrtr)                  client (mscli)
    mi0 10.80.0.1, fd80::1 --- mi1 10.80.0.2, fd80::2
    (MultiStack attached)      mr0 10.81.0.1, fd81::1 --- mc0 10.81.0.2, fd81::2
                                   MTU 1280 on this link

UTCP runs on a KernelPort of ``mi0`` and routes through the router; Linux
TCP runs in the client.  The client's routes announce an MSS as if its own
link were 1500 bytes (``advmss``), so UTCP sends 1500-byte packets until the
router's "fragmentation needed" (IPv4, DF set) or "packet too big" (IPv6)
tells it the path MTU: without the module handing that error to the port,
the transfer would black-hole.

* A 1 MiB transfer UTCP -> Linux completes over IPv4 and over IPv6; the
  Host's path MTU to the client is 1280 and the port counted the error
  (rx_icmp_delivered).
* Forged errors sent from the router's end: one whose quoted sequence
  number UTCP never sent, and one with a bad ICMP checksum, reach the port
  and change nothing; a believable one does (so the other two were read).
* Errors quoting UDP tuples go to the exact registration, else the wildcard,
  else the OS -- as frames to those tuples do.
* The OS still answers ping to the server's addresses, and still gets the
  errors about its own sockets (a connected UDP socket sees ECONNREFUSED),
  with the counter unchanged.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from ipaddress import ip_address

import pytest
import trio

import kmodutil as ku
from utcp_fixtures import pattern, pattern_sha256, recv_all_sha, trio_test, utcp_stack

SIZE = 1024 * 1024
PORT = 8080
UDP = socket.IPPROTO_UDP


class RoutedTopology:
    """Server, router and client namespaces (see the module docstring).

    ``if_a``/``a4``/``a6`` are the server's, as :class:`utcp_fixtures.KmodUtcp`
    expects; ``ns`` is the client's namespace, where ``stack.peer_tcp`` makes
    the Linux sockets.
    """

    if_a, if_r = "mi0", "mi1"
    router, ns = "msrtr", "mscli"
    a4, a6 = "10.80.0.1", "fd80::1"
    second4 = "10.80.0.3"
    r4, r6 = "10.80.0.2", "fd80::2"
    c4, c6 = "10.81.0.2", "fd81::2"

    def up(self) -> "RoutedTopology":
        for ns in (self.router, self.ns):
            if not os.path.exists(f"/run/netns/{ns}"):
                ku.sh(f"ip netns add {ns} && ip -n {ns} link set lo up")
        self._clean_links()
        ku.ip_batch(f"""
            link add {self.if_a} type veth peer name {self.if_r} netns {self.router}
            addr add {self.a4}/24 dev {self.if_a}
            addr add {self.second4}/24 dev {self.if_a}
            addr add {self.a6}/64 dev {self.if_a} nodad
            link set {self.if_a} up
            route add 10.81.0.0/24 via {self.r4}
            route add fd81::/64 via {self.r6}
            """)
        ku.ip_batch(f"""
            addr add {self.r4}/24 dev {self.if_r}
            addr add {self.r6}/64 dev {self.if_r} nodad
            link set {self.if_r} up
            link add mr0 type veth peer name mc0 netns {self.ns}
            link set mr0 mtu 1280
            addr add 10.81.0.1/24 dev mr0
            addr add fd81::1/64 dev mr0 nodad
            link set mr0 up
            """, netns=self.router)
        ku.sh(f"ip netns exec {self.router} sysctl -qw net.ipv4.ip_forward=1 "
              "net.ipv6.conf.all.forwarding=1")
        # The client's SYN offers the MSS of a 1500-byte link: the 1280 bottleneck
        # is for the router to report.
        ku.ip_batch(f"""
            link set mc0 mtu 1280
            addr add {self.c4}/24 dev mc0
            addr add {self.c6}/64 dev mc0 nodad
            link set mc0 up
            route add 0.0.0.0/0 via 10.81.0.1 advmss 1460
            route add ::/0 via fd81::1 advmss 1440
            """, netns=self.ns)
        self.mac_a = ku.mac_of(self.if_a)
        self.mac_r = ku.mac_of(self.if_r, self.router)
        from multistack import kernel
        kernel.attach(self.if_a)
        return self

    def down(self) -> None:
        from multistack import kernel
        try:
            kernel.detach(self.if_a)
        except kernel.KernelModuleError:
            pass
        self._clean_links()
        for ns in (self.router, self.ns):
            ku.sh(f"ip netns del {ns}", check=False)

    def _clean_links(self) -> None:
        if os.path.exists(f"/sys/class/net/{self.if_a}"):
            ku.ip_batch(f"link del {self.if_a}", check=False)
        for ns, link in ((self.router, "mr0"), (self.router, self.if_r), (self.ns, "mc0")):
            if os.path.exists(f"/run/netns/{ns}"):
                ku.ip_batch(f"link del {link}", netns=ns, check=False)

    def router_sender(self) -> socket.socket:
        """An AF_PACKET socket sending whole frames out of the router's ``mi1``."""
        def make():
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            s.bind((self.if_r, 0))
            return s
        return ku.in_netns(self.router, make)

    def error4(self, icmp_type: int, code: int, word: int, quote: bytes,
               *, dst: str | None = None, bad_checksum: bool = False) -> bytes:
        """An ICMPv4 error frame from the router to ``dst`` (our address by default)."""
        icmp = struct.pack("!BBHI", icmp_type, code, 0, word) + quote
        c = ku.csum(icmp) ^ (0x5A5A if bad_checksum else 0)
        icmp = icmp[:2] + struct.pack("!H", c) + icmp[4:]
        return ku.eth(self.mac_a, self.mac_r, 0x0800,
                      ku.ip_packet(socket.IPPROTO_ICMP, self.r4, dst or self.a4, icmp, frag=0))


@pytest.fixture(scope="module")
def routed():
    t = RoutedTopology()
    try:
        t.up()
        yield t
    finally:
        t.down()


def tcp_quote(src: str, dst: str, sport: int, dport: int, seq: int) -> bytes:
    """What a router quotes of a full-sized segment we sent (576 bytes in all)."""
    seg = ku.l4(socket.IPPROTO_TCP, src, dst, sport, dport, bytes(1400), tcp_flags=0x10, seq=seq)
    return ku.ip_packet(socket.IPPROTO_TCP, src, dst, seg)[:548]


def udp_quote(src: str, dst: str, sport: int, dport: int) -> bytes:
    return ku.ip_packet(UDP, src, dst, ku.l4(UDP, src, dst, sport, dport, b"datagram"))


# ---------------------------------------------------------------- path MTU discovery


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
@trio_test(600)
async def test_utcp_learns_the_path_mtu_from_the_router_and_the_transfer_completes(
        routed, family):
    v6 = family == "ipv6"
    server, client = (routed.a6, routed.c6) if v6 else (routed.a4, routed.c4)
    async with utcp_stack(routed, gateway=[routed.r4, routed.r6]) as stack:
        listener = await stack.listen(PORT, server)
        served = {}

        async def serve():
            stream = await listener.accept()
            await stream.send_all(pattern(SIZE))
            await stream.aclose()
            served["conn"] = stream.connection

        sock = stack.peer_tcp(family=socket.AF_INET6 if v6 else socket.AF_INET)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            await sock.connect((server, PORT))
            total, digest = await recv_all_sha(lambda: sock.recv(65536))
        port_stats, iface_stats = stack.port.raw_stats()
        tx_dropped = stack.port.stats().tx_dropped
        pmtu = stack.host.path_mtu(ip_address(client))
        reductions = stack.host.counters["pmtu_reductions"]
        conn = served["conn"]
    assert (total, digest) == (SIZE, pattern_sha256(SIZE))
    assert conn.error is None
    # The router's error reached UTCP through the port, and UTCP believed it.
    assert port_stats["rx_icmp_delivered"] >= 1, port_stats
    assert iface_stats["rx_icmp_delivered"] >= port_stats["rx_icmp_delivered"]
    assert pmtu == 1280 and reductions >= 1
    assert conn.send_mss + (60 if v6 else 40) <= 1280
    assert port_stats["tx_sent"] > 0 and tx_dropped == 0


# ---------------------------------------------------------------- forged errors


@trio_test(300)
async def test_forged_errors_change_nothing_utcp_believes(routed):
    sender = routed.router_sender()
    try:
        async with utcp_stack(routed, gateway=[routed.r4, routed.r6]) as stack:
            listener = await stack.listen(PORT + 1, routed.a4)
            accepted = {}

            async def serve():
                stream = await listener.accept()
                await stream.send_all(b"hello")
                accepted["conn"] = stream.connection
                accepted["stream"] = stream

            sock = stack.peer_tcp()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve)
                await sock.connect((routed.a4, PORT + 1))
                assert await sock.recv(100) == b"hello"
            conn = accepted["conn"]
            cport = conn.key[3]
            client = ip_address(routed.c4)
            await trio.sleep(0.3)                       # the ACK of "hello" is in
            before = stack.port.raw_stats()[0]["rx_icmp_delivered"]
            mss, una = conn.send_mss, conn.snd_una

            def frag_needed(seq: int, mtu: int, **kw) -> bytes:
                quote = tcp_quote(routed.a4, routed.c4, PORT + 1, cport, seq)
                return routed.error4(3, 4, mtu, quote, **kw)

            # A sequence number UTCP never sent (RFC 5927): ignored.
            sender.send(frag_needed(una + 100000, 600))
            # A believable one whose ICMP checksum is wrong: the Host drops it.
            sender.send(frag_needed(una, 600, bad_checksum=True))
            await trio.sleep(1.0)
            delivered = stack.port.raw_stats()[0]["rx_icmp_delivered"] - before
            ignored = stack.layer.endpoint.stats["icmp_ignored_bad_seq"]
            bad_icmp = stack.host.counters["drop_bad_icmp"]
            unchanged = (conn.send_mss, stack.host.path_mtu(client), conn.error)
            # The same error, checksum right and quoting what is unacknowledged
            # (snd_una): believed, so the two above were read and refused.
            sender.send(frag_needed(una, 1000))
            await trio.sleep(1.0)
            after = (conn.send_mss, stack.host.path_mtu(client), conn.error)
            # The connection still works.
            await accepted["stream"].send_all(b"still here")
            assert await sock.recv(100) == b"still here"
    finally:
        sender.close()
    assert delivered == 2
    assert ignored == 1 and bad_icmp == 1
    assert unchanged == (mss, 1500, None)
    assert after[1] == 1000 and after[0] + 40 <= 1000 and after[2] is None


# ---------------------------------------------------------------- who gets which error


def test_errors_go_to_the_owner_of_the_quoted_source_exact_before_wildcard(routed):
    from multistack.kernel import KernelPort
    sender = routed.router_sender()
    wild, one = KernelPort(routed.if_a), KernelPort(routed.if_a)
    socks = []
    try:
        def reusable(bind):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(bind)
            socks.append(s)
            return s
        wild.register("udp", "0.0.0.0", 8530, reusable(("0.0.0.0", 8530)))
        one.register("udp", routed.a4, 8530, reusable((routed.a4, 8530)))
        unreachable = [
            routed.error4(3, 3, 0, udp_quote(src, routed.c4, 8530, 9), dst=src)
            for src in (routed.a4, routed.second4, "10.80.0.9")]
        # about a packet a4:8530 sent, told to second4: not an error about ours
        stray = routed.error4(3, 3, 0, udp_quote(routed.a4, routed.c4, 8530, 9),
                              dst=routed.second4)
        iface_before = one.raw_stats()[1]
        for f in unreachable + [stray]:
            sender.send(f)
        got_one = ku.wait_frames(one, 1)
        got_wild = ku.wait_frames(wild, 1)
        assert ku.quiet_for(one) == [] and ku.quiet_for(wild) == []
        (p_one, iface), (p_wild, _) = one.raw_stats(), wild.raw_stats()
    finally:
        for p in (wild, one):
            p.close()
        for s in socks:
            s.close()
        sender.close()
    assert [bytes(f) for f in got_one] == [unreachable[0]]
    assert [bytes(f) for f in got_wild] == [unreachable[1]]
    assert (p_one["rx_icmp_delivered"], p_wild["rx_icmp_delivered"]) == (1, 1)
    assert p_one["rx_delivered"] == 1 and p_wild["rx_delivered"] == 1
    assert iface["rx_icmp_delivered"] - iface_before["rx_icmp_delivered"] == 2
    # 10.80.0.9 is on no interface, and the stray one: both passed to the OS
    assert iface["rx_not_ip"] - iface_before["rx_not_ip"] >= 2


# ---------------------------------------------------------------- what stays with the OS


@trio_test(120)
async def test_the_os_answers_ping_and_keeps_errors_about_its_own_sockets(routed):
    from multistack import kernel
    async with utcp_stack(routed, gateway=[routed.r4, routed.r6]) as stack:
        await stack.listen(PORT + 2, routed.a4)        # the table is not empty
        before = kernel.interface_stats(routed.if_a)
        for addr in (routed.a4, routed.a6):
            done = await trio.run_process(
                ["ip", "netns", "exec", routed.ns, "ping", "-c", "1", "-W", "5", addr],
                capture_stdout=True, capture_stderr=True, check=False)
            assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()

        # A connected UDP socket of the OS hears the client's port unreachable.
        def refused(family, local, remote):
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.settimeout(10)
                s.bind((local, 0))
                s.connect((remote, 9))
                s.send(b"anyone?")
                try:
                    s.recv(100)
                except ConnectionRefusedError as exc:
                    return exc.errno
                except OSError as exc:
                    return exc.errno
                return None
        results = [await trio.to_thread.run_sync(refused, socket.AF_INET, routed.a4, routed.c4),
                   await trio.to_thread.run_sync(refused, socket.AF_INET6, routed.a6, routed.c6)]
        after = kernel.interface_stats(routed.if_a)
        port_stats = stack.port.raw_stats()[0]
    assert results == [errno.ECONNREFUSED, errno.ECONNREFUSED]
    assert after["rx_icmp_delivered"] == before["rx_icmp_delivered"]
    assert port_stats["rx_icmp_delivered"] == 0
    # echo requests, neighbour discovery and the two errors went to the OS
    assert after["rx_not_ip"] - before["rx_not_ip"] >= 4

