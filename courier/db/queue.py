"""The queue: claiming work with leases, one atomic statement, the same shape on both databases.

The worker reaches the database only through this module (claims, renewals, releases, the
tracking and inbox claims) and :mod:`courier.db.outage`; everything else it does is a use case
of courier/services. An import-linter contract in pyproject.toml holds it to that.

A claim is one ``UPDATE … RETURNING`` over a bounded sub-select::

    WITH picked AS MATERIALIZED (
        SELECT id FROM deliveries
        WHERE state = 'queued' AND next_attempt_at due AND lease free or expired
        ORDER BY priority DESC, collect_by ASC NULLS LAST, id
        LIMIT :n
        FOR UPDATE SKIP LOCKED            -- PostgreSQL only
    )
    UPDATE deliveries SET lease_owner = :me, lease_until = :now + lease,
                          claim_count = claim_count + 1
    WHERE id IN (SELECT id FROM picked)
    RETURNING id

* PostgreSQL: ``SKIP LOCKED`` lets any number of workers claim side by side without waiting on
  each other; ``MATERIALIZED`` is an optimisation fence, so the planner cannot turn the
  ``LIMIT`` sub-query into a nested loop that updates more rows than asked (Oban's lesson).
* SQLite: the compiler drops ``FOR UPDATE``; exclusion comes from ``BEGIN IMMEDIATE`` (every
  transaction takes the write lock first, see courier/db/engine.py), so the select and the
  update cannot interleave with another writer.

A lease is a promise with an expiry, not a lock: a worker that dies simply stops renewing, and
once ``lease_until`` has passed the row is claimable again. So whoever runs the work must be safe
to run twice: booking reconciles by its deterministic reference (courier/services/booking.py).
Every later write by the claimer is a compare-and-set on ``lease_owner``, so a worker whose
lease was taken over cannot overwrite the new owner's result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, Table, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from core.status import Status
from courier import metrics
from courier.db.engine import SessionFactory, transaction
from courier.db.models import Delivery, InboxItem, OutboxItem, Shipment
from courier.domain.states import DeliveryState

_DELIVERIES: Table = Delivery.__table__  # type: ignore[assignment]
_SHIPMENTS: Table = Shipment.__table__  # type: ignore[assignment]
_OUTBOX: Table = OutboxItem.__table__  # type: ignore[assignment]


def _lease_free(table: Table, now: datetime) -> ColumnElement[bool]:
    return or_(table.c.lease_until.is_(None), table.c.lease_until <= now)


async def _claim(
    session: AsyncSession,
    table: Table,
    picked_query: Select[tuple[int]],
    *,
    owner: str,
    now: datetime,
    lease_seconds: float,
    kind: str,
) -> list[int]:
    # the picked rows carry whether their previous lease ran out (a worker died or stalled with
    # the row in hand: a release clears ``lease_until``), for courier_lease_expiries_total
    picked = (
        picked_query.add_columns(table.c.lease_until.is_not(None).label("expired"))
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED")
    )
    expired = select(picked.c.expired).where(picked.c.id == table.c.id).scalar_subquery()
    stmt = (
        update(table)
        .where(table.c.id.in_(select(picked.c.id)))
        .values(
            lease_owner=owner,
            lease_until=now + timedelta(seconds=lease_seconds),
            claim_count=table.c.claim_count + 1,
        )
        .returning(table.c.id, expired)
    )
    rows = (await session.execute(stmt)).all()
    metrics.count_claims(kind, len(rows))
    metrics.count_lease_expiry(kind, sum(1 for row in rows if row[1]))
    return [int(row[0]) for row in rows]


async def claim_deliveries(
    sessions: SessionFactory,
    *,
    owner: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
) -> list[int]:
    """Queued deliveries that are due and not leased, best first: priority cases and express
    passports (higher ``priority``), then the nearest collect-by deadline. At most ``limit``."""
    if limit <= 0:
        return []
    d = _DELIVERIES
    query = (
        select(d.c.id)
        .where(
            d.c.state == DeliveryState.QUEUED.value,
            or_(d.c.next_attempt_at.is_(None), d.c.next_attempt_at <= now),
            _lease_free(d, now),
        )
        .order_by(d.c.priority.desc(), d.c.collect_by.asc().nulls_last(), d.c.id)
        .limit(limit)
    )
    async with transaction(sessions) as session:
        ids = await _claim(
            session, d, query, owner=owner, now=now, lease_seconds=lease_seconds, kind="book"
        )
        if not ids:
            return []
        # RETURNING order is unspecified: give them back in claim order
        rows = await session.execute(
            select(d.c.id)
            .where(d.c.id.in_(ids))
            .order_by(d.c.priority.desc(), d.c.collect_by.asc().nulls_last(), d.c.id)
        )
        return [int(r[0]) for r in rows]


async def claim_stuck_bookings(
    sessions: SessionFactory,
    *,
    owner: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
    max_reconciliations: int,
) -> list[int]:
    """Shipments left in ``booking`` whose lease has expired (a worker died or gave up between
    the intent and the result) and whose next reconciliation is due (``next_poll_at`` holds it
    while a shipment is in ``booking``). Those that reached ``max_reconciliations`` wait for a
    human and are never claimed again."""
    if limit <= 0:
        return []
    s = _SHIPMENTS
    query = (
        select(s.c.id)
        .where(
            s.c.status == Status.BOOKING.value,
            s.c.reconcile_count < max_reconciliations,
            or_(s.c.next_poll_at.is_(None), s.c.next_poll_at <= now),
            _lease_free(s, now),
        )
        .order_by(s.c.next_poll_at.asc().nulls_first(), s.c.id)
        .limit(limit)
    )
    async with transaction(sessions) as session:
        return sorted(
            await _claim(
                session,
                s,
                query,
                owner=owner,
                now=now,
                lease_seconds=lease_seconds,
                kind="reconcile",
            )
        )


async def renew(
    sessions: SessionFactory, *, owner: str, now: datetime, lease_seconds: float
) -> int:
    """Push out every still-valid lease this worker holds on booking work (queued deliveries
    and shipments in ``booking``). An already expired lease is not revived: someone else may be
    about to take it, and the compare-and-set at commit time settles who wins."""
    until = now + timedelta(seconds=lease_seconds)
    renewed = 0
    async with transaction(sessions) as session:
        for table, extra in (
            (_DELIVERIES, _DELIVERIES.c.state == DeliveryState.QUEUED.value),
            (_SHIPMENTS, _SHIPMENTS.c.status == Status.BOOKING.value),
        ):
            result = await session.execute(
                update(table)
                .where(table.c.lease_owner == owner, table.c.lease_until > now, extra)
                .values(lease_until=until)
            )
            renewed += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return renewed


async def _release(
    sessions: SessionFactory, table: Table, ids: Sequence[int], owner: str, **later: object
) -> int:
    """Clear ``owner``'s leases on ``ids`` (a compare-and-set: a lease taken over stays), setting
    the not-before column in ``later`` when it is given."""
    if not ids:
        return 0
    values: dict[str, object] = {"lease_owner": None, "lease_until": None}
    values.update({k: v for k, v in later.items() if v is not None})
    async with transaction(sessions) as session:
        result = await session.execute(
            update(table)
            .where(table.c.id.in_(list(ids)), table.c.lease_owner == owner)
            .values(**values)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def release_deliveries(
    sessions: SessionFactory,
    ids: Sequence[int],
    *,
    owner: str,
    next_attempt_at: datetime | None = None,
) -> int:
    """Give claimed deliveries back (not worked on); optionally not before ``next_attempt_at``."""
    return await _release(sessions, _DELIVERIES, ids, owner, next_attempt_at=next_attempt_at)


async def release_shipments(
    sessions: SessionFactory,
    ids: Sequence[int],
    *,
    owner: str,
    next_poll_at: datetime | None = None,
) -> int:
    """Give claimed shipments back; optionally not claimable before ``next_poll_at``."""
    return await _release(sessions, _SHIPMENTS, ids, owner, next_poll_at=next_poll_at)


async def release_all(sessions: SessionFactory, *, owner: str) -> int:
    """On shutdown: give back the leases on work this worker has not sent to a courier yet
    (queued deliveries), so another worker can take it at once instead of waiting for the
    expiry.

    A shipment in ``booking`` keeps its lease: its create (or resend) may have been cancelled
    mid-flight and reached the courier. Released, it would be claimed at once and settled by
    a fresh send while the first may still be landing; left to expire, it is reconciled by
    reference like any crash (courier/services/booking.py).
    """
    d = _DELIVERIES
    async with transaction(sessions) as session:
        result = await session.execute(
            update(d).where(d.c.lease_owner == owner).values(lease_owner=None, lease_until=None)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def release_held(sessions: SessionFactory, *, owner: str) -> int:
    """Give back every booking lease ``owner`` holds: queued deliveries and shipments in
    ``booking``. Only for a worker with nothing in flight (between two batches): a shipment it
    releases is reconciled by reference by whoever claims it next, never sent blindly."""
    released = 0
    async with transaction(sessions) as session:
        for table, extra in (
            (_DELIVERIES, _DELIVERIES.c.state == DeliveryState.QUEUED.value),
            (_SHIPMENTS, _SHIPMENTS.c.status == Status.BOOKING.value),
        ):
            result = await session.execute(
                update(table)
                .where(table.c.lease_owner == owner, extra)
                .values(lease_owner=None, lease_until=None)
            )
            released += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return released


async def held_by(sessions: SessionFactory, owner: str) -> int:
    """How many rows ``owner`` holds a lease on (for drain checks and tests)."""
    async with sessions() as session:
        total = 0
        for table in (_DELIVERIES, _SHIPMENTS):
            rows = await session.execute(select(table.c.id).where(table.c.lease_owner == owner))
            total += len(rows.all())
        return total


# statuses a poll can still move forward
TRACKED = tuple(
    s.value
    for s in (
        Status.BOOKED,
        Status.PICKED_UP,
        Status.IN_TRANSIT,
        Status.OUT_FOR_DELIVERY,
        Status.DELIVERY_FAILED,
        Status.RETURNING,
    )
)


@dataclass(frozen=True)
class ClaimedPoll:
    id: int
    courier_code: str
    waybill: str
    claim_count: int


async def claim_due_polls(
    sessions: SessionFactory, *, owner: str, now: datetime, lease_seconds: float, limit: int
) -> list[ClaimedPoll]:
    """Lease up to ``limit`` shipments due for a poll, earliest due first."""
    s = _SHIPMENTS
    picked = (
        select(s.c.id)
        .where(
            s.c.status.in_(TRACKED),
            s.c.waybill.is_not(None),
            s.c.next_poll_at.is_not(None),
            s.c.next_poll_at <= now,
            or_(s.c.lease_until.is_(None), s.c.lease_until <= now),
        )
        .order_by(s.c.next_poll_at, s.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED")
    )
    stmt = (
        update(s)
        .where(s.c.id.in_(select(picked.c.id)))
        .values(
            lease_owner=owner,
            lease_until=now + timedelta(seconds=lease_seconds),
            claim_count=s.c.claim_count + 1,
        )
        .returning(s.c.id, s.c.courier_code, s.c.waybill, s.c.claim_count)
    )
    async with transaction(sessions) as session:
        rows = (await session.execute(stmt)).all()
    metrics.count_claims("track", len(rows))
    return sorted(
        (ClaimedPoll(int(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows), key=lambda c: c.id
    )


async def take_inbox(
    session: AsyncSession, *, now: datetime, limit: int, max_attempts: int
) -> list[InboxItem]:
    """Lock up to ``limit`` inbox rows due now, oldest first, skipping rows other workers hold
    (PostgreSQL; SQLite serialises writers). The lock lasts the caller's transaction."""
    result = await session.execute(
        select(InboxItem)
        .where(
            InboxItem.processed_at.is_(None),
            InboxItem.attempts < max_attempts,
            or_(InboxItem.next_attempt_at.is_(None), InboxItem.next_attempt_at <= now),
        )
        .order_by(InboxItem.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(result.scalars())


async def claim_outbox(
    sessions: SessionFactory, *, owner: str, now: datetime, lease_seconds: float, limit: int
) -> list[int]:
    """Lease up to ``limit`` notifications due now (not sent, not given up), oldest due first.
    The same claim as deliveries: any number of senders side by side, a dead sender's rows
    claimable again once its lease has run out."""
    if limit <= 0:
        return []
    o = _OUTBOX
    query = (
        select(o.c.id)
        .where(
            o.c.sent_at.is_(None),
            o.c.failed_at.is_(None),
            or_(o.c.next_attempt_at.is_(None), o.c.next_attempt_at <= now),
            _lease_free(o, now),
        )
        .order_by(o.c.next_attempt_at.asc().nulls_first(), o.c.id)
        .limit(limit)
    )
    async with transaction(sessions) as session:
        return sorted(
            await _claim(
                session, o, query, owner=owner, now=now, lease_seconds=lease_seconds, kind="outbox"
            )
        )


async def release_outbox(sessions: SessionFactory, ids: Sequence[int], *, owner: str) -> int:
    """Give claimed notifications back untouched (a sender stopping mid-batch)."""
    return await _release(sessions, _OUTBOX, ids, owner)


def asyncpg_dsn(database_url: str) -> str | None:
    """The plain ``postgresql://`` DSN asyncpg wants, or None when the database is not PG."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)
