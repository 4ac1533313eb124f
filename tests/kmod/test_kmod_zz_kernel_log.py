"""Last: the kernel log after the whole suite has no warning, oops or leak.

Runs after every other test of tests/kmod (file names sort after them).
Debian's kernel has no kmemleak, so leaks are looked for three ways: with
no port left, no vmalloc area may still name the module (the rings live in
one per port); at rmmod the module checks its own count of live
interfaces, ports and registrations and logs an error if one is left; and
the log must show no leak or refcount complaint.  The module is loaded
again afterwards.
"""

import os
import re

import pytest

import kmodutil as ku
from multistack import kernel

BAD = re.compile(
    r"WARNING:|BUG:|kernel BUG|Oops|general protection fault|Call Trace|UBSAN|KASAN|"
    r"refcount_t:|list_(add|del) corruption|sleeping function called from invalid context|"
    r"scheduling while atomic|detected stall|INFO: task .* blocked|unreferenced object|"
    r"still has objects|possible circular locking|[Ll]eak|multistack.*([Ee]rror|fail)")
#: Expected lines: an out-of-tree, unsigned module taints the kernel.
BENIGN = re.compile(r"module verification failed|loading out-of-tree module")
KMEMLEAK = "/sys/kernel/debug/kmemleak"


def _dmesg() -> str:
    return ku.sh("dmesg").stdout


def test_unload_and_kernel_log_is_clean():
    for iface in kernel.attached():
        try:
            kernel.detach(iface)
        except kernel.KernelModuleError:
            pass
    assert kernel.list_ports() == [], "a port outlived its test"
    with open("/proc/vmallocinfo") as f:
        areas = [line.strip() for line in f if "[multistack]" in line]
    assert not areas, "vmalloc areas of the module with no port left:\n" + "\n".join(areas)
    leaks = ""
    if os.path.exists(KMEMLEAK):
        ku.sh(f"echo scan > {KMEMLEAK}; sleep 1; echo scan > {KMEMLEAK}", check=False)
        with open(KMEMLEAK) as f:
            leaks = f.read()
    r = ku.sh("rmmod multistack", check=False)
    unloaded = r.returncode == 0
    log = _dmesg()
    if unloaded and os.path.exists(ku.KO_PATH):
        ku.sh(f"insmod {ku.KO_PATH}", check=False)
    bad = [line for line in log.splitlines()
           if BAD.search(line) and not BENIGN.search(line)]
    assert not bad, "kernel log:\n" + "\n".join(bad[:60])
    assert "multistack" not in leaks, leaks[:4000]
    assert unloaded, f"rmmod multistack failed: {r.stderr}"


def test_kmemleak_available():
    if not os.path.exists(KMEMLEAK):
        pytest.skip("this kernel has no kmemleak (CONFIG_DEBUG_KMEMLEAK off in Debian's "
                    "build): leaks are checked through vmallocinfo and the module's own "
                    "live-object counts")
