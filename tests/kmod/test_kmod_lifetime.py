"""Lifetime: attach/detach, process death, interfaces that go away or
change namespace, rmmod under traffic, network namespaces."""

import errno
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import kmodutil as ku
from multistack import kernel
from multistack.errors import PortClosedError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Flood:
    """Sends UDP datagrams from the peer to (addr, port) until stopped."""

    def __init__(self, topo, addr, number, family=socket.AF_INET):
        self.sock = topo.peer(family, socket.SOCK_DGRAM)
        self.dest = (addr, number)
        self.sent = 0
        self.errors = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.sock.sendto(b"flood", self.dest)
                self.sent += 1
            except OSError:
                self.errors += 1
            if self.sent % 64 == 0:
                time.sleep(0.001)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(10)


def _no_ports():
    return kernel.list_ports() == []


def _can_bind(addr, number, kind=socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind((addr, number))
        return True
    except OSError:
        return False
    finally:
        s.close()


CHILD = r"""
import sys, time
sys.path.insert(0, {repo!r})
from multistack.kernel import KernelPort
p = KernelPort({ifname!r})
socks = [p.claim("udp", {addr!r}, 8100), p.claim("tcp", {addr!r}, 8101)]
for s in socks:
    s.close()          # the registrations hold them
print("ready", p.port_id, flush=True)
time.sleep(120)
"""


def test_kill_9_frees_the_tuples(topo):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(repo=REPO, ifname=topo.if_a, addr=topo.a4)],
        stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline().split()
        assert line[:1] == ["ready"], line
        (port,) = kernel.list_ports()
        assert port["pid"] == child.pid
        assert len(port["registrations"]) == 2
        assert not _can_bind(topo.a4, 8100)
        with Flood(topo, topo.a4, 8100):
            time.sleep(0.3)
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            assert ku.eventually(_no_ports), kernel.list_ports()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert ku.eventually(lambda: _can_bind(topo.a4, 8100)
                         and _can_bind(topo.a4, 8101, socket.SOCK_STREAM))
    p = topo.port()
    topo.track(p.claim("udp", topo.a4, 8100))
    topo.track(p.claim("tcp", topo.a4, 8101))
    topo.peer().sendto(b"mine now", (topo.a4, 8100))
    assert b"mine now" in [ku.parse(f)["payload"] for f in ku.wait_frames(p, 1)]


def test_close_with_a_live_view_into_the_ring_still_frees_the_tuples(topo):
    """A frame view the application kept keeps the mapping (and so the
    module's port) alive after close(); the tuples and their sockets are let
    go at once all the same, and the port ends when the view does."""
    p = topo.port()
    p.claim("udp", topo.a4, 8105).close()   # the registration holds the socket
    assert not _can_bind(topo.a4, 8105)
    topo.peer().sendto(b"kept", (topo.a4, 8105))
    pl = select.poll()
    pl.register(p.fileno(), select.POLLIN)
    assert pl.poll(5000)
    (frame,) = p.recv_batch()               # a view into the RX ring
    kept = frame[14:]                       # a slice of it: close() cannot release it
    p.close()
    (port,) = kernel.list_ports()           # mapped, so still there ...
    assert port["registrations"] == []      # ... but owning nothing
    assert _can_bind(topo.a4, 8105)
    q = topo.port()
    topo.track(q.claim("udp", topo.a4, 8105))
    topo.peer().sendto(b"mine now", (topo.a4, 8105))
    assert b"mine now" in [ku.parse(f)["payload"] for f in ku.wait_frames(q, 1)]
    assert bytes(kept[-4:]) == b"kept"     # the memory is still there to read
    kept.release()
    q.close()
    assert ku.eventually(_no_ports), kernel.list_ports()


