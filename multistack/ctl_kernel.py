"""`multistack-ctl` subcommands that drive the kernel module.

    multistack-ctl attach IFACE      attach MultiStack to IFACE (CAP_NET_ADMIN)
    multistack-ctl detach IFACE      detach it; ports on IFACE become dead
    multistack-ctl list              attached interfaces, ports (owning uid;
                                     pid and command of one's own ports, of
                                     all with CAP_NET_ADMIN) and their
                                     registered 3-tuples
    multistack-ctl stats [IFACE]     counters per interface and per port
    multistack-ctl rejects [PORT] [-w FILE]
                                     the last TX frames the module refused,
                                     per port (its owner or CAP_NET_ADMIN):
                                     a table, or pcapng with the reason as
                                     each packet's comment
    multistack-ctl capture PORT      one port's frames, live (multistack.capture)

Every subcommand takes ``--json``.  Errors the user can cause (module not
loaded, no such interface, not attached, no permission) are one line on
stderr and exit status 2.  Names (interfaces, commands) are printed escaped
(multistack.text.printable): one line each, whatever bytes they hold.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import struct
import sys
import time
from typing import Any

from .errors import CtlError
from .text import one_line, printable


def _kernel():
    try:
        from . import kernel
    except ImportError as exc:
        raise CtlError(f"the kernel backend is unavailable: {exc}") from None
    return kernel


def _emit(args: argparse.Namespace, data: Any, lines: list[str]) -> None:
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        for line in lines:
            print(one_line(line))


def _call(fn, *a):
    """Run a kernel-backend call, turning its errors into one-line CtlErrors."""
    kernel = _kernel()
    try:
        return fn(*a)
    except kernel.KernelModuleError as exc:
        raise CtlError(str(exc)) from None


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="surrogateescape") as f:
            return f.read().removesuffix("\n")
    except OSError:
        return "?"


def cmd_attach(args: argparse.Namespace) -> int:
    kernel = _kernel()
    _call(kernel.attach, args.iface)
    _emit(args, {"attached": args.iface}, [f"attached {printable(args.iface)}"])
    return 0


def cmd_detach(args: argparse.Namespace) -> int:
    kernel = _kernel()
    _call(kernel.detach, args.iface)
    _emit(args, {"detached": args.iface}, [f"detached {printable(args.iface)}"])
    return 0


def _fmt_tuple(reg: dict) -> str:
    addr = reg["address"]
    if ":" in addr:
        addr = f"[{addr}]"
    return f"{reg['proto']} {addr}:{reg['port']}"


def cmd_list(args: argparse.Namespace) -> int:
    kernel = _kernel()
    ifaces = _call(kernel.status)
    data = []
    lines = []
    for iface in ifaces:
        ports = []
        n = len(iface["ports"])
        lines.append(f"{printable(iface['name'])} (ifindex {iface.get('ifindex', '?')}): "
                     f"{n} port{'s' if n != 1 else ''}")
        for port in iface["ports"]:
            # pid None: another user's port, which the module shows only
            # to CAP_NET_ADMIN (as ss -p); its command is not ours to show
            pid = port.get("pid")
            if pid is None:
                comm = None
            else:
                comm = _comm(pid) if isinstance(pid, int) and pid > 0 else "?"
            entry = {
                "id": port["id"], "pid": pid, "command": comm, "uid": port.get("uid"),
                "dead": port["dead"],
                "tx_slots": port.get("tx_slots"), "rx_slots": port.get("rx_slots"),
                "buf_size": port.get("buf_size"), "mem": port.get("mem"),
                "txmem": port.get("txmem"),
                "registrations": port["registrations"],
            }
            ports.append(entry)
            state = "  DEAD" if port["dead"] else ""
            # kernel-private pages for TX frames (not in mem, the mmap size)
            txmem = f" + tx pages {port['txmem']} B" if "txmem" in port else ""
            owner = (f"uid {port['uid']}  " if "uid" in port else "") + (
                "pid - (-)" if pid is None else f"pid {pid} ({printable(comm)})")
            lines.append(f"  port {port['id']}  {owner}  "
                         f"slots tx {port.get('tx_slots')} rx {port.get('rx_slots')}  "
                         f"buf {port.get('buf_size')} B  mem {port.get('mem')} B"
                         f"{txmem}{state}")
            for reg in port["registrations"]:
                released = ("  (proof released: owns nothing)"
                            if reg.get("proof") == "released" else "")
                lines.append(f"    {_fmt_tuple(reg)}{released}")
            if not port["registrations"]:
                lines.append("    (no registrations)")
        data.append({"iface": iface["name"], "ifindex": iface.get("ifindex"), "ports": ports})
    if not ifaces:
        lines.append("no interface attached")
    _emit(args, data, lines)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    kernel = _kernel()
    ifaces = _call(kernel.status)
    if args.iface is not None:
        # The ioctl answers precisely why an interface has no counters.
        counters = _call(kernel.interface_stats, args.iface)
        found = [i for i in ifaces if i["name"] == args.iface]
        ports = found[0]["ports"] if found else []
        ifaces = [{"name": args.iface, "counters": counters, "ports": ports}]
    data: dict[str, Any] = {}
    lines: list[str] = []
    for iface in ifaces:
        entry = {"iface": iface["counters"],
                 "ports": {str(p["id"]): p["counters"] for p in iface["ports"]}}
        data[iface["name"]] = entry
        names = list(iface["counters"])
        for p in iface["ports"]:
            names += [n for n in p["counters"] if n not in names]
        cols = [printable(iface["name"])] + [f"port {p['id']}" for p in iface["ports"]]
        width = max([len(n) for n in names] + [7])
        lines.append(f"{'':<{width}}  " + "  ".join(f"{c:>12}" for c in cols))
        for name in names:
            vals = [iface["counters"].get(name, "")] + [p["counters"].get(name, "")
                                                       for p in iface["ports"]]
            lines.append(f"{name:<{width}}  " + "  ".join(f"{v!s:>12}" for v in vals))
    if not ifaces:
        lines.append("no interface attached")
    _emit(args, data, lines)
    return 0


def describe_frame(data: bytes, length: int) -> str:
    """A short decode of a frame's first bytes, for people: ``proto src >
    dst``, as far as the bytes go (a refused frame may be anything)."""
    if not data:
        return f"(no bytes kept of {length})" if length else "(empty)"
    if len(data) < 14:
        return f"({len(data)} bytes: no Ethernet header)"
    ethertype = struct.unpack_from("!H", data, 12)[0]
    l3 = data[14:]
    if ethertype == 0x0800 and len(l3) >= 20 and l3[0] >> 4 == 4:
        src, dst = ipaddress.IPv4Address(l3[12:16]), ipaddress.IPv4Address(l3[16:20])
        proto, l4 = l3[9], l3[(l3[0] & 0xF) * 4:]
        frag = struct.unpack_from("!H", l3, 6)[0] & 0x3FFF
        if frag:
            return f"ipv4 {src} > {dst} proto {proto} fragment"
    elif ethertype == 0x86DD and len(l3) >= 40 and l3[0] >> 4 == 6:
        src, dst = ipaddress.IPv6Address(l3[8:24]), ipaddress.IPv6Address(l3[24:40])
        proto, l4 = l3[6], l3[40:]
    elif ethertype in (0x0800, 0x86DD):
        return f"{'ipv4' if ethertype == 0x0800 else 'ipv6'} (header cut short)"
    else:
        return f"ethertype 0x{ethertype:04x}"
    names = {6: "tcp", 17: "udp"}
    if proto in names and len(l4) >= 4:
        sport, dport = struct.unpack_from("!HH", l4)
        fmt = (lambda a, p: f"[{a}]:{p}") if src.version == 6 else (lambda a, p: f"{a}:{p}")
        return f"{names[proto]} {fmt(src, sport)} > {fmt(dst, dport)}"
    return f"ipv{src.version} {src} > {dst} proto {proto}"


def _time_text(time_ns: int) -> str:
    seconds, ns = divmod(time_ns, 10**9)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{ns // 1000:06d}Z"


def _readable_rejects(kernel, port_id: int | None) -> list:
    """The rings of port_id, or of every port of this namespace the caller
    may read (another user's port is left out without CAP_NET_ADMIN)."""
    if port_id is not None:
        return [_call(kernel.rejected_frames, port_id)]
    rings = []
    for port in _call(kernel.list_ports):
        try:
            rings.append(kernel.rejected_frames(port["id"]))
        except (kernel.PermissionDeniedError, kernel.NoSuchPortError):
            continue    # not ours, or closed since /proc was read
        except kernel.KernelModuleError as exc:
            raise CtlError(str(exc)) from None
    return rings


def _write_pcapng(args: argparse.Namespace, kernel, rings: list, frames: list) -> None:
    from contextlib import nullcontext

    from .pcapng import PcapngWriter

    try:
        target = (nullcontext(sys.stdout.buffer) if args.write == "-"
                  else open(args.write, "wb"))
    except OSError as exc:
        raise CtlError(f"cannot write {printable(args.write)}: {exc.strerror}") from None
    with target as out, PcapngWriter(out, application="multistack-ctl rejects") as w:
        ids = {r.port_id: w.add_interface(f"port {r.port_id} ({r.ifname})",
                                          snaplen=kernel.REJ_SNAPLEN) for r in rings}
        for ring, f in frames:
            w.write(f.data, f.time_ns, interface=ids[ring.port_id],
                    original_length=f.length, comment=f.reason)


def cmd_rejects(args: argparse.Namespace) -> int:
    kernel = _kernel()
    rings = _readable_rejects(kernel, args.port)
    frames = sorted(((r, f) for r in rings for f in r.frames), key=lambda rf: rf[1].time_ns)
    if args.write is not None:
        _write_pcapng(args, kernel, rings, frames)
        if args.write == "-":
            return 0
    data = [{"port": r.port_id, "iface": r.ifname, "total": r.total, "kept": len(r.frames),
             "overwritten": r.overwritten,
             "frames": [{"time_ns": f.time_ns, "time": _time_text(f.time_ns),
                         "reason": f.reason, "length": f.length,
                         "data": f.data.hex(), "summary": describe_frame(f.data, f.length)}
                        for f in r.frames]}
            for r in rings]
    lines = []
    for r in rings:
        lines.append(f"port {r.port_id} ({printable(r.ifname)}): {r.total} refused, "
                     f"{len(r.frames)} kept, {r.overwritten} overwritten")
    if args.write is not None:
        lines.append(f"wrote {len(frames)} frames to {printable(args.write)}")
    elif frames:
        lines.append(f"{'time (UTC)':<27}  {'port':>5}  {'reason':<18}  {'len':>5}  frame")
        for r, f in frames:
            lines.append(f"{_time_text(f.time_ns):<27}  {r.port_id:>5}  {f.reason:<18}  "
                         f"{f.length:>5}  {describe_frame(f.data, f.length)}")
    if not rings:
        lines.append("no port you may read")
    _emit(args, data, lines)
    return 0


def register_subcommands(sub: argparse._SubParsersAction,
                         common: argparse.ArgumentParser | None = None) -> None:
    """Add attach, detach, list, stats and rejects to `multistack-ctl`."""
    parents = [common] if common is not None else []
    p = sub.add_parser("attach", parents=parents,
                       help="attach MultiStack to an interface (needs CAP_NET_ADMIN)")
    p.add_argument("iface", help="interface name (in this network namespace)")
    p.set_defaults(func=cmd_attach)

    p = sub.add_parser("detach", parents=parents,
                       help="detach MultiStack from an interface; its ports become dead")
    p.add_argument("iface", help="interface name")
    p.set_defaults(func=cmd_detach)

    p = sub.add_parser("list", parents=parents,
                       help="attached interfaces, ports with owning pid, registrations")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("stats", parents=parents,
                       help="counters per attached interface and per port")
    p.add_argument("iface", nargs="?", help="only this interface")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("rejects", parents=parents,
                       help="the last TX frames the module refused, with the reason "
                            "(the port's owner or CAP_NET_ADMIN)")
    p.add_argument("port", nargs="?", type=int,
                   help="port id (as in list); default: every port you may read")
    p.add_argument("-w", dest="write", metavar="FILE",
                   help="write pcapng to FILE ('-': standard output), the reason as "
                        "each packet's comment")
    p.set_defaults(func=cmd_rejects)

    from .capture import add_subcommand as add_capture
    add_capture(sub, parents)
