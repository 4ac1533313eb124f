"""scripts/vm itself: the guest runs a command as root with the module
loaded, its exit status and output come back, its writes stay in the
guest's overlay, and a timeout ends the run with 124 and no qemu left."""

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VM = str(ROOT / "scripts" / "vm")

pytestmark = pytest.mark.vm


def vm_run(*argv, timeout=300, vm_timeout=None):
    cmd = [VM, "run"] + (["--timeout", str(vm_timeout)] if vm_timeout else []) + ["--", *argv]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def our_qemus():
    """Pids of qemu processes scripts/vm started (it names its guests)."""
    out = subprocess.run(["pgrep", "-f", "multistack-vm,debug-threads"],
                         capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_status_and_output_come_back():
    done = vm_run("sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7")
    assert done.returncode == 7, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["to-stdout"]
    assert "to-stderr" in done.stderr.splitlines()


def test_runs_as_root_in_the_same_directory_with_the_module_loaded():
    probe = ("id -u; pwd; grep -c '^multistack ' /proc/modules; "
             "test -c /dev/multistack && echo device")
    done = vm_run("sh", "-c", probe)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0", str(ROOT), "1", "device"]


def test_guest_writes_go_to_the_overlay_not_the_host():
    name = ROOT / ".cache" / f"vm-overlay-probe-{uuid.uuid4().hex}"
    done = vm_run("sh", "-c", f"echo guest > {name} && cat {name}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "guest"
    assert not name.exists()


def test_timeout_ends_the_run_with_124_and_leaves_no_qemu():
    before = set(our_qemus())
    started = time.monotonic()
    done = vm_run("sleep", "600", vm_timeout=20, timeout=200)
    took = time.monotonic() - started
    assert done.returncode == 124, done.stderr[-2000:]
    assert took < 120
    time.sleep(0.5)
    assert set(our_qemus()) - before == set()
