"""What a use case says when it refuses: a kind the web layer maps to an HTTP status, a stable
code, a message, and the path of each bad field. Services never import aiohttp.

Messages never carry the values that were sent (they may be PII): they say what is wrong.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy import exc as sa

from schemas import FieldError


class Kind(enum.StrEnum):
    INVALID = "invalid"  # 422: a field is wrong
    NOT_FOUND = "not_found"  # 404
    CONFLICT = "conflict"  # 409: the request is fine but the current state refuses it
    IDENTITY = "identity"  # 422: identity not proven (deliberately generic)
    RATE_LIMITED = "rate_limited"  # 429
    INELIGIBLE = "ineligible"  # 422: valid, identified, but not a case for delivery
    FORBIDDEN = "forbidden"  # 403: the caller may not do this (e.g. a token held by no person)
    UNAVAILABLE = "unavailable"  # 503: a courier did not answer; nothing changed, try again


class ServiceError(Exception):
    def __init__(
        self,
        kind: Kind,
        code: str,
        message: str,
        details: Sequence[FieldError] = (),
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message
        self.details = list(details)
        self.retry_after = retry_after


def invalid(
    details: Sequence[FieldError], message: str = "request has invalid fields"
) -> ServiceError:
    return ServiceError(Kind.INVALID, "invalid_fields", message, details)


# --------------------------------------------------------------------------------------------
# Database failures that are not the request's fault


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the database cannot be reached or used right
    now: refused or dropped connections, timeouts, a server shutting down, a pool exhausted, a
    SQLite file that cannot be opened or is locked. The web layer answers 503 with Retry-After
    for these (one mapping, every route); the worker backs off."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _unavailable_one(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _unavailable_one(exc: BaseException) -> bool:
    if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa.TimeoutError | sa.DisconnectionError):
        return True  # the pool's timeout; a connection found dead
    if isinstance(exc, sa.OperationalError | sa.InterfaceError):
        return True  # server gone, shutting down, too many connections; SQLite busy/unopenable
    if isinstance(exc, asyncpg.PostgresConnectionError | asyncpg.InterfaceError):
        return True
    if isinstance(exc, asyncpg.CannotConnectNowError | asyncpg.TooManyConnectionsError):
        return True
    if isinstance(exc, asyncpg.AdminShutdownError | asyncpg.CrashShutdownError):
        return True
    return isinstance(exc, ConnectionError | TimeoutError)


# --------------------------------------------------------------------------------------------
# Unique-key races: check, then insert, and another request inserted in between


def is_unique_violation(exc: BaseException) -> bool:
    """A UNIQUE constraint refused the write (PostgreSQL SQLSTATE 23505; SQLite's message)."""
    if not isinstance(exc, sa.IntegrityError):
        return False
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code is None:
        cause = getattr(orig, "__cause__", None)
        code = getattr(cause, "sqlstate", None)
    return code == "23505" or "UNIQUE constraint failed" in str(orig)


@asynccontextmanager
async def unique_race(code: str, message: str, path: str = "$") -> AsyncIterator[None]:
    """Wrap a use case's whole unit of work (its commit included): when a concurrent request
    took the same unique value between our check and our write, the database's UNIQUE index
    refuses it and the caller gets 409 ``code`` (the same answer the check gives when it sees
    the other row first is the caller's to choose) instead of a 500."""
    try:
        yield
    except sa.IntegrityError as err:
        if not is_unique_violation(err):
            raise
        raise ServiceError(Kind.CONFLICT, code, message, [FieldError(path, message)]) from None
