"""What booking does next, as a pure table (invariant 1: one courier order per attempt).

Every step of a booking ends in something that happened (:class:`Event`: the courier answered,
refused, could not be reached, said the outcome is unknown…). Given that event, what was just
tried (:class:`Step`), what the courier allows (:class:`Courier`), whether a create may already
have reached it and how many reconciliations were tried, :func:`decide` names the one
:class:`Action`: book, reject, resend the same reference, look it up, wait, or ask a person.
``courier/services/booking.py`` only carries the decision out (I/O); the table is tested row by
row in ``tests/unit/domain/test_booking_decision.py``.

The rules it encodes, each a row below:

* a new reference is never minted for an attempt: "resend" always sends the same one;
* the same reference is resent only when that cannot make a second order: the courier is known
  to refuse a reused reference (J&T "Orderid tidak boleh sama"), or the last create certainly
  never reached it (refused before sending: 429, connection refused, circuit open, 401);
* a courier that can neither be asked nor is known to dedupe, with an order that may exist,
  goes to a person at once: waiting cannot settle it;
* an outcome still unknown after ``max_reconciliations`` goes to a person, never to a second
  order;
* a lookup whose route is missing (HTTP 404/405) or that is not configured is a capability
  fact, not an outage: a courier that dedupes is reconciled by resending, and its duplicate
  answer ("Orderid tidak boleh sama") means the order exists (one reconciliation counted);
* an answer we do not understand goes to a person at once (the order may exist);
* an exception the code did not foresee (building, signing, parsing) counts as a spent try,
  backs off, and goes to a person once ``max_reconciliations`` are spent: never a hot loop;
* every booking ends: once it is older than the service's booking deadline, whatever would
  have waited goes to a person instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Step(StrEnum):
    """What was just tried."""

    CREATE = "create"  # the attempt's first create
    RECLAIM = "reclaim"  # a shipment left in ``booking`` was claimed again (lease ran out)
    LOOKUP = "lookup"  # asked the courier for the order by our reference
    RESEND = "resend"  # sent the same reference again
    CONFIRM = "confirm"  # looked it up because the resend's answer was unknown (the duplicate)


class Event(StrEnum):
    """What happened, in the courier's terms (the service maps ``adapters.base`` errors here)."""

    BOOKED = "booked"  # a create answered with a waybill
    FOUND = "found"  # a lookup found the order
    NOT_FOUND = "not_found"  # a lookup answered: no such order (yet)
    STARTED = "started"  # nothing yet: the reclaimed shipment's next step
    REJECTED = "rejected"  # the courier refused the order: permanent
    UNKNOWN = "unknown"  # a create that may or may not have made the order
    RATE_LIMITED = "rate_limited"  # 429 or our own quota: refused before anything happened
    UNAVAILABLE = "unavailable"  # 5xx, timeout before sending, connection refused, circuit open
    AUTH_FAILED = "auth_failed"  # credentials refused: staff must fix the configuration
    FAILED = "failed"  # any other courier error (an operation it does not offer)
    NO_ADAPTER = "no_adapter"  # the shipment's courier is not configured in this process
    #: the courier refused the reference as already used (J&T "Orderid tidak boleh sama")
    DUPLICATE = "duplicate"
    #: the lookup itself is missing (route 404/405) or not configured: a capability fact
    NO_LOOKUP = "no_lookup"
    #: the courier answered in a shape we do not understand: the order may exist
    NOT_UNDERSTOOD = "not_understood"
    #: an exception the code did not foresee (building, signing, parsing the answer)
    FAULT = "fault"
    #: our request could not be built, signed or encoded: nothing reached the courier
    UNSENDABLE = "unsendable"


class Action(StrEnum):
    BOOK = "book"  # record the waybill: booked
    REJECT = "reject"  # booking_failed; the delivery to needs_attention with the reason
    RESEND = "resend"  # commit "a create may be in flight", then send the same reference
    LOOK_UP = "look_up"  # ask the courier by reference
    WAIT = "wait"  # leave it in ``booking``; try again after a backoff
    ASK_PERSON = "ask_person"  # park it; needs_attention with an item saying what to check


class Why(StrEnum):
    """Why a person is asked (the item's text differs)."""

    UNVERIFIABLE = "unverifiable"  # cannot be asked, not known to dedupe, may exist
    STILL_UNKNOWN = "still_unknown"  # max_reconciliations spent
    EXISTS = "exists"  # the courier says the order exists; its waybill must be read by a person
    NOT_UNDERSTOOD = "not_understood"  # the courier's answer was not understood
    FAULT = "fault"  # the code failed on every try (building, signing, parsing)
    OVERDUE = "overdue"  # the booking deadline passed without an outcome


@dataclass(frozen=True, slots=True)
class Courier:
    """What the courier's configured account allows (``adapters.base.Capabilities``)."""

    can_find: bool
    dedupes: bool


@dataclass(frozen=True, slots=True)
class Situation:
    step: Step
    event: Event
    courier: Courier
    #: the last create may have reached the courier (``shipments.create_may_exist``)
    may_exist: bool = True
    reconciliations: int = 0  # counted so far for this shipment
    max_reconciliations: int = 5
    #: the attempt's very first create: its unknown outcome is not yet a reconciliation
    first_create: bool = False
    #: the booking is older than the service's booking deadline (``worker.booking_deadline``)
    overdue: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    #: the order may exist (WAIT: look again, with the reconciliation backoff)
    unknown: bool = False
    #: one more reconciliation spent (an unknown outcome after the attempt's first create)
    counts: bool = False
    #: what to record in ``create_may_exist`` after this step: True/False, or None to keep it
    may_exist: bool | None = None
    why: Why | None = None  # ASK_PERSON only
    alert_auth: bool = False  # open the courier-credentials item too


