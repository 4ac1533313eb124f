"""`multistack-ctl exporter` and the user-level stacks: a real stack process
(control_stack.py: two Hosts with control_socket=True) scraped over HTTP by
the real command, and the --pid errors.  No module is needed."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from multistack import ctl, exporter, stackctl

ROOT = Path(__file__).resolve().parents[2]
STACK = Path(__file__).with_name("control_stack.py")
NOBODY = 65534


def samples(text: str) -> dict:
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def stack_counters(scrape: dict) -> dict:
    """The scrape's stack counters shaped like the "counters" reply:
    {pid: {layer: {name: value}}}."""
    out: dict = {}
    for (name, labels), value in scrape.items():
        m = re.fullmatch(r"multistack_stack_(host|udp|tcp)_(\w+)_total", name)
        if m:
            pid = int(dict(labels)["pid"])
            out.setdefault(pid, {"host": {}, "udp": {}, "tcp": {}})[m.group(1)][m.group(2)] = \
                int(value)
    return out


@pytest.fixture
def run_dir(monkeypatch):
    """A run directory of this test's own (others may read it), set for this
    process and its children."""
    directory = tempfile.mkdtemp(prefix="ms-run-", dir="/tmp")
    os.chmod(directory, 0o755)
    monkeypatch.setenv(stackctl.RUN_DIR_ENV, directory)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def stack(run_dir):
    proc = subprocess.Popen([sys.executable, str(STACK)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise AssertionError(f"stack process did not start: {line!r} {proc.stderr.read()}")
    yield proc
    proc.kill()
    proc.wait()


def serve(*argv):
    """The real command in a process of its own: (process, /metrics URL)."""
    proc = subprocess.Popen([sys.executable, "-m", "multistack.ctl", "exporter",
                             "--listen", "127.0.0.1:0", *argv], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    line = proc.stdout.readline()
    m = re.fullmatch(r"serving (http://127\.0\.0\.1:\d+/metrics)\n", line)
    if not m:
        proc.kill()
        raise AssertionError(f"exporter did not start: {line!r} {proc.stderr.read()}")
    return proc, m.group(1)


def scrape(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200
        return samples(resp.read().decode())


@pytest.mark.parametrize("only_this_pid", [False, True])
def test_stack_counters_equal_the_stacks_reply(stack, only_this_pid):
    proc, url = serve(*(["--pid", str(stack.pid)] if only_this_pid else []))
    try:
        # TCP timers may still count: compare a reply taken between two equal scrapes
        for _ in range(20):
            before = scrape(url)
            reply = stackctl.query(stack.pid, "counters")
            after = scrape(url)
            if before == after:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the stack's counters never held still for two scrapes")
        assert stack_counters(after) == {stack.pid: reply["counters"]}
        assert reply["counters"]["udp"]["rx_datagrams"] == 3          # control_stack.py's
        labels = frozenset({"pid": str(stack.pid), "command": reply["command"]}.items())
        assert after[("multistack_stack_tcp_accepted_total", labels)] == 2
        assert after[("multistack_stacks", frozenset())] == 1
        assert after[("multistack_stacks_not_permitted", frozenset())] == 0
        assert after[("multistack_exporter_scrape_errors_total",
                      frozenset({"source": "stacks"}.items()))] == 0

        stack.kill()                    # a stack that ends leaves the metrics
        stack.wait()
        gone = scrape(url)
        assert stack_counters(gone) == {} and gone[("multistack_stacks", frozenset())] == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def as_nobody(fn):
    """fn() in a forked child as user nobody (no exec: the venv may not be
    another user's to run); returns (what fn returned, its stderr)."""
    import json
    rd, wr = os.pipe()
    erd, ewr = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rd)
            os.close(erd)
            sys.stderr = os.fdopen(ewr, "w")
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            out = json.dumps(fn())
            sys.stderr.flush()
            os.write(wr, out.encode())
        finally:
            os._exit(0)
    os.close(wr)
    os.close(ewr)
    with os.fdopen(rd) as f, os.fdopen(erd) as e:
        out, err = f.read(), e.read()
    os.waitpid(pid, 0)
    return json.loads(out), err


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the exporter as another user (needs root)")
def test_another_users_stack_is_counted_not_shown(stack):
    def child():
        registry = CollectorRegistry(auto_describe=False)
        registry.register(exporter.StackCollector())
        return generate_latest(registry).decode()

    text, err = as_nobody(child)
    got = samples(text)
    assert got[("multistack_stacks", frozenset())] == 0
    assert got[("multistack_stacks_not_permitted", frozenset())] == 1
    assert stack_counters(got) == {} and err == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the exporter as another user (needs root)")
def test_pid_of_another_users_stack_is_one_line(stack):
    def child():
        return ctl.main(["exporter", "--pid", str(stack.pid), "--listen", "127.0.0.1:0"])

    rc, err = as_nobody(child)
    assert rc == 2
    assert err == (f"multistack-ctl: --pid {stack.pid}: stack {stack.pid}: permission denied "
                   "(the stack belongs to uid 0; only its owner or root may ask)\n")


def test_pid_that_is_no_stack_is_one_line(run_dir, capsys):
    assert ctl.main(["exporter", "--pid", str(os.getpid())]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"multistack-ctl: --pid {os.getpid()}: process {os.getpid()} has no "
                          "stack control socket") and err.count("\n") == 1
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert ctl.main(["exporter", "--pid", str(dead.pid)]) == 2
    assert capsys.readouterr().err == (f"multistack-ctl: --pid {dead.pid}: "
                                       f"no process {dead.pid}\n")
    assert ctl.main(["exporter", "--pid", "nope"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
