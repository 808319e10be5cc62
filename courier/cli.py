"""`courier`: the command line, and the one composition root (the only module in courier/ that may
start the worker)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module registers its sub-commands; the order here is the order in `courier --help`.
COMMANDS = (
    "courier.commands.serve",
    "courier.commands.work",
    "courier.commands.demo",
    "courier.commands.simulate",
    "courier.commands.import_csv",
    "courier.commands.migrate",
    "courier.commands.staff",
    "courier.commands.report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="courier",
        description="passport-courier: home delivery of finished passports through couriers.",
    )
    parser.add_argument(
        "--config", help="TOML configuration file (default: $COURIER_CONFIG or ./courier.toml)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue  # a command not built yet is simply not offered
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
