"""Collect-by deadlines, working days and passport ready times.

Time rules (decided here, used everywhere):

* A passport issued at ``issued_at`` must be collected by the **end of the WIB calendar day**
  ``days`` days after the WIB issue date, i.e. 23:59:59 WIB (Permenkumham 18/2022: one month,
  30 days by default, configurable per office). It is returned as an aware UTC datetime, because
  time is stored in UTC and shown in WIB (DESIGN §4). Calendar days, not working days: the
  regulation counts a month.
* Working days are Monday–Friday that are neither Indonesian public holidays nor *cuti bersama*
  (collective leave, the ``holidays`` package's ``government`` category): the office is closed on
  both.
* ``D-10`` / ``D-3`` count WIB calendar days from today to the deadline's day.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import cache

import holidays

from core.clock import WIB

DEFAULT_COLLECT_DAYS = 30
WARNING_DAYS: tuple[int, ...] = (10, 3)
REGULAR_READY_WORKING_DAYS = 3
EXPRESS_READY_TIME = time(12, 0)
_END_OF_DAY = time(23, 59, 59)


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def collect_by(issued_at: datetime, days: int = DEFAULT_COLLECT_DAYS) -> datetime:
    """23:59:59 WIB on the ``days``-th calendar day after the WIB issue date, in UTC."""
    _require_aware(issued_at, "issued_at")
    if days < 1:
        raise ValueError("days must be at least 1")
    last_day = issued_at.astimezone(WIB).date() + timedelta(days=days)
    return datetime.combine(last_day, _END_OF_DAY, tzinfo=WIB).astimezone(UTC)


# --------------------------------------------------------------------------------------------
# Working days


def _categories() -> tuple[str, ...]:
    """Public holidays plus cuti bersama (older ``holidays`` releases may lack the government
    category: then public holidays only)."""
    supported = getattr(holidays.Indonesia, "supported_categories", ("public",))
    return tuple(c for c in ("public", "government") if c in supported)


@cache
def _closed_days(year: int) -> frozenset[date]:
    found = holidays.country_holidays("ID", years=year, categories=_categories())
    return frozenset(found.keys())


def is_working_day(d: date) -> bool:
    return d.weekday() < 5 and d not in _closed_days(d.year)


def holiday_name(d: date) -> str | None:
    """The Bahasa Indonesia name of the holiday or cuti bersama on ``d``, if any (for pages)."""
    if d not in _closed_days(d.year):
        return None
    names = holidays.country_holidays("ID", years=d.year, categories=_categories(), language="id")
    name = names.get(d)
    return str(name) if name is not None else None


def next_working_day(d: date) -> date:
    """``d`` itself when it is a working day, else the first working day after it."""
    while not is_working_day(d):
        d += timedelta(days=1)
    return d


def add_working_days(start: date, n: int) -> date:
    """The ``n``-th working day after ``start`` (``start`` itself is not counted); ``n == 0``
    returns ``start`` unchanged. Negative ``n`` is refused."""
    if n < 0:
        raise ValueError("n must not be negative")
    d = start
    while n:
        d += timedelta(days=1)
        if is_working_day(d):
            n -= 1
    return d


def working_days_between(a: date, b: date) -> int:
    """Working days ``d`` with ``a < d <= b``; negative when ``b`` is before ``a``.

    So ``working_days_between(a, add_working_days(a, n)) == n`` for every ``n >= 0``.
    """
    if b < a:
        return -working_days_between(b, a)
    count = 0
    d = a + timedelta(days=1)
    while d <= b:
        if is_working_day(d):
            count += 1
        d += timedelta(days=1)
    return count


# --------------------------------------------------------------------------------------------
# Deadline warnings


def days_left(collect_by_at: datetime, now: datetime) -> int:
    """WIB calendar days from today to the deadline's day (0 on the last day, negative after)."""
    _require_aware(collect_by_at, "collect_by")
    _require_aware(now, "now")
    return (collect_by_at.astimezone(WIB).date() - now.astimezone(WIB).date()).days


def deadline_passed(collect_by_at: datetime, now: datetime) -> bool:
    return now >= collect_by_at


def deadline_warnings(
    collect_by_at: datetime, now: datetime, thresholds: Sequence[int] = WARNING_DAYS
) -> list[str]:
    """Labels of every threshold reached, widest first: ``[]``, ``["D-10"]``,
    ``["D-10", "D-3"]``. After the deadline this stays the full list; the watcher then expires
    the delivery (:func:`deadline_passed`) and remembers which labels it already sent."""
    left = days_left(collect_by_at, now)
    return [f"D-{t}" for t in sorted(thresholds, reverse=True) if left <= t]


# --------------------------------------------------------------------------------------------
# Passport ready times (DESIGN §1)


def regular_ready_on(interview_day: date) -> date:
    """A regular passport is ready three working days after the interview."""
    return add_working_days(interview_day, REGULAR_READY_WORKING_DAYS)


def express_ready_at(interview_day: date) -> datetime:
    """An express ("percepatan") passport is collectable the same day from 12:00 WIB (UTC)."""
    return datetime.combine(interview_day, EXPRESS_READY_TIME, tzinfo=WIB).astimezone(UTC)
