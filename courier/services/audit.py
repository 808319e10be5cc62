"""The audit log: every state change, written in the same transaction as the change itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from courier.db.models import AuditEntry


def _request_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("request_id")
    return str(value) if value else None


def record(
    session: AsyncSession,
    *,
    at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: int,
    office_id: int | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditEntry:
    """Add one audit entry to ``session`` (committed with the caller's transaction).

    ``before``/``after`` hold the changed fields only, never personal data a reader of the audit
    log has no need for (a passport number is never there, only the fact that it was set).
    """
    entry = AuditEntry(
        at=at,
        actor=actor,
        action=action,
        entity=entity,
        entity_id=entity_id,
        office_id=office_id,
        before=before,
        after=after,
        reason=reason,
        request_id=_request_id(),
    )
    session.add(entry)
    return entry
