"""`multistack-ctl exporter` on the host, where the module is absent: the
command's errors, the server answering with `multistack_module_loaded 0`,
and the metrics of a module's /proc text (tests/kmod/test_kmod_exporter.py
scrapes the real module)."""

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from multistack import ctl, exporter, kernel

PROC = """\
iface veth0 ifindex 7 ports 2 rx_delivered 5 rx_passed 12 tx_sent 1
port 1 iface veth0 pid {pid} uid 0 tx_slots 1024 rx_slots 512 buf_size 2048 mem 4300800 txmem 32768 regs 2 dead 0 rx_delivered 5 tx_rej_bad_mac 2
reg 1 inet udp 10.0.0.2 5000
reg 1 inet6 tcp fd00::2 80
port 4 iface veth0 pid - uid 1000 tx_slots 8 rx_slots 8 buf_size 2048 mem 40960 txmem 0 regs 0 dead 1 rx_delivered 0
"""


@pytest.fixture
def fake_module(no_module):
    (no_module / "multistack").write_text("")
    (no_module / "proc").write_text(PROC.format(pid=os.getpid()))
    return no_module


def scrape(*collectors) -> dict:
    """{(sample name, frozenset(labels)): value} of one scrape, through the
    text format and prometheus_client's own parser."""
    registry = CollectorRegistry(auto_describe=False)
    for c in collectors:
        registry.register(c)
    text = generate_latest(registry).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def L(**labels):
    return frozenset(labels.items())


def test_module_absent_answers_loaded_zero(no_module):
    assert scrape(exporter.KernelCollector()) == {("multistack_module_loaded", L()): 0}


def test_counters_and_gauges_of_the_module(fake_module):
    got = scrape(exporter.KernelCollector())
    mine = dict(iface="veth0", port="1", uid="0")
    other = dict(iface="veth0", port="4", uid="1000")
    assert got[("multistack_module_loaded", L())] == 1
    assert got[("multistack_iface_rx_passed_total", L(iface="veth0"))] == 12
    assert got[("multistack_iface_ports", L(iface="veth0"))] == 2
    assert got[("multistack_port_rx_delivered_total", L(**mine))] == 5
    assert got[("multistack_port_tx_rej_bad_mac_total", L(**mine))] == 2
    assert got[("multistack_port_memory_bytes", L(**mine))] == 4300800
    assert got[("multistack_port_tx_pages_bytes", L(**mine))] == 32768
    assert got[("multistack_port_registrations", L(**mine))] == 2
    assert got[("multistack_port_rx_slots", L(**mine))] == 512
    assert got[("multistack_port_dead", L(**other))] == 1
    command = open(f"/proc/{os.getpid()}/comm").read().strip()
    assert got[("multistack_port_info", L(**mine, pid=str(os.getpid()),
                                          command=command))] == 1
    # another user's port: pid and command hidden, as multistack-ctl list does
    assert got[("multistack_port_info", L(**other, pid="", command=""))] == 1
    assert got[("multistack_exporter_scrape_errors_total", L(source="kernel"))] == 0


def test_every_counter_name_comes_from_the_header(no_module):
    (no_module / "multistack").write_text("")
    counters = " ".join(f"{stat} {i}" for i, stat in kernel.STAT_NAMES.items())
    (no_module / "proc").write_text(f"iface veth0 ifindex 7 ports 0 {counters} new_stat 9\n")
    got = scrape(exporter.KernelCollector())
    names = {n for n, _ in got if n.startswith("multistack_iface_") and n.endswith("_total")}
    assert names == {f"multistack_iface_{stat}_total" for stat in kernel.STAT_NAMES.values()}
    for i, stat in kernel.STAT_NAMES.items():
        assert got[(f"multistack_iface_{stat}_total", L(iface="veth0"))] == i


def test_help_text_is_the_headers_doc(fake_module):
    registry = CollectorRegistry(auto_describe=False)
    registry.register(exporter.KernelCollector())
    text = generate_latest(registry).decode()
    assert ("# HELP multistack_iface_rx_drop_full_total "
            f"{kernel.STAT_DOCS['rx_drop_full']}\n") in text


def test_port_filter(fake_module):
    got = scrape(exporter.KernelCollector(port_id=4))
    ports = {dict(labels)["port"] for (name, labels) in got if name.startswith("multistack_port_")}
    assert ports == {"4"}
    assert got[("multistack_iface_ports", L(iface="veth0"))] == 1


