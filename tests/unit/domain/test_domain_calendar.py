"""The working-day calendar's ordinals (courier/domain/calendar.py) agree with deadlines.py's
day-by-day count, across weekends, holidays, cuti bersama and the turn of a year."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from courier.domain import calendar
from courier.domain.deadlines import working_days_between

DAYS = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))


@given(DAYS, st.integers(min_value=0, max_value=60))
def test_ordinal_difference_is_the_working_days_between(a: date, span: int) -> None:
    b = a + timedelta(days=span)
    assert calendar.ordinal(b) - calendar.ordinal(a) == working_days_between(a, b)


def test_christmas_2026_and_the_new_year() -> None:
    # Wed 23 Dec → Mon 28 Dec: cuti bersama 24, Natal 25, a weekend: one working day
    assert calendar.ordinal(date(2026, 12, 28)) - calendar.ordinal(date(2026, 12, 23)) == 1
    rows = calendar.year_rows(2027)
    assert len(rows) == 365 and rows[0] == (date(2027, 1, 1), rows[0][1], False)
    assert rows[0][1] == calendar.ordinal(date(2026, 12, 31))