def test_detach_under_traffic(topo):
    p = topo.port()
    s = topo.track(p.claim("udp", topo.a4, 8110))
    s.setblocking(False)
    with Flood(topo, topo.a4, 8110) as flood:
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            p.recv_batch()
        topo.detach()
        time.sleep(0.3)
    assert flood.sent > 0
    with pytest.raises(PortClosedError) as ei:
        for _ in range(3):
            p.recv_batch()
            p.sync()
    assert getattr(ei.value, "errno", None) == errno.ENXIO
    pl = select.poll()
    pl.register(p.fileno(), select.POLLIN)
    assert pl.poll(1000)[0][1] & select.POLLERR
    # The OS stack has the traffic back, untouched (the flood went there
    # after the detach).
    flooded = ku.drain(s, 0.5)
    assert flooded and set(flooded) == {b"flood"}
    topo.peer().sendto(b"to the os", (topo.a4, 8110))
    assert b"to the os" in ku.drain(s, 1.0)
    r = ku.sh(f"ip netns exec {topo.ns} ping -c 1 -W 3 {topo.a4}", check=False)
    assert r.returncode == 0
    p.close()
    assert kernel.attached() == []
    # Detach restores exactly: attaching again works from scratch.
    topo.attach()
    q = topo.port()
    topo.track(q.claim("udp", topo.a4, 8111))
    topo.peer().sendto(b"again", (topo.a4, 8111))
    assert [ku.parse(f)["payload"] for f in ku.wait_frames(q, 1)] == [b"again"]


def test_detach_while_a_port_sends(topo):
    """TX syncs racing a detach: each either sends or fails with ENXIO once
    the port is dead; the sender sees the error, the kernel log stays clean
    (checked at the end of the suite) and the OS stack has the link back."""
    q = topo.port()
    topo.track(q.claim("udp", topo.a4, 8112))
    sink = topo.peer(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((topo.b4, 8113))
    sink.setblocking(False)
    fr = ku.frame(topo.mac_a, topo.mac_b, socket.IPPROTO_UDP, topo.a4, topo.b4, 8112, 8113,
                  b"tx-race")
    outcome = {"batches": 0, "error": None}

    def send():
        try:
            while True:
                q.send_batch([fr] * 16)
                q.sync()
                outcome["batches"] += 1
        except PortClosedError as exc:
            outcome["error"] = exc

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    time.sleep(0.5)
    topo.detach()
    sender.join(10)
    assert not sender.is_alive()
    assert outcome["batches"] > 0
    assert getattr(outcome["error"], "errno", None) == errno.ENXIO
    assert b"tx-race" in ku.drain(sink, 1.0)    # what went out before the detach arrived
    r = ku.sh(f"ip netns exec {topo.ns} ping -c 1 -W 3 {topo.a4}", check=False)
    assert r.returncode == 0


def test_attach_errors(topo):
    with pytest.raises(kernel.AlreadyAttachedError) as ei:
        kernel.attach(topo.if_a)
    assert ei.value.errno == errno.EEXIST
    with pytest.raises(kernel.NoSuchInterfaceError):
        kernel.attach("nosuch0")
    with pytest.raises(kernel.NoSuchInterfaceError):
        kernel.attach(topo.if_b)          # lives in the other namespace
    with pytest.raises(kernel.NoSuchInterfaceError):
        kernel.attach("lo")               # not Ethernet
    with pytest.raises(kernel.NotAttachedError) as ei:
        kernel.detach("lo")
    assert ei.value.errno == errno.ENOENT
    with pytest.raises(kernel.NoSuchInterfaceError):
        kernel.detach("nosuch0")
    with pytest.raises(kernel.NoSuchInterfaceError):
        kernel.KernelPort("nosuch0")


def test_port_on_an_unattached_interface_is_enoent(bare_topo):
    from multistack._native import ffi, lib
    fd = os.open("/dev/multistack", os.O_RDWR)
    try:
        req = ffi.new("struct ms_port_req *")
        req.version = lib.MS_ABI_VERSION
        req.ifname = bare_topo.if_a.encode()
        assert lib.ms_kmod_ioctl(fd, lib.MS_IOC_PORT_BIND, req) == -errno.ENOENT
    finally:
        os.close(fd)
    with pytest.raises(kernel.NotAttachedError):
        kernel.interface_stats(bare_topo.if_a)


def test_interface_with_another_rx_handler_is_ebusy(bare_topo):
    ku.ip_batch(f"""
        link add msbr0 type bridge
        link set {bare_topo.if_a} master msbr0
        """)
    try:
        with pytest.raises(kernel.InterfaceBusyError) as ei:
            kernel.attach(bare_topo.if_a)
        assert ei.value.errno == errno.EBUSY
    finally:
        ku.ip_batch("link del msbr0", check=False)


def test_attach_needs_cap_net_admin(topo):
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from multistack import kernel\n"
            "try:\n    kernel.detach(%r)\nexcept kernel.PermissionDeniedError as e:\n"
            "    print('EPERM', e.errno)\n" % (REPO, topo.if_a))
    r = ku.sh(f"setpriv --bounding-set=-net_admin --inh-caps=-net_admin "
              f"{sys.executable} -c \"{code}\"", check=False)
    assert "EPERM" in r.stdout, r.stdout + r.stderr
    assert kernel.attached() == [topo.if_a]


