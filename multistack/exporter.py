"""`multistack-ctl exporter`: MultiStack's counters for Prometheus.

    multistack-ctl exporter [--listen HOST:PORT] [--port ID]

serves, over HTTP through ``prometheus_client``, the counters of every
source below in Prometheus's text format, read afresh at each scrape:

  KernelCollector   the module (``/proc/net/multistack``): per attached
                    interface and per port, with the visibility rules of
                    ``multistack-ctl list`` (another user's pid is hidden)
  StackCollector    user-level stacks that opted in with
                    ``Host(control_socket=True)`` (multistack.stackctl):
                    their host, UDP and TCP counters, per process; another
                    user's stacks answer only root, as for ``multistack-ctl ss``

Each source is one collector; ``collectors()`` lists those the command
serves.  The XDP backend (multistack.xdp) is not among them: its counters
live in BPF maps that only the loading process can reach (nothing pinned,
no daemon); once another process can find them, its collector joins the
list, under ``multistack_xdp_*``, and nothing else changes.

Metric names come from the counter names of the ABI header's MS_STAT_LIST
(``multistack.kernel.STAT_NAMES``), their help text from its doc strings:
counter ``rx_delivered`` of an interface is
``multistack_iface_rx_delivered_total{iface}``, of a port
``multistack_port_rx_delivered_total{iface,port,uid}``.  A stack's counter
``rx_datagrams`` of its UDP layer is
``multistack_stack_udp_rx_datagrams_total{pid,command}``.

Errors the user can cause (an address that does not parse or resolve, a
port in use or not ours to bind, ``--port`` naming no port, ``--pid``
naming no stack or another user's) are one line on stderr and exit status 2, before anything is served.  SIGINT and
SIGTERM stop the server: exit status 0.
"""

from __future__ import annotations

import argparse
import errno as E
import re
import signal
import socket
import sys
from collections.abc import Iterator

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from .errors import CtlError
from .text import one_line, printable

DEFAULT_LISTEN = "127.0.0.1:9477"


def _kernel():
    try:
        from . import kernel
    except ImportError as exc:
        raise CtlError(f"the kernel backend is unavailable: {exc}") from None
    return kernel


class _ErrorReporter:
    """A read error that a scrape cannot turn into metrics is counted
    (``multistack_exporter_scrape_errors_total{source}``) and printed once
    on stderr, not once per scrape."""

    def __init__(self, source: str):
        self.source = source
        self.count = 0
        self._last = ""

    def __call__(self, message: str) -> None:
        self.count += 1
        if message != self._last:
            self._last = message
            print(one_line(f"multistack-ctl exporter: {self.source}: {message}"),
                  file=sys.stderr, flush=True)

    def family(self) -> CounterMetricFamily:
        fam = CounterMetricFamily(
            "multistack_exporter_scrape_errors",
            "scrapes whose source could not be read (the reason is on the exporter's stderr)",
            labels=["source"])
        fam.add_metric([self.source], self.count)
        return fam


