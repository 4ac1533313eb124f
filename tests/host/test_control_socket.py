"""The stacks' control socket and `multistack-ctl ss`: real Hosts, real sockets, the real CLI.

A stack process (control_stack.py) runs two Hosts on a memory pair with
TCP connections and UDP endpoints; the CLI reads it as root and as an
unprivileged user (uid 65534, by setpriv).  In-process tests drive the
server with raw requests.
"""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import trio

from multistack import stackctl
from multistack.memport import memory_pair
from stacks.host import Host, OwnNeighbours
from stacks.udp.socket import open_udp_socket
from stacks.utcp.trio_api import TcpLayer, open_tcp_listener

from hostkit import trio_test

ROOT = Path(__file__).resolve().parents[2]
STACK = Path(__file__).with_name("control_stack.py")
NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="runs the CLI as another user (needs root)")


@pytest.fixture
def run_dir(monkeypatch):
    """A run directory others may read but not write (like /run/multistack/stacks
    without the sticky world-writable bit), set for this process and its children."""
    directory = tempfile.mkdtemp(prefix="ms-run-", dir="/tmp")
    os.chmod(directory, 0o755)
    monkeypatch.setenv(stackctl.RUN_DIR_ENV, directory)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def start_stack(run_dir):
    proc = subprocess.Popen([sys.executable, str(STACK)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, stackctl.RUN_DIR_ENV: run_dir})
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise AssertionError(f"stack process did not start: {line!r} {proc.stderr.read()}")
    return proc


@pytest.fixture
def stack(run_dir):
    proc = start_stack(run_dir)
    yield proc
    proc.kill()
    proc.wait()


def ctl(*argv, user=None):
    command = [sys.executable, "-m", "multistack.ctl", *argv]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)


