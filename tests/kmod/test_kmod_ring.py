"""Rings: configurable sizes, exact mmap, full-ring drops, TX reclaim."""

import errno
import mmap
import os
import socket
import time

import pytest

import kmodutil as ku
from multistack import kernel
from multistack._native import ffi, lib


def test_full_ring_drops_and_counts_without_hurting_the_os(topo):
    p = topo.port(rx_slots=8)
    assert p.rx_slots == 8
    topo.track(p.claim("udp", topo.a4, 7100))
    os_sock = topo.track(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    os_sock.bind((topo.a4, 7101))
    os_sock.setblocking(False)
    tx = topo.peer()
    sent = 60
    for i in range(sent):
        tx.sendto(b"fill-%d" % i, (topo.a4, 7100))
        tx.sendto(b"os-%d" % i, (topo.a4, 7101))
    # The OS stack got every datagram of its own port meanwhile.
    got_os = ku.drain(os_sock, 1.0)
    assert len(got_os) == sent
    st = ku.eventually(lambda: (lambda s: s if s["rx_delivered"] + s["rx_drop_full"] >= sent
                                else None)(p.raw_stats()[0]))
    assert st, p.raw_stats()[0]
    assert 0 < st["rx_delivered"] <= 8
    assert st["rx_drop_full"] == sent - st["rx_delivered"]
    assert p.stats().rx_dropped >= st["rx_drop_full"]
    frames = ku.wait_frames(p, st["rx_delivered"])
    assert [ku.parse(f)["payload"] for f in frames] == [
        b"fill-%d" % i for i in range(st["rx_delivered"])]
    # Consumed slots are given back: delivery resumes.
    p.recv_batch()
    tx.sendto(b"again", (topo.a4, 7100))
    assert [ku.parse(f)["payload"] for f in ku.wait_frames(p, 1)] == [b"again"]
    r = ku.sh(f"ip netns exec {topo.ns} ping -c 1 -W 3 {topo.a4}", check=False)
    assert r.returncode == 0


@pytest.mark.parametrize("slots", [8, 64, 4096])
def test_slot_counts(topo, slots):
    p = topo.port(tx_slots=slots, rx_slots=slots)
    assert (p.tx_slots, p.rx_slots) == (slots, slots)
    info = p.info()
    assert info["tx_slots"] == slots and info["mem_size"] == p.mem_size


@pytest.mark.parametrize("kw", [dict(tx_slots=3), dict(rx_slots=100), dict(rx_slots=4),
                                dict(tx_slots=8192), dict(buf_size=100), dict(buf_size=128),
                                dict(buf_size=32768), dict(buf_size=1024)])
def test_bad_ring_parameters_are_einval(topo, kw):
    with pytest.raises(kernel.InvalidRequestError) as ei:
        topo.port(**kw)
    assert ei.value.errno == errno.EINVAL


def test_memory_per_port_is_bounded(topo):
    p = topo.port(tx_slots=1024, rx_slots=1024)
    assert p.mem_size <= 5 * 1024 * 1024


def _bound_fd(topo):
    fd = os.open("/dev/multistack", os.O_RDWR)
    req = ffi.new("struct ms_port_req *")
    req.version = lib.MS_ABI_VERSION
    req.ifname = topo.if_a.encode()
    assert lib.ms_kmod_ioctl(fd, lib.MS_IOC_PORT_BIND, req) == 0
    return fd, req.mem_size


def test_mmap_must_be_the_exact_size(topo):
    fd, size = _bound_fd(topo)
    try:
        for bad in (size - 4096, size + 4096, 4096):
            with pytest.raises(OSError) as ei:
                mmap.mmap(fd, bad, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            assert ei.value.errno == errno.EINVAL
        with pytest.raises(OSError):
            mmap.mmap(fd, size, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
        with pytest.raises(OSError):
            mmap.mmap(fd, size - 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                      offset=4096)
        m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        m.close()
    finally:
        os.close(fd)


def test_port_ioctls_on_an_unbound_fd_are_enotconn(topo):
    fd = os.open("/dev/multistack", os.O_RDWR)
    try:
        for op in (lib.MS_IOC_TXSYNC, lib.MS_IOC_RXSYNC):
            assert lib.ms_kmod_ioctl(fd, op, ffi.NULL) == -errno.ENOTCONN
        reg = ffi.new("struct ms_reg_req *")
        reg.version = lib.MS_ABI_VERSION
        assert lib.ms_kmod_ioctl(fd, lib.MS_IOC_REGISTER, reg) == -errno.ENOTCONN
        with pytest.raises(OSError) as ei:
            mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ)
        assert ei.value.errno == errno.ENOTCONN
    finally:
        os.close(fd)


def test_binding_twice_is_einval(topo):
    fd, _ = _bound_fd(topo)
    try:
        req = ffi.new("struct ms_port_req *")
        req.version = lib.MS_ABI_VERSION
        req.ifname = topo.if_a.encode()
        assert lib.ms_kmod_ioctl(fd, lib.MS_IOC_PORT_BIND, req) == -errno.EINVAL
    finally:
        os.close(fd)


def test_tx_sync_reclaims_the_whole_ring(topo):
    p = topo.port(tx_slots=16)
    topo.track(p.claim("udp", topo.a4, 7200))
    assert p.tx_space() == 15
    fr = ku.frame(topo.mac_a, topo.mac_b, socket.IPPROTO_UDP, topo.a4, topo.b4, 7200, 7201,
                  b"r")
    assert p.send_batch([fr] * 20) == 15
    assert p.tx_space() == 0
    p.sync()
    assert p.tx_space() == 15
    assert p.send_batch([fr] * 3) == 3
    p.sync()
    assert ku.eventually(lambda: p.stats().tx_frames == 18)


def test_bad_ring_head_is_einval_and_changes_nothing(topo):
    p = topo.port(rx_slots=8, tx_slots=8)
    topo.track(p.claim("udp", topo.a4, 7300))
    old = p.rx_ring.head
    p.rx_ring.head = 99
    assert lib.ms_kmod_ioctl(p.fileno(), lib.MS_IOC_RXSYNC, ffi.NULL) == -errno.EINVAL
    p.rx_ring.head = old
    p.tx_ring.head = 1000
    assert lib.ms_kmod_ioctl(p.fileno(), lib.MS_IOC_TXSYNC, ffi.NULL) == -errno.EINVAL
    p.tx_ring.head = 0
    p.tx_ring.cur = 0
    topo.peer().sendto(b"still", (topo.a4, 7300))
    assert [ku.parse(f)["payload"] for f in ku.wait_frames(p, 1)] == [b"still"]


def test_corrupt_rx_buffer_index_is_counted_not_followed(topo):
    p = topo.port(rx_slots=8)
    topo.track(p.claim("udp", topo.a4, 7400))
    slots = ffi.cast("struct ms_netmap_slot *", ffi.cast("char *", p.rx_ring) + 256)
    good = [slots[i].buf_idx for i in range(8)]
    for i in range(8):
        slots[i].buf_idx = 0xFFFFFFF0
    tx = topo.peer()
    tx.sendto(b"bad-slot", (topo.a4, 7400))
    time.sleep(0.3)
    p.rx_sync()
    st = p.raw_stats()[0]
    assert (st["rx_drop_bad_slot"], st["rx_delivered"]) == (1, 0)
    assert p.rx_ring.tail == p.rx_ring.head     # nothing published from a bad slot
    # Repaired by the application, the ring works again.
    for i in range(8):
        slots[i].buf_idx = good[i]
    tx.sendto(b"good-slot", (topo.a4, 7400))
    assert [ku.parse(f)["payload"] for f in ku.wait_frames(p, 1)] == [b"good-slot"]
