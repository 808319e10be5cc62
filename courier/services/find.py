"""Find any delivery of the office: filters, a search box, keyset pages and a CSV export (the
console's ``/deliveries`` and ``GET /api/v1/deliveries``).

The search box takes an application number, a waybill, an envelope's seal number or a prefix of
the applicant's name (accents and case do not matter: :func:`courier.domain.text.search_key`).
The exact keys are looked up first, each through its own index; only when none matches is the
text taken as a name. Pages are newest first, ``limit`` at a time, continued by an opaque cursor
(the last row's id: stable while new deliveries arrive).

Which index serves what (PostgreSQL at 1,000,000 shipments; every query is scoped to one office):

* no filter, newest first ............ ``ix_deliveries_office_recent`` (office_id, id)
* state .............................. ``ix_deliveries_office_state`` (office_id, state, id)
* regency ............................ ``ix_deliveries_office_regency`` (office_id, regency, id)
* created from/to .................... ``ix_deliveries_office_created`` (office_id, created_at,
  id): the ids of the range from the index alone, then sorted
* courier ............................ the shipments' (delivery_id, attempt_no) unique index,
  per delivery of the page (semi-join)
* exception kind ..................... ``ix_exception_items_open`` (office_id, resolved_at): the
  open items of the kind, a small set, joined to deliveries
* application number ................. ``uq_applications_office_id`` (office_id, application_no)
* waybill ............................ ``ix_shipments_waybill_any`` (waybill)
* seal number ........................ ``uq_manifest_items_office_id`` (office_id, seal_number)
* name prefix ........................ ``ix_applications_search_name`` (office_id, search_name
  varchar_pattern_ops): a LIKE 'prefix%' range scan
* the page's shipments and open items: the delivery-id indexes of shipments and exception_items
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import WIB
from courier.context import AppContext
from courier.db.models import Application, Delivery, ExceptionItem, ManifestItem, Shipment
from courier.domain.text import search_key
from courier.services.dispatch import Destination, destination
from courier.services.errors import invalid
from courier.services.staff import Caller
from schemas import FieldError

EXPORT_LIMIT = 100_000  # rows in one CSV export; narrow the filters for more
_EXPORT_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Filters:
    state: str | None = None
    courier: str | None = None
    regency: str | None = None
    created_from: date | None = None  # WIB days, both ends included
    created_to: date | None = None
    kind: str | None = None  # an open exception item of this kind
    q: str | None = None  # application no, waybill, seal number or name prefix


@dataclass(frozen=True, slots=True)
class Row:
    delivery_id: int
    application_no: str
    applicant_name: str
    state: str
    destination: Destination
    courier: str | None  # the latest attempt's
    waybill: str | None
    collect_by: datetime | None
    created_at: datetime
    updated_at: datetime
    open_kinds: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Page:
    rows: tuple[Row, ...]
    next_cursor: str | None


def encode_cursor(delivery_id: int) -> str:
    return base64.urlsafe_b64encode(f"d{delivery_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id an opaque cursor stands for; invalid ``url.cursor`` for anything we did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if raw.startswith("d") and raw[1:].isdigit() and 0 < int(raw[1:]) < 2**63:
            return int(raw[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise invalid([FieldError("url.cursor", "not a cursor of this listing")])


def _like_prefix(key: str) -> str:
    escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def _exact_matches(session: AsyncSession, office_id: int, q: str) -> set[int]:
    """Deliveries whose application number, waybill or seal number is ``q``."""
    text = q.strip()
    upper = text.upper()
    found: set[int] = set()
    found.update(
        await session.scalars(
            select(Delivery.id)
            .join(Application, Application.id == Delivery.application_id)
            .where(Application.office_id == office_id, Application.application_no == text)
        )
    )
    found.update(
        await session.scalars(
            select(Delivery.id)
            .join(Shipment, Shipment.delivery_id == Delivery.id)
            .where(Shipment.waybill == upper, Delivery.office_id == office_id)
        )
    )
    seal = "".join(upper.split())
    found.update(
        await session.scalars(
            select(Shipment.delivery_id)
            .join(ManifestItem, ManifestItem.shipment_id == Shipment.id)
            .where(ManifestItem.office_id == office_id, ManifestItem.seal_number == seal)
        )
    )
    return found


async def _query(session: AsyncSession, caller: Caller, filters: Filters) -> Select[Any]:
    office_id = caller.office_id
    query = select(Delivery.id).where(Delivery.office_id == office_id)
    if filters.state:
        query = query.where(Delivery.state == filters.state)
    if filters.regency:
        query = query.where(Delivery.destination_regency_code == filters.regency)
    if filters.created_from:
        start = datetime.combine(filters.created_from, time(0), tzinfo=WIB)
        query = query.where(Delivery.created_at >= start)
    if filters.created_to:
        end = datetime.combine(filters.created_to + timedelta(days=1), time(0), tzinfo=WIB)
        query = query.where(Delivery.created_at < end)
    if filters.courier:
        query = query.where(
            select(Shipment.id)
            .where(Shipment.delivery_id == Delivery.id, Shipment.courier_code == filters.courier)
            .exists()
        )
    if filters.kind:
        query = query.where(
            Delivery.id.in_(
                select(ExceptionItem.delivery_id).where(
                    ExceptionItem.office_id == office_id,
                    ExceptionItem.resolved_at.is_(None),
                    ExceptionItem.kind == filters.kind,
                )
            )
        )
    if filters.q and filters.q.strip():
        exact = await _exact_matches(session, office_id, filters.q)
        if exact:
            query = query.where(Delivery.id.in_(sorted(exact)))
        else:
            key = search_key(filters.q)
            if not key:
                return query.where(Delivery.id.is_(None))
            query = query.where(
                Delivery.application_id.in_(
                    select(Application.id).where(
                        Application.office_id == office_id,
                        Application.search_name.like(_like_prefix(key), escape="\\"),
                    )
                )
            )
    return query


async def _rows(session: AsyncSession, ids: list[int]) -> list[Row]:
    if not ids:
        return []
    found = (
        await session.execute(
            select(Delivery, Application.application_no, Application.applicant_name)
            .join(Application, Application.id == Delivery.application_id)
            .where(Delivery.id.in_(ids))
        )
    ).all()
    latest: dict[int, tuple[int, str, str | None]] = {}
    for delivery_id, attempt, courier, waybill in (
        await session.execute(
            select(
                Shipment.delivery_id, Shipment.attempt_no, Shipment.courier_code, Shipment.waybill
            ).where(Shipment.delivery_id.in_(ids))
        )
    ).all():
        if delivery_id not in latest or attempt > latest[delivery_id][0]:
            latest[delivery_id] = (attempt, courier, waybill)
    kinds: dict[int, list[str]] = {}
    for item_delivery, kind in (
        await session.execute(
            select(ExceptionItem.delivery_id, ExceptionItem.kind)
            .where(ExceptionItem.delivery_id.in_(ids), ExceptionItem.resolved_at.is_(None))
            .order_by(ExceptionItem.id)
        )
    ).all():
        if item_delivery is not None:
            kinds.setdefault(int(item_delivery), []).append(kind)
    by_id = {}
    for delivery, application_no, name in found:
        shipment = latest.get(delivery.id)
        by_id[delivery.id] = Row(
            delivery_id=delivery.id,
            application_no=application_no,
            applicant_name=name,
            state=delivery.state,
            destination=destination(delivery.destination_regency_code),
            courier=shipment[1] if shipment else None,
            waybill=shipment[2] if shipment else None,
            collect_by=delivery.collect_by,
            created_at=delivery.created_at,
            updated_at=delivery.updated_at,
            open_kinds=tuple(dict.fromkeys(kinds.get(delivery.id, ()))),
        )
    return [by_id[i] for i in ids if i in by_id]


SHORT_RANGE = timedelta(days=31)


def _newest(filters: Filters) -> Any:
    """Newest first. For a short date range, ``id + 0``: the planner then reads the range's ids
    from ``ix_deliveries_office_created`` and sorts those few, instead of walking the primary key
    back from today (an old week would be the whole table's walk). A long or open range keeps the
    primary-key walk, which stops after one page."""
    start, end = filters.created_from, filters.created_to
    if start is not None and end is not None and end - start <= SHORT_RANGE:
        return (Delivery.id + 0).desc()
    return Delivery.id.desc()


async def find(
    ctx: AppContext, caller: Caller, filters: Filters, *, limit: int, cursor: str | None
) -> Page:
    """One page of the office's deliveries matching ``filters``, newest first."""
    before = decode_cursor(cursor) if cursor else None
    async with ctx.sessions() as session:
        query = await _query(session, caller, filters)
        if before is not None:
            query = query.where(Delivery.id < before)
        ids = [
            int(i) for i in await session.scalars(query.order_by(_newest(filters)).limit(limit + 1))
        ]
        rows = await _rows(session, ids[:limit])
    more = len(ids) > limit
    return Page(tuple(rows), encode_cursor(rows[-1].delivery_id) if more and rows else None)


async def export(ctx: AppContext, caller: Caller, filters: Filters) -> AsyncIterator[Row]:
    """Every matching delivery (at most :data:`EXPORT_LIMIT`), newest first, read a page at a
    time so an export never holds the whole office in memory."""
    cursor: str | None = None
    sent = 0
    while sent < EXPORT_LIMIT:
        page = await find(
            ctx, caller, filters, limit=min(_EXPORT_PAGE, EXPORT_LIMIT - sent), cursor=cursor
        )
        for row in page.rows:
            yield row
        sent += len(page.rows)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
