"""Registration: ownership is proven with a bound socket; each failure has
its own errno (kmod/include/uapi/multistack.h, "Errno table")."""

import errno
import os
import socket
import subprocess
import sys

import pytest

import kmodutil as ku
from multistack import kernel
from multistack._native import ffi, lib


def _udp(bind=None, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_DGRAM)
    if bind is not None:
        s.bind(bind)
    return s


def _raw_register(port, *, family=lib.MS_FAMILY_INET, proto=lib.MS_PROTO_UDP, addr=None,
                  number=8000, sockfd=-1, version=None, flags=0, reserved=b""):
    req = ffi.new("struct ms_reg_req *")
    req.version = lib.MS_ABI_VERSION if version is None else version
    req.flags = flags
    req.family, req.proto, req.port, req.sockfd = family, proto, number, sockfd
    req.addr = (addr if addr is not None else socket.inet_aton(ku.A4)).ljust(16, b"\0")
    req.reserved = reserved.ljust(16, b"\0")
    return -lib.ms_kmod_ioctl(port.fileno(), lib.MS_IOC_REGISTER, req)


def test_claim_and_list(topo):
    p = topo.port()
    s = topo.track(p.claim("udp", topo.a4, 8000))
    assert s.getsockname() == (topo.a4, 8000)
    t = topo.track(p.claim("tcp", topo.a4, 0))
    ports = kernel.list_ports()
    (mine,) = [x for x in ports if x["id"] == p.port_id]
    assert mine["pid"] == os.getpid()
    regs = {(r["proto"], r["address"], r["port"]) for r in mine["registrations"]}
    assert regs == {("udp", topo.a4, 8000), ("tcp", topo.a4, t.getsockname()[1])}


def test_unbound_socket_is_eacces(topo):
    p = topo.port()
    s = topo.track(_udp())
    with pytest.raises(kernel.NotBoundError) as ei:
        p.register("udp", topo.a4, 8001, s)
    assert ei.value.errno == errno.EACCES


def test_socket_bound_to_another_port_is_eacces(topo):
    p = topo.port()
    s = topo.track(_udp((topo.a4, 8002)))
    with pytest.raises(kernel.NotBoundError):
        p.register("udp", topo.a4, 8003, s)


def test_socket_bound_to_another_address_is_eacces(topo):
    ku.sh(f"ip addr add 10.77.0.5/24 dev {topo.if_a}")
    p = topo.port()
    s = topo.track(_udp(("10.77.0.5", 8004)))
    with pytest.raises(kernel.NotBoundError):
        p.register("udp", topo.a4, 8004, s)


def test_another_process_socket_is_refused(topo):
    """A socket held by another process proves nothing: its descriptor
    number means nothing (or something else) in the caller."""
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import socket,sys,time\n"
         "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
         f"s.bind(('{topo.a4}',8005))\n"
         "import os\n"
         "print(os.dup2(s.fileno(), 900),flush=True)\n"
         "time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        child_fd = int(child.stdout.readline())
        p = topo.port()
        try:
            os.fstat(child_fd)
            pytest.skip("the child's descriptor number is open here too")
        except OSError:
            pass
        # The child's number is not an open descriptor of the caller...
        with pytest.raises(kernel.NotASocketError) as ei:
            p.register("udp", topo.a4, 8005, child_fd)
        assert ei.value.errno == errno.EBADF
        # ...and no socket of the caller can be bound to the child's port.
        with pytest.raises(kernel.RegistrationError):
            p.claim("udp", topo.a4, 8005)
        assert kernel.list_ports()[0]["registrations"] == []
    finally:
        child.kill()
        child.wait()



def test_a_socket_handed_over_with_scm_rights_proves_ownership(topo):
    """Passing the descriptor itself (SCM_RIGHTS) is delegation: the caller
    now holds the bound socket, as when a privileged helper binds a low port
    and hands it to the stack."""
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import socket,sys\n"
         "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
         f"s.bind(('{topo.a4}',8006))\n"
         f"link=socket.socket(fileno={child_end.fileno()})\n"
         "socket.send_fds(link,[b'fd'],[s.fileno()])\n"
         "link.recv(1)\n"],
        pass_fds=[child_end.fileno()])
    try:
        child_end.close()
        _, (fd,), _, _ = socket.recv_fds(parent_end, 16, 1)
        sock = topo.track(socket.socket(fileno=fd))
        p = topo.port()
        p.register("udp", topo.a4, 8006, sock)
        regs = kernel.list_ports()[0]["registrations"]
        assert [(r["proto"], r["port"]) for r in regs] == [("udp", 8006)]
        topo.peer().sendto(b"delegated", (topo.a4, 8006))
        assert [ku.parse(f)["payload"] for f in ku.wait_frames(p, 1)] == [b"delegated"]
    finally:
        parent_end.close()
        child.wait(10)

