"""`courier`: the parser, built from one module per command."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

# Each module registers its sub-commands; the order here is the order in `courier --help`.
COMMANDS = (
    "courier.cli.serve",
    "courier.cli.work",
    "courier.cli.demo",
    "courier.cli.simulate",
    "courier.cli.import_csv",
    "courier.cli.migrate",
    "courier.cli.staff",
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
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code
