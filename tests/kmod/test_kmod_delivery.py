"""RX: each registered 3-tuple reaches its own port, and nowhere else."""

import errno
import select
import socket
import time

import kmodutil as ku

UDP, TCP = socket.IPPROTO_UDP, socket.IPPROTO_TCP


def test_each_tuple_reaches_the_right_port_among_several(topo):
    p1, p2, p3 = topo.port(), topo.port(), topo.port()
    s1 = topo.track(p1.claim("udp", topo.a4, 5001))
    topo.track(p1.claim("udp", topo.a4, 5011))
    topo.track(p2.claim("udp", topo.a4, 5002))
    topo.track(p3.claim("tcp", topo.a4, 5001))  # same number, other protocol
    s1.setblocking(False)

    tx = topo.peer()
    for i in range(3):
        tx.sendto(b"one-%d" % i, (topo.a4, 5001))
        tx.sendto(b"eleven-%d" % i, (topo.a4, 5011))
        tx.sendto(b"two-%d" % i, (topo.a4, 5002))
    c = topo.peer(socket.AF_INET, socket.SOCK_STREAM)
    c.setblocking(False)
    assert c.connect_ex((topo.a4, 5001)) == errno.EINPROGRESS

    got1 = [ku.parse(f) for f in ku.wait_frames(p1, 6)]
    got2 = [ku.parse(f) for f in ku.wait_frames(p2, 3)]
    got3 = [ku.parse(f) for f in ku.wait_frames(p3, 1)]
    assert sorted(g["payload"] for g in got1) == sorted(
        [b"one-%d" % i for i in range(3)] + [b"eleven-%d" % i for i in range(3)])
    assert all(g["proto"] == UDP and g["dst"] == topo.a4 for g in got1)
    assert [g["payload"] for g in got2] == [b"two-%d" % i for i in range(3)]
    assert got3 and all(g["proto"] == TCP and g["dport"] == 5001 and g["flags"] & 0x02
                        for g in got3)
    # Nothing of it went to the OS stack: the proving socket saw nothing and
    # the TCP SYN was not answered with a reset.
    assert ku.drain(s1, 0.2) == []
    assert c.connect_ex((topo.a4, 5001)) in (errno.EALREADY, errno.EINPROGRESS)
    c.close()

    st1, st2 = p1.stats(), p2.stats()
    assert st1.rx_frames == 6 and st2.rx_frames == 3
    assert st1.extra["rx_delivered"] == 6


def test_frames_are_whole_ethernet_frames(topo):
    p = topo.port()
    topo.track(p.claim("udp", topo.a4, 6000))
    tx = topo.peer()
    tx.bind((topo.b4, 6001))
    tx.sendto(b"x" * 100, (topo.a4, 6000))
    (fr,) = ku.wait_frames(p, 1)
    assert fr[:6] == topo.mac_a and fr[6:12] == topo.mac_b
    g = ku.parse(fr)
    assert (g["src"], g["sport"], g["dport"], g["payload"]) == (topo.b4, 6001, 6000, b"x" * 100)
    assert len(fr) == 14 + 20 + 8 + 100


