"""Telling a database outage from a bug.

PostgreSQL restarting (or a SQLite file briefly locked past its busy timeout) surfaces as one of
several exception types depending on where the connection broke: SQLAlchemy's wrappers, asyncpg's
own errors on the LISTEN connection, or a plain ``ConnectionRefusedError`` while the server is
down. The worker waits every one of them out (worker/backoff.py); the web answers 503.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa_exc

_ASYNCPG_OUTAGES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # connection lost / refused by the server
    asyncpg.InterfaceError,  # connection closed under us
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, "starting up"
)


def is_db_outage(err: BaseException) -> bool:
    """True for errors that mean "the database is not reachable right now"."""
    if isinstance(err, sa_exc.DBAPIError):
        if err.connection_invalidated:
            return True
        if isinstance(err, sa_exc.OperationalError | sa_exc.InterfaceError):
            return True
        return isinstance(err.orig, _ASYNCPG_OUTAGES) or isinstance(
            getattr(err.orig, "__cause__", None), _ASYNCPG_OUTAGES
        )
    if isinstance(err, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True  # TimeoutError: pool checkout timed out while connections were being rebuilt
    return isinstance(err, (*_ASYNCPG_OUTAGES, OSError, ConnectionError))
