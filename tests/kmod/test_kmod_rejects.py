"""The rejected-TX-frame ring of each port (MS_IOC_REJECTS) and
`multistack-ctl rejects`: every refusal lands there with its reason, the
ring keeps the last MS_REJ_RING, frames that are sent never do, and only
the port's owner or CAP_NET_ADMIN may read it."""

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

import kmodutil as ku
from multistack import kernel
from multistack.pcapng import read_pcapng
from test_kmod_tx import REASONS, _bad_frame, tx_setup  # noqa: F401 (fixture)

UDP = socket.IPPROTO_UDP
RING, SNAP = kernel.REJ_RING, kernel.REJ_SNAPLEN


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_ctl(*argv):
    """multistack-ctl in this process (a Python start costs seconds under
    TCG); returns its status, stdout and stderr."""
    from multistack import ctl as ctl_module
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = ctl_module.main(list(argv))
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def rej_setup(tx_setup):
    """test_kmod_tx's ports and peer, without its sniffer."""
    return tx_setup[:4]


def _good(topo, i):
    return ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, 7500, 7502, b"good-%d" % i)


def _put_raw(port, buf_idx, length):
    from multistack._native import lib
    assert lib.ms_kmod_tx_put_raw(port._base, port._tx_ofs, buf_idx, length) == 1


def test_every_reason_lands_in_the_ring_and_good_frames_never(rej_setup):
    topo, p, q, rx = rej_setup
    assert kernel.rejected_frames(p.port_id).total == 0
    frames, expect, good = [], [], []
    for i, reason in enumerate(REASONS):
        fr, counter = _bad_frame(reason, topo)
        frames += [fr, _good(topo, i)]
        expect.append((counter, fr))
        good.append(b"good-%d" % i)
    t0 = time.time_ns()
    ku.send_frames(p, frames)
    # a buffer index out of range (no bytes to keep), then a slot longer
    # than its buffer (its buffer's first bytes are kept)
    _put_raw(p, 0xFFFFFF00, 60)
    p.sync()
    from multistack._native import ffi
    slots = ffi.cast("struct ms_netmap_slot *", ffi.cast("char *", p.tx_ring) + 256)
    idx = slots[p.tx_ring.head].buf_idx
    _put_raw(p, idx, p.buf_size + 100)
    p.sync()
    t1 = time.time_ns()
    assert sorted(ku.drain(rx, 1.0)) == sorted(good)

    r = kernel.rejected_frames(p.port_id)
    assert (r.port_id, r.ifname, r.total, r.overwritten) == (
        p.port_id, topo.if_a, len(expect) + 2, 0)
    # within one sync, in the order of the checks (ms_tx.c's phases)
    first = r.frames[:len(expect)]
    assert sorted((f.reason, f.length, f.data) for f in first) == sorted(
        (c, len(fr), fr[:SNAP]) for c, fr in expect)
    phase = {"tx_rej_runt": 0, "tx_rej_oversize": 0, "tx_rej_malformed": 1,
             "tx_rej_fragment": 1, "tx_rej_bad_mac": 1, "tx_rej_other_port": 2,
             "tx_rej_not_owned": 2}
    assert [phase[f.reason] for f in first] == sorted(phase[f.reason] for f in first)
    bad_slot, oversize = r.frames[-2:]
    assert (bad_slot.reason, oversize.reason) == ("tx_rej_bad_slot", "tx_rej_oversize")
    assert (bad_slot.length, bad_slot.data) == (60, b"")
    assert (oversize.length, len(oversize.data)) == (p.buf_size + 100, SNAP)
    times = [f.time_ns for f in r.frames]
    assert times == sorted(times) and t0 <= times[0] and times[-1] <= t1
    assert not any(b"good-" in f.data for f in r.frames)
    # every refusal the counters saw is in the ring, and nothing else
    st = p.raw_stats()[0]
    assert sum(v for k, v in st.items() if k.startswith("tx_rej_")) == r.total
    # the other port refused nothing
    assert kernel.rejected_frames(q.port_id).total == 0
    # an IPv6 refusal too
    topo.track(p.claim("udp", topo.a6, 7500))
    bad6 = ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a6, topo.b6, 7503, 7502, b"v6-bad")
    ku.send_frames(p, [bad6])
    last = kernel.rejected_frames(p.port_id).frames[-1]
    assert (last.reason, last.data) == ("tx_rej_not_owned", bad6)