class KernelCollector(Collector):
    """The module's interfaces and ports, from ``multistack.kernel.status()``
    at each scrape.  ``port_id`` keeps only that port (and its interface)."""

    def __init__(self, port_id: int | None = None):
        self.kernel = _kernel()
        self.port_id = port_id
        self.errors = _ErrorReporter("kernel")

    def check(self) -> None:
        """Refuse, as a CtlError, a ``port_id`` that names no port now."""
        if self.port_id is None:
            return
        try:
            ports = self.kernel.list_ports()
        except self.kernel.KernelModuleError as exc:
            raise CtlError(f"--port {self.port_id}: {exc}") from None
        if not any(p["id"] == self.port_id for p in ports):
            raise CtlError(f"--port {self.port_id}: no such port in this network namespace "
                           "(see multistack-ctl list)")

    def describe(self) -> list:
        return []       # collect() reads the module: not at registration

    def collect(self) -> Iterator:
        kernel = self.kernel
        loaded = GaugeMetricFamily(
            "multistack_module_loaded", "1 if the multistack kernel module is loaded")
        try:
            ifaces = kernel.status()
        except kernel.ModuleNotLoadedError:
            loaded.add_metric([], 0)
            yield loaded
            return
        except (kernel.KernelModuleError, OSError) as exc:
            self.errors(getattr(exc, "strerror", None) or str(exc))
            loaded.add_metric([], 1 if kernel.module_loaded() else 0)
            yield loaded
            yield self.errors.family()
            return
        loaded.add_metric([], 1)
        yield loaded
        yield self.errors.family()
        if self.port_id is not None:
            ifaces = [dict(i, ports=[p for p in i["ports"] if p["id"] == self.port_id])
                      for i in ifaces]
            ifaces = [i for i in ifaces if i["ports"]]
        yield from self._interfaces(ifaces)
        yield from self._ports(ifaces)

    def _counter_families(self, scope: str, labels: list[str]) -> dict:
        docs = self.kernel.STAT_DOCS
        return {name: CounterMetricFamily(f"multistack_{scope}_{name}", docs[name],
                                               labels=labels)
                for name in self.kernel.STAT_NAMES.values()}

    def _interfaces(self, ifaces: list[dict]) -> Iterator:
        counters = self._counter_families("iface", ["iface"])
        nports = GaugeMetricFamily("multistack_iface_ports",
                                        "ports bound to the interface", labels=["iface"])
        for iface in ifaces:
            name = printable(iface["name"])
            for stat, value in iface["counters"].items():
                if stat in counters:
                    counters[stat].add_metric([name], value)
            nports.add_metric([name], len(iface["ports"]))
        yield nports
        yield from counters.values()

    def _ports(self, ifaces: list[dict]) -> Iterator:
        from .ctl_kernel import _comm

        labels = ["iface", "port", "uid"]
        counters = self._counter_families("port", labels)
        info = GaugeMetricFamily(
            "multistack_port_info",
            "1 per port; pid and command are empty where multistack-ctl list hides "
            "them (another user's port, read without CAP_NET_ADMIN)",
            labels=labels + ["pid", "command"])
        gauges = {
            "regs": GaugeMetricFamily("multistack_port_registrations",
                                           "3-tuples the port registered", labels=labels),
            "mem": GaugeMetricFamily("multistack_port_memory_bytes",
                                          "the port's shared memory (rings and buffers)",
                                          labels=labels),
            "txmem": GaugeMetricFamily("multistack_port_tx_pages_bytes",
                                            "kernel pages holding the port's frames in "
                                            "transmission", labels=labels),
            "tx_slots": GaugeMetricFamily("multistack_port_tx_slots",
                                               "slots of the TX ring", labels=labels),
            "rx_slots": GaugeMetricFamily("multistack_port_rx_slots",
                                               "slots of the RX ring", labels=labels),
            "dead": GaugeMetricFamily("multistack_port_dead",
                                           "1 once the port's interface is gone or detached",
                                           labels=labels),
        }
        for iface in ifaces:
            for port in iface["ports"]:
                values = [printable(iface["name"]), str(port["id"]), str(port.get("uid", ""))]
                pid = port.get("pid")
                comm = "" if pid is None else printable(_comm(pid) if pid > 0 else "?")
                info.add_metric(values + ["" if pid is None else str(pid), comm], 1)
                for key, fam in gauges.items():
                    if key in port:
                        fam.add_metric(values, int(port[key]))
                for stat, value in port["counters"].items():
                    if stat in counters:
                        counters[stat].add_metric(values, value)
        yield info
        yield from gauges.values()
        yield from counters.values()


#: What a stack's counter name must look like to become part of a metric name.
_METRIC_WORD = re.compile(r"[a-z][a-z0-9_]*")