def test_interface_deleted_while_attached(topo):
    p = topo.port()
    p.claim("udp", topo.a4, 8120).close()      # the registration holds it
    with Flood(topo, topo.a4, 8120):
        time.sleep(0.3)
        ku.ip_batch(f"link del {topo.if_a}")
    with pytest.raises(PortClosedError):
        for _ in range(3):
            p.recv_batch()
            p.sync()
    pl = select.poll()
    pl.register(p.fileno(), select.POLLIN)
    assert pl.poll(1000)[0][1] & select.POLLERR
    assert kernel.attached() == []
    p.close()
    assert ku.eventually(lambda: _can_bind("0.0.0.0", 8120))
    topo.attached = False


def test_interface_moved_to_another_namespace(topo):
    p = topo.port()
    topo.track(p.claim("udp", topo.a4, 8130))
    ku.ip_batch(f"link set {topo.if_a} netns {topo.ns}")
    with pytest.raises(PortClosedError):
        for _ in range(3):
            p.recv_batch()
            p.sync()
    assert kernel.attached() == []
    in_peer = ku.in_netns(topo.ns, kernel.attached)
    assert in_peer == []
    p.close()
    topo.attached = False


def test_interface_down_then_up(topo):
    p = topo.port()
    topo.track(p.claim("udp", topo.a4, 8140))
    fr = ku.frame(topo.mac_a, topo.mac_b, socket.IPPROTO_UDP, topo.a4, topo.b4, 8140, 8141,
                  b"down")
    ku.ip_batch(f"link set {topo.if_a} down")
    p.send_batch([fr])
    try:
        p.sync()
    except kernel.KernelModuleError as exc:
        assert exc.errno == errno.ENETDOWN
    assert p.raw_stats()[0]["tx_error"] + p.raw_stats()[0]["tx_sent"] >= 1
    ku.ip_batch(f"""
        link set {topo.if_a} up
        addr replace {topo.a6}/64 dev {topo.if_a} nodad
        """)
    rx = topo.peer()
    rx.bind((topo.b4, 8141))
    rx.setblocking(False)
    fr2 = ku.frame(topo.mac_a, topo.mac_b, socket.IPPROTO_UDP, topo.a4, topo.b4, 8140, 8141,
                   b"upup")
    time.sleep(0.5)
    p.send_batch([fr2])
    p.sync()
    assert b"upup" in ku.drain(rx, 2.0)


