"""Courier scorecards per courier and per contract, for a period and an office
(docs/decisions.md §29). Every figure is a SQL aggregate (GROUP BY in the database); no
shipment row is loaded into Python.

A shipment belongs to the period in which it was booked (``booked_at``, WIB). Its SLA is the
contract's working days for its destination, pinned on the shipment at booking
(``shipments.sla_days``), counted from the WIB day of the first scan that shows the courier has
the parcel (picked up or later) to the WIB day of delivery, through the ``working_days``
calendar (courier/domain/calendar.py). Definitions:

* ``on_time``: delivered within the SLA. ``on_time_rate = on_time / decided``, where
  ``decided`` counts the shipments whose SLA outcome is known: delivered, lost, or still open
  (picked up, not delivered, not returning) with its SLA already spent as of today. Returns are
  their own figure and stay out of the rate (the courier did try; the applicant was away).
  Shipments with no contract (an office routed by its configured courier) have no SLA.
* ``late``: delivered after the SLA, or open past it. ``penalty_exposure`` is each late
  shipment's ``penalty_late`` plus each lost one's ``penalty_lost``, by its own contract.
* pickup latency: booking to first courier scan, hours (median); transit: first courier scan
  to delivery, hours (median and p90; percentile_cont, interpolated).
* ``attempted``: delivered, or with a failed delivery attempt; ``first_attempt_success`` is
  delivered with no failed attempt; ``failed_attempts_per_delivery`` is failed attempts over
  attempted.
* data quality: ``unmapped_codes`` (events no table maps), ``missing_pod`` (delivered with no
  proof stored).
* ``cost_per_delivered``: the shipments' cost (the contract's tariff, pinned at booking) over
  delivered ones; satisfaction: the applicants' 1-4 ratings of delivered shipments.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    Date,
    Float,
    Select,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from core.clock import WIB
from core.status import Status
from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import (
    Contract,
    ContractOffice,
    Delivery,
    Office,
    Proof,
    Rating,
    Shipment,
    TrackingEventRow,
    WorkingDay,
)
from courier.domain import calendar
from courier.services.errors import Kind, ServiceError, invalid
from courier.services.staff import Caller
from schemas import FieldError

# the first scan that shows the courier holds the parcel
_HELD = (
    Status.PICKED_UP.value,
    Status.IN_TRANSIT.value,
    Status.OUT_FOR_DELIVERY.value,
    Status.DELIVERY_FAILED.value,
    Status.DELIVERED.value,
    Status.RETURNING.value,
    Status.RETURNED.value,
)
# picked up and neither delivered, nor coming back, nor closed: the SLA still runs
_UNDERWAY = (
    Status.PICKED_UP.value,
    Status.IN_TRANSIT.value,
    Status.OUT_FOR_DELIVERY.value,
    Status.DELIVERY_FAILED.value,
)
MAX_CALENDAR_YEARS = 12

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")


@dataclass(frozen=True)
class Period:
    label: str
    first: date  # WIB days, inclusive
    last: date
    contract_id: int | None = None  # a contract's term: only its shipments


@dataclass(frozen=True)
class Figures:
    courier_code: str
    contract_id: int | None
    contract_number: str | None
    month: str | None
    shipments: int
    delivered: int
    on_time: int
    decided: int
    on_time_rate: float | None
    late: int
    pickup_latency_median_hours: float | None
    transit_median_hours: float | None
    transit_p90_hours: float | None
    attempted: int
    first_attempt_success: int
    first_attempt_success_rate: float | None
    failed_attempts: int
    failed_attempts_per_delivery: float | None
    returns: int
    losses: int
    unmapped_codes: int
    missing_pod: int
    cost_total: int
    cost_per_delivered: float | None
    penalty_exposure: int
    satisfaction_mean: float | None
    satisfaction_count: int


@dataclass(frozen=True)
class Scorecard:
    period: str
    office_code: str
    first: date
    last: date
    as_of: datetime
    couriers: tuple[Figures, ...]
    contracts: tuple[Figures, ...]
    months: tuple[Figures, ...]  # per courier and month


FIGURE_NAMES = tuple(f.name for f in fields(Figures))


# --------------------------------------------------------------------------------------------
# Periods


def _month_end(year: int, month: int) -> date:
    nxt = date(year + month // 12, month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def parse_period(text: str) -> Period:
    """``2026-10`` (a month), ``2026Q4`` (a quarter); a contract's term is
    :func:`contract_period`. Else a field error on ``period``."""
    if m := _MONTH.match(text):
        year, month = int(m[1]), int(m[2])
        if 1 <= month <= 12 and year >= calendar.EPOCH.year:
            return Period(text, date(year, month, 1), _month_end(year, month))
    if m := _QUARTER.match(text):
        year, q = int(m[1]), int(m[2])
        if year >= calendar.EPOCH.year:
            return Period(text, date(year, 3 * q - 2, 1), _month_end(year, 3 * q))
    raise invalid(
        [
            FieldError(
                "url.period", "must be a month like 2026-10, a quarter like 2026Q4 or contract"
            )
        ]
    )


def _start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=WIB).astimezone(UTC)


# --------------------------------------------------------------------------------------------
# The working-day calendar


def _years(first_year: int, last_year: int) -> range:
    years = range(max(first_year, calendar.EPOCH.year), last_year + 1)
    if len(years) > MAX_CALENDAR_YEARS:
        years = range(last_year - MAX_CALENDAR_YEARS + 1, last_year + 1)
    return years


async def _missing_years(session: AsyncSession, first_year: int, last_year: int) -> list[int]:
    missing = []
    for year in _years(first_year, last_year):
        have = await session.scalar(
            select(func.count())
            .select_from(WorkingDay)
            .where(WorkingDay.day >= date(year, 1, 1), WorkingDay.day <= date(year, 12, 31))
        )
        if have != len(calendar.year_rows(year)):
            missing.append(year)
    return missing


async def ensure_calendar(session: AsyncSession, first_year: int, last_year: int) -> None:
    """Fill the ``working_days`` rows of these years where missing (idempotent: concurrent
    fillers insert the same rows and the primary key keeps one)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for year in await _missing_years(session, first_year, last_year):
        values = [{"day": d, "ordinal": o, "working": w} for d, o, w in calendar.year_rows(year)]
        await session.execute(insert(WorkingDay).values(values).on_conflict_do_nothing())