class StackCollector(Collector):
    """Counters of the running stacks with a control socket, asked for at
    each scrape (``multistack.stackctl``); ``pid`` keeps only that process."""

    LAYERS = ("host", "udp", "tcp")

    def __init__(self, pid: int | None = None):
        from . import stackctl
        self.stackctl = stackctl
        self.pid = pid
        self.errors = _ErrorReporter("stacks")

    def check(self) -> None:
        """Refuse, as a CtlError, a ``pid`` that is no stack we may ask."""
        if self.pid is not None:
            try:
                self.stackctl.query(self.pid, "counters")
            except self.stackctl.StackControlError as exc:
                raise CtlError(f"--pid {self.pid}: {exc}") from None

    def describe(self) -> list:
        return []

    def _replies(self) -> tuple[list[dict], int]:
        """The "counters" replies, and how many stacks refused us (another
        user's: only its owner or root may ask)."""
        sc = self.stackctl
        targets = [self.pid] if self.pid is not None else sc.list_stacks()
        replies, refused = [], 0
        for stack in targets:
            try:
                replies.append(sc.query(stack, "counters"))
            except sc.NoSuchStackError:
                continue                    # ended since it was listed
            except sc.StackPermissionError:
                refused += 1
            except sc.StackControlError as exc:
                self.errors(str(exc))
        return replies, refused

    def collect(self) -> Iterator:
        try:
            replies, refused = self._replies()
        except OSError as exc:
            self.errors(exc.strerror or str(exc))
            replies, refused = [], 0
        answered = GaugeMetricFamily(
            "multistack_stacks", "running stacks with a control socket that answered")
        answered.add_metric([], len(replies))
        not_permitted = GaugeMetricFamily(
            "multistack_stacks_not_permitted",
            "running stacks of another user (they answer only their owner or root)")
        not_permitted.add_metric([], refused)
        yield answered
        yield not_permitted
        yield self.errors.family()
        families: dict[str, CounterMetricFamily] = {}
        for reply in replies:
            labels = [str(reply.get("pid", "")), printable(str(reply.get("command", "")))]
            counters = reply.get("counters") or {}
            for layer in self.LAYERS:
                for name, value in sorted((counters.get(layer) or {}).items()):
                    # a name or value a metric cannot carry is left out, not guessed at
                    if not _METRIC_WORD.fullmatch(name) or type(value) is not int:
                        continue
                    metric = f"multistack_stack_{layer}_{name}"
                    if metric not in families:
                        families[metric] = CounterMetricFamily(
                            metric, f"{layer} counter {name} of a user-level stack",
                            labels=["pid", "command"])
                    families[metric].add_metric(labels, value)
        yield from families.values()


def collectors(args: argparse.Namespace) -> list:
    """The sources `multistack-ctl exporter` serves, each checked against
    the command's filters."""
    found = [KernelCollector(port_id=args.port), StackCollector(pid=args.pid)]
    for c in found:
        c.check()
    return found


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` as (host, port); port 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise CtlError(f"--listen {text}: expected HOST:PORT (e.g. {DEFAULT_LISTEN} "
                       "or [::1]:9477)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise CtlError(f"--listen {text}: put an IPv6 address in brackets, as [::1]:9477")
    if not port.isdigit() or int(port) > 65535 or not host:
        raise CtlError(f"--listen {text}: expected HOST:PORT with a port number 0-65535")
    return host, int(port)


def _start_server(registry, listen: str):
    """prometheus_client's own threaded WSGI server on ``listen``; a bind
    that fails is a CtlError naming the reason."""
    host, port = parse_listen(listen)
    try:
        return start_http_server(port, addr=host, registry=registry)
    except socket.gaierror as exc:
        raise CtlError(f"--listen {listen}: cannot resolve {host}: {exc.strerror}") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == E.EACCES:
            reason += " (ports below 1024 need CAP_NET_BIND_SERVICE)"
        raise CtlError(f"--listen {listen}: {reason}") from None


def cmd_exporter(args: argparse.Namespace) -> int:
    registry = CollectorRegistry(auto_describe=False)
    for c in collectors(args):
        registry.register(c)
    # Blocked before the server's thread starts, so that it inherits the
    # mask and the main thread alone takes the signal, in sigwait.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        server, thread = _start_server(registry, args.listen)
        try:
            host, port = server.server_address[:2]
            shown = f"[{host}]" if ":" in host else host
            print(f"serving http://{shown}:{port}/metrics", flush=True)
            signal.sigwait(stop_signals)
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return 0


def register_subcommand(sub: argparse._SubParsersAction) -> None:
    """Add `exporter` to `multistack-ctl`."""
    p = sub.add_parser("exporter",
                       help="serve the counters over HTTP for Prometheus")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help=f"address to serve /metrics on (default {DEFAULT_LISTEN}; "
                   "IPv6 as [::1]:9477)")
    p.add_argument("--port", type=int, metavar="ID",
                   help="only this port of the module (and its interface)")
    p.add_argument("--pid", type=int, metavar="PID",
                   help="only this stack process (of those with a control socket)")
    p.set_defaults(func=cmd_exporter)