def test_namespaces_are_separate(topo):
    """MultiStack attached in the peer namespace too: each namespace sees
    only its own interfaces, ports and registrations."""
    ku.in_netns(topo.ns, kernel.attach, topo.if_b)
    try:
        peer_port = ku.in_netns(topo.ns, kernel.KernelPort, topo.if_b)
        try:
            sock = ku.in_netns(topo.ns, peer_port.claim, "udp", topo.b4, 8150)
            assert kernel.attached() == [topo.if_a]
            assert ku.in_netns(topo.ns, kernel.attached) == [topo.if_b]
            assert kernel.list_ports() == []
            # Traffic from A's port-less OS stack reaches B's port.
            s = topo.track(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            s.sendto(b"cross", (topo.b4, 8150))
            assert [ku.parse(f)["payload"] for f in ku.wait_frames(peer_port, 1)] == [b"cross"]
            sock.close()
        finally:
            peer_port.close()
    finally:
        ku.in_netns(topo.ns, kernel.detach, topo.if_b)


def test_many_ports_open_and_close(topo):
    for i in range(30):
        p = kernel.KernelPort(topo.if_a, tx_slots=8, rx_slots=8)
        p.claim("udp", topo.a4, 8200 + i).close()
        if i % 2:
            p.close()
        else:
            del p   # closed by the garbage collector: fd close releases it
    import gc
    gc.collect()
    assert ku.eventually(_no_ports), kernel.list_ports()
    assert ku.eventually(lambda: all(_can_bind(topo.a4, 8200 + i) for i in range(30)))


def _loaded():
    return os.path.exists("/sys/module/multistack")


def test_rmmod_under_traffic(topo):
    """rmmod is refused while a port is open, and succeeds (cleanly) with an
    interface attached and traffic flowing once none is."""
    if not os.path.exists(ku.KO_PATH):
        pytest.skip(f"{ku.KO_PATH} not built")
    p = topo.port()
    topo.track(p.claim("udp", topo.a4, 8300))
    r = ku.sh("rmmod multistack", check=False)
    assert r.returncode != 0 and _loaded()
    assert p.stats() is not None
    try:
        with Flood(topo, topo.a4, 8300) as flood:
            time.sleep(0.3)
            p.close()
            r = ku.sh("rmmod multistack", check=False)
            assert r.returncode == 0, r.stderr
            time.sleep(0.3)
        assert flood.sent > 0
        assert not _loaded() and not os.path.exists("/dev/multistack")
        r = ku.sh(f"ip netns exec {topo.ns} ping -c 1 -W 3 {topo.a4}", check=False)
        assert r.returncode == 0
    finally:
        if not _loaded():
            ku.sh(f"insmod {ku.KO_PATH}")
        topo.attached = False
    assert ku.eventually(lambda: os.path.exists("/dev/multistack"))
    topo.attach()
    q = topo.port()
    topo.track(q.claim("udp", topo.a4, 8301))
    topo.peer().sendto(b"reloaded", (topo.a4, 8301))
    assert [ku.parse(f)["payload"] for f in ku.wait_frames(q, 1)] == [b"reloaded"]


def test_concurrent_churn_under_traffic(topo):
    """Threads open ports, register, unregister and close while the peer
    floods the same tuples and another thread detaches/attaches: nothing
    but documented errors, and nothing left behind."""
    stop = threading.Event()
    errors = []
    numbers = [8400 + i for i in range(4)]

    def churn(number):
        try:
            for _ in range(40):
                if stop.is_set():
                    return
                try:
                    p = kernel.KernelPort(topo.if_a, tx_slots=8, rx_slots=8)
                except (kernel.NotAttachedError, kernel.NoSuchInterfaceError):
                    time.sleep(0.01)
                    continue
                try:
                    try:
                        p.claim("udp", topo.a4, number).close()
                        p.recv_batch()
                        p.unregister("udp", topo.a4, number)
                        p.claim("udp", topo.a4, number).close()
                    except (kernel.RegistrationError, PortClosedError):
                        pass
                finally:
                    p.close()
        except Exception as exc:  # reported below
            errors.append(exc)

    def flap():
        try:
            while not stop.is_set():
                time.sleep(0.2)
                try:
                    kernel.detach(topo.if_a)
                except kernel.NotAttachedError:
                    pass
                time.sleep(0.05)
                kernel.attach(topo.if_a)
        except Exception as exc:
            errors.append(exc)

    floods = [Flood(topo, topo.a4, n) for n in numbers]
    for f in floods:
        f.__enter__()
    try:
        threads = [threading.Thread(target=churn, args=(n,)) for n in numbers]
        threads.append(threading.Thread(target=flap))
        for t in threads:
            t.start()
        for t in threads[:-1]:
            t.join(120)
        stop.set()
        threads[-1].join(30)
    finally:
        stop.set()
        for f in floods:
            f.__exit__(None, None, None)
    assert errors == []
    if topo.if_a not in kernel.attached():
        topo.attach()
    assert ku.eventually(_no_ports), kernel.list_ports()
    assert ku.eventually(lambda: all(_can_bind(topo.a4, n) for n in numbers))
