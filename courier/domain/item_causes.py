"""When an open exception item's cause is gone: the delivery reached a state in which what the
item asks for no longer applies (the passport was collected, handed over, re-booked, …).

:data:`GONE_WHEN` maps a delivery state to the kinds of item it makes stale; the move itself
(:func:`courier.services.lifecycle.move_delivery`) closes them, with the mover as who and the
state as why. Kinds not listed for a state stay open: they ask for something that outlives it
(a claim for a lost parcel, a cancel at the courier's counter, a mapping for an unknown code, a
missing proof of delivery under the contract).
"""

from __future__ import annotations

from collections.abc import Mapping

from courier.domain.exception_kinds import ExceptionKind as K
from courier.domain.states import DeliveryState as S

BOOKING: frozenset[K] = frozenset(
    {
        K.BOOKING_REJECTED,
        K.BOOKING_UNKNOWN,
        K.BOOKING_EXISTS,
        K.ANSWER_NOT_UNDERSTOOD,
        K.BOOKING_FAULT,
        K.ROUTING,
        K.ADDRESS_INCOMPLETE,
    }
)
# what one booking attempt's answer said: a new attempt (a new shipment) has its own item for it,
# so re-queueing closes these; routing, an incomplete address and a booking fault are about the
# delivery, and stay open until a booking succeeds
_ATTEMPT: frozenset[K] = frozenset(
    {K.BOOKING_REJECTED, K.BOOKING_UNKNOWN, K.BOOKING_EXISTS, K.ANSWER_NOT_UNDERSTOOD}
)
_ON_THE_WAY: frozenset[K] = frozenset({K.DELIVERY_FAILED, K.STUCK, K.RETURN_OVERDUE})
_HANDOVER: frozenset[K] = frozenset(
    {K.HANDOVER_REVIEW, K.HANDOVER_EXCEPTION, K.HANDOVER_LOCKED, K.UNCONFIRMED}
)
_OUTLIVE: frozenset[K] = frozenset(
    {K.SHIPMENT_LOST, K.CANCEL_AT_COURIER, K.UNMAPPED_CODE, K.POD_MISSING, K.EXPIRED}
)
_EVERY: frozenset[K] = frozenset(K)

GONE_WHEN: Mapping[S, frozenset[K]] = {
    # a new attempt: what stopped the old one (or brought the passport back) is behind it
    S.QUEUED: _ATTEMPT
    | _ON_THE_WAY
    | {K.RETURNED, K.HANDOVER_REFUSED, K.SHIPMENT_CANCELLED, K.DEADLINE_WARNING},
    S.SHIPPING: BOOKING,
    S.DELIVERED: BOOKING | _ON_THE_WAY,
    S.RETURNED: BOOKING | _ON_THE_WAY | {K.HANDOVER_REFUSED},
    # the passport is with its holder: nothing about getting it there is left to do
    S.HANDED_OVER: _EVERY - _OUTLIVE,
    S.COLLECTED_AT_OFFICE: _EVERY - _OUTLIVE,
    S.CANCELLED: BOOKING | _ON_THE_WAY | _HANDOVER | {K.DEADLINE_WARNING},
    S.EXPIRED: BOOKING | _ON_THE_WAY | _HANDOVER | {K.DEADLINE_WARNING},
}


def gone_when(state: S) -> tuple[str, ...]:
    """The kinds (values, sorted) whose items a move into ``state`` closes."""
    return tuple(sorted(k.value for k in GONE_WHEN.get(state, frozenset())))
