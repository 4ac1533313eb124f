"""Talking to running user-level stacks through their control sockets.

A process whose :class:`~stacks.host.Host` runs with ``control_socket=True``
answers on a unix stream socket ``<pid>.sock`` (mode 0600) in the run
directory, and only to its own user or root (it checks the peer's
credentials too).  The run directory is ``$MULTISTACK_RUN_DIR`` when set,
else ``/run/multistack/stacks`` (created sticky and world-writable, like
/tmp, when it can be), else ``/tmp/multistack-<uid>/stacks`` (the user's
own, mode 0700).  :func:`list_stacks` looks in the shared directory and in
the caller's own fallback, so a stack that fell back is seen by its user.

Protocol: one JSON object per line each way.  ``{"request": "connections"}``
answers ``{"ok": true, "pid", "command", "ports", "tcp", "udp"}`` and
``{"request": "counters"}`` answers ``{"ok": true, "pid", "command",
"counters": {"host", "udp", "tcp"}}``; anything else gets ``{"ok": false,
"error": "..."}`` and the stack goes on serving.

This module is the client, and the one place the paths and limits live;
``stacks.host.control`` is the server.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import stat
import struct
from dataclasses import dataclass

from .errors import MultiStackError

RUN_DIR_ENV = "MULTISTACK_RUN_DIR"
SHARED_RUN_DIR = "/run/multistack/stacks"
#: The longest request line a stack reads; a longer one is refused.
MAX_REQUEST = 4096
#: The longest reply line a client reads (a stack with very many connections).
MAX_REPLY = 64 << 20
REQUESTS = ("connections", "counters")
_SOCKET_NAME = re.compile(r"^([1-9][0-9]{0,9})\.sock$")
_UCRED = struct.Struct("3i")          # struct ucred: pid, uid, gid


class StackControlError(MultiStackError):
    """A stack's control socket could not be reached or did not answer as asked."""


class NoSuchStackError(StackControlError):
    """No running stack answers at that pid or path."""


class StackPermissionError(StackControlError):
    """The stack belongs to another user (only its owner or root may ask)."""


@dataclass(frozen=True)
class StackInfo:
    """A running stack's control socket: the process, its owner, the path."""

    pid: int
    uid: int
    command: str
    socket: str


def fallback_run_dir(uid: int | None = None) -> str:
    """The per-user directory used when the shared one cannot be."""
    return f"/tmp/multistack-{os.getuid() if uid is None else uid}/stacks"


def run_dirs() -> list[str]:
    """The directories :func:`list_stacks` looks in, in order."""
    configured = os.environ.get(RUN_DIR_ENV)
    if configured:
        return [configured]
    return [SHARED_RUN_DIR, fallback_run_dir()]


def server_run_dir() -> str:
    """The directory a stack puts its socket in, created if need be (see the module doc)."""
    configured = os.environ.get(RUN_DIR_ENV)
    if configured:
        os.makedirs(configured, mode=0o700, exist_ok=True)
        return configured
    try:
        if not os.path.isdir(SHARED_RUN_DIR):
            os.makedirs(SHARED_RUN_DIR)
            # Like /tmp: every user's stacks, each removable only by its owner.
            os.chmod(SHARED_RUN_DIR, 0o1777)
        if os.access(SHARED_RUN_DIR, os.W_OK | os.X_OK):
            return SHARED_RUN_DIR
    except OSError:
        pass
    directory = fallback_run_dir()
    os.makedirs(directory, mode=0o700, exist_ok=True)
    for path in (os.path.dirname(directory), directory):
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() \
                or info.st_mode & 0o077:
            raise StackControlError(f"{path}: not a private directory of uid {os.getuid()} "
                                    "(set MULTISTACK_RUN_DIR)")
    return directory


def socket_name(pid: int) -> str:
    return f"{pid}.sock"


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a unix socket."""
    return _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))


def _command_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read(4096)
    except OSError:
        return ""
    return " ".join(os.fsdecode(a) for a in raw.rstrip(b"\0").split(b"\0"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True           # someone else's process
    return True


def _remove_stale(path: str) -> None:
    """Remove a socket nobody serves, where the caller may (owner or root)."""
    try:
        os.unlink(path)
    except (FileNotFoundError, PermissionError):
        pass


def _probe(path: str) -> int | None:
    """The errno of connecting to ``path``, None when a stack accepted."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(path)
        except OSError as exc:
            return exc.errno if exc.errno is not None else errno.EIO
    return None


