"""The working-day calendar as rows, for SQL (docs/decisions.md §29).

``ordinal(d)`` is the number of working days (courier/domain/deadlines.py: Monday-Friday that
are neither public holidays nor cuti bersama) from :data:`EPOCH` up to and including ``d``. A
non-working day has the ordinal of the working day before it, so the working days ``w`` with
``a < w <= b`` number ``ordinal(b) - ordinal(a)``, for any two days, by one subtraction: the
scorecards count an SLA in working days with two joins on a table of these rows instead of a
loop over days.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache

from courier.domain.deadlines import is_working_day

EPOCH = date(2020, 1, 1)


@cache
def _ordinal_before(year: int) -> int:
    """Working days from EPOCH up to and including 31 December of ``year - 1``."""
    if year <= EPOCH.year:
        return 0
    return _ordinal_before(year - 1) + sum(1 for _, _, w in _days(year - 1, 0) if w)


def _days(year: int, start: int) -> list[tuple[date, int, bool]]:
    rows = []
    count = start
    d = date(year, 1, 1)
    while d.year == year:
        working = is_working_day(d)
        count += int(working)
        rows.append((d, count, working))
        d += timedelta(days=1)
    return rows


@cache
def year_rows(year: int) -> tuple[tuple[date, int, bool], ...]:
    """Every day of ``year``: (day, ordinal, working)."""
    if year < EPOCH.year:
        raise ValueError(f"the calendar starts in {EPOCH.year}")
    return tuple(_days(year, _ordinal_before(year)))


def ordinal(d: date) -> int:
    return year_rows(d.year)[d.timetuple().tm_yday - 1][1]
