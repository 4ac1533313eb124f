"""Fixtures of the kernel-module suite (run inside the VM by scripts/test-vm).

Every test in this folder is skipped, with the reason, when
``/dev/multistack`` is absent (the module is not loaded: not inside the VM)
or when not running as root.

``topo`` builds, for each test, two network namespaces joined by a veth
pair: ``ms0`` (10.77.0.1/24, fd77::1/64) in the VM's own namespace, where
MultiStack is attached, and ``ms1`` (10.77.0.2/24, fd77::2/64) in the
namespace ``mspeer``.  Teardown closes the ports the test opened, detaches
and deletes the veth, so every test starts from scratch.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import kmodutil as ku  # noqa: E402

DEVICE = "/dev/multistack"


def _skip_reason() -> str | None:
    if not os.path.exists(DEVICE):
        return (f"{DEVICE} is absent: the multistack module is not loaded "
                "(run these with scripts/test-vm)")
    if os.geteuid() != 0:
        return "needs root"
    return None


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "stress: a bounded stress run; runs by default only on the debug "
        "kernel (scripts/vm --kernel debug), elsewhere with MULTISTACK_STRESS=1 or "
        "when selected with -k stress")


def _stress_wanted(config) -> bool:
    """Stress tests run on the debug kernel (its checkers are what they are
    for), with MULTISTACK_STRESS=1, or when asked for with ``-k stress``."""
    if os.environ.get("MULTISTACK_STRESS", "") not in ("", "0"):
        return True
    if "stress" in (config.getoption("keyword", "") or ""):
        return True
    return ku.debug_kernel()


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    here = os.path.dirname(os.path.abspath(__file__))
    stress = None
    for item in items:
        if not str(item.fspath).startswith(here + os.sep):
            continue
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
        elif item.get_closest_marker("stress"):
            if stress is None:
                stress = _stress_wanted(config)
            if not stress:
                item.add_marker(pytest.mark.skip(
                    reason="stress test: runs on the debug kernel, with "
                    "MULTISTACK_STRESS=1 or with -k stress"))


class Topology:
    """The two-namespace veth topology; ``ports`` opened through
    :meth:`port` are closed at teardown."""

    if_a, if_b, ns = ku.IF_A, ku.IF_B, ku.NS_PEER
    a4, b4, a6, b6 = ku.A4, ku.B4, ku.A6, ku.B6

    def __init__(self):
        self.ports = []
        self.sockets = []
        self.attached = False

    def up(self, attach: bool = True) -> "Topology":
        if not os.path.exists(f"/run/netns/{self.ns}"):
            ku.sh(f"ip netns add {self.ns} && ip -n {self.ns} link set lo up")
        if os.path.exists(f"/sys/class/net/{self.if_a}"):
            self._clean_links()
        self.make_links()
        self.mac_a = ku.mac_of(self.if_a)
        self.mac_b = ku.mac_of(self.if_b, self.ns)
        if attach:
            self.attach()
        return self

    def make_links(self):
        """The veth pair with its addresses, both ends up."""
        ku.ip_batch(f"""
            link add {self.if_a} type veth peer name {self.if_b} netns {self.ns}
            addr add {self.a4}/24 dev {self.if_a}
            addr add {self.a6}/64 dev {self.if_a} nodad
            link set {self.if_a} up
            """)
        ku.ip_batch(f"""
            addr add {self.b4}/24 dev {self.if_b}
            addr add {self.b6}/64 dev {self.if_b} nodad
            link set {self.if_b} up
            """, netns=self.ns)

    def attach(self):
        from multistack import kernel
        kernel.attach(self.if_a)
        self.attached = True

    def detach(self):
        from multistack import kernel
        kernel.detach(self.if_a)
        self.attached = False

    def port(self, **kw):
        from multistack.kernel import KernelPort
        p = KernelPort(self.if_a, **kw)
        self.ports.append(p)
        return p

    def track(self, sock):
        self.sockets.append(sock)
        return sock

    def peer(self, *args):
        return self.track(ku.peer_socket(*args))

    def down(self):
        from multistack import kernel
        for p in self.ports:
            try:
                p.close()
            except Exception:
                pass
        for s in self.sockets:
            s.close()
        if self.attached and os.path.exists(DEVICE):
            try:
                kernel.detach(self.if_a)
            except kernel.KernelModuleError:
                pass
        self._clean_links()

    def _clean_links(self):
        """Remove the veth wherever a test left its ends (deleting one end
        deletes the pair)."""
        if os.path.exists(f"/sys/class/net/{self.if_a}"):
            ku.ip_batch(f"link del {self.if_a}", check=False)
        else:
            ku.ip_batch(f"link del {self.if_b}", netns=self.ns, check=False)
            ku.ip_batch(f"link del {self.if_a}", netns=self.ns, check=False)


@pytest.fixture
def topo():
    t = Topology()
    try:
        t.up()
        yield t
    finally:
        t.down()


@pytest.fixture
def bare_topo():
    """The topology without MultiStack attached."""
    t = Topology()
    try:
        t.up(attach=False)
        yield t
    finally:
        t.down()
