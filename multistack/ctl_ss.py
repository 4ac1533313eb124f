"""`multistack-ctl ss`: the connections and endpoints of running user-level stacks.

Reads each stack's control socket (multistack.stackctl); needs no kernel
module.  The table follows ``ss -tuni``: one line per socket, then an
indented line of TCP details.
"""

from __future__ import annotations

import argparse
import sys

from . import stackctl
from .errors import CtlError
from .text import one_line

# ss's abbreviations of the RFC 9293 state names.
_STATE_NAMES = {"ESTABLISHED": "ESTAB", "SYN-RECEIVED": "SYN-RECV"}
_HEADERS = ("Netid", "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port",
            "Process")


def _endpoint(address: str | None, port: int | None) -> str:
    if port is None:
        return "*:*"
    if address is None:
        return f"*:{port}"
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _tcp_details(row: dict) -> str:
    """ss -i's second line, for a connection (a listener or a record has none)."""
    if "cwnd" not in row:
        return ""
    ssthresh = row["ssthresh"]
    return (f"mss:{row['mss']} cwnd:{row['cwnd']}"
            + (f" ssthresh:{ssthresh}" if ssthresh is not None else "")
            + f" rtt:{_ms(row['srtt_ms'])}/{_ms(row['rttvar_ms'])} rto:{_ms(row['rto_ms'])}"
            f" retrans:{row['retransmits']} timeouts:{row['timeouts']}"
            f" bytes_sent:{row['bytes_sent']} bytes_retrans:{row['bytes_retransmitted']}"
            f" bytes_acked:{row['bytes_acked']} bytes_received:{row['bytes_received']}"
            f" segs_out:{row['segments_out']} segs_in:{row['segments_in']}"
            f" snd_wnd:{row['send_window']} unacked:{row['in_flight']}")


def _udp_details(row: dict) -> str:
    return (f"rx:{row['rx_datagrams']}/{row['rx_bytes']}B tx:{row['tx_datagrams']}/"
            f"{row['tx_bytes']}B queued:{row['queued_datagrams']} drops:{row['dropped']}")


def table(replies: list[dict]) -> list[str]:
    """The ``ss -tuni`` lines for the "connections" replies of some stacks."""
    rows = []
    for reply in replies:
        command = reply.get("command", "").split(" ")[0].rsplit("/", 1)[-1]
        for netid, details in (("tcp", _tcp_details), ("udp", _udp_details)):
            for row in reply.get(netid, []):
                process = f"pid={reply['pid']} port={row.get('port', '?')} ({command})"
                cells = [netid, _STATE_NAMES.get(row["state"], row["state"]),
                         str(row["receive_queue"]), str(row["send_queue"]),
                         _endpoint(row["local_address"], row["local_port"]),
                         _endpoint(row["remote_address"], row["remote_port"]), process]
                rows.append((cells, details(row)))
    widths = [max([len(h)] + [len(cells[i]) for cells, _ in rows])
              for i, h in enumerate(_HEADERS)]

    def line(cells) -> str:
        return " ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    out = [line(_HEADERS)]
    for cells, detail in rows:
        out.append(line(cells))
        if detail:
            out.append("   " + detail)
    return out


def cmd_ss(args: argparse.Namespace) -> int:
    from .ctl import _emit

    if args.pid is not None:
        if args.pid <= 0:
            raise CtlError(f"--pid {args.pid}: not a process id")
        replies = [stackctl.query(args.pid, "connections")]
        for reply in replies:
            reply["uid"] = next((s.uid for s in stackctl.list_stacks(clean=False)
                                 if s.pid == args.pid), None)
    else:
        replies = []
        for stack in stackctl.list_stacks():
            try:
                reply = stackctl.query(stack, "connections")
            except stackctl.NoSuchStackError:
                continue            # ended since it was listed
            except stackctl.StackControlError as exc:
                # Another user's stack: skipped, said once (ss shows what it may).
                print(one_line(f"multistack-ctl: {exc}; skipped"), file=sys.stderr)
                continue
            reply["uid"] = stack.uid
            replies.append(reply)
    for reply in replies:
        reply.pop("ok", None)
    _emit(args, replies, table(replies))
    return 0


def register_subcommand(sub, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("ss", parents=[common],
                            help="list the connections and UDP endpoints of running "
                                 "user-level stacks (like ss -tuni)")
    parser.add_argument("--pid", type=int, help="only the stack of this process")
    parser.set_defaults(func=cmd_ss)