def test_wildcard_bound_socket_proves_the_address(topo):
    p = topo.port()
    s = topo.track(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    s.bind(("0.0.0.0", 6100))
    p.register("udp", topo.a4, 6100, s)
    topo.peer().sendto(b"wild", (topo.a4, 6100))
    assert [ku.parse(f)["payload"] for f in ku.wait_frames(p, 1)] == [b"wild"]


def test_poll_wakes_on_rx(topo):
    p = topo.port()
    topo.track(p.claim("udp", topo.a4, 6200))
    pl = select.poll()
    pl.register(p.fileno(), select.POLLIN)
    assert pl.poll(100) == []
    topo.peer().sendto(b"wake", (topo.a4, 6200))
    t0 = time.monotonic()
    ev = pl.poll(5000)
    assert ev and ev[0][1] & select.POLLIN, "poll did not wake on RX"
    assert time.monotonic() - t0 < 5
    assert [ku.parse(f)["payload"] for f in ku.wait_frames(p, 1)] == [b"wake"]


def test_poll_wakes_for_every_frame_and_reports_unread_ones(topo):
    # An RX sync that would change nothing skips rx_lock: no wakeup may be
    # lost that way, and frames published but not yet read stay readable.
    p = topo.port()
    topo.track(p.claim("udp", topo.a4, 6210))
    pl = select.poll()
    pl.register(p.fileno(), select.POLLIN)
    tx = topo.peer()
    for i in range(100):
        assert pl.poll(0) == [], f"round {i}: readable with nothing pending"
        tx.sendto(b"%03d" % i, (topo.a4, 6210))
        ev = pl.poll(5000)
        assert ev and ev[0][1] & select.POLLIN, f"round {i}: poll did not wake"
        assert pl.poll(0), f"round {i}: a frame not yet read is not reported"
        frames = p.recv_batch(8)
        assert [ku.parse(bytes(f))["payload"] for f in frames] == [b"%03d" % i]
        assert p.recv_batch(8) == []        # gives its slot back


def test_batches_preserve_order_and_views_are_released(topo):
    p = topo.port()
    topo.track(p.claim("udp", topo.a4, 6300))
    tx = topo.peer()
    for i in range(40):
        tx.sendto(b"%03d" % i, (topo.a4, 6300))
    time.sleep(0.3)
    first = p.recv_batch(10)
    assert len(first) == 10
    kept = bytes(first[0])
    second = p.recv_batch(100)
    # The views of the previous batch are released by the next call.
    try:
        bytes(first[0])
        released = False
    except ValueError:
        released = True
    assert released
    rest = ku.wait_frames(p, 40 - 10 - len(second))
    payloads = [ku.parse(kept)["payload"]] + [ku.parse(bytes(v))["payload"] for v in second]
    payloads += [ku.parse(f)["payload"] for f in rest]
    assert payloads[0] == b"000"
    assert payloads[1:] == [b"%03d" % i for i in range(10, 40)]


def test_unregister_returns_traffic_to_the_os(topo):
    p = topo.port()
    s = topo.track(p.claim("udp", topo.a4, 6400))
    s.setblocking(False)
    tx = topo.peer()
    tx.sendto(b"to-port", (topo.a4, 6400))
    assert len(ku.wait_frames(p, 1)) == 1
    p.unregister("udp", topo.a4, 6400)
    tx.sendto(b"to-os", (topo.a4, 6400))
    assert ku.drain(s, 1.0) == [b"to-os"]
    assert ku.quiet_for(p, 0.2) == []


def test_a_table_grown_to_thousands_of_tuples_delivers_each_to_its_owner(topo):
    # The registration table resizes as it fills and empties (an rhashtable):
    # 4 ports x 1024 tuples, then every one of a spread sample still reaches
    # its own port, and after the ports close a new registration works.
    import resource

    from multistack._native import lib
    per_port = lib.MS_MAX_REGS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < per_port + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(per_port + 64, soft),
                                                    max(per_port + 64, hard)))
    ports = [topo.port() for _ in range(4)]
    base = 10000        # below the ephemeral range
    for k, p in enumerate(ports):
        for i in range(per_port):
            p.claim("udp", topo.a4, base + k * per_port + i).close()
    tx = topo.peer()
    sample = [(k, i) for k in range(4) for i in (0, 1, per_port // 2, per_port - 1)]
    for k, i in sample:
        tx.sendto(b"%d.%d" % (k, i), (topo.a4, base + k * per_port + i))
    for k, p in enumerate(ports):
        got = sorted(ku.parse(f)["payload"] for f in ku.wait_frames(p, 4))
        assert got == sorted(b"%d.%d" % (k, i) for kk, i in sample if kk == k)
        assert ku.quiet_for(p, 0.1) == []
    for p in ports:
        p.close()
    q = topo.port()
    s = topo.track(q.claim("udp", topo.a4, base))
    tx.sendto(b"after", (topo.a4, base))
    assert [ku.parse(f)["payload"] for f in ku.wait_frames(q, 1)] == [b"after"]
    assert ku.drain(s, 0.1) == []
