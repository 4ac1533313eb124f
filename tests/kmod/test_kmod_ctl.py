"""`multistack-ctl attach/detach/list/stats` against the real module."""

import json
import os
import subprocess
import sys

import pytest

import kmodutil as ku


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def ctl(capsys):
    """multistack-ctl in this process (a Python start costs seconds under
    TCG); test_entry_point runs the real command once."""
    from multistack import ctl as ctl_module

    def run(*argv):
        capsys.readouterr()
        code = ctl_module.main(list(argv))
        out = capsys.readouterr()
        return Result(code, out.out, out.err)
    return run


def test_entry_point(bare_topo):
    r = subprocess.run([sys.executable, "-m", "multistack.ctl", "--json", "list"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout) == [], r.stderr


def test_attach_list_stats_detach(bare_topo, ctl):
    t = bare_topo
    r = ctl("attach", t.if_a)
    assert r.returncode == 0, r.stderr
    t.attached = True
    r = ctl("attach", t.if_a)
    assert r.returncode == 2 and "already attached" in r.stderr
    assert r.stderr.count("\n") == 1

    p = t.port()
    t.track(p.claim("udp", t.a4, 9100))
    t.track(p.claim("tcp", t.a6, 9101))
    r = ctl("list", "--json")
    assert r.returncode == 0, r.stderr
    (iface,) = json.loads(r.stdout)
    (port,) = iface["ports"]
    assert iface["iface"] == t.if_a and port["pid"] == os.getpid()
    assert (port["mem"], port["txmem"]) == (p.mem_size, 0)     # nothing sent yet
    assert {(g["proto"], g["address"], g["port"]) for g in port["registrations"]} == {
        ("udp", t.a4, 9100), ("tcp", t.a6, 9101)}
    r = ctl("list")
    assert f"pid {os.getpid()}" in r.stdout and "udp 10.77.0.1:9100" in r.stdout
    assert "tcp [fd77::1]:9101" in r.stdout

    t.peer().sendto(b"count me", (t.a4, 9100))
    assert len(ku.wait_frames(p, 1)) == 1
    r = ctl("stats", t.if_a, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)[t.if_a]
    assert data["iface"]["rx_delivered"] >= 1
    assert data["ports"][str(p.port_id)]["rx_delivered"] == 1
    r = ctl("stats")
    assert r.returncode == 0 and "rx_delivered" in r.stdout

    r = ctl("detach", t.if_a)
    assert r.returncode == 0, r.stderr
    t.attached = False
    r = ctl("detach", t.if_a)
    assert r.returncode == 2 and "not attached" in r.stderr
    r = ctl("stats", t.if_a)
    assert r.returncode == 2
    r = ctl("attach", "nosuch0")
    assert r.returncode == 2 and "no such" in r.stderr.lower()
    r = ctl("--json", "list")
    assert r.returncode == 0 and json.loads(r.stdout) == []
