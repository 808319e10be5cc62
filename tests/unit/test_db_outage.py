"""Which errors mean "the database went away" (back off and carry on) and which are bugs."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from courier.db.outage import is_db_outage


@pytest.mark.parametrize(
    "err",
    [
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
        ConnectionResetError(104, "reset by peer"),
        OSError(113, "no route to host"),
        asyncpg.PostgresConnectionError("connection lost"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "refused")),
        sa_exc.InterfaceError("SELECT 1", {}, asyncpg.InterfaceError("closed")),
        sa_exc.TimeoutError("pool checkout timed out"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_outages_are_recognised(err: BaseException) -> None:
    assert is_db_outage(err) is True


@pytest.mark.parametrize(
    "err",
    [
        TypeError("a bug"),
        ValueError("bad value"),
        KeyError("missing"),
        sa_exc.IntegrityError("INSERT", {}, ValueError("duplicate key")),
    ],
    ids=lambda e: type(e).__name__,
)
def test_bugs_and_constraint_errors_are_not_outages(err: BaseException) -> None:
    assert is_db_outage(err) is False