_SENDS = frozenset({Step.CREATE, Step.RESEND})


def _wait_unknown(s: Situation) -> Decision:
    """The order may exist and nothing settles it now: look again later, counting; a person
    once ``max_reconciliations`` are spent."""
    counts = not s.first_create
    if s.reconciliations + counts >= s.max_reconciliations:
        return Decision(
            Action.ASK_PERSON, unknown=True, counts=counts, may_exist=True, why=Why.STILL_UNKNOWN
        )
    return Decision(Action.WAIT, unknown=True, counts=counts, may_exist=True)


def _resend_is_safe(s: Situation) -> bool:
    return s.courier.dedupes or not s.may_exist


def decide(s: Situation) -> Decision:
    """The one next action for a booking in situation ``s``. Past the booking deadline nothing
    waits any more: a person is asked instead (the order may or may not exist, as recorded)."""
    decision = _decide(s)
    if s.overdue and decision.action is Action.WAIT:
        return Decision(
            Action.ASK_PERSON,
            unknown=decision.unknown,
            counts=decision.counts,
            may_exist=decision.may_exist,
            why=Why.OVERDUE,
        )
    return decision


def _resend_or_person(s: Situation) -> Decision:
    """No lookup to ask: resend when that cannot make a second order, else a person."""
    if _resend_is_safe(s):
        return Decision(Action.RESEND)
    return Decision(Action.ASK_PERSON, why=Why.UNVERIFIABLE)


def _unknown(s: Situation) -> Decision:
    """A create that may or may not have made the order."""
    if not s.courier.dedupes:
        # a second send could make a second order and nobody can be asked: only a person
        return Decision(Action.ASK_PERSON, may_exist=True, why=Why.UNVERIFIABLE)
    if s.step is Step.RESEND and s.courier.can_find:
        # most likely the duplicate answer: the order exists, ask for its waybill
        return Decision(Action.LOOK_UP, may_exist=True)
    return _wait_unknown(s)


def _duplicate(s: Situation) -> Decision:
    """The courier refused the reference as already used."""
    if not s.courier.dedupes:
        # a duplicate answer we only infer (Pos "102"): as unknown as any other
        return Decision(Action.ASK_PERSON, may_exist=True, why=Why.UNVERIFIABLE)
    if s.courier.can_find:
        return Decision(Action.LOOK_UP, may_exist=True)
    # the courier itself says the order exists: reconciled (counted), but only its portal
    # shows the waybill
    return Decision(Action.ASK_PERSON, unknown=True, counts=True, may_exist=True, why=Why.EXISTS)


def _fault(s: Situation) -> Decision:
    """One try spent, whatever failed; after ``max_reconciliations`` of them, a person. A
    request that could not even be built left nothing at the courier."""
    sent = False if s.event is Event.UNSENDABLE and s.step in _SENDS else None
    if s.reconciliations + 1 >= s.max_reconciliations:
        return Decision(Action.ASK_PERSON, counts=True, may_exist=sent, why=Why.FAULT)
    return Decision(Action.WAIT, counts=True, may_exist=sent)


def _started(s: Situation) -> Decision:
    """A reclaimed shipment's first step."""
    if not s.may_exist:
        # the last create certainly never reached the courier: nothing to look up
        return Decision(Action.RESEND)
    if s.courier.can_find:
        return Decision(Action.LOOK_UP)
    return _resend_or_person(s)


def _not_found(s: Situation) -> Decision:
    if s.step is Step.LOOKUP and _resend_is_safe(s):
        return Decision(Action.RESEND)
    # a lookup may lag behind a create it has not seen yet; after a resend in this job,
    # resending again would only loop on the duplicate answer
    return _wait_unknown(s)


def _rejected(s: Situation) -> Decision:
    # only a create's refusal is about the order; a refused lookup says nothing about it
    return Decision(Action.REJECT) if s.step in _SENDS else Decision(Action.WAIT)


def _transient(s: Situation) -> Decision:
    # a create refused this way never reached the courier: a resend later is safe
    reached = False if s.step in _SENDS else None
    return Decision(Action.WAIT, may_exist=reached, alert_auth=s.event is Event.AUTH_FAILED)


_RULES: dict[Event, Callable[[Situation], Decision]] = {
    Event.BOOKED: lambda s: Decision(Action.BOOK),
    Event.FOUND: lambda s: Decision(Action.BOOK),
    Event.REJECTED: _rejected,
    Event.NO_ADAPTER: lambda s: Decision(Action.WAIT),
    Event.RATE_LIMITED: _transient,
    Event.UNAVAILABLE: _transient,
    Event.AUTH_FAILED: _transient,
    Event.FAILED: _transient,
    Event.UNKNOWN: _unknown,
    Event.DUPLICATE: _duplicate,
    Event.NOT_UNDERSTOOD: lambda s: Decision(
        Action.ASK_PERSON, may_exist=True, why=Why.NOT_UNDERSTOOD
    ),
    Event.FAULT: _fault,
    Event.UNSENDABLE: _fault,
    Event.NO_LOOKUP: _resend_or_person,
    Event.STARTED: _started,
    Event.NOT_FOUND: _not_found,
}


def _decide(s: Situation) -> Decision:
    return _RULES[s.event](s)  # every Event has a rule (a test checks each situation)
