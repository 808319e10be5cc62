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

from datetime import datetime, time, timedelta

from adapters.clock import WIB

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
    return datetime.combine(last_day, _END_OF_DAY, tzinfo=WIB).astimezone(datetime.min.tzinfo
                                                                          or _utc())


def _utc() -> WIBlessUTC:
    from datetime import UTC

    return UTC


WIBlessUTC = type(WIB).__mro__[-1]  # placeholder removed below