def test_the_ring_keeps_the_last_frames_and_counts_the_rest(rej_setup):
    topo, p, _, rx = rej_setup
    n = RING + 10
    bad = [ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, 7999, 7502, b"n%03d" % i)
           for i in range(n)]
    for i in range(0, n, 20):       # several syncs, good frames between
        ku.send_frames(p, bad[i:i + 20] + [_good(topo, i)])
    assert len(ku.drain(rx, 1.0)) == -(-n // 20)
    r = kernel.rejected_frames(p.port_id)
    assert (r.total, len(r.frames), r.overwritten) == (n, RING, 10)
    assert [f.data for f in r.frames] == bad[10:]
    assert {f.reason for f in r.frames} == {"tx_rej_not_owned"}


def test_ctl_table_json_and_pcapng(rej_setup, tmp_path):
    topo, p, q, _ = rej_setup
    sent = [_bad_frame(reason, topo) for reason in ("not_owned", "runt", "bad_mac")]
    for fr, _ in sent:          # one sync each: kept in this order
        ku.send_frames(p, [fr])
    other = ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, 7500, 7502, b"q-sends-p")
    ku.send_frames(q, [other])

    r = run_ctl("rejects", str(p.port_id))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"port {p.port_id} ({topo.if_a}): 3 refused, 3 kept, 0 overwritten"
    rows = [ln.split() for ln in lines[2:]]
    assert [row[3] for row in rows] == [c for _, c in sent]
    assert [int(row[4]) for row in rows] == [len(fr) for fr, _ in sent]
    assert lines[2].endswith(f"udp {topo.a4}:7999 > {topo.b4}:7502")
    assert "ipv4 (header cut short)" in lines[3]

    r = run_ctl("rejects", str(p.port_id), "--json")
    assert r.returncode == 0, r.stderr
    (entry,) = json.loads(r.stdout)
    assert (entry["port"], entry["iface"], entry["total"], entry["overwritten"]) == (
        p.port_id, topo.if_a, 3, 0)
    assert [(f["reason"], bytes.fromhex(f["data"]), f["length"]) for f in entry["frames"]] == [
        (c, fr, len(fr)) for fr, c in sent]

    # without a port: every port root may read, both of these
    r = run_ctl("--json", "rejects")
    assert r.returncode == 0, r.stderr
    by_port = {e["port"]: e for e in json.loads(r.stdout)}
    assert by_port[q.port_id]["frames"][0]["reason"] == "tx_rej_other_port"
    assert len(by_port[p.port_id]["frames"]) == 3

    path = tmp_path / "rejects.pcapng"
    r = run_ctl("rejects", "-w", str(path))
    assert r.returncode == 0, r.stderr
    assert f"wrote 4 frames to {path}" in r.stdout
    ifaces, packets = read_pcapng(path)
    names = {f"port {p.port_id} ({topo.if_a})", f"port {q.port_id} ({topo.if_a})"}
    assert {i.name for i in ifaces} >= names
    got = [(ifaces[pk.interface].name, pk.comments, pk.data, pk.original_length)
           for pk in packets]
    assert got == [(f"port {p.port_id} ({topo.if_a})", [c], fr, len(fr)) for fr, c in sent] + [
        (f"port {q.port_id} ({topo.if_a})", ["tx_rej_other_port"], other, len(other))]

    # Wireshark's reader shows the reason as each packet's comment
    tshark = shutil.which("tshark")
    assert tshark, "tshark is not installed (scripts/setup installs it)"
    t = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-e", "frame.comment",
                        "-e", "frame.len", "-e", "frame.interface_name"],
                       capture_output=True, text=True, timeout=600)
    assert t.returncode == 0, t.stderr
    assert [ln.split("\t") for ln in t.stdout.splitlines()] == [
        [c, str(len(fr)), f"port {p.port_id} ({topo.if_a})"] for fr, c in sent] + [
        ["tx_rej_other_port", str(len(other)), f"port {q.port_id} ({topo.if_a})"]]


