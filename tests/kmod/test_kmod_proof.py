"""A registration lives no longer than its proof's binding.

The OS lets a socket give its port back while it lives: ``connect()`` with
AF_UNSPEC releases a port the kernel picked (bind to port 0, autobind by
``connect``, ``sendto`` or ``listen``), in every TCP state that allows it.
It also lets ``connect()`` narrow a wildcard binding, and SO_REUSEADDR share
one.  In each case another socket (another user's) may then bind the tuple,
and it must get its traffic: the registration owns nothing any more, its
port may not send from the tuple, and a new registration replaces it.
"""

import ctypes
import errno
import os
import socket
import subprocess
import sys
import threading

import pytest

import kmodutil as ku
from multistack import kernel

ELSEWHERE4 = "10.77.0.99"   # on the link's subnet, configured nowhere: SYNs go unanswered
ELSEWHERE6 = "fd77::99"
_libc = ctypes.CDLL(None, use_errno=True)


def disconnect(sock: socket.socket) -> None:
    """connect(fd, {AF_UNSPEC}): Python's connect() cannot say it."""
    unspec = ctypes.create_string_buffer(28)      # sa_family 0, room for sockaddr_in6
    if _libc.connect(sock.fileno(), unspec, len(unspec)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _kind(proto):
    return socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM


def _addrs(topo, v6):
    return (topo.a6, topo.b6, "::") if v6 else (topo.a4, topo.b4, "0.0.0.0")


def _proof_state(port, proto, address, number):
    (mine,) = [x for x in kernel.list_ports() if x["id"] == port.port_id]
    (reg,) = [r for r in mine["registrations"]
              if (r["proto"], r["address"], r["port"]) == (proto, address, number)]
    return reg["proof"]


# -- ways a proof takes its port, each released by disconnect() -------------

def _udp_bind0(topo, v6, wild):
    here, _, any_ = _addrs(topo, v6)
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((any_ if wild else here, 0))
    return s


def _udp_sendto(topo, v6, wild):
    _, peer, _ = _addrs(topo, v6)
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"autobind", (peer, 9))       # autobinds to the wildcard
    return s


def _udp_connect(topo, v6, wild):
    _, peer, _ = _addrs(topo, v6)
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((peer, 9))                   # autobinds to the source address
    return s


def _tcp_listen(topo, v6, wild):
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
    s.listen()                             # autobinds to the wildcard
    return s


def _tcp_syn_sent(topo, v6, wild):
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    with pytest.raises(BlockingIOError):
        s.connect((ELSEWHERE6 if v6 else ELSEWHERE4, 9))
    return s


