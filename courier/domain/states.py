"""Delivery states and shipment statuses: which moves are allowed, as data.

Two machines (DESIGN §6):

* :class:`DeliveryState` — the applicant's delivery, from opt-in to handover. Moves are checked
  with :func:`check_delivery_move`, which refuses anything not in :data:`DELIVERY_MOVES`.
* :class:`adapters.base.Status` — one courier shipment (one attempt). Courier events arrive late,
  twice and out of order, so they are never "applied" blindly: :func:`next_status` folds an
  incoming status into the current one and never moves backwards (invariant 2).

Shipment ranks (what "backwards" means)::

    booking 0 < booked 1 < picked_up 2 < in_transit 3 < out_for_delivery 4 = delivery_failed 4
      < returning 5 < delivered 6 = returned 6 < cancelled 7 = lost 7 = booking_failed 7

``out_for_delivery`` and ``delivery_failed`` share a rank: a second attempt after a failed one
is a loop, not a regression. Every allowed move keeps or raises the rank, and no move leaves a
terminal status (delivered, returned, cancelled, lost, booking_failed).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from core.status import Status


class DeliveryState(enum.StrEnum):
    REQUESTED = "requested"  # opted in, passport not ready yet
    QUEUED = "queued"  # ready and opted in: waiting for routing and booking
    SHIPPING = "shipping"  # a shipment attempt is open
    DELIVERED = "delivered"  # courier says delivered; handover not yet verified
    HANDED_OVER = "handed_over"  # courier POD + applicant confirmation (verified)
    RETURNED = "returned"  # back at the office's counter
    COLLECTED_AT_OFFICE = "collected_at_office"
    NEEDS_ATTENTION = "needs_attention"  # a human must act; the reason is stored beside it
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # collect-by deadline passed without handover


class TransitionRefused(ValueError):
    """A move the rules do not allow. ``current`` and ``target`` are the enum values."""

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"move from {current} to {target} is not allowed")
        self.current = current
        self.target = target


_D = DeliveryState

DELIVERY_MOVES: Mapping[DeliveryState, frozenset[DeliveryState]] = {
    _D.REQUESTED: frozenset({_D.QUEUED, _D.NEEDS_ATTENTION, _D.CANCELLED}),
    _D.QUEUED: frozenset(
        {_D.SHIPPING, _D.NEEDS_ATTENTION, _D.COLLECTED_AT_OFFICE, _D.CANCELLED, _D.EXPIRED}
    ),
    _D.SHIPPING: frozenset(
        # back to queued: the attempt failed before pickup (booking_failed, cancelled) and the
        # office re-routes; expired: the deadline passed while the courier still held it
        {_D.DELIVERED, _D.RETURNED, _D.QUEUED, _D.NEEDS_ATTENTION, _D.CANCELLED, _D.EXPIRED}
    ),
    _D.DELIVERED: frozenset({_D.HANDED_OVER, _D.NEEDS_ATTENTION}),
    _D.RETURNED: frozenset(
        {_D.QUEUED, _D.COLLECTED_AT_OFFICE, _D.NEEDS_ATTENTION, _D.CANCELLED, _D.EXPIRED}
    ),
    _D.NEEDS_ATTENTION: frozenset(
        {
            _D.QUEUED,
            _D.SHIPPING,
            _D.DELIVERED,
            _D.HANDED_OVER,
            _D.RETURNED,
            _D.COLLECTED_AT_OFFICE,
            _D.CANCELLED,
            _D.EXPIRED,
        }
    ),
    _D.HANDED_OVER: frozenset(),
    _D.COLLECTED_AT_OFFICE: frozenset(),
    _D.CANCELLED: frozenset(),
    _D.EXPIRED: frozenset(),
}

#: Where a delivery may rest for good (invariant 3: these, or visibly in needs_attention).
FINAL_DELIVERY_STATES: frozenset[DeliveryState] = frozenset(
    s for s, targets in DELIVERY_MOVES.items() if not targets
)


def check_delivery_move(current: DeliveryState, target: DeliveryState) -> None:
    """Raise :class:`TransitionRefused` unless ``current → target`` is allowed."""
    if target not in DELIVERY_MOVES[current]:
        raise TransitionRefused(current.value, target.value)


def is_final(state: DeliveryState) -> bool:
    return state in FINAL_DELIVERY_STATES


# --------------------------------------------------------------------------------------------
# Shipment status

_S = Status

STATUS_RANK: Mapping[Status, int] = {
    _S.BOOKING: 0,
    _S.BOOKED: 1,
    _S.PICKED_UP: 2,
    _S.IN_TRANSIT: 3,
    _S.OUT_FOR_DELIVERY: 4,
    _S.DELIVERY_FAILED: 4,
    _S.RETURNING: 5,
    _S.DELIVERED: 6,
    _S.RETURNED: 6,
    _S.CANCELLED: 7,
    _S.LOST: 7,
    _S.BOOKING_FAILED: 7,
}

TERMINAL_STATUSES: frozenset[Status] = frozenset(
    {_S.DELIVERED, _S.RETURNED, _S.CANCELLED, _S.LOST, _S.BOOKING_FAILED}
)

_ANY_OPEN = frozenset({_S.CANCELLED, _S.LOST})

STATUS_MOVES: Mapping[Status, frozenset[Status]] = {
    _S.BOOKING: frozenset({_S.BOOKED, _S.BOOKING_FAILED}) | _ANY_OPEN,
    # couriers skip scans (a missed pickup scan, a parcel delivered from the hub): forward
    # jumps along the main line are allowed
    _S.BOOKED: frozenset({_S.PICKED_UP, _S.IN_TRANSIT, _S.OUT_FOR_DELIVERY, _S.DELIVERED})
    | _ANY_OPEN,
    # a hub may send a parcel back (wrong address) before any attempt: returning from transit
    _S.PICKED_UP: frozenset(
        {_S.IN_TRANSIT, _S.OUT_FOR_DELIVERY, _S.DELIVERY_FAILED, _S.DELIVERED, _S.RETURNING}
    )
    | _ANY_OPEN,
    _S.IN_TRANSIT: frozenset({_S.OUT_FOR_DELIVERY, _S.DELIVERY_FAILED, _S.DELIVERED, _S.RETURNING})
    | _ANY_OPEN,
    _S.OUT_FOR_DELIVERY: frozenset({_S.DELIVERY_FAILED, _S.DELIVERED, _S.RETURNING}) | _ANY_OPEN,
    _S.DELIVERY_FAILED: frozenset({_S.OUT_FOR_DELIVERY, _S.DELIVERED, _S.RETURNING}) | _ANY_OPEN,
    _S.RETURNING: frozenset({_S.RETURNED}) | _ANY_OPEN,
    _S.DELIVERED: frozenset(),
    _S.RETURNED: frozenset(),
    _S.CANCELLED: frozenset(),
    _S.LOST: frozenset(),
    _S.BOOKING_FAILED: frozenset(),
}


def is_open(status: Status) -> bool:
    """True while the shipment may still change (not delivered, returned, cancelled, lost,
    booking_failed)."""
    return status not in TERMINAL_STATUSES


def next_status(current: Status, incoming: Status | None) -> Status:
    """The status after an event reporting ``incoming``; ``current`` when it would not move.

    An unmapped code (``None``), a duplicate, a late event (``in_transit`` after ``delivered``)
    or anything after a terminal status changes nothing. The caller still stores the event raw:
    history keeps everything, the status only moves forward. Callers feed events in
    ``occurred_at`` order; this guard holds whatever the order.
    """
    if incoming is None or incoming == current:
        return current
    return incoming if incoming in STATUS_MOVES[current] else current


#: Where a shipment may be when a dispatcher receives its envelope back at the office: the courier
#: took it (picked up) and it is not settled. The envelope in hand is the evidence; the courier's
#: final return scan may never come (issue 9: returns without a final scan).
RETURNABLE_BY_STAFF: frozenset[Status] = frozenset(
    {_S.PICKED_UP, _S.IN_TRANSIT, _S.OUT_FOR_DELIVERY, _S.DELIVERY_FAILED, _S.RETURNING}
)

#: Where a shipment may be when a dispatcher cancels it: booked, not yet picked up.
CANCELLABLE_BY_STAFF: frozenset[Status] = frozenset({_S.BOOKED})


def check_status_move(current: Status, target: Status) -> None:
    """For deliberate moves (a dispatcher marks a shipment lost or cancelled): refuse what
    :func:`next_status` would ignore."""
    if target not in STATUS_MOVES[current]:
        raise TransitionRefused(current.value, target.value)
