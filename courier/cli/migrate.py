"""`courier migrate` and `courier check-config`."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Callable

from adapters import registry
from courier import config
from courier.cli.base import require_lease_covers_calls, require_secrets, settings_from
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
        "key by its path, then everything `serve` and `work` would refuse to start with (a "
        "placeholder pepper, courier settings, a lease shorter than a courier call) and every "
        "[[offices]] entry `office sync` would refuse (a missing or too long sender block, a "
        "courier without settings). Exit 0 when valid, 2 otherwise. Touches no database.",
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
    problems = service_problems(settings)
    if problems:
        print(f"configuration error in {settings.source}:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 2
    print(f"configuration valid ({settings.source})")
    return 0


def _refusal(check: Callable[[config.Settings], None], settings: config.Settings) -> list[str]:
    """What one of `serve`/`work`'s own start-up checks says about ``settings``: the very
    checks they run, so check-config can never pass what they refuse."""
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            check(settings)
    except SystemExit:
        text = said.getvalue().strip().removeprefix("configuration error: ")
        return [text or "refused"]
    return []


def service_problems(settings: config.Settings) -> list[str]:
    """Everything beyond the schema that a valid-looking configuration can still get wrong."""
    from courier.services.staff import office_problems  # on use: keeps `courier --help` quick

    out = _refusal(require_secrets, settings) + _refusal(require_lease_covers_calls, settings)
    for code, courier_settings in settings.couriers.items():
        try:
            registry.validate(code, courier_settings)
        except ValueError as err:
            out.append(f"$.couriers.{code}: {err}")
    for i, office in enumerate(settings.offices):
        where = f"$.offices[{i}]"
        for e in office_problems(office, sender_required=True):
            out.append(f"{where}{e.path[1:]}: {e.message}")
        courier = str(office.get("courier") or registry.default_code())
        if courier not in settings.couriers:
            out.append(
                f"{where}.courier: {courier} has no settings: add a [couriers.{courier}] "
                "section (see schemas/couriers/<code>/settings.json), or route the office to "
                "a configured courier"
            )
    return out
