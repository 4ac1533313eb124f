"""`multistack-ctl attach/detach/list/stats` on the host, where the module
is absent (the VM suite in tests/kmod runs them against the real module)."""

import json
import os

import pytest

from multistack import ctl, kernel

PROC = """\
iface veth0 ifindex 7 ports 1 rx_delivered 5 rx_passed 12 tx_sent 1
port 1 iface veth0 pid {pid} tx_slots 1024 rx_slots 1024 buf_size 2048 mem 4300800 txmem 32768 regs 2 dead 0 rx_delivered 5 tx_rej_bad_mac 2
reg 1 inet udp 10.0.0.2 5000
reg 1 inet6 tcp fd00::2 80
"""


@pytest.fixture
def fake_module(no_module):
    (no_module / "multistack").write_text("")
    (no_module / "proc").write_text(PROC.format(pid=os.getpid()))
    return no_module


@pytest.mark.parametrize("argv", [["attach", "veth0"], ["detach", "veth0"], ["list"],
                                  ["stats"], ["--json", "list"], ["stats", "veth0", "--json"]])
def test_module_not_loaded_is_a_one_line_error(no_module, capsys, argv):
    assert ctl.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not loaded" in err


def test_usage_errors(capsys):
    assert ctl.main(["attach"]) == 2
    assert ctl.main(["stats", "a", "b"]) == 2


def test_list_text(fake_module, capsys):
    assert ctl.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "veth0 (ifindex 7): 1 port" in out
    assert f"pid {os.getpid()} (" in out
    assert "udp 10.0.0.2:5000" in out and "tcp [fd00::2]:80" in out
    assert "mem 4300800 B + tx pages 32768 B" in out


def test_list_json(fake_module, capsys):
    assert ctl.main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    port = data[0]["ports"][0]
    assert data[0]["iface"] == "veth0"
    assert port["pid"] == os.getpid() and port["dead"] is False
    assert (port["mem"], port["txmem"]) == (4300800, 32768)
    assert {"family": "inet", "proto": "udp", "address": "10.0.0.2",
            "port": 5000, "proof": "held"} in port["registrations"]


def test_stats_all_json(fake_module, capsys):
    assert ctl.main(["--json", "stats"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["veth0"]["iface"]["rx_passed"] == 12
    assert data["veth0"]["ports"]["1"]["tx_rej_bad_mac"] == 2


def test_stats_text(fake_module, capsys):
    assert ctl.main(["stats"]) == 0
    out = capsys.readouterr().out
    assert "port 1" in out and "tx_rej_bad_mac" in out


def test_nothing_attached(no_module, capsys):
    (no_module / "multistack").write_text("")
    assert ctl.main(["list"]) == 0
    assert "no interface attached" in capsys.readouterr().out
    assert ctl.main(["--json", "list"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_printable_names():
    from multistack.text import one_line, printable
    assert printable("eth0") == "eth0"
    assert printable("eth0\n") == "eth0\\n"
    assert printable("a\x1b[2Jb\x01\x7f") == "a\\e[2Jb\\x01\\x7f"
    assert printable("a\\nb") == "a\\\\nb"            # a real backslash stays distinguishable
    assert printable("x\u2028y\x85") == "x\\u2028y\\x85"
    assert printable(os.fsdecode(b"e\xffth")) == "e\\xffth"   # not UTF-8
    assert printable("über") == "über"
    assert one_line("a\\b\nc") == "a\\b\\nc"


@pytest.mark.parametrize("name", ["eth0\n", "e\nt\nh", "eth0\x1b[31m", "\r\n", "e\u2028"])
@pytest.mark.parametrize("cmd", ["attach", "detach", "stats"])
def test_a_name_is_printed_on_one_line(fake_module, capsys, cmd, name):
    # the fake device answers every ioctl with ENOTTY: an error naming it
    assert ctl.main([cmd, name]) == 2
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and out.out == ""
    assert "\x1b" not in out.err and "\r" not in out.err and "\u2028" not in out.err


def test_a_name_too_long_is_one_line(fake_module, capsys):
    assert ctl.main(["attach", "x\n" * 10]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "x\\nx\\n" in err


def test_attached_echo_is_escaped(fake_module, capsys, monkeypatch):
    monkeypatch.setattr(kernel, "attach", lambda name: None)
    assert ctl.main(["attach", "eth0\n"]) == 0
    assert capsys.readouterr().out == "attached eth0\\n\n"


def test_list_escapes_kernel_and_process_names(no_module, capsys, monkeypatch):
    (no_module / "multistack").write_text("")
    (no_module / "proc").write_bytes(
        PROC.replace("veth0", "v\x01\x1b[2J\xffx").format(pid=os.getpid()).encode("latin-1"))
    monkeypatch.setattr("multistack.ctl_kernel._comm", lambda pid: "evil\nname\x1b")
    assert ctl.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x01" not in out
    lines = out.splitlines()
    assert lines[0].startswith("v\\x01\\e[2J\\xffx (ifindex 7)")
    assert f"pid {os.getpid()} (evil\\nname\\e)" in lines[1]
    assert ctl.main(["stats"]) == 0
    assert "v\\x01\\e[2J\\xffx" in capsys.readouterr().out


def test_list_hides_what_the_module_hides(no_module, capsys):
    """"pid -": another user's port, seen without CAP_NET_ADMIN."""
    (no_module / "multistack").write_text("")
    (no_module / "proc").write_text(
        PROC.format(pid="-").replace(" tx_slots", " uid 1000 tx_slots"))
    assert ctl.main(["list"]) == 0
    assert "port 1  uid 1000  pid - (-)  slots" in capsys.readouterr().out
    assert ctl.main(["list", "--json"]) == 0
    port = json.loads(capsys.readouterr().out)[0]["ports"][0]
    assert (port["pid"], port["command"], port["uid"]) == (None, None, 1000)
