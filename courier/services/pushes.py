"""Courier pushes: a verified, readable push is kept in the inbox, once per distinct body.

The webhook verifies and parses the push before it comes here (nothing unverified is stored);
the inbox loop (worker/inbox.py) applies it later.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import InboxItem
from courier.services import items


@dataclass(frozen=True, slots=True)
class StoredPush:
    inbox_id: int | None  # None: the same body was already in the inbox (a re-sent push)

    @property
    def duplicate(self) -> bool:
        return self.inbox_id is None


async def store_push(ctx: AppContext, *, courier_code: str, raw: bytes) -> StoredPush:
    """Keep ``raw`` (UTF-8, checked by the caller) in the inbox, keyed by its sha256."""
    async with transaction(ctx.sessions) as session:
        inbox_id = await items.insert_ignore(
            session,
            InboxItem,
            {
                "courier_code": courier_code,
                "dedupe_key": hashlib.sha256(raw).hexdigest(),
                "body": raw.decode("utf-8"),
                "received_at": ctx.clock.now(),
                "attempts": 0,
            },
        )
    return StoredPush(inbox_id)
