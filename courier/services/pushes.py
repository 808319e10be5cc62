"""Courier pushes: a verified, readable push is kept in the inbox, once per distinct body.

The webhook verifies and parses the push before it comes here (nothing unverified is stored);
the inbox loop (worker/inbox.py) applies it later.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from courier.context import AppContext
from courier.db.engine import one_statement
from courier.db.models import InboxItem

_INBOX: Table = InboxItem.__table__  # type: ignore[assignment]
# built once per dialect, the values bound per push: ingestion is the hottest path the web has
_STORE: dict[str, Insert] = {
    name: dialect.insert(_INBOX)
    .on_conflict_do_nothing(index_elements=[_INBOX.c.dedupe_key])
    .returning(_INBOX.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


@dataclass(frozen=True, slots=True)
class StoredPush:
    inbox_id: int | None  # None: the same body was already in the inbox (a re-sent push)

    @property
    def duplicate(self) -> bool:
        return self.inbox_id is None


async def store_push(ctx: AppContext, *, courier_code: str, raw: bytes) -> StoredPush:
    """Keep ``raw`` (UTF-8, checked by the caller) in the inbox, keyed by its sha256: one
    insert that does nothing for a body already kept, so it needs no transaction around it."""
    async with one_statement(ctx.engine) as conn:
        result = await conn.execute(
            _STORE[conn.dialect.name],
            {
                "courier_code": courier_code,
                "dedupe_key": hashlib.sha256(raw).hexdigest(),
                "body": raw.decode("utf-8"),
                "received_at": ctx.clock.now(),
                "attempts": 0,
            },
        )
        inbox_id = result.scalar_one_or_none()
    return StoredPush(int(inbox_id) if inbox_id is not None else None)
