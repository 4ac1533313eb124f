"""Installing with DKMS: kmod/dkms.conf builds the module against the VM
kernel's headers (which scripts/vm installed), and the module DKMS built
loads in the VM and serves /dev/multistack."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VM = str(ROOT / "scripts" / "vm")

pytestmark = pytest.mark.vm


def vm_kernel_version() -> str:
    done = subprocess.run([VM, "run", "--", "uname", "-r"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_dkms_builds_the_module_and_it_loads_in_the_vm():
    kver = vm_kernel_version()
    # Under the repository (git-ignored): the guest sees it, and it leaves
    # /var/lib/dkms alone.
    work = ROOT / ".cache" / "dkms-test"
    shutil.rmtree(work, ignore_errors=True)
    source = work / "src" / "multistack-0.1"
    build_output = shutil.ignore_patterns("*.o", "*.ko", "*.mod*", ".*.cmd", "Module.symvers",
                                          "modules.order", ".tmp*")
    shutil.copytree(ROOT / "kmod", source, ignore=build_output)
    tree = work / "tree"
    tree.mkdir()
    headers = []
    if kver.endswith("-msdebug"):
        # No headers package links /lib/modules/<ver>/build to the debug
        # kernel's tree (scripts/debug-kernel's cache): name it.
        cache = subprocess.run([str(ROOT / "scripts" / "debug-kernel"), "--dir"],
                               capture_output=True, text=True, check=True).stdout.strip()
        headers = ["--kernelsourcedir", str(Path(cache) / "linux")]
    build = subprocess.run(["dkms", "build", "-m", "multistack", "-v", "0.1", "-k", kver,
                            "--sourcetree", str(work / "src"), "--dkmstree", str(tree),
                            *headers],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (built,) = tree.glob(f"multistack/0.1/{kver}/*/module/multistack.ko*")
    swap = (f"rmmod multistack && insmod {built} && test -c /dev/multistack && "
            "grep -c '^multistack ' /proc/modules && "
            "ls /sys/module/multistack/sections >/dev/null && "
            'rmmod multistack && insmod "$MULTISTACK_KO" && echo restored')
    done = subprocess.run([VM, "run", "--", "sh", "-c", swap], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert done.stdout.split() == ["1", "restored"]
    shutil.rmtree(work, ignore_errors=True)
