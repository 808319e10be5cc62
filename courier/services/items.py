"""Exception items, outbox rows and other idempotent inserts, on SQLite and PostgreSQL alike.

Watchers and courier events run again and again over the same facts (a poll repeats, a push is
re-sent, a watcher wakes every minute). Each item therefore carries a deterministic
``dedupe_key`` backed by a UNIQUE index, and is written with ``INSERT … ON CONFLICT DO NOTHING``:
the first writer wins, every later one is a no-op, even across processes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from courier.db.models import Application, Base, Delivery, ExceptionItem, OutboxItem
from courier.domain.exception_kinds import ExceptionKind, next_step


async def insert_ignore(
    session: AsyncSession, model: type[Base], values: dict[str, Any], key: str = "dedupe_key"
) -> int | None:
    """Insert one row unless one with the same unique ``key`` exists; the new id, or None."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table: Table = model.__table__  # type: ignore[assignment]
    stmt = (
        insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[key])
        .returning(table.c.id)
    )
    result = await session.execute(stmt)
    new_id = result.scalar_one_or_none()
    return int(new_id) if new_id is not None else None


async def personal_values(session: AsyncSession, delivery: Delivery) -> list[str]:
    """What courier text must not repeat about this delivery: the applicant's name and phone
    (as stored and as dialled at home), the street and the note of the address."""
    values: list[str] = []
    application = await session.get(Application, delivery.application_id)
    if application is not None:
        values.append(application.applicant_name)
        phone = application.phone or ""
        values += [phone, phone.removeprefix("+"), "0" + phone.removeprefix("+62")]
    address = delivery.address if isinstance(delivery.address, dict) else {}
    values += [str(address.get(k) or "") for k in ("street", "note")]
    return [v for v in values if v]


async def open_exception(
    session: AsyncSession,
    *,
    office_id: int,
    kind: ExceptionKind,
    detail: str,
    dedupe_key: str,
    now: datetime,
    delivery_id: int | None = None,
    shipment_id: int | None = None,
) -> int | None:
    """Open one item in the dispatch exceptions queue; None when it was already open.

    The next step is the kind's (courier/domain/exception_kinds.py). ``detail`` is for staff of
    the same office: it never holds names or numbers of the applicant (the item links to the
    delivery for that). Courier text in a detail is masked first
    (:func:`courier.domain.text.mask_personal` with :func:`personal_values`): the queue is shown
    on shared screens.
    """
    return await insert_ignore(
        session,
        ExceptionItem,
        {
            "office_id": office_id,
            "delivery_id": delivery_id,
            "shipment_id": shipment_id,
            "kind": kind.value,
            "detail": detail,
            # the kind's next step, in Bahasa Indonesia, as shown to staff when it was opened
            "next_step": next_step(kind).id,
            "dedupe_key": dedupe_key[:80],
            "opened_at": now,
        },
    )


async def resolve_exceptions(
    session: AsyncSession,
    *,
    delivery_id: int,
    kinds: tuple[str, ...],
    by: str,
    resolution: str,
    now: datetime,
) -> int:
    """Close the delivery's open items of ``kinds`` (the action they asked for was taken)."""
    result = await session.execute(
        update(ExceptionItem)
        .where(
            ExceptionItem.delivery_id == delivery_id,
            ExceptionItem.kind.in_(kinds),
            ExceptionItem.resolved_at.is_(None),
        )
        .values(resolved_at=now, resolved_by=by, resolution=resolution)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def queue_outbox(
    session: AsyncSession,
    *,
    kind: str,
    payload: dict[str, Any],
    dedupe_key: str,
    now: datetime,
    delivery_id: int | None = None,
) -> int | None:
    """Queue one notification for the notify loop; None when it was already queued."""
    return await insert_ignore(
        session,
        OutboxItem,
        {
            "kind": kind,
            "delivery_id": delivery_id,
            "payload": payload,
            "dedupe_key": dedupe_key[:80],
            "created_at": now,
            "next_attempt_at": now,
        },
    )
