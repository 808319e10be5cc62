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
    "courier.cli.contracts",
)


CONFIG_HELP = "TOML configuration file (default: $COURIER_CONFIG or ./courier.toml)"


def _accept_global_options(parser: argparse.ArgumentParser) -> None:
    """Give every sub-command (at any depth) the global options too, so `courier office sync
    --config prod.toml` works as well as `courier --config prod.toml office sync`. SUPPRESS as
    the default: a sub-command that is not given the option keeps what the top level parsed."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in action.choices.values():
            child.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
            _accept_global_options(child)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="courier",
        description="passport-courier: home delivery of finished passports through couriers.",
    )
    parser.add_argument("--config", help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    _accept_global_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code
