"""Last: the kernel log after the whole suite has no warning, oops or leak.

Runs after every other test of tests/kmod (file names sort after them).
On the debug kernel (``scripts/vm --kernel debug``, built by
``scripts/debug-kernel``) the log carries the reports of KASAN, KFENCE,
UBSAN, lockdep (circular/recursive locking, inconsistent lock state,
suspicious RCU usage), DEBUG_OBJECTS, DEBUG_ATOMIC_SLEEP and RCU stall
detection: any of them, or any "BUG:"/"WARNING:", fails the test
(``kmodutil.LOG_BAD``), and kmemleak is asked for a scan: no unreferenced
object may point into the module.

Debian's kernel has no kmemleak, so there leaks are looked for three ways:
with no port left, no vmalloc area may still name the module (the rings
live in one per port); at rmmod the module checks its own count of live
interfaces, ports and registrations and logs an error if one is left; and
the log must show no leak or refcount complaint.  The module is loaded
again afterwards.
"""

import os

import pytest

import kmodutil as ku
from multistack import kernel


def _close_everything():
    for iface in kernel.attached():
        try:
            kernel.detach(iface)
        except kernel.KernelModuleError:
            pass


def test_kmemleak_finds_nothing_of_the_module():
    """kmemleak (debug kernel only): after the suite, with every port closed,
    a scan finds no unreferenced object allocated by or pointing into
    multistack.  Reports of the rest of the kernel are listed, not judged."""
    if not os.path.exists(ku.KMEMLEAK):
        pytest.skip("this kernel has no kmemleak (CONFIG_DEBUG_KMEMLEAK off in Debian's "
                    "build; scripts/vm --kernel debug has it): leaks are checked through "
                    "vmallocinfo and the module's own live-object counts")
    _close_everything()
    assert kernel.list_ports() == [], "a port outlived its test"
    reports = ku.kmemleak_scan()
    ours = [r for r in reports if "multistack" in r or "[multistack]" in r]
    if reports and not ours:
        print(f"kmemleak: {len(reports)} report(s), none in multistack; first:\n"
              + reports[0][:1500])
    assert not ours, (f"kmemleak: {len(ours)} unreferenced object(s) of multistack:\n"
                      + "\n".join(ours[:5])[:6000])


def test_unload_and_kernel_log_is_clean():
    _close_everything()
    assert kernel.list_ports() == [], "a port outlived its test"
    with open("/proc/vmallocinfo") as f:
        areas = [line.strip() for line in f if "[multistack]" in line]
    assert not areas, "vmalloc areas of the module with no port left:\n" + "\n".join(areas)
    r = ku.sh("rmmod multistack", check=False)
    unloaded = r.returncode == 0
    log = ku.sh("dmesg").stdout
    if unloaded and os.path.exists(ku.KO_PATH):
        ku.sh(f"insmod {ku.KO_PATH}", check=False)
    bad = ku.kernel_log_reports(log)
    if bad:
        # The whole report around the first bad line: the stack names the
        # function and offset (scripts/vm keeps the console with --keep).
        lines = log.splitlines()
        i = lines.index(bad[0])
        context = "\n".join(lines[max(0, i - 5):i + 60])
        pytest.fail(f"{len(bad)} report line(s) in the kernel log:\n" + "\n".join(bad[:30])
                    + "\n\nfirst report:\n" + context)
    if unloaded:
        assert "multistack: unloaded" in log
    assert unloaded, f"rmmod multistack failed: {r.stderr}"
