import json
import subprocess
import sys

from multistack import ctl


def run_ctl(*argv):
    return subprocess.run([sys.executable, "-m", "multistack.ctl", *argv],
                          capture_output=True, text=True, timeout=60)


def test_ifaces_json_lists_loopback():
    result = run_ctl("ifaces", "--json")
    assert result.returncode == 0, result.stderr
    ifaces = json.loads(result.stdout)
    lo = next(i for i in ifaces if i["name"] == "lo")
    assert "127.0.0.1" in lo["ipv4"]


def test_ifaces_text_names_every_interface():
    result = run_ctl("ifaces")
    assert result.returncode == 0
    assert any(line.startswith("lo ") for line in result.stdout.splitlines())


def test_version_json():
    result = run_ctl("--json", "version")
    assert result.returncode == 0
    assert json.loads(result.stdout)["multistack"]


def test_bad_argument_is_one_line_and_nonzero():
    result = run_ctl("frobnicate")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("multistack-ctl: ")
    assert "Traceback" not in result.stderr


def test_no_command_is_a_user_error(capsys):
    assert ctl.main([]) == 2
    assert capsys.readouterr().err.count("\n") == 1
