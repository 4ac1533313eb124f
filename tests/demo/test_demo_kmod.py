"""The full demo on multistack.ko, run inside the VM (scripts/vm): the user-level
stack serves only its registered 3-tuples, the OS the rest, spoofing is refused."""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.vm, pytest.mark.netns]


def test_demo_by_default_runs_on_the_kernel_module_in_the_vm():
    # This kernel cannot load modules, so plain scripts/demo boots the VM.
    done = subprocess.run([str(ROOT / "scripts" / "demo"), "--count", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1500,
                          env={**os.environ, "MULTISTACK_VM_TIMEOUT": "1400"})
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-4000:]
    rows = {
        "UDP echo, IPv4": "user-level UDP echo .* 2/2 echoed",
        "UDP echo, IPv6": "user-level UDP echo .* 2/2 echoed",
        "HTTP GET :80, IPv4": "HTTP/1.1 on UTCP .* 200, 16384 B intact",
        "HTTP GET :80, IPv6": "HTTP/1.1 on UTCP .* 200, 16384 B intact",
        "ping, IPv4": r"Linux stack \(not registered: passed to the OS\) +2/2 answered",
        "HTTP GET :8080, IPv4": "legacy HTTP server on the OS stack .* 200, 16384 B intact",
        "own 3-tuple, UDP 9999": "sent, client got it",
        "spoof as UDP 7": r"rejected \(tx_rej_other_port \+1\), client got nothing",
        "spoof as UDP 5555": r"rejected \(tx_rej_not_owned \+1\), client got nothing",
    }
    for service, result in rows.items():
        assert re.search(rf"{re.escape(service)} .*{result} +ok", out), service
    # multistack-ctl ss read the running stack: its HTTP connection on the module's port.
    assert re.search(r"sockets of the stack +multistack-ctl ss +control socket +\d+ sockets listed +ok", out)
    assert re.search(r"tcp +ESTAB +\d+ +\d+ +10\.200\.0\.2:80 +10\.200\.0\.1:\d+ +pid=\d+ port=vs ", out)
    # multistack-ctl rejects showed port B's refused frames, each with its reason.
    assert re.search(r"why frames did not leave +multistack-ctl rejects +port B's ring +"
                     r"2 of 2 refused frames listed with their reason +ok", out)
    assert re.search(r"tx_rej_other_port +\d+ +udp 10\.200\.0\.2:7 > 10\.200\.0\.1:\d+", out)
    assert re.search(r"tx_rej_not_owned +\d+ +udp 10\.200\.0\.2:5555 > 10\.200\.0\.1:\d+", out)
    # The module's counters are shown: the stack's traffic delivered, the rest passed to the OS.
    assert re.search(r"multistack.ko interface vs: .*rx_delivered=\d+.*rx_passed=\d+", out)
    assert re.search(r"RESULT: (\d+)/\1 checks passed \(all passed\)", out)
    assert "running the demo inside the VM" in done.stderr


def test_demo_loads_the_module_itself_where_the_kernel_can():
    """Inside the VM the kernel loads modules: started without the module,
    scripts/demo builds and loads it there and runs without another VM."""
    done = subprocess.run([str(ROOT / "scripts" / "vm"), "run", "--no-module",
                           "--timeout", "1400", "--", "sh", "-c",
                           "test ! -e /dev/multistack && scripts/demo --count 1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1500)
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-4000:]
    assert "scripts/load-module: loaded " in done.stderr
    assert "inside the VM" not in done.stderr
    assert re.search(r"RESULT: (\d+)/\1 checks passed \(all passed\)", out)
