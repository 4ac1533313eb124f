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


def test_names_with_control_characters_print_on_one_line(topo, ctl):
    for name in ("ms0\n", "ms0\x1b[2J", "x\n" * 7):
        r = ctl("attach", name)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert "\x1b" not in r.stderr and r.stdout == ""
    assert "attach ms0\\n: " in ctl("attach", "ms0\n").stderr


def test_other_users_ports_show_no_pid(topo, ctl):
    """/proc/net/multistack and `multistack-ctl list`: a user sees the pid
    and command of its own ports only; root (CAP_NET_ADMIN) sees all.
    Tuples and uids are visible to all, as in /proc/net/tcp."""
    import contextlib
    import io

    from multistack import ctl as ctl_module
    from multistack import kernel

    def child(chan):
        p = kernel.KernelPort(topo.if_a, tx_slots=8, rx_slots=8, buf_size=2048)
        sock = p.claim("udp", topo.a4, 9200)
        chan.send(p.port_id)
        root_port = chan.recv()
        view = {str(e["id"]): [e["pid"], e["uid"], len(e["registrations"])]
                for e in kernel.list_ports()}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = ctl_module.main(["list"])
        lines = out.getvalue().splitlines()
        sock.close()
        p.close()
        return {"view": view, "rc": rc, "me": os.getpid(), "own": p.port_id,
                "root": root_port, "lines": lines}

    c = ku.Child(child, uid=ku.NOBODY, memlock=8 << 20)
    try:
        mine = c.recv()
        rp = topo.port()
        topo.track(rp.claim("udp", topo.a4, 9201))
        view = {e["id"]: e for e in kernel.list_ports()}
        assert (view[mine]["pid"], view[mine]["uid"]) == (c.pid, ku.NOBODY)
        assert (view[rp.port_id]["pid"], view[rp.port_id]["uid"]) == (os.getpid(), 0)
        listed = ctl("list").stdout
        assert f"port {mine}  uid {ku.NOBODY}  pid {c.pid} (" in listed
        c.send(rp.port_id)
        r = c.result()
    finally:
        c.kill()
    assert r["view"][str(r["own"])] == [r["me"], ku.NOBODY, 1]
    assert r["view"][str(rp.port_id)] == [None, 0, 1]
    assert r["rc"] == 0
    (own,) = [ln for ln in r["lines"] if ln.startswith(f"  port {r['own']} ")]
    (root,) = [ln for ln in r["lines"] if ln.startswith(f"  port {rp.port_id} ")]
    assert f"uid {ku.NOBODY}  pid {r['me']} (" in own
    assert "uid 0  pid - (-)" in root
    assert f"udp {topo.a4}:9201" in [ln.strip() for ln in r["lines"]]  # tuples stay visible
