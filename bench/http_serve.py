#!/usr/bin/env python3
"""The HTTP server side of the benchmark: one trio app, two TCP stacks.

    http_serve.py kernel --addr A --port P
        the app on kernel sockets (trio.serve_tcp)
    http_serve.py utcp-tap --netns NS --kernel-addr K/len --stack-addr S/len --port P
        the app on UTCP, over a TAP port whose kernel side goes into NS
    http_serve.py utcp-module --ifname IF --stack-addr S/len --port P
        the app on UTCP, over a multistack.ko port on IF (TCP S:P registered)

The application is stacks/apps/http_server.py (its per-connection
``handle``), unchanged on both stacks.  Prints "ready <app>" on stdout once
it accepts connections, serves until stdin closes or SIGTERM, then prints
the stack's counters, with the process's CPU time and what the cyclic
garbage collector took of it, as "counters {json}" on stdout.  A "stats"
line on stdin gets "stats {json}" back: the process's CPU seconds so far
(and the system time among them) and, on UTCP, those its runtime took (the
Host's ``runtime_cpu``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
import time

import trio

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))     # the repository: multistack, stacks


def load_app():
    """(handler(stream), description): the project's HTTP server app."""
    from stacks.apps import http_server
    return http_server.handle, "stacks/apps/http_server.py (handle)"


def cpu_stats(host):
    """The process's CPU seconds so far and, on UTCP, its runtime's share of them."""
    stats = {"cpu.seconds": time.process_time(), "cpu.system_seconds": os.times().system}
    if host is not None and host.runtime_cpu is not None:
        stats["runtime.cpu_seconds"] = host.runtime_cpu
    return stats


async def wait_stop(host=None):
    """Returns when stdin closes (the harness went away) or on SIGTERM.

    Each "stats" line on stdin is answered with "stats {json}" (cpu_stats).
    """
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            async def on_signal():
                async for _ in signals:
                    break
                nursery.cancel_scope.cancel()

            async def on_stdin():
                while True:
                    line = await trio.to_thread.run_sync(sys.stdin.readline,
                                                         abandon_on_cancel=True)
                    if not line:
                        break
                    if line.strip() == "stats":
                        print("stats " + json.dumps(cpu_stats(host)), flush=True)
                nursery.cancel_scope.cancel()

            nursery.start_soon(on_signal)
            nursery.start_soon(on_stdin)


async def serve(listeners, handler, app, host=None):
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        print("ready %s" % app, flush=True)
        await wait_stop(host)
        nursery.cancel_scope.cancel()


def utcp_counters(host):
    out = {}
    if host is None:
        return out
    out.update({"host." + k: v for k, v in host.counters.items()})
    try:
        from stacks.utcp.trio_api import TcpLayer
        out.update({"tcp." + k: v for k, v in TcpLayer.of(host).counters.items()})
    except Exception:
        pass
    try:
        out.update({"port." + k: v for k, v in host.port.stats().as_dict().items()})
    except Exception:
        pass
    return out


async def main_async(args):
    handler, app = load_app()
    if args.stack == "kernel":
        listeners = await trio.open_tcp_listeners(args.port, host=args.addr, backlog=1024)
        await serve(listeners, handler, app)
        return {}

    from stacks.host import Host, OwnNeighbours
    from stacks.utcp import COMPILED, TcpConfig
    from stacks.utcp.trio_api import TcpLayer, open_tcp_listener

    app += "; UTCP core %s" % ("compiled by mypyc" if COMPILED else "as Python")

    sock = None
    if args.stack == "utcp-tap":
        from multistack.tap import open_tap_in_netns
        port = open_tap_in_netns(args.netns, [args.kernel_addr])
        neighbours = OwnNeighbours()
    else:
        from multistack.kernel import KernelPort
        from stacks.host import OsNeighbours
        port = KernelPort(args.ifname)
        sock = port.claim("tcp", args.stack_addr.split("/")[0], args.port)
        neighbours = OsNeighbours(args.ifname)
    # TCP_NODELAY, as trio's SocketStream sets on kernel sockets
    config = TcpConfig(nagle=False)
    host = Host(port, [args.stack_addr], neighbours=neighbours)
    host.runtime_cpu = 0.0      # what of the server's CPU the stack's runtime takes
    TcpLayer(host, config=config)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(host.run)
            listener = await open_tcp_listener(host, args.stack_addr.split("/")[0], args.port,
                                               backlog=1024, config=config)
            await serve([listener], handler, app, host)
            nursery.cancel_scope.cancel()
        return utcp_counters(host)
    finally:
        port.close()
        if sock is not None:
            sock.close()


class GcMeter:
    """Time the cyclic garbage collector takes in this process (gc.callbacks)."""

    def __init__(self):
        self.seconds = 0.0
        self.full_passes = 0
        self.longest = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase, info):
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self.seconds += took
        self.longest = max(self.longest, took)
        if info["generation"] == 2:
            self.full_passes += 1

    def counters(self):
        return {"gc.seconds": round(self.seconds, 4), "gc.full_passes": self.full_passes,
                "gc.longest_ms": round(self.longest * 1e3, 1),
                "cpu.seconds": round(time.process_time(), 3)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stack", choices=("kernel", "utcp-tap", "utcp-module"))
    ap.add_argument("--addr")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--netns")
    ap.add_argument("--kernel-addr")
    ap.add_argument("--stack-addr")
    ap.add_argument("--ifname")
    args = ap.parse_args()
    meter = GcMeter()
    counters = trio.run(main_async, args)
    counters.update(meter.counters())
    print("counters " + json.dumps(counters, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
