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
def no_module(monkeypatch, tmp_path):
    monkeypatch.setattr(kernel, "DEVICE", str(tmp_path / "multistack"))
    monkeypatch.setattr(kernel, "PROC_FILE", str(tmp_path / "proc"))
    return tmp_path


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
            "port": 5000} in port["registrations"]


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
