"""`multistack-ctl exporter` against the real module: a scrape over HTTP
gives the counters `multistack-ctl stats --json` gives, and a user sees in
the metrics what `multistack-ctl list` shows that user."""

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

import kmodutil as ku


def samples(text: str) -> dict:
    """{(sample name, frozenset(labels)): value} of a scrape, parsed by
    prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def stats_json() -> dict:
    from multistack import ctl
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert ctl.main(["stats", "--json"]) == 0
    return json.loads(out.getvalue())


def counters_of(scrape: dict) -> dict:
    """The scrape's counters shaped like `stats --json`:
    {iface: {"iface": {stat: v}, "ports": {id: {stat: v}}}}."""
    out: dict = {}
    for (name, labels), value in scrape.items():
        lab = dict(labels)
        m = re.fullmatch(r"multistack_(iface|port)_(\w+)_total", name)
        if not m:
            continue
        entry = out.setdefault(lab["iface"], {"iface": {}, "ports": {}})
        where = entry["iface"] if m.group(1) == "iface" else entry["ports"].setdefault(
            lab["port"], {})
        where[m.group(2)] = int(value)
    return out


@pytest.fixture
def exporter_process():
    """The real command, started as root; yields its /metrics URL."""
    proc = subprocess.Popen([sys.executable, "-m", "multistack.ctl", "exporter",
                             "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        line = proc.stdout.readline()       # a Python start takes seconds under TCG
        m = re.fullmatch(r"serving (http://127\.0\.0\.1:\d+/metrics)\n", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        yield proc, m.group(1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_scrape_equals_stats_json(topo, exporter_process):
    proc, url = exporter_process
    p = topo.port()
    topo.track(p.claim("udp", topo.a4, 9300))
    for i in range(3):
        topo.peer().sendto(b"count me %d" % i, (topo.a4, 9300))
    assert len(ku.wait_frames(p, 3)) == 3

    def scrape() -> dict:
        with urllib.request.urlopen(url, timeout=60) as resp:
            assert resp.status == 200
            return samples(resp.read().decode())

    # Interface counters move with the OS's own traffic (neighbour
    # discovery): compare a `stats --json` taken between two equal scrapes.
    for _ in range(10):
        before, stats, after = scrape(), stats_json(), scrape()
        if before == after:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the counters never held still for two scrapes")
    assert counters_of(after) == stats
    port = stats[topo.if_a]["ports"][str(p.port_id)]
    assert port["rx_delivered"] == 3

    labels = dict(iface=topo.if_a, port=str(p.port_id), uid="0")
    key = lambda name, **extra: (name, frozenset(dict(labels, **extra).items()))  # noqa: E731
    with open(f"/proc/{os.getpid()}/comm") as f:
        comm = f.read().strip()
    assert after[("multistack_module_loaded", frozenset())] == 1
    assert after[key("multistack_port_info", pid=str(os.getpid()), command=comm)] == 1
    assert after[key("multistack_port_registrations")] == 1
    assert after[key("multistack_port_memory_bytes")] == p.mem_size
    assert after[key("multistack_port_dead")] == 0
    assert after[("multistack_iface_ports", frozenset({("iface", topo.if_a)}))] == 1

    # detached: the port is dead, the interface gone from the metrics
    topo.detach()
    gone = scrape()
    assert not [n for n, lab in gone if dict(lab).get("iface") == topo.if_a]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert proc.stderr.read() == ""


def test_a_user_sees_what_list_shows_it(topo):
    """As user nobody, another user's port shows uid and counters but no pid
    or command, as in `multistack-ctl list`; its own port shows its pid.
    (A fork, no exec: the venv's interpreter is not for other users; the
    collector is the one the server runs.)"""
    from multistack import ctl, exporter, kernel

    def child(chan):
        from prometheus_client import generate_latest
        from prometheus_client.registry import CollectorRegistry

        p = kernel.KernelPort(topo.if_a, tx_slots=8, rx_slots=8, buf_size=2048)
        sock = p.claim("udp", topo.a4, 9400)
        chan.send(p.port_id)
        chan.recv()                      # root's port is there
        registry = CollectorRegistry(auto_describe=False)
        registry.register(exporter.KernelCollector())
        text = generate_latest(registry).decode()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = ctl.main(["list", "--json"])
        sock.close()
        p.close()
        return {"text": text, "rc": rc, "list": json.loads(out.getvalue()),
                "me": os.getpid(), "own": p.port_id}

    c = ku.Child(child, uid=ku.NOBODY, memlock=8 << 20)
    try:
        c.recv()
        rp = topo.port()
        topo.track(rp.claim("udp", topo.a4, 9401))
        c.send("go")
        r = c.result()
    finally:
        c.kill()
    assert r["rc"] == 0
    got = samples(r["text"])
    info = {dict(lab)["port"]: dict(lab) for name, lab in got if name == "multistack_port_info"}
    listed = {str(e["id"]): e for i in r["list"] for e in i["ports"]}
    assert set(info) == set(listed) == {str(r["own"]), str(rp.port_id)}
    for port_id, lab in info.items():
        entry = listed[port_id]
        assert lab["uid"] == str(entry["uid"])
        assert lab["pid"] == ("" if entry["pid"] is None else str(entry["pid"]))
        assert lab["command"] == (entry["command"] or "")
    assert info[str(r["own"])]["pid"] == str(r["me"])
    assert info[str(rp.port_id)] == dict(iface=topo.if_a, port=str(rp.port_id), uid="0",
                                         pid="", command="")
    # counters and registrations stay visible, as the tuples do in list
    other = frozenset(dict(iface=topo.if_a, port=str(rp.port_id), uid="0").items())
    assert got[("multistack_port_registrations", other)] == 1
    assert ("multistack_port_rx_delivered_total", other) in got


def test_port_filter_of_a_port_that_is_gone(topo, capsys):
    from multistack import ctl
    p = topo.port()
    gone = p.port_id
    p.close()
    assert ctl.main(["exporter", "--port", str(gone), "--listen", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err
    assert err == (f"multistack-ctl: --port {gone}: no such port in this network "
                   "namespace (see multistack-ctl list)\n")
