"""Pure rules behind the worker's watchers and its tracking poll schedule (issue 4).

* :func:`stuck_after` — when a shipment that has heard nothing since ``since`` counts as stuck;
* :func:`unconfirmed_after` — when a delivered passport the applicant has not confirmed becomes
  an exception;
* :func:`next_poll_at` — adaptive polling for couriers that do not push: the next poll follows
  the next event we expect.

All datetimes are aware; results are UTC. Pickup slots are WIB wall-clock times on working days
(the courier does not come on weekends, public holidays or cuti bersama).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta

from core.clock import WIB
from core.status import Status
from courier.domain.deadlines import is_working_day
from courier.domain.states import TERMINAL_STATUSES

DEFAULT_PICKUP_SLOTS: tuple[time, ...] = (time(14, 0),)
PICKUP_MARGIN = timedelta(hours=3)
UNCONFIRMED_DAYS = 3

# How long a status may go without any new event before dispatch is told. ``booked`` is not
# here: it waits for the next pickup slot (plus a margin) instead.
STUCK_LIMITS: Mapping[Status, timedelta] = {
    Status.BOOKING: timedelta(hours=1),  # the booking loop reconciles long before this
    Status.PICKED_UP: timedelta(days=1),
    Status.IN_TRANSIT: timedelta(days=3),
    Status.OUT_FOR_DELIVERY: timedelta(days=1),
    Status.DELIVERY_FAILED: timedelta(days=2),  # a new attempt or a return is due
    Status.RETURNING: timedelta(days=5),
}

# Poll intervals per status (couriers that do not push). Last-mile statuses are polled often
# but only in daytime; line-haul moves at night too, so transit is polled round the clock.
POLL_INTERVALS: Mapping[Status, timedelta] = {
    Status.BOOKED: timedelta(minutes=30),  # once the pickup slot is near or past
    Status.PICKED_UP: timedelta(hours=3),
    Status.IN_TRANSIT: timedelta(hours=4),
    Status.OUT_FOR_DELIVERY: timedelta(minutes=20),
    Status.DELIVERY_FAILED: timedelta(hours=2),
    Status.RETURNING: timedelta(hours=6),
}
_DAYTIME_ONLY = frozenset({Status.BOOKED, Status.OUT_FOR_DELIVERY, Status.DELIVERY_FAILED})
_DAY_START, _DAY_END = time(7, 0), time(21, 0)
_AFTER_SLOT = timedelta(minutes=15)  # the courier's pickup scan lands shortly after the slot
_SLOT_LEAD = timedelta(minutes=30)  # start polling often this long before the slot
_STALE_LAST_MILE = timedelta(hours=12)
_MIN_GAP = timedelta(minutes=1)


def next_pickup_slot(after: datetime, slots: Sequence[time] = DEFAULT_PICKUP_SLOTS) -> datetime:
    """The first pickup slot strictly after ``after``, on a working day, in UTC."""
    if not slots:
        raise ValueError("at least one pickup slot is needed")
    local = after.astimezone(WIB)
    day = local.date()
    while True:
        if is_working_day(day):
            for slot in sorted(slots):
                at = datetime.combine(day, slot, tzinfo=WIB)
                if at > local:
                    return at.astimezone(UTC)
        day += timedelta(days=1)


def stuck_after(
    status: Status,
    since: datetime,
    pickup_slots: Sequence[time] = DEFAULT_PICKUP_SLOTS,
    *,
    pickup_margin: timedelta = PICKUP_MARGIN,
) -> datetime | None:
    """When a shipment in ``status`` with no event since ``since`` becomes stuck; None for a
    terminal status (nothing more is expected). ``booked``: the first pickup slot after
    ``since`` plus ``pickup_margin``."""
    if status in TERMINAL_STATUSES:
        return None
    if status is Status.BOOKED:
        return next_pickup_slot(since, pickup_slots) + pickup_margin
    return (since + STUCK_LIMITS[status]).astimezone(UTC)


def unconfirmed_after(delivered_at: datetime, days: int = UNCONFIRMED_DAYS) -> datetime:
    """When a delivered-but-unconfirmed handover goes to the exceptions queue."""
    if days < 0:
        raise ValueError("days must not be negative")
    return (delivered_at + timedelta(days=days)).astimezone(UTC)


def _into_daytime(when: datetime) -> datetime:
    local = when.astimezone(WIB)
    if local.time() < _DAY_START:
        local = datetime.combine(local.date(), _DAY_START, tzinfo=WIB)
    elif local.time() >= _DAY_END:
        local = datetime.combine(local.date() + timedelta(days=1), _DAY_START, tzinfo=WIB)
    return local.astimezone(UTC)


def next_poll_at(
    status: Status,
    last_event_at: datetime | None,
    now: datetime,
    pickup_slot_next: datetime | None,
) -> datetime | None:
    """When to ask the courier again; None when polling makes no sense (terminal statuses, and
    ``booking``, which has no waybill yet). Always later than ``now``.

    * ``booked``: wait until shortly after ``pickup_slot_next`` when it is still ahead, then
      every 30 minutes until the pickup scan appears;
    * ``picked_up`` / ``in_transit``: every few hours, day and night;
    * ``out_for_delivery``: every 20 minutes in daytime (07:00–21:00 WIB), hourly once the last
      event is more than 12 hours old (the courier closed the day without a scan);
    * ``delivery_failed``: every 2 hours in daytime; ``returning``: every 6 hours.
    """
    if status in TERMINAL_STATUSES or status is Status.BOOKING:
        return None
    interval = POLL_INTERVALS[status]
    when = now + interval
    slot_ahead = pickup_slot_next is not None and now < pickup_slot_next - _SLOT_LEAD
    if status is Status.BOOKED and pickup_slot_next is not None and slot_ahead:
        when = pickup_slot_next + _AFTER_SLOT
    stale = last_event_at is not None and now - last_event_at > _STALE_LAST_MILE
    if status is Status.OUT_FOR_DELIVERY and stale:
        when = now + timedelta(hours=1)
    if status in _DAYTIME_ONLY:
        when = _into_daytime(when)
    return max(when, now + _MIN_GAP).astimezone(UTC)
