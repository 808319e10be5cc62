"""`courier migrate` and `courier check-config`."""

from __future__ import annotations

import argparse
import sys

from courier import config
from courier.cli.base import pepper_error, settings_from
from courier.db.migrate import head_revision, migrate


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "migrate",
        help="upgrade or downgrade the database schema",
        description="Apply Alembic migrations to the configured database. Upgrades to the newest "
        "revision by default; `--revision base` downgrades everything (data is lost).",
    )
    p.add_argument(
        "--revision", default="head", help="target revision: head (default), base, or an id"
    )
    p.set_defaults(func=_migrate)

    c = sub.add_parser(
        "check-config",
        help="validate the configuration file and environment overrides",
        description="Load the TOML file (and COURIER_* environment overrides) and name every wrong "
        "key by its path. Exit 0 when valid, 2 otherwise.",
    )
    c.set_defaults(func=_check)


def _migrate(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    target = head_revision() if args.revision == "head" else args.revision
    try:
        done = migrate(settings.database_url, target)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"database {done}: now at {target}")
    return 0


def _check(args: argparse.Namespace) -> int:
    try:
        settings = config.load(getattr(args, "config", None))
    except config.ConfigError as err:
        print(f"configuration error in {err.source}:", file=sys.stderr)
        for e in err.errors:
            print(f"  {e.path}: {e.message}", file=sys.stderr)
        return 2
    weak = pepper_error(settings)
    if weak:
        print(f"configuration error in {settings.source}:\n  {weak}", file=sys.stderr)
        return 2
    print(f"configuration valid ({settings.source})")
    return 0
