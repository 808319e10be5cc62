"""What every command shares: loading the configuration and reporting its errors, refusing to
run a service with placeholder secrets, and building the process's context."""

from __future__ import annotations

import argparse
import asyncio
import logging as std_logging
import sys
from pathlib import Path

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from adapters import registry
from adapters.base import CourierAdapter
from adapters.http import TransportPolicy
from courier import config, logging
from courier.config import Settings
from courier.context import AppContext
from courier.db.engine import is_sqlite, make_engine, make_sessions, pool_size_for
from courier.db.limits import DatabaseGate
from courier.metrics import PrometheusObserver


def settings_from(args: argparse.Namespace) -> config.Settings:
    """Load the configuration named by ``--config`` (or COURIER_CONFIG / ./courier.toml) and
    start logging; exit 2 with every bad key listed when it is wrong."""
    try:
        settings = config.load(getattr(args, "config", None))
    except config.ConfigError as err:
        print(f"configuration error in {err.source}:", file=sys.stderr)
        for e in err.errors:
            print(f"  {e.path}: {e.message}", file=sys.stderr)
        raise SystemExit(2) from err
    logging.configure(settings.log_level, settings.log_format)
    return settings


def require_secrets(settings: Settings) -> None:
    """Exit 2 when a long-running service (`serve`, `work`) would hash passport numbers with the
    published placeholder pepper: those hashes would protect nothing, and a later change of
    pepper makes every stored hash unverifiable. A demo or a test says so explicitly."""
    if settings.default_pepper and not settings.allow_default_pepper:
        print(
            "configuration error: security.passport_pepper is the built-in placeholder. Set a "
            "long random secret in security.passport_pepper (or the environment variable "
            "COURIER_SECURITY__PASSPORT_PEPPER) and keep it out of the database backups; only "
            "a demo or a test may set security.allow_default_pepper = true instead.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    weak = pepper_error(settings)
    if weak:
        print(f"configuration error: {weak}", file=sys.stderr)
        raise SystemExit(2)


def pepper_error(settings: Settings) -> str | None:
    """The complaint about a weak pepper, naming the setting (the placeholder is judged by
    :func:`require_secrets` on its own)."""
    if settings.default_pepper:
        return None
    problem = config.pepper_problem(settings.passport_pepper)
    if problem is None:
        return None
    return (
        f"security.passport_pepper (or COURIER_SECURITY__PASSPORT_PEPPER) {problem}, e.g. "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    )


def build_context(settings: Settings, *, worker: bool = False) -> AppContext:
    """Engine, sessions, the clock and one adapter per configured courier, its calls counted in
    the process's metrics. ``serve`` needs the adapters for the push receivers' signature checks,
    ``work`` (``worker=True``) for everything else."""
    clock = settings.clock()
    engine = make_engine(
        settings.database_url,
        pool_size=pool_size_for(settings, worker=worker),
        max_overflow=settings.db_max_overflow,
    )
    observer = PrometheusObserver()
    # one account's rate and daily quota for every process of the deployment, kept across
    # restarts (courier/db/limits.py)
    gate = DatabaseGate(engine)
    couriers: dict[str, CourierAdapter] = {
        code: registry.create(code, courier_settings, clock=clock, observer=observer, gate=gate)
        for code, courier_settings in settings.couriers.items()
    }
    return AppContext(
        settings=settings,
        engine=engine,
        sessions=make_sessions(engine),
        clock=clock,
        couriers=couriers,
    )


def longest_courier_call(settings: Settings) -> float:
    """Seconds the slowest configured courier call can take with all its retries and waits."""
    worst = 0.0
    for courier_settings in settings.couriers.values():
        policy = TransportPolicy.from_settings(courier_settings.get("transport", {}))
        retries = max(0, policy.max_attempts - 1)
        worst = max(
            worst, policy.total_timeout * policy.max_attempts + policy.backoff_max * retries
        )
    return worst


def require_lease_covers_calls(settings: Settings) -> None:
    """A lease must outlast the longest courier call with its retries: should renewal stall
    (a frozen event loop, a paused VM), the lease still holds while the call may be running."""
    longest = longest_courier_call(settings)
    if settings.lease_seconds <= longest:
        print(
            f"configuration error: worker.lease_seconds ({settings.lease_seconds}) must be longer "
            f"than the longest courier call with its retries ({longest:.0f} s): raise it, or "
            "lower the couriers' transport timeouts or max_attempts",
            file=sys.stderr,
        )
        raise SystemExit(2)


MIGRATE_HINT = "run `courier migrate` first"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for an in-memory database or another backend)."""
    if not is_sqlite(url):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(database)


def schema_problem(database_url: str) -> str | None:
    """Why the database cannot serve this code yet (None when it can). Never creates anything:
    a SQLite file that does not exist is reported, not made (connecting would create it)."""
    file = sqlite_file(database_url)
    if file is not None and not file.exists():
        return f"database file {file} does not exist: {MIGRATE_HINT}"
    # alembic on use: `courier --help` and check-config need none of it
    from courier.db.migrate import current_revision, head_revision

    async def read() -> str | None:
        engine = make_engine(database_url)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    alembic = std_logging.getLogger("alembic")
    level = alembic.level
    alembic.setLevel(std_logging.WARNING)  # reading the revision is not news worth a log line
    try:
        current = asyncio.run(read())
    except (sa_exc.SQLAlchemyError, OSError) as err:
        return f"cannot reach the database ({type(err).__name__}); check database_url"
    finally:
        alembic.setLevel(level)
    head = head_revision()
    if current is None:
        return f"the database has no schema yet: {MIGRATE_HINT}"
    if current != head:
        return f"the database schema is at {current}, this code needs {head}: {MIGRATE_HINT}"
    return None


def require_schema(settings: Settings) -> None:
    """Exit 2 with one line (no traceback) when the database is missing, unreachable or not
    migrated to this code's schema: every command that reads or writes the database calls this
    before it opens a session."""
    problem = schema_problem(settings.database_url)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