def test_ctl_writes_pcapng_to_stdout(rej_setup):
    """The real command, `-w -`: pcapng on standard output, nothing else."""
    topo, p, _, _ = rej_setup
    fr, counter = _bad_frame("fragment", topo)
    ku.send_frames(p, [fr])
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-m", "multistack.ctl", "rejects", str(p.port_id),
                        "-w", "-"], capture_output=True, timeout=300, cwd=repo)
    assert r.returncode == 0, r.stderr
    _, packets = read_pcapng(r.stdout)
    assert [(pk.comments, pk.data) for pk in packets] == [([counter], fr)]


def test_bad_requests_are_one_line_and_exit_2(rej_setup, tmp_path):
    topo, p, _, _ = rej_setup
    gone = topo.port()
    gone_id = gone.port_id
    gone.close()
    for argv in (["rejects", str(gone_id)], ["rejects", "4294967295"], ["rejects", "-1"],
                 ["--json", "rejects", str(gone_id)]):
        r = run_ctl(*argv)
        assert r.returncode == 2 and r.stdout == "", (argv, r.stdout, r.stderr)
        assert r.stderr.count("\n") == 1 and "no such port" in r.stderr, r.stderr
    with pytest.raises(kernel.NoSuchPortError) as ei:
        kernel.rejected_frames(gone_id)
    assert ei.value.errno == 2      # ENOENT
    r = run_ctl("rejects", str(p.port_id), "-w", str(tmp_path / "no" / "such" / "dir"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cannot write" in r.stderr


def test_only_the_owner_or_cap_net_admin_may_read(rej_setup):
    """An unprivileged user reads its own port's ring, and is refused
    another user's (one line, exit 2); root (CAP_NET_ADMIN) reads both."""
    topo, p, _, _ = rej_setup
    ku.send_frames(p, [_bad_frame("not_owned", topo)[0]])

    def child(chan):
        own = kernel.KernelPort(topo.if_a, tx_slots=8, rx_slots=8, buf_size=2048)
        sock = own.claim("udp", topo.a4, 7510)
        bad = ku.frame(topo.mac_a, topo.mac_b, UDP, topo.a4, topo.b4, 7511, 7502, b"nobody")
        ku.send_frames(own, [bad])
        out = {"own": own.port_id,
               "mine": run_ctl("rejects", str(own.port_id)).__dict__,
               "theirs": run_ctl("rejects", str(p.port_id)).__dict__,
               "all": run_ctl("--json", "rejects").__dict__}
        try:
            kernel.rejected_frames(p.port_id)
            out["api"] = "read"
        except kernel.PermissionDeniedError as exc:
            out["api"] = exc.errno
        chan.send(out["own"])
        chan.recv()                 # root reads our port while it lives
        sock.close()
        own.close()
        return out

    c = ku.Child(child, uid=ku.NOBODY, memlock=8 << 20)
    try:
        own_id = c.recv()
        theirs = kernel.rejected_frames(own_id)        # root: CAP_NET_ADMIN
        c.send(True)
        r = c.result()
    finally:
        c.kill()
    assert [f.reason for f in theirs.frames] == ["tx_rej_not_owned"]
    assert r["mine"]["returncode"] == 0, r["mine"]["stderr"]
    assert "tx_rej_not_owned" in r["mine"]["stdout"]
    assert f"udp {topo.a4}:7511 > {topo.b4}:7502" in r["mine"]["stdout"]
    assert r["theirs"]["returncode"] == 2 and r["theirs"]["stdout"] == ""
    assert r["theirs"]["stderr"].count("\n") == 1
    assert "another user's port" in r["theirs"]["stderr"]
    assert r["api"] == 1            # EPERM
    # without a port: only the ports the user may read
    assert r["all"]["returncode"] == 0, r["all"]["stderr"]
    assert [e["port"] for e in json.loads(r["all"]["stdout"])] == [r["own"]]
