"""`multistack-ctl`: inspect interfaces and drive the kernel module.

User errors print one line on stderr and exit with status 2; nothing a user
can type produces a traceback.  Every line printed is one line: names are
escaped (multistack.text).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__
from .errors import CtlError, MultiStackError
from .text import one_line, printable


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CtlError(message)


def _emit(args: argparse.Namespace, data: object, lines: Sequence[str]) -> None:
    if args.json:
        json.dump(data, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        for line in lines:
            print(one_line(line))


def cmd_version(args: argparse.Namespace) -> int:
    from . import kernel_version

    info = {"multistack": __version__, "module": kernel_version.loaded_module_version()}
    _emit(args, info, [f"multistack {info['multistack']}",
                       f"module {info['module'] or 'not loaded'}"])
    return 0


def cmd_ifaces(args: argparse.Namespace) -> int:
    from .interfaces import list_interfaces

    ifaces = list_interfaces()
    lines = []
    for iface in ifaces:
        addrs = ", ".join(iface["ipv4"] + iface["ipv6"]) or "-"
        lines.append(f"{printable(iface['name']):<16} {iface['mac'] or '-':<17}  {addrs}")
    _emit(args, ifaces, lines)
    return 0


def build_parser() -> argparse.ArgumentParser:
    # --json is accepted before or after the subcommand; SUPPRESS keeps a
    # subcommand's default from overwriting a --json given before it.
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON")
    parser = _Parser(prog="multistack-ctl", parents=[common],
                     description="Inspect interfaces and the MultiStack kernel module.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    sub.add_parser("version", parents=[common], help="print versions").set_defaults(func=cmd_version)
    sub.add_parser("ifaces", parents=[common],
                   help="list interfaces with MAC and addresses").set_defaults(func=cmd_ifaces)
    from .ctl_ss import register_subcommand as register_ss

    register_ss(sub, common)
    try:
        from .ctl_kernel import register_subcommands
    except ImportError:
        pass
    else:
        register_subcommands(sub, common)
    try:
        from .exporter import register_subcommand as register_exporter
    except ImportError:
        pass
    else:
        register_exporter(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.json = getattr(args, "json", False)
        return args.func(args)
    except (CtlError, MultiStackError) as exc:
        print(one_line(f"multistack-ctl: {exc}"), file=sys.stderr)
        return 2
    except OSError as exc:
        print(one_line(f"multistack-ctl: {exc.strerror or exc}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