def list_stacks(*, clean: bool = True) -> list[StackInfo]:
    """The stacks with a control socket, by pid.  With ``clean``, sockets left by
    processes that are gone (dead pid, or nobody listening) are removed where the
    caller may remove them, and not listed."""
    found: dict[int, StackInfo] = {}
    for directory in run_dirs():
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            match = _SOCKET_NAME.match(name)
            if match is None:
                continue
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISSOCK(info.st_mode):
                continue
            pid = int(match.group(1))
            if not _pid_alive(pid) or _probe(path) == errno.ECONNREFUSED:
                if clean:
                    _remove_stale(path)
                continue
            if pid not in found:
                found[pid] = StackInfo(pid, info.st_uid, _command_of(pid), path)
    return sorted(found.values(), key=lambda s: s.pid)


def _resolve(stack: StackInfo | int | str | os.PathLike) -> tuple[str, int | None, int | None]:
    """(socket path, pid from its name, owner uid) of what :func:`query` was given."""
    if isinstance(stack, StackInfo):
        return stack.socket, stack.pid, stack.uid
    if isinstance(stack, int):
        for info in list_stacks():
            if info.pid == stack:
                return info.socket, info.pid, info.uid
        if _pid_alive(stack):
            raise NoSuchStackError(f"process {stack} has no stack control socket "
                                   f"(in {', '.join(run_dirs())})")
        raise NoSuchStackError(f"no process {stack}")
    path = os.fspath(stack)
    match = _SOCKET_NAME.match(os.path.basename(path))
    try:
        uid = os.lstat(path).st_uid
    except OSError:
        uid = None
    return path, int(match.group(1)) if match else None, uid


def query(stack_or_path: StackInfo | int | str | os.PathLike, request: str | dict,
          timeout: float = 5.0) -> dict:
    """Ask a stack (a :class:`StackInfo`, a pid or a socket path) one request and
    return its reply (a dict with ``"ok": true``).

    ``request`` is a request name (``"connections"``, ``"counters"``) or a whole
    request object.  Raises :class:`NoSuchStackError`, :class:`StackPermissionError`
    or :class:`StackControlError` (no answer in ``timeout`` seconds, an error reply).
    """
    path, pid, uid = _resolve(stack_or_path)
    what = f"stack {pid}" if pid is not None else path
    message = {"request": request} if isinstance(request, str) else request
    line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            if isinstance(exc, ConnectionRefusedError):
                _remove_stale(path)
            raise NoSuchStackError(f"{what}: not running (no one serves {path})") from None
        except PermissionError:
            owner = f"uid {uid}" if uid is not None else "another user"
            raise StackPermissionError(f"{what}: permission denied (the stack belongs to "
                                       f"{owner}; only its owner or root may ask)") from None
        except socket.timeout:
            raise StackControlError(f"{what}: no answer within {timeout:g} s") from None
        except OSError as exc:
            raise StackControlError(f"{what}: {exc.strerror or exc}") from None
        peer_pid = peer_credentials(sock)[0]
        if pid is not None and peer_pid != pid:
            raise StackControlError(f"{path} is served by process {peer_pid}, not {pid}")
        try:
            sock.sendall(line)
            reply = _read_line(sock)
        except socket.timeout:
            raise StackControlError(f"{what}: no answer within {timeout:g} s") from None
        except OSError as exc:
            raise StackControlError(f"{what}: {exc.strerror or exc}") from None
    if not reply:
        raise StackControlError(f"{what}: closed the connection without an answer")
    try:
        answer = json.loads(reply)
    except ValueError:
        raise StackControlError(f"{what}: answered something that is not JSON") from None
    if not isinstance(answer, dict) or "ok" not in answer:
        raise StackControlError(f"{what}: answered something that is not a reply")
    if not answer["ok"]:
        error = str(answer.get("error", "unspecified error"))
        cls = StackPermissionError if error.startswith("permission denied") else StackControlError
        raise cls(f"{what}: {error}")
    return answer


def _read_line(sock: socket.socket) -> bytes:
    chunks = bytearray()
    while b"\n" not in chunks:
        data = sock.recv(1 << 16)
        if not data:
            break
        chunks += data
        if len(chunks) > MAX_REPLY:
            raise StackControlError(f"reply longer than {MAX_REPLY} bytes")
    return bytes(chunks.split(b"\n", 1)[0])