# --------------------------------------------------------------------------------------------
# SQL pieces that differ between PostgreSQL and SQLite


def _wib_day(dialect: str, column: Any) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return cast(func.timezone("Asia/Jakarta", column), Date)
    return func.date(column, "+7 hours")


def _wib_month(dialect: str, column: Any) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.to_char(func.timezone("Asia/Jakarta", column), "YYYY-MM")
    return func.strftime("%Y-%m", column, "+7 hours")


def _hours(dialect: str, later: Any, earlier: Any) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier) / 3600.0
    return (func.julianday(later) - func.julianday(earlier)) * 24.0


def _n(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


# --------------------------------------------------------------------------------------------
# The aggregate


def _rows(
    dialect: str,
    *,
    office_id: int | None,
    start: datetime,
    end: datetime,
    contract_ids: Sequence[int] | None,
    today_ordinal: int,
) -> Any:
    """One row per shipment booked in [start, end): the facts every figure is made of. The
    period's shipments are chosen first (``ix_shipments_booked_at``), and only their events are
    aggregated (``ix_tracking_events_shipment``; on PostgreSQL a LATERAL look-up per shipment,
    on SQLite a grouped join): the cost follows the period, not the table."""
    chosen = select(
        Shipment.id,
        Shipment.delivery_id,
        Shipment.courier_code,
        Shipment.contract_id,
        Shipment.sla_days,
        Shipment.status,
        Shipment.cost,
        Shipment.booked_at,
    ).where(Shipment.booked_at.is_not(None), Shipment.booked_at >= start, Shipment.booked_at < end)
    if office_id is not None:
        # a scalar look-up per shipment (the primary key), not a semi-join: the planner would
        # hash every delivery of the table to keep one month's
        office_of = (
            select(Delivery.office_id).where(Delivery.id == Shipment.delivery_id).scalar_subquery()
        )
        chosen = chosen.where(office_of == office_id)
    if contract_ids is not None:
        chosen = chosen.where(Shipment.contract_id.in_(contract_ids))
    s = chosen.cte("period")
    te = TrackingEventRow
    aggregates = (
        func.min(case((te.status.in_(_HELD), te.occurred_at))).label("held_at"),
        func.min(case((te.status == Status.DELIVERED.value, te.occurred_at))).label("delivered_at"),
        _n(te.status == Status.DELIVERY_FAILED.value).label("failed"),
        _n(te.status.is_(None)).label("unmapped"),
    )
    if dialect == "postgresql":
        events: Any = select(*aggregates).where(te.shipment_id == s.c.id).lateral("events")
        joined: Any = s.join(events, literal(True))
    else:
        grouped = (
            select(te.shipment_id.label("shipment_id"), *aggregates)
            .join(s, s.c.id == te.shipment_id)
            .group_by(te.shipment_id)
            .subquery("events")
        )
        events = grouped
        joined = s.outerjoin(grouped, grouped.c.shipment_id == s.c.id)
    held_day = WorkingDay.__table__.alias("held_day")
    done_day = WorkingDay.__table__.alias("done_day")
    delivered = s.c.status == Status.DELIVERED.value
    spent = done_day.c.ordinal - held_day.c.ordinal
    has_sla = s.c.sla_days.is_not(None)
    on_time = and_(delivered, has_sla, spent <= s.c.sla_days)
    late_delivered = and_(delivered, has_sla, spent > s.c.sla_days)
    overdue = and_(
        s.c.status.in_(_UNDERWAY),
        has_sla,
        literal(today_ordinal) - held_day.c.ordinal > s.c.sla_days,
    )
    lost = s.c.status == Status.LOST.value
    failed = func.coalesce(events.c.failed, 0)
    late = or_(late_delivered, overdue)
    query = (
        select(
            s.c.courier_code.label("courier_code"),
            s.c.contract_id.label("contract_id"),
            Contract.number.label("contract_number"),
            _wib_month(dialect, s.c.booked_at).label("month"),
            case((delivered, 1), else_=0).label("is_delivered"),
            case((on_time, 1), else_=0).label("is_on_time"),
            case((or_(and_(delivered, has_sla), and_(lost, has_sla), overdue), 1), else_=0).label(
                "is_decided"
            ),
            case((late, 1), else_=0).label("is_late"),
            case((late, Contract.penalty_late), else_=0).label("p_late"),
            case((lost, Contract.penalty_lost), else_=0).label("p_lost"),
            _hours(dialect, events.c.held_at, s.c.booked_at).label("pickup_hours"),
            case(
                (delivered, _hours(dialect, events.c.delivered_at, events.c.held_at)),
            ).label("transit_hours"),
            case((or_(delivered, failed > 0), 1), else_=0).label("is_attempted"),
            case((and_(delivered, failed == 0), 1), else_=0).label("is_first_ok"),
            failed.label("failed"),
            case(
                (s.c.status.in_((Status.RETURNING.value, Status.RETURNED.value)), 1), else_=0
            ).label("is_return"),
            case((lost, 1), else_=0).label("is_lost"),
            func.coalesce(events.c.unmapped, 0).label("unmapped"),
            case((and_(delivered, ~exists().where(Proof.shipment_id == s.c.id)), 1), else_=0).label(
                "no_pod"
            ),
            func.coalesce(s.c.cost, 0).label("cost"),
            case((delivered, Rating.score)).label("score"),
        )
        .select_from(joined)
        .outerjoin(Contract, Contract.id == s.c.contract_id)
        .outerjoin(held_day, held_day.c.day == _wib_day(dialect, events.c.held_at))
        .outerjoin(done_day, done_day.c.day == _wib_day(dialect, events.c.delivered_at))
        .outerjoin(Rating, Rating.delivery_id == s.c.delivery_id)
    )
    return query.cte("facts")


_GROUPS = {
    "courier": ("courier_code",),
    "contract": ("courier_code", "contract_id", "contract_number"),
    "month": ("courier_code", "month"),
}


def _ratio(num: ColumnElement[Any], den: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((den > 0, cast(num, Float) / den))


def _aggregate(dialect: str, facts: Any, keys: Sequence[str]) -> Select[Any]:
    c = facts.c
    delivered = func.sum(c.is_delivered)
    decided = func.sum(c.is_decided)
    attempted = func.sum(c.is_attempted)
    columns: list[Any] = [c[k] for k in keys]
    columns += [
        func.count().label("shipments"),
        delivered.label("delivered"),
        func.sum(c.is_on_time).label("on_time"),
        decided.label("decided"),
        _ratio(func.sum(c.is_on_time), decided).label("on_time_rate"),
        func.sum(c.is_late).label("late"),
        attempted.label("attempted"),
        func.sum(c.is_first_ok).label("first_attempt_success"),
        _ratio(func.sum(c.is_first_ok), attempted).label("first_attempt_success_rate"),
        func.sum(c.failed).label("failed_attempts"),
        _ratio(func.sum(c.failed), attempted).label("failed_attempts_per_delivery"),
        func.sum(c.is_return).label("returns"),
        func.sum(c.is_lost).label("losses"),
        func.sum(c.unmapped).label("unmapped_codes"),
        func.sum(c.no_pod).label("missing_pod"),
        func.sum(c.cost).label("cost_total"),
        _ratio(func.sum(c.cost), delivered).label("cost_per_delivered"),
        func.sum(func.coalesce(c.p_late, 0) + func.coalesce(c.p_lost, 0)).label("penalty_exposure"),
        func.avg(cast(c.score, Float)).label("satisfaction_mean"),
        func.count(c.score).label("satisfaction_count"),
    ]
    if dialect == "postgresql":
        columns += [
            func.percentile_cont(0.5).within_group(c.pickup_hours).label("pickup_median"),
            func.percentile_cont(0.5).within_group(c.transit_hours).label("transit_median"),
            func.percentile_cont(0.9).within_group(c.transit_hours).label("transit_p90"),
        ]
    return select(*columns).group_by(*[c[k] for k in keys])


def _percentile_sqlite(facts: Any, keys: Sequence[str], column: str, p: float) -> Select[Any]:
    """percentile_cont for SQLite, still set-based: rank the values per group with window
    functions, then take the two around position p·(n-1) and interpolate."""
    c = facts.c
    value = c[column]
    partition = [c[k] for k in keys]
    ranked = (
        select(
            *partition,
            value.label("v"),
            (func.row_number().over(partition_by=partition, order_by=value) - 1).label("i"),
            func.count().over(partition_by=partition).label("n"),
        )
        .where(value.is_not(None))
        .subquery("ranked")
    )
    r = ranked.c
    pos = (r.n - 1) * p
    floor = cast(pos, sqlite.INTEGER)
    frac = pos - floor
    picked = func.sum(
        case((r.i == floor, r.v * (1 - frac)), else_=0)
        + case((r.i == floor + 1, r.v * frac), else_=0)
    )
    return select(*[r[k] for k in keys], picked.label("value")).group_by(*[r[k] for k in keys])


_KEYS = ("courier_code", "contract_id", "contract_number", "month")


async def _levels(session: AsyncSession, facts: Any) -> dict[str, list[Figures]]:
    """Figures per courier, per contract and per courier and month. PostgreSQL: one statement
    with GROUPING SETS (the facts computed once); SQLite: one statement per level and
    percentile."""
    dialect = session.get_bind().dialect.name
    if dialect != "postgresql":
        return {level: await _figures_sqlite(session, facts, level) for level in _GROUPS}
    c = facts.c
    sets = func.grouping_sets(*(tuple_(*(c[k] for k in keys)) for keys in _GROUPS.values()))
    query = _aggregate(dialect, facts, _KEYS).group_by(None).group_by(sets)
    query = query.add_columns(
        func.grouping(c.contract_id).label("g_contract"), func.grouping(c.month).label("g_month")
    )
    out: dict[str, list[Figures]] = {level: [] for level in _GROUPS}
    for row in await session.execute(query):
        data = dict(row._mapping)
        level = (
            "contract"
            if data["g_contract"] == 0
            else "month"
            if data["g_month"] == 0
            else "courier"
        )
        for key in _KEYS:
            if key not in _GROUPS[level]:
                data[key] = None
        out[level].append(_as_figures(data))
    return out


async def _figures_sqlite(session: AsyncSession, facts: Any, level: str) -> list[Figures]:
    keys = _GROUPS[level]
    rows = [dict(r._mapping) for r in (await session.execute(_aggregate("sqlite", facts, keys)))]
    for name, column, p in (
        ("pickup_median", "pickup_hours", 0.5),
        ("transit_median", "transit_hours", 0.5),
        ("transit_p90", "transit_hours", 0.9),
    ):
        found = {
            tuple(r[:-1]): r[-1]
            for r in (await session.execute(_percentile_sqlite(facts, keys, column, p)))
        }
        for row in rows:
            row[name] = found.get(tuple(row[k] for k in keys))
    return [_as_figures(row) for row in rows]


def _f(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


def _as_figures(row: dict[str, Any]) -> Figures:
    count = {
        k: int(row.get(k) or 0)
        for k in (
            "shipments",
            "delivered",
            "on_time",
            "decided",
            "late",
            "attempted",
            "first_attempt_success",
            "failed_attempts",
            "returns",
            "losses",
            "unmapped_codes",
            "missing_pod",
            "cost_total",
            "penalty_exposure",
            "satisfaction_count",
        )
    }
    contract_id = row.get("contract_id")
    return Figures(
        courier_code=str(row["courier_code"]),
        contract_id=int(contract_id) if contract_id is not None else None,
        contract_number=row.get("contract_number"),
        month=row.get("month"),
        on_time_rate=_f(row["on_time_rate"]),
        pickup_latency_median_hours=_f(row.get("pickup_median")),
        transit_median_hours=_f(row.get("transit_median")),
        transit_p90_hours=_f(row.get("transit_p90")),
        first_attempt_success_rate=_f(row["first_attempt_success_rate"]),
        failed_attempts_per_delivery=_f(row["failed_attempts_per_delivery"]),
        cost_per_delivered=_f(row["cost_per_delivered"]),
        satisfaction_mean=_f(row["satisfaction_mean"]),
        **count,
    )


def _sorted(figures: list[Figures]) -> tuple[Figures, ...]:
    return tuple(
        sorted(figures, key=lambda f: (f.courier_code, f.contract_number or "", f.month or ""))
    )


# --------------------------------------------------------------------------------------------
# Use cases


async def recent_on_time(
    session: AsyncSession, contract_ids: Sequence[int], *, since: datetime, now: datetime
) -> dict[int, float]:
    """Each contract's on-time rate over shipments booked from ``since`` to ``now`` (routing's
    last tie-break), where any is decided. Runs in the caller's transaction."""
    if not contract_ids:
        return {}
    today = now.astimezone(WIB).date()
    await ensure_calendar(session, since.astimezone(WIB).year, today.year)
    facts = _rows(
        session.get_bind().dialect.name,
        office_id=None,
        start=since,
        end=now,
        contract_ids=contract_ids,
        today_ordinal=calendar.ordinal(today),
    )
    figures = (await _levels(session, facts))["contract"]
    return {
        f.contract_id: f.on_time_rate
        for f in figures
        if f.contract_id is not None and f.on_time_rate is not None
    }


async def scorecard(
    ctx: AppContext, caller: Caller, *, period: str, office_code: str | None = None
) -> Scorecard:
    """The scorecard of the caller's office (``office_code`` must be it when given) for
    ``period``: ``2026-10``, ``2026Q4`` or ``contract:<number>`` (that contract's term). Reads
    only, except the first time a year's calendar is needed (a short write of its rows)."""
    now = ctx.clock.now()
    today = now.astimezone(WIB).date()
    async with ctx.sessions() as session:
        office = await session.get(Office, caller.office_id)
        if office is None or (office_code is not None and office_code != office.code):
            raise ServiceError(Kind.NOT_FOUND, "unknown_office", "no such office")
        chosen = await _period(session, caller, period)
        years = (chosen.first.year, max(today.year, chosen.last.year))
        missing = await _missing_years(session, *years)
    if missing:
        async with transaction(ctx.sessions) as session:
            await ensure_calendar(session, *years)
    async with ctx.sessions() as session:
        dialect = session.get_bind().dialect.name
        facts = _rows(
            dialect,
            office_id=office.id,
            start=_start(chosen.first),
            end=_start(chosen.last + timedelta(days=1)),
            contract_ids=None if chosen.contract_id is None else [chosen.contract_id],
            today_ordinal=calendar.ordinal(today),
        )
        if dialect == "postgresql":
            # compiling this one statement to machine code costs more than running it
            await session.execute(text("SET LOCAL jit = off"))
        levels = await _levels(session, facts)
    return Scorecard(
        period=chosen.label,
        office_code=office.code,
        first=chosen.first,
        last=chosen.last,
        as_of=now,
        couriers=_sorted(levels["courier"]),
        contracts=_sorted([f for f in levels["contract"] if f.contract_id]),
        months=_sorted(levels["month"]),
    )


async def _period(session: AsyncSession, caller: Caller, label: str) -> Period:
    if not label.startswith("contract:"):
        return parse_period(label)
    number = label.removeprefix("contract:")
    row = await session.scalar(
        select(Contract).where(
            Contract.number == number,
            exists().where(
                ContractOffice.contract_id == Contract.id,
                ContractOffice.office_id == caller.office_id,
            ),
        )
    )
    if row is None:
        raise invalid([FieldError("url.period", "no contract with this number serves the office")])
    return Period(label, row.valid_from, row.valid_to, contract_id=row.id)
