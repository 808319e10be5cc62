from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.clock import WIB
from courier.domain.deadlines import (
    add_working_days,
    collect_by,
    days_left,
    deadline_passed,
    deadline_warnings,
    express_ready_at,
    holiday_name,
    is_working_day,
    next_working_day,
    regular_ready_on,
    working_days_between,
)


def test_collect_by_is_end_of_the_thirtieth_wib_day_in_utc() -> None:
    # 2026-11-02 09:00 WIB → deadline 2026-12-02 23:59:59 WIB = 16:59:59 UTC
    issued = datetime(2026, 11, 2, 9, 0, tzinfo=WIB)
    deadline = collect_by(issued)
    assert deadline == datetime(2026, 12, 2, 16, 59, 59, tzinfo=UTC)
    assert deadline.tzinfo is UTC


def test_collect_by_uses_the_wib_date_not_the_utc_date() -> None:
    # 2026-11-01 20:00 UTC is already 2026-11-02 03:00 WIB
    issued = datetime(2026, 11, 1, 20, 0, tzinfo=UTC)
    assert collect_by(issued, days=1).astimezone(WIB).date() == date(2026, 11, 3)


def test_collect_by_refuses_naive_and_nonsense() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        collect_by(datetime(2026, 11, 2, 9, 0))
    with pytest.raises(ValueError):
        collect_by(datetime(2026, 11, 2, tzinfo=UTC), days=0)


def test_weekends_holidays_and_cuti_bersama_are_not_working_days() -> None:
    assert is_working_day(date(2026, 11, 2))  # Monday
    assert not is_working_day(date(2026, 11, 7))  # Saturday
    assert not is_working_day(date(2026, 8, 17))  # Independence Day (a Monday)
    assert not is_working_day(date(2026, 12, 25))  # Christmas (Friday)
    assert not is_working_day(date(2026, 12, 24))  # cuti bersama Natal (Thursday)
    assert not is_working_day(date(2026, 3, 23))  # cuti bersama Idul Fitri (Monday)
    assert holiday_name(date(2026, 12, 24)) is not None
    assert holiday_name(date(2026, 11, 2)) is None


def test_add_working_days_skips_closed_days() -> None:
    assert add_working_days(date(2026, 11, 2), 3) == date(2026, 11, 5)  # Mon → Thu
    assert add_working_days(date(2026, 11, 5), 3) == date(2026, 11, 10)  # Thu → Tue
    # Wed 23 Dec 2026 + 1: 24 (cuti bersama), 25 (Christmas), weekend → Mon 28
    assert add_working_days(date(2026, 12, 23), 1) == date(2026, 12, 28)
    assert add_working_days(date(2026, 11, 7), 0) == date(2026, 11, 7)
    with pytest.raises(ValueError):
        add_working_days(date(2026, 11, 2), -1)


def test_working_days_between() -> None:
    assert working_days_between(date(2026, 11, 2), date(2026, 11, 9)) == 5
    assert working_days_between(date(2026, 11, 9), date(2026, 11, 2)) == -5
    assert working_days_between(date(2026, 11, 7), date(2026, 11, 8)) == 0
    assert next_working_day(date(2026, 11, 7)) == date(2026, 11, 9)


dates = st.dates(min_value=date(2024, 1, 1), max_value=date(2028, 12, 31))


@given(start=dates, n=st.integers(min_value=0, max_value=60))
def test_add_and_count_agree(start: date, n: int) -> None:
    end = add_working_days(start, n)
    assert working_days_between(start, end) == n
    assert end >= start
    if n:
        assert is_working_day(end)


@given(a=dates, b=dates)
def test_between_is_antisymmetric_and_bounded(a: date, b: date) -> None:
    assert working_days_between(a, b) == -working_days_between(b, a)
    assert abs(working_days_between(a, b)) <= abs((b - a).days)


def at(day: int) -> datetime:
    return datetime(2026, 11, day, 8, 0, tzinfo=WIB)


def test_deadline_warnings_at_d10_and_d3() -> None:
    deadline = collect_by(datetime(2026, 11, 2, 9, 0, tzinfo=WIB))  # 2 Dec 23:59:59 WIB
    assert deadline_warnings(deadline, at(21)) == []  # D-11
    assert deadline_warnings(deadline, at(22)) == ["D-10"]
    assert deadline_warnings(deadline, at(28)) == ["D-10"]  # D-4
    assert deadline_warnings(deadline, at(29)) == ["D-10", "D-3"]
    last_day = datetime(2026, 12, 2, 23, 0, tzinfo=WIB)
    assert days_left(deadline, last_day) == 0
    assert not deadline_passed(deadline, last_day)
    assert deadline_passed(deadline, deadline)
    assert deadline_passed(deadline, deadline + timedelta(seconds=1))


def test_deadline_warnings_count_wib_days() -> None:
    deadline = collect_by(datetime(2026, 11, 2, 9, 0, tzinfo=WIB))
    # 2026-11-21 18:00 UTC is 22 Nov 01:00 WIB: D-10 already
    assert deadline_warnings(deadline, datetime(2026, 11, 21, 18, 0, tzinfo=UTC)) == ["D-10"]


def test_passport_ready_times() -> None:
    assert regular_ready_on(date(2026, 11, 5)) == date(2026, 11, 10)  # Thu → Tue
    assert express_ready_at(date(2026, 11, 5)) == datetime(2026, 11, 5, 5, 0, tzinfo=UTC)
