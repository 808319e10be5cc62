from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.clock import WIB
from core.status import Status
from courier.domain.states import TERMINAL_STATUSES
from courier.domain.watch import (
    next_pickup_slot,
    next_poll_at,
    stuck_after,
    unconfirmed_after,
)


def wib(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=WIB)


def test_next_pickup_slot_same_day_next_day_and_after_weekend() -> None:
    assert next_pickup_slot(wib(2, 9)) == wib(2, 14).astimezone(UTC)  # Monday morning
    assert next_pickup_slot(wib(2, 14)) == wib(3, 14).astimezone(UTC)  # strictly after
    assert next_pickup_slot(wib(6, 15)) == wib(9, 14).astimezone(UTC)  # Friday → Monday
    slots = (time(10, 0), time(15, 0))
    assert next_pickup_slot(wib(2, 11), slots) == wib(2, 15).astimezone(UTC)
    # Wed 23 Dec after the slot: 24 cuti bersama, 25 Christmas, weekend → Mon 28 Dec
    assert next_pickup_slot(wib(23, 16, month=12)) == wib(28, 14, month=12).astimezone(UTC)
    with pytest.raises(ValueError):
        next_pickup_slot(wib(2, 9), ())


def test_stuck_after() -> None:
    since = wib(2, 9)
    assert stuck_after(Status.BOOKED, since) == wib(2, 17).astimezone(UTC)  # 14:00 + 3 h
    assert stuck_after(Status.IN_TRANSIT, since) == since + timedelta(days=3)
    assert stuck_after(Status.OUT_FOR_DELIVERY, since) == since + timedelta(days=1)
    assert stuck_after(Status.PICKED_UP, since) == since + timedelta(days=1)
    for status in TERMINAL_STATUSES:
        assert stuck_after(status, since) is None
    assert stuck_after(Status.BOOKED, since, (time(16, 0),), pickup_margin=timedelta(0)) == (
        wib(2, 16).astimezone(UTC)
    )


def test_unconfirmed_after() -> None:
    delivered = wib(5, 11)
    assert unconfirmed_after(delivered) == delivered + timedelta(days=3)
    assert unconfirmed_after(delivered, 7) == delivered + timedelta(days=7)
    assert unconfirmed_after(delivered).tzinfo is UTC


def test_polling_waits_for_the_pickup_slot_after_booking() -> None:
    now, slot = wib(2, 9), wib(2, 14)
    assert next_poll_at(Status.BOOKED, None, now, slot) == slot + timedelta(minutes=15)
    # around and after the slot: every 30 minutes
    near = wib(2, 13, 50)
    assert next_poll_at(Status.BOOKED, None, near, slot) == near + timedelta(minutes=30)


def test_polling_is_rare_in_transit_and_frequent_out_for_delivery() -> None:
    now = wib(3, 10)
    in_transit = next_poll_at(Status.IN_TRANSIT, now - timedelta(hours=1), now, None)
    out = next_poll_at(Status.OUT_FOR_DELIVERY, now - timedelta(minutes=5), now, None)
    assert in_transit == now + timedelta(hours=4)
    assert out == now + timedelta(minutes=20)
    # transit moves at night: polled round the clock
    night = wib(3, 23)
    assert next_poll_at(Status.IN_TRANSIT, None, night, None) == night + timedelta(hours=4)


def test_last_mile_is_not_polled_at_night() -> None:
    late = wib(3, 20, 50)
    assert next_poll_at(Status.OUT_FOR_DELIVERY, late, late, None) == wib(4, 7).astimezone(UTC)
    early = wib(4, 3)
    assert next_poll_at(Status.DELIVERY_FAILED, None, early, None) == wib(4, 7).astimezone(UTC)


def test_stale_out_for_delivery_backs_off() -> None:
    now = wib(4, 10)
    stale = now - timedelta(hours=13)
    assert next_poll_at(Status.OUT_FOR_DELIVERY, stale, now, None) == now + timedelta(hours=1)


def test_terminal_and_booking_are_never_polled() -> None:
    now = wib(3, 10)
    for status in (*TERMINAL_STATUSES, Status.BOOKING):
        assert next_poll_at(status, now, now, now) is None


@given(
    status=st.sampled_from(list(Status)),
    now=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
    ),
    last_ago=st.one_of(st.none(), st.timedeltas(min_value=timedelta(0), max_value=timedelta(9))),
    slot_in=st.one_of(st.none(), st.timedeltas(min_value=-timedelta(2), max_value=timedelta(3))),
)
def test_next_poll_is_always_in_the_future(
    status: Status,
    now: datetime,
    last_ago: timedelta | None,
    slot_in: timedelta | None,
) -> None:
    last = None if last_ago is None else now - last_ago
    slot = None if slot_in is None else now + slot_in
    when = next_poll_at(status, last, now, slot)
    if status in TERMINAL_STATUSES or status is Status.BOOKING:
        assert when is None
    else:
        assert when is not None and now < when <= now + timedelta(days=4)