def test_socket_of_another_namespace_is_eacces(topo):
    p = topo.port()
    s = topo.peer()
    s.bind(("0.0.0.0", 8006))
    with pytest.raises(kernel.NotBoundError):
        p.register("udp", topo.a4, 8006, s)


def test_duplicate_on_the_same_port_is_eaddrinuse(topo):
    p = topo.port()
    s = topo.track(p.claim("udp", topo.a4, 8010))
    with pytest.raises(kernel.AlreadyRegisteredError) as ei:
        p.register("udp", topo.a4, 8010, s)
    assert ei.value.errno == errno.EADDRINUSE


def test_duplicate_on_another_port_is_eaddrinuse(topo):
    p, q = topo.port(), topo.port()
    s1 = topo.track(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    s2 = topo.track(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    for s in (s1, s2):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((topo.a4, 8011))
    p.register("udp", topo.a4, 8011, s1)
    with pytest.raises(kernel.AlreadyRegisteredError):
        q.register("udp", topo.a4, 8011, s2)
    # A wildcard-bound proof for the same tuple is a duplicate as well.
    s3 = topo.track(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    s3.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s3.bind(("0.0.0.0", 8011))
    with pytest.raises(kernel.AlreadyRegisteredError):
        q.register("udp", topo.a4, 8011, s3)


def test_address_not_on_the_interface_is_eaddrnotavail(topo):
    p = topo.port()
    s = topo.track(_udp(("0.0.0.0", 8020)))
    for addr in ("10.99.0.1", "127.0.0.1"):
        with pytest.raises(kernel.AddressNotOnInterfaceError) as ei:
            p.register("udp", addr, 8020, s)
        assert ei.value.errno == errno.EADDRNOTAVAIL
    s6 = topo.track(_udp(("::", 8022), socket.AF_INET6))
    with pytest.raises(kernel.AddressNotOnInterfaceError):
        p.register("udp", "fd99::1", 8022, s6)


def test_address_of_the_peer_is_eaddrnotavail(topo):
    p = topo.port()
    s = topo.track(_udp(("0.0.0.0", 8021)))
    with pytest.raises(kernel.AddressNotOnInterfaceError):
        p.register("udp", topo.b4, 8021, s)


def test_bad_protocol_and_family(topo):
    p = topo.port()
    s = topo.track(_udp((topo.a4, 8030)))
    with pytest.raises(kernel.UnsupportedProtocolError) as ei:
        p.register(132, topo.a4, 8030, s)          # SCTP
    assert ei.value.errno == errno.EPROTONOSUPPORT
    assert _raw_register(p, proto=1, number=8030, sockfd=s.fileno()) == errno.EPROTONOSUPPORT
    assert _raw_register(p, family=99, number=8030, sockfd=s.fileno()) == errno.EAFNOSUPPORT
    assert _raw_register(p, family=0, number=8030, sockfd=s.fileno()) == errno.EAFNOSUPPORT


def test_socket_of_the_wrong_kind_is_eprototype(topo):
    p = topo.port()
    tcp = topo.track(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    tcp.bind((topo.a4, 8031))
    with pytest.raises(kernel.SocketMismatchError) as ei:
        p.register("udp", topo.a4, 8031, tcp)
    assert ei.value.errno == errno.EPROTOTYPE
    # A dual-stack IPv6 socket also holds the IPv4 port, but the proof must be
    # of the request's own family.
    udp6 = topo.track(_udp(("::", 8032), socket.AF_INET6))
    assert udp6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
    with pytest.raises(kernel.SocketMismatchError) as ei:
        p.register("udp", topo.a4, 8032, udp6)
    assert ei.value.errno == errno.EPROTOTYPE
    raw = topo.track(socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP))
    with pytest.raises(kernel.SocketMismatchError):
        p.register("udp", topo.a4, 8033, raw)


def test_not_a_socket(topo):
    p = topo.port()
    r, w = os.pipe()
    try:
        with pytest.raises(kernel.NotASocketError) as ei:
            p.register("udp", topo.a4, 8040, r)
        assert ei.value.errno == errno.ENOTSOCK
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(kernel.NotASocketError) as ei:
        p.register("udp", topo.a4, 8040, 9999)
    assert ei.value.errno == errno.EBADF
    assert _raw_register(p, number=8040, sockfd=-5) == errno.EBADF


def test_malformed_requests_are_einval(topo):
    p = topo.port()
    s = topo.track(_udp((topo.a4, 8050)))
    fd = s.fileno()
    assert _raw_register(p, number=8050, sockfd=fd, version=2) == errno.EINVAL
    assert _raw_register(p, number=8050, sockfd=fd, flags=1) == errno.EINVAL
    assert _raw_register(p, number=8050, sockfd=fd, reserved=b"\0\0\x01") == errno.EINVAL
    assert _raw_register(p, number=0, sockfd=fd) == errno.EINVAL
    # IPv4 with junk after the 4 address bytes.
    assert _raw_register(p, number=8050, sockfd=fd,
                         addr=socket.inet_aton(ku.A4) + b"\x01") == errno.EINVAL
    # (The wildcard is no malformed address: with this socket, bound to one
    # address, it is refused with EACCES.)
    assert _raw_register(p, number=8050, sockfd=fd,
                         addr=socket.inet_aton("0.0.0.0")) == errno.EACCES
    for bad in ("224.0.0.1", "255.255.255.255"):   # multicast, broadcast
        assert _raw_register(p, number=8050, sockfd=fd,
                             addr=socket.inet_aton(bad)) == errno.EINVAL, bad
    # After all that the good request works.
    assert _raw_register(p, number=8050, sockfd=fd) == 0


def test_unregister_errors(topo):
    p, q = topo.port(), topo.port()
    topo.track(p.claim("udp", topo.a4, 8060))
    with pytest.raises(kernel.NotRegisteredError) as ei:
        q.unregister("udp", topo.a4, 8060)           # not q's
    assert ei.value.errno == errno.ENOENT
    with pytest.raises(kernel.NotRegisteredError):
        p.unregister("udp", topo.a4, 8061)
    p.unregister("udp", topo.a4, 8060)
    with pytest.raises(kernel.NotRegisteredError):
        p.unregister("udp", topo.a4, 8060)


def test_registration_holds_the_socket(topo):
    """While registered, the OS stack cannot give the port to anybody else,
    even after the caller closed its socket."""
    p = topo.port()
    s = p.claim("udp", topo.a4, 8070)
    s.close()
    other = topo.track(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    with pytest.raises(OSError) as ei:
        other.bind((topo.a4, 8070))
    assert ei.value.errno == errno.EADDRINUSE
    p.unregister("udp", topo.a4, 8070)
    ok = ku.eventually(lambda: _try_bind(topo.a4, 8070))
    assert ok, "the socket reference was not released by unregister"


def _try_bind(addr, number):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((addr, number))
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_close_releases_every_tuple(topo):
    p = topo.port()
    for n in range(8080, 8085):
        p.claim("udp", topo.a4, n).close()
    p.close()
    assert ku.eventually(lambda: all(_try_bind(topo.a4, n) for n in range(8080, 8085)))
    q = topo.port()
    topo.track(q.claim("udp", topo.a4, 8080))


def test_too_many_registrations_is_enospc(topo):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = lib.MS_MAX_REGS + 64
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(need, soft), max(need, hard)))
    p = topo.port()
    base = 20000
    for i in range(lib.MS_MAX_REGS):
        p.claim("udp", topo.a4, base + i).close()
    with pytest.raises(kernel.TooManyRegistrationsError) as ei:
        p.claim("udp", topo.a4, base + lib.MS_MAX_REGS)
    assert ei.value.errno == errno.ENOSPC
    assert len(kernel.list_ports()[0]["registrations"]) == lib.MS_MAX_REGS
