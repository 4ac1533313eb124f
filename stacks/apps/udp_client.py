"""A kernel-socket UDP client for the demo: sends numbered messages, checks the echoes.

Runs inside the client network namespace on the Linux stack (it uses
Python's ``socket``, nothing of MultiStack) and prints one JSON object per
event on stdout, with CLOCK_MONOTONIC time stamps so the demo can merge
them with the user-level stack's own events.

    python -m stacks.apps.udp_client 10.200.0.2 7 --count 3
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time


def run(address: str, port: int, count: int, timeout: float, label: str) -> int:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    answered = 0
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((address, port))
        local = sock.getsockname()[:2]
        for i in range(1, count + 1):
            message = f"{label} #{i}".encode()
            sent_at = time.monotonic()
            sock.send(message)
            emit("sent", sent_at, local, (address, port), message)
            try:
                while True:
                    reply = sock.recv(65535)
                    if reply == message:
                        break
                    emit("unexpected", time.monotonic(), (address, port), local, reply)
            except (socket.timeout, ConnectionRefusedError) as exc:
                emit("lost", time.monotonic(), (address, port), local, message, error=type(exc).__name__)
                continue
            now = time.monotonic()
            answered += 1
            emit("echoed", now, (address, port), local, reply, rtt_ms=round((now - sent_at) * 1000, 3))
    return answered


def emit(event: str, at: float, src, dst, data: bytes, **extra) -> None:
    print(json.dumps({"event": event, "time": at, "src": list(src), "dst": list(dst),
                      "data": data.decode(errors="replace"), "size": len(data), **extra}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address")
    parser.add_argument("port", type=int)
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--label", default="hello")
    args = parser.parse_args(argv)
    answered = run(args.address, args.port, args.count, args.timeout, args.label)
    return 0 if answered == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