def one_error_line(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("multistack-ctl: "), result.stderr
    return lines[0]


# ---------------------------------------------------------------- ss as the owner


def test_ss_json_shows_connections_states_and_counters(stack, run_dir):
    result = ctl("ss", "--json")
    assert result.returncode == 0, result.stderr
    [reply] = json.loads(result.stdout)
    assert reply["pid"] == stack.pid and reply["uid"] == 0
    assert "control_stack.py" in reply["command"]
    assert sorted((p["name"], p["backend"]) for p in reply["ports"]) == [("mem0", "MemoryPort"),
                                                                          ("mem1", "MemoryPort")]
    tcp = {(r["port"], r["state"], r["local_port"], r["remote_port"]): r for r in reply["tcp"]}
    listeners = sorted((port, lport) for port, state, lport, _ in tcp if state == "LISTEN")
    assert listeners == [("mem1", 80), ("mem1", 8080), ("mem1", 9000)]
    wildcard = next(r for r in reply["tcp"] if r["local_port"] == 9000)
    assert wildcard["local_address"] is None and wildcard["remote_address"] is None
    clients = [r for r in reply["tcp"] if r["port"] == "mem0"]
    servers = [r for r in reply["tcp"] if r["port"] == "mem1" and r["state"] != "LISTEN"]
    assert len(clients) == len(servers) == 2
    assert {r["remote_address"] for r in clients} == {"10.9.0.2", "fd00:9::2"}
    for row in clients + servers:
        assert row["state"] == "ESTABLISHED"
        assert row["cwnd"] > 0 and row["srtt_ms"] is not None and row["rto_ms"] >= 200
        assert row["segments_in"] > 0 and row["segments_out"] > 0
    for row in clients:             # the bulk senders: all acknowledged, some of it twice
        assert row["bytes_acked"] == 200_000 and row["bytes_received"] == 1000
        assert row["retransmits"] > 0 and row["bytes_retransmitted"] > 0
        assert row["bytes_sent"] == 200_000 + row["bytes_retransmitted"]
        assert row["ssthresh"] is not None         # a loss set it
    for row in servers:
        assert row["bytes_received"] == 200_000 and row["bytes_sent"] == 1000
    udp = {(r["port"], r["local_address"], r["local_port"]): r for r in reply["udp"]}
    sink = udp["mem1", "10.9.0.2", 7]
    assert (sink["state"], sink["queued_datagrams"], sink["receive_queue"]) == ("UNCONN", 3, 300)
    assert (sink["rx_datagrams"], sink["rx_bytes"]) == (3, 300)
    [sender] = [r for r in reply["udp"] if r["port"] == "mem0"]
    assert (sender["local_address"], sender["tx_datagrams"], sender["tx_bytes"]) == ("0.0.0.0", 3, 300)


def test_ss_table_is_like_ss_tuni(stack):
    result = ctl("ss", "--pid", str(stack.pid))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["Netid", "State", "Recv-Q", "Send-Q", "Local", "Address:Port",
                                "Peer", "Address:Port", "Process"]
    rows = [line.split() for line in lines[1:] if not line.startswith(" ")]
    assert ["tcp", "LISTEN", "0", "128", "*:9000", "*:*", f"pid={stack.pid}", "port=mem1",
            "(python)"] in [[*r[:-1], "(python)"] for r in rows]
    assert any(r[:2] == ["tcp", "ESTAB"] and r[5] == "[fd00:9::2]:8080" for r in rows)
    assert ["udp", "UNCONN", "300", "0", "10.9.0.2:7", "*:*"] in [r[:6] for r in rows]
    details = [line.split() for line in lines if line.startswith("   mss:")]
    assert len(details) == 4
    assert all(any(f.startswith("retrans:") for f in d) for d in details)


def test_counters_reply_holds_the_host_udp_and_tcp_counters(stack):
    [info] = stackctl.list_stacks()
    assert (info.pid, info.uid) == (stack.pid, 0) and info.socket.endswith(f"/{stack.pid}.sock")
    reply = stackctl.query(info, "counters", timeout=10)
    assert reply["ok"] and reply["pid"] == stack.pid
    counters = reply["counters"]
    assert set(counters) == {"host", "udp", "tcp"}
    assert counters["host"]["rx_frames"] > 0 and counters["host"]["tx_frames"] > 0
    assert counters["udp"]["rx_datagrams"] == 3 and counters["udp"]["tx_datagrams"] == 3
    assert counters["tcp"]["accepted"] == 2
    # The same by pid and by path.
    assert stackctl.query(stack.pid, {"request": "counters"})["counters"]["udp"] == counters["udp"]
    assert stackctl.query(info.socket, "connections")["pid"] == stack.pid


def test_socket_is_private_to_its_owner(stack, run_dir):
    path = os.path.join(run_dir, f"{stack.pid}.sock")
    mode = os.lstat(path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


# ---------------------------------------------------------------- refusals


@needs_root
def test_another_user_is_refused_by_the_socket_mode(stack):
    line = one_error_line(ctl("ss", "--pid", str(stack.pid), user=NOBODY))
    assert f"stack {stack.pid}: permission denied" in line and "uid 0" in line
    # Listing every stack: another user's is skipped, said on stderr; the rest is shown.
    result = ctl("ss", "--json", user=NOBODY)
    assert result.returncode == 0 and json.loads(result.stdout) == []
    assert "permission denied" in result.stderr and "skipped" in result.stderr


@needs_root
def test_another_user_is_refused_by_the_stack_even_through_an_open_socket(stack, run_dir):
    os.chmod(os.path.join(run_dir, f"{stack.pid}.sock"), 0o666)
    line = one_error_line(ctl("ss", "--pid", str(stack.pid), user=NOBODY))
    assert f"permission denied: uid {NOBODY} is neither the stack's owner (uid 0) nor root" in line
    assert ctl("ss", "--pid", str(stack.pid)).returncode == 0      # the owner still is answered


def test_a_pid_that_does_not_exist_is_one_line(run_dir):
    pid = 2 ** 22 + 1           # above Linux's pid_max limit: never a process
    assert f"no process {pid}" in one_error_line(ctl("ss", "--pid", str(pid)))


def test_a_process_without_a_control_socket_is_one_line(run_dir):
    line = one_error_line(ctl("ss", "--pid", str(os.getpid())))
    assert f"process {os.getpid()} has no stack control socket" in line


@pytest.mark.parametrize("argv", [["ss", "--pid", "abc"], ["ss", "--pid", "0"], ["ss", "--bogus"]])
def test_bad_arguments_are_one_line(run_dir, argv):
    one_error_line(ctl(*argv))


def test_no_stacks_is_an_empty_list(run_dir):
    result = ctl("ss", "--json")
    assert result.returncode == 0 and json.loads(result.stdout) == []


# ---------------------------------------------------------------- a stack that died


def test_a_killed_stacks_socket_is_removed_by_ss_where_it_may(run_dir):
    proc = start_stack(run_dir)
    path = os.path.join(run_dir, f"{proc.pid}.sock")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert os.path.exists(path)                      # nobody removed it on the way out
    if os.geteuid() == 0:
        # Another user may not remove it (the directory is not theirs): it stays, unlisted.
        result = ctl("ss", "--json", user=NOBODY)
        assert result.returncode == 0 and json.loads(result.stdout) == []
        assert os.path.exists(path)
    result = ctl("ss", "--json")
    assert result.returncode == 0 and json.loads(result.stdout) == []
    assert not os.path.exists(path)
    # Asked for by pid once gone: one line.
    assert f"no process {proc.pid}" in one_error_line(ctl("ss", "--pid", str(proc.pid)))


def test_a_socket_nobody_serves_is_removed_even_when_its_pid_lives(run_dir):
    # A socket named after a live process that does not serve it (pid reused).
    path = os.path.join(run_dir, f"{os.getpid()}.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(path)
    assert stackctl.list_stacks() == [] and not os.path.exists(path)


# ---------------------------------------------------------------- the server in this process


def pair_of_hosts(**host_options):
    a, b = memory_pair()
    return (Host(a, ["10.8.0.1/24"], neighbours=OwnNeighbours(), **host_options),
            Host(b, ["10.8.0.2/24"], neighbours=OwnNeighbours(), **host_options))


def raw_exchange(path, payload: bytes, replies: int) -> list:
    """Send ``payload`` as is and read ``replies`` reply lines (fewer if it closes)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(payload)
        data = b""
        while data.count(b"\n") < replies:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


@trio_test
async def test_malformed_requests_get_errors_and_the_server_keeps_serving(run_dir):
    first, second = pair_of_hosts(control_socket=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(first.run)
        nursery.start_soon(second.run)
        await trio.sleep(0.05)
        path = os.path.join(run_dir, f"{os.getpid()}.sock")
        bad = [b"not json", b"[1, 2]", b'{"request": "frobnicate"}', b"{}", b"", b"\xff\xfe",
               b'{"request": ["connections"]}']
        payload = b"\n".join(bad) + b'\n{"request": "connections"}\n'
        replies = await trio.to_thread.run_sync(raw_exchange, path, payload, len(bad) + 1)
        assert len(replies) == len(bad) + 1
        for reply in replies[:-1]:
            assert reply["ok"] is False and reply["error"]
        assert "not JSON" in replies[0]["error"] and "not a JSON object" in replies[1]["error"]
        assert "unknown request 'frobnicate'" in replies[2]["error"]
        # The same connection goes on: the last request is answered.
        assert replies[-1]["ok"] is True and replies[-1]["pid"] == os.getpid()
        assert sorted(p["name"] for p in replies[-1]["ports"]) == ["mem0", "mem1"]
        # An overlong request line: one error, the rest of that line skipped, and the
        # connection goes on ...
        huge = b'{"request": "' + b"x" * (3 * stackctl.MAX_REQUEST) + b'"}\n{"request": "counters"}\n'
        replies = await trio.to_thread.run_sync(raw_exchange, path, huge, 2)
        assert replies[0]["ok"] is False and "longer than" in replies[0]["error"]
        assert replies[1]["ok"] is True and "counters" in replies[1]
        # ... a client that leaves at once costs nothing; the next one is served.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as leaving:
            leaving.connect(path)
        reply = await trio.to_thread.run_sync(stackctl.query, path, "counters")
        assert reply["ok"] and set(reply["counters"]) == {"host", "udp", "tcp"}
        nursery.cancel_scope.cancel()
    assert not os.path.exists(path)


@trio_test
async def test_the_socket_lives_while_a_host_with_the_option_runs(run_dir):
    with_option, without = pair_of_hosts()
    with_option.control_socket = True
    path = os.path.join(run_dir, f"{os.getpid()}.sock")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(without.run)
        await trio.sleep(0.05)
        assert not os.path.exists(path)          # off by default
        scope = trio.CancelScope()

        async def run_until_cancelled():
            with scope:
                await with_option.run()

        nursery.start_soon(run_until_cancelled)
        await trio.sleep(0.05)
        assert os.path.exists(path)
        listener = await open_tcp_listener(with_option, "10.8.0.1", 22)
        udp = open_udp_socket(without, "10.8.0.2", 53)
        reply = await trio.to_thread.run_sync(stackctl.query, path, "connections")
        # Only the host that asked for it is reported.
        assert [p["name"] for p in reply["ports"]] == ["mem0"] and reply["udp"] == []
        assert [(r["state"], r["local_port"]) for r in reply["tcp"]] == [("LISTEN", 22)]
        scope.cancel()
        await trio.sleep(0.05)
        assert not os.path.exists(path)          # removed when the host stopped
        with pytest.raises(stackctl.NoSuchStackError):
            await trio.to_thread.run_sync(stackctl.query, path, "connections")
        await listener.aclose()
        udp.close()
        nursery.cancel_scope.cancel()


def test_a_host_without_a_tcp_layer_still_reports(run_dir):
    # A TCP layer attached later, or never: the reply lists what there is.
    host, _ = pair_of_hosts()
    from stacks.host.control import connections, counters

    assert connections([host])["tcp"] == [] and counters([host])["counters"]["tcp"] == {}
    TcpLayer.of(host)
    assert connections([host])["tcp"] == []