def test_names_are_escaped(no_module):
    (no_module / "multistack").write_text("")
    (no_module / "proc").write_bytes(
        PROC.replace("veth0", "v\x1b\xffx").format(pid=os.getpid()).encode("latin-1"))
    ifaces = {dict(labels).get("iface") for _, labels in scrape(exporter.KernelCollector())}
    assert ifaces == {None, "v\\e\\xffx"}


def test_unreadable_module_is_counted_not_fatal(fake_module, capsys):
    (fake_module / "proc").unlink()
    (fake_module / "proc").mkdir()         # reading it fails with EISDIR
    c = exporter.KernelCollector()
    got = scrape(c)
    got = scrape(c)
    assert got == {("multistack_module_loaded", L()): 1,
                   ("multistack_exporter_scrape_errors_total", L(source="kernel")): 2}
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Is a directory" in err      # printed once


@pytest.mark.parametrize("listen", ["bogus", "127.0.0.1", ":9477", "127.0.0.1:99999",
                                    "127.0.0.1:-1", "127.0.0.1:x", "::1:9477", "[::1]",
                                    "nosuch.invalid:9477", "[]:9477"])
def test_bad_listen_is_one_line(listen, capsys):
    assert ctl.main(["exporter", "--listen", listen]) == 2
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and out.err.startswith("multistack-ctl: --listen")
    assert out.out == ""


def test_port_in_use_is_one_line(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert ctl.main(["exporter", "--listen", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err == f"multistack-ctl: --listen 127.0.0.1:{port}: Address already in use\n"


def test_port_without_permission_is_one_line():
    """Port 80 as user nobody, in a child process (the test runs as root)."""
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        if int(f.read()) <= 80:
            pytest.skip("this machine lets every user bind port 80")
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.close(rd)
            sys.stderr = os.fdopen(wr, "w")
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            code = ctl.main(["exporter", "--listen", "127.0.0.1:80"])
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(wr)
    with os.fdopen(rd) as f:
        err = f.read()
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 2
    assert err == ("multistack-ctl: --listen 127.0.0.1:80: Permission denied "
                   "(ports below 1024 need CAP_NET_BIND_SERVICE)\n")


def test_port_filter_of_no_port_is_one_line(fake_module, capsys):
    assert ctl.main(["exporter", "--port", "9"]) == 2
    assert capsys.readouterr().err == ("multistack-ctl: --port 9: no such port in this "
                                       "network namespace (see multistack-ctl list)\n")
    assert ctl.main(["exporter", "--port", "x"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_port_filter_without_module_is_one_line(no_module, capsys):
    assert ctl.main(["exporter", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not loaded" in err


@pytest.mark.parametrize("listen,sig", [("127.0.0.1:0", signal.SIGTERM),
                                        ("[::1]:0", signal.SIGINT)])
def test_serves_until_a_signal(listen, sig, tmp_path):
    """The real command: a scrape over HTTP parses, and SIGTERM or SIGINT
    ends it with status 0.  The host has no module: it says so."""
    # a run directory of its own: no stack of this machine's is asked
    env = dict(os.environ, PYTHONUNBUFFERED="1", MULTISTACK_RUN_DIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "multistack.ctl", "exporter",
                             "--listen", listen], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        m = re.fullmatch(r"serving (http://(127\.0\.0\.1|\[::1\]):\d+/metrics)\n", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        with urllib.request.urlopen(m.group(1), timeout=30) as resp:
            assert resp.status == 200
            text = resp.read().decode()
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        if os.path.exists(kernel.DEVICE):
            pytest.fail("this host has the module loaded: the test expects it absent")
        assert [s.value for s in fams["multistack_module_loaded"].samples] == [0]
        assert [s.value for s in fams["multistack_stacks"].samples] == [0]
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stat_docs_are_the_headers_strings():
    """kernel.STAT_DOCS: the doc string of each MS_STAT_LIST entry, adjacent
    literals joined, through the extension (no copy in Python)."""
    assert set(kernel.STAT_DOCS) == set(kernel.STAT_NAMES.values())
    assert kernel.STAT_DOCS["rx_delivered"] == "frames put in an RX ring"
    assert kernel.STAT_DOCS["tx_rej_not_owned"] == (
        "source tuple registered nowhere, or its proof let it go")
    assert all(doc and "\n" not in doc for doc in kernel.STAT_DOCS.values())