def _tcp_established(topo, v6, wild):
    _, peer, _ = _addrs(topo, v6)
    srv = topo.peer(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
    srv.bind((peer, 0))
    srv.listen()
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((peer, srv.getsockname()[1]))
    topo.track(srv.accept()[0])
    return s


RELEASES = [
    # (proto, how, wildcard registration possible)
    ("udp", _udp_bind0, True),
    ("udp", _udp_sendto, True),
    ("udp", _udp_connect, False),
    ("tcp", _tcp_listen, True),
    ("tcp", _tcp_syn_sent, False),
    ("tcp", _tcp_established, False),
]
CASES = [pytest.param(proto, how, v6, wild,
                      id=f"{proto}-{how.__name__.split('_', 2)[2]}-{'v6' if v6 else 'v4'}"
                         f"-{'wildcard' if wild else 'exact'}")
         for proto, how, can_wild in RELEASES
         for v6 in (False, True)
         for wild in ((False, True) if can_wild else (False,))]


# -- what another user's socket must see once the proof let go --------------

def _victim_gets_its_traffic(topo, port, proto, v6, number):
    """Bind the tuple in the OS (the collision the registration must not
    win), send to it from the peer, and check where it lands."""
    here, peer, _ = _addrs(topo, v6)
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    victim = topo.track(socket.socket(fam, _kind(proto)))
    victim.bind((here, number))
    victim.settimeout(10)
    if proto == "udp":
        sender = topo.peer(fam, socket.SOCK_DGRAM)
        sender.sendto(b"for the victim", (here, number))
        assert victim.recvfrom(100)[0] == b"for the victim"
    else:
        victim.listen()
        client = topo.peer(fam, socket.SOCK_STREAM)
        client.settimeout(10)
        client.connect((here, number))
        conn, _ = victim.accept()
        topo.track(conn)
        client.sendall(b"for the victim")
        assert conn.recv(100) == b"for the victim"
    assert not [f for f in ku.quiet_for(port, 0.2) if ku.parse(f).get("dport") == number]
    # Nor may the port speak as the tuple.
    before = port.raw_stats()[0]["tx_rej_not_owned"]
    ku.send_frames(port, [ku.frame(topo.mac_a, topo.mac_b, 6 if proto == "tcp" else 17,
                                   here, peer, number, 9, b"spoof")])
    assert port.raw_stats()[0]["tx_rej_not_owned"] == before + 1
    return victim


@pytest.mark.parametrize("proto, how, v6, wild", CASES)
def test_a_released_port_leaves_no_claim(topo, proto, how, v6, wild):
    here, _, any_ = _addrs(topo, v6)
    p = topo.port()
    proof = topo.track(how(topo, v6, wild))
    number = proof.getsockname()[1]
    address = any_ if wild else here
    p.register(proto, address, number, proof)
    assert _proof_state(p, proto, address, number) == "held"

    disconnect(proof)       # (TCP's getsockname still shows the old port)
    assert _proof_state(p, proto, address, number) == "released"
    victim = _victim_gets_its_traffic(topo, p, proto, v6, number)

    # The victim's socket proves the tuple now: its registration is taken
    # (replacing a stale one of the same tuple, of any port).
    q = topo.port()
    q.register(proto, here, number, victim)
    assert _proof_state(q, proto, here, number) == "held"
    (mine,) = [x for x in kernel.list_ports() if x["id"] == p.port_id]
    left = {(r["proto"], r["address"], r["port"]) for r in mine["registrations"]}
    assert ((proto, address, number) in left) == wild


def test_an_explicit_port_survives_disconnect(topo):
    """The control: a port bound by number stays bound after disconnect, so
    the registration keeps it and the OS refuses it to everyone else."""
    p = topo.port()
    proof = topo.track(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    proof.bind((topo.a4, 8600))
    p.register("udp", topo.a4, 8600, proof)
    disconnect(proof)
    assert proof.getsockname() == (topo.a4, 8600)
    assert _proof_state(p, "udp", topo.a4, 8600) == "held"
    with pytest.raises(OSError) as ei:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind((topo.a4, 8600))
    assert ei.value.errno == errno.EADDRINUSE
    sender = topo.peer(socket.AF_INET, socket.SOCK_DGRAM)
    sender.sendto(b"still the port's", (topo.a4, 8600))
    (fr,) = ku.wait_frames(p, 1)
    assert ku.parse(fr)["payload"] == b"still the port's"


def test_connect_narrowing_a_wildcard_proof_ends_the_wildcard_claim(topo):
    second = "10.77.0.5"
    ku.sh(f"ip addr add {second}/24 dev {topo.if_a}")
    p = topo.port()
    proof = topo.track(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    proof.bind(("0.0.0.0", 8601))
    p.register("udp", "0.0.0.0", 8601, proof)
    proof.connect((topo.b4, 9))            # now bound to 10.77.0.1:8601 only
    assert _proof_state(p, "udp", "0.0.0.0", 8601) == "released"
    victim = topo.track(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    victim.bind((second, 8601))            # the OS allows it now
    victim.settimeout(10)
    topo.peer(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"mine", (second, 8601))
    assert victim.recvfrom(100)[0] == b"mine"
    assert not ku.quiet_for(p, 0.2)


def test_a_proof_passed_over_scm_rights_and_released_by_its_sender(topo):
    """The sender keeps its descriptor of the proof; its disconnect releases
    the port as surely as the receiver's would."""
    left, right = socket.socketpair()
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import ctypes,socket,sys\n"
         f"u=socket.fromfd({right.fileno()},socket.AF_UNIX,socket.SOCK_STREAM)\n"
         "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
         f"s.bind(('{topo.a4}',0))\n"
         "socket.send_fds(u,[b'proof'],[s.fileno()])\n"
         "sys.stdin.readline()\n"
         "libc=ctypes.CDLL(None,use_errno=True)\n"
         "assert libc.connect(s.fileno(),ctypes.create_string_buffer(16),16)==0\n"
         "print('released',flush=True)\n"],
        pass_fds=(right.fileno(),), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        right.close()
        _, (fd,), _, _ = socket.recv_fds(left, 16, 1)
        proof = topo.track(socket.socket(fileno=fd))
        number = proof.getsockname()[1]
        p = topo.port()
        p.register("udp", topo.a4, number, proof)
        assert _proof_state(p, "udp", topo.a4, number) == "held"
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "released"
        assert _proof_state(p, "udp", topo.a4, number) == "released"
        _victim_gets_its_traffic(topo, p, "udp", False, number)
    finally:
        left.close()
        child.kill()
        child.wait(10)


@pytest.mark.parametrize("v6", [False, True], ids=["v4", "v6"])
def test_a_shared_binding_proves_nothing(topo, v6):
    here, _, _ = _addrs(topo, v6)
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    p = topo.port()
    s = topo.track(socket.socket(fam, socket.SOCK_DGRAM))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((here, 8602))
    with pytest.raises(kernel.SharedBindingError) as ei:
        p.register("udp", here, 8602, s)
    assert ei.value.errno == errno.EPERM
    t = topo.track(socket.socket(fam, socket.SOCK_STREAM))
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((here, 8603))
    with pytest.raises(kernel.SharedBindingError):
        p.register("tcp", here, 8603, t)


def test_a_listener_with_reuseaddr_holds_its_port_until_it_stops_listening(topo):
    """A listening TCP socket keeps its port alone even with SO_REUSEADDR;
    once it stops listening (disconnect keeps a numbered port bound), any
    user's socket with SO_REUSEADDR may bind and listen there."""
    p = topo.port()
    proof = topo.track(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    proof.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    proof.bind((topo.a4, 8604))
    proof.listen()
    p.register("tcp", topo.a4, 8604, proof)
    assert _proof_state(p, "tcp", topo.a4, 8604) == "held"
    disconnect(proof)
    assert proof.getsockname() == (topo.a4, 8604)
    assert _proof_state(p, "tcp", topo.a4, 8604) == "released"
    victim = topo.track(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    victim.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    victim.bind((topo.a4, 8604))
    victim.listen()
    victim.settimeout(10)
    client = topo.peer(socket.AF_INET, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect((topo.a4, 8604))
    topo.track(victim.accept()[0])


def test_frames_while_the_proof_lets_go(topo):
    """RX keeps running while a proof is released and its tuple bound again:
    each datagram lands in one place, the port before, the new socket after."""
    p = topo.port()
    sender = topo.peer(socket.AF_INET, socket.SOCK_DGRAM)
    proof = topo.track(_udp_bind0(topo, False, False))
    number = proof.getsockname()[1]
    p.register("udp", topo.a4, number, proof)
    stop = threading.Event()

    def blast():
        for i in range(100000):
            if stop.is_set():
                break
            sender.sendto(b"%06d" % i, (topo.a4, number))

    t = threading.Thread(target=blast)
    t.start()
    try:
        assert ku.wait_frames(p, 1)
        disconnect(proof)
        victim = topo.track(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        victim.bind((topo.a4, number))
        victim.setblocking(False)
        got_victim = ku.drain(victim, 0.5)
    finally:
        stop.set()
        t.join()
    got_victim += ku.drain(victim, 0.2)
    got_port = [ku.parse(f)["payload"] for f in ku.quiet_for(p, 0.2)]
    assert got_victim, "the new socket got nothing"
    assert not set(got_port) & set(got_victim)
    assert max(got_port, default=b"") < min(got_victim)
