"""The booking decision, row by row: one courier order per attempt, whatever happened."""

from __future__ import annotations

import itertools

import pytest

from courier.domain.booking_decision import (
    Action,
    Courier,
    Decision,
    Event,
    Situation,
    Step,
    Why,
    decide,
)

JNT = Courier(can_find=True, dedupes=True)  # JMS lookup configured; refuses a reused orderid
JNT_NO_LOOKUP = Courier(can_find=False, dedupes=True)  # legacy account without getOrders
POS = Courier(can_find=False, dedupes=False)  # no lookup, duplicate check only inferred
FINDS_ONLY = Courier(can_find=True, dedupes=False)  # can be asked, not known to dedupe

LIMIT = 3
WAIT_UNKNOWN = Decision(Action.WAIT, unknown=True, counts=True, may_exist=True)
PERSON_UNKNOWN = Decision(
    Action.ASK_PERSON, unknown=True, counts=True, may_exist=True, why=Why.STILL_UNKNOWN
)
PERSON_UNVERIFIABLE = Decision(Action.ASK_PERSON, may_exist=True, why=Why.UNVERIFIABLE)

# step, event, courier, may_exist, reconciliations → decision
ROWS: list[tuple[Step, Event, Courier, bool, int, Decision]] = [
    # an answer with a waybill is booked, however it came
    (Step.CREATE, Event.BOOKED, POS, True, 0, Decision(Action.BOOK)),
    (Step.RESEND, Event.BOOKED, JNT, True, 2, Decision(Action.BOOK)),
    (Step.LOOKUP, Event.FOUND, JNT, True, 1, Decision(Action.BOOK)),
    (Step.CONFIRM, Event.FOUND, JNT, True, 0, Decision(Action.BOOK)),
    # a refusal is final: booking_failed, a person fixes the data
    (Step.CREATE, Event.REJECTED, JNT, True, 0, Decision(Action.REJECT)),
    (Step.RESEND, Event.REJECTED, POS, False, 1, Decision(Action.REJECT)),
    # a refused lookup says nothing about the order: never booking_failed for it
    (Step.LOOKUP, Event.REJECTED, JNT, True, 1, Decision(Action.WAIT)),
    (Step.CONFIRM, Event.REJECTED, JNT, True, 1, Decision(Action.WAIT)),
    # the first create's unknown outcome: J&T waits (not yet a reconciliation), Pos to a person
    (
        Step.CREATE,
        Event.UNKNOWN,
        JNT,
        True,
        0,
        Decision(Action.WAIT, unknown=True, counts=False, may_exist=True),
    ),
    (Step.CREATE, Event.UNKNOWN, POS, True, 0, PERSON_UNVERIFIABLE),
    (Step.CREATE, Event.UNKNOWN, FINDS_ONLY, True, 0, PERSON_UNVERIFIABLE),
    # refused before it could reach the courier: wait, and record that nothing was made
    (Step.CREATE, Event.RATE_LIMITED, POS, True, 0, Decision(Action.WAIT, may_exist=False)),
    (Step.CREATE, Event.UNAVAILABLE, JNT, True, 0, Decision(Action.WAIT, may_exist=False)),
    (
        Step.CREATE,
        Event.AUTH_FAILED,
        JNT,
        True,
        0,
        Decision(Action.WAIT, may_exist=False, alert_auth=True),
    ),
    (Step.RESEND, Event.UNAVAILABLE, POS, True, 1, Decision(Action.WAIT, may_exist=False)),
    (Step.CREATE, Event.FAILED, JNT, True, 0, Decision(Action.WAIT, may_exist=False)),
    # a lookup that failed changes nothing about the create
    (Step.LOOKUP, Event.UNAVAILABLE, JNT, True, 1, Decision(Action.WAIT)),
    (Step.LOOKUP, Event.RATE_LIMITED, JNT, False, 1, Decision(Action.WAIT)),
    (Step.CONFIRM, Event.UNAVAILABLE, JNT, True, 1, Decision(Action.WAIT)),
    # a reclaimed shipment: look it up if the courier can be asked…
    (Step.RECLAIM, Event.STARTED, JNT, True, 1, Decision(Action.LOOK_UP)),
    (Step.RECLAIM, Event.STARTED, FINDS_ONLY, True, 1, Decision(Action.LOOK_UP)),
    # …else resend the same reference when that cannot make a second order…
    (Step.RECLAIM, Event.STARTED, JNT_NO_LOOKUP, True, 1, Decision(Action.RESEND)),
    (Step.RECLAIM, Event.STARTED, POS, False, 1, Decision(Action.RESEND)),
    # …else only a person can settle it
    (
        Step.RECLAIM,
        Event.STARTED,
        POS,
        True,
        1,
        Decision(Action.ASK_PERSON, why=Why.UNVERIFIABLE),
    ),
    # not found: resend when safe, else look again later (a lookup may lag)
    (Step.LOOKUP, Event.NOT_FOUND, JNT, True, 1, Decision(Action.RESEND)),
    (Step.LOOKUP, Event.NOT_FOUND, FINDS_ONLY, False, 1, Decision(Action.RESEND)),
    (Step.LOOKUP, Event.NOT_FOUND, FINDS_ONLY, True, 1, WAIT_UNKNOWN),
    (Step.LOOKUP, Event.NOT_FOUND, FINDS_ONLY, True, LIMIT - 1, PERSON_UNKNOWN),
    # a resend answered "unknown" (J&T's duplicate answer): look it up, or wait counting
    (Step.RESEND, Event.UNKNOWN, JNT, True, 1, Decision(Action.LOOK_UP, may_exist=True)),
    (Step.RESEND, Event.UNKNOWN, JNT_NO_LOOKUP, True, 1, WAIT_UNKNOWN),
    (Step.RESEND, Event.UNKNOWN, JNT_NO_LOOKUP, True, LIMIT - 1, PERSON_UNKNOWN),
    (Step.RESEND, Event.UNKNOWN, POS, True, 0, PERSON_UNVERIFIABLE),
    # the duplicate answer, then "not found": never resend again in the same job
    (Step.CONFIRM, Event.NOT_FOUND, JNT, True, 0, WAIT_UNKNOWN),
    (Step.CONFIRM, Event.NOT_FOUND, JNT, True, LIMIT - 1, PERSON_UNKNOWN),
    # the shipment's courier is not configured in this process: wait, count nothing
    (Step.RECLAIM, Event.NO_ADAPTER, POS, True, 2, Decision(Action.WAIT)),
    # a create refused before it reached the courier (429, refused, circuit, 401): resend,
    # no lookup needed (nothing can exist), whatever the courier
    (Step.RECLAIM, Event.STARTED, JNT, False, 0, Decision(Action.RESEND)),
    (Step.RECLAIM, Event.STARTED, FINDS_ONLY, False, 0, Decision(Action.RESEND)),
    # the lookup route is missing (404/405) or not configured: a capability fact, not an
    # outage; reconcile by resending when the courier dedupes (or nothing can exist)
    (Step.LOOKUP, Event.NO_LOOKUP, JNT, True, 0, Decision(Action.RESEND)),
    (Step.LOOKUP, Event.NO_LOOKUP, JNT_NO_LOOKUP, True, 3, Decision(Action.RESEND)),
    (Step.LOOKUP, Event.NO_LOOKUP, FINDS_ONLY, False, 1, Decision(Action.RESEND)),
    (
        Step.LOOKUP,
        Event.NO_LOOKUP,
        FINDS_ONLY,
        True,
        1,
        Decision(Action.ASK_PERSON, why=Why.UNVERIFIABLE),
    ),
    # the duplicate answer: the order exists. Look its waybill up when the courier can be
    # asked; else a person reads it in the portal (one reconciliation counted)
    (Step.RESEND, Event.DUPLICATE, JNT, True, 1, Decision(Action.LOOK_UP, may_exist=True)),
    (
        Step.RESEND,
        Event.DUPLICATE,
        JNT_NO_LOOKUP,
        True,
        0,
        Decision(Action.ASK_PERSON, unknown=True, counts=True, may_exist=True, why=Why.EXISTS),
    ),
    (Step.CREATE, Event.DUPLICATE, POS, True, 0, PERSON_UNVERIFIABLE),
    # an answer we do not understand: the order may exist; a person checks the portal
    (
        Step.CREATE,
        Event.NOT_UNDERSTOOD,
        POS,
        True,
        0,
        Decision(Action.ASK_PERSON, may_exist=True, why=Why.NOT_UNDERSTOOD),
    ),
    (
        Step.RESEND,
        Event.NOT_UNDERSTOOD,
        JNT,
        True,
        2,
        Decision(Action.ASK_PERSON, may_exist=True, why=Why.NOT_UNDERSTOOD),
    ),
    # our request could not be built (a lone surrogate): nothing was sent; a try spent
    (
        Step.CREATE,
        Event.UNSENDABLE,
        POS,
        True,
        0,
        Decision(Action.WAIT, counts=True, may_exist=False),
    ),
    (
        Step.RESEND,
        Event.UNSENDABLE,
        POS,
        False,
        LIMIT - 1,
        Decision(Action.ASK_PERSON, counts=True, may_exist=False, why=Why.FAULT),
    ),
    # an exception the code did not foresee: a try spent, back off; a person at the limit
    (Step.CREATE, Event.FAULT, JNT, True, 0, Decision(Action.WAIT, counts=True)),
    (Step.RESEND, Event.FAULT, POS, False, LIMIT - 2, Decision(Action.WAIT, counts=True)),
    (
        Step.RESEND,
        Event.FAULT,
        JNT,
        True,
        LIMIT - 1,
        Decision(Action.ASK_PERSON, counts=True, why=Why.FAULT),
    ),
]


@pytest.mark.parametrize(("step", "event", "courier", "may_exist", "tried", "expected"), ROWS)
def test_row(
    step: Step, event: Event, courier: Courier, may_exist: bool, tried: int, expected: Decision
) -> None:
    situation = Situation(
        step=step,
        event=event,
        courier=courier,
        may_exist=may_exist,
        reconciliations=tried,
        max_reconciliations=LIMIT,
        first_create=step is Step.CREATE,
    )
    assert decide(situation) == expected


# Past the booking deadline, what would wait goes to a person; everything else is unchanged
OVERDUE_ROWS: list[tuple[Step, Event, Courier, bool, int, Decision]] = [
    (
        Step.CREATE,
        Event.RATE_LIMITED,
        JNT,
        True,
        0,
        Decision(Action.ASK_PERSON, may_exist=False, why=Why.OVERDUE),
    ),
    (Step.LOOKUP, Event.UNAVAILABLE, JNT, True, 1, Decision(Action.ASK_PERSON, why=Why.OVERDUE)),
    (
        Step.LOOKUP,
        Event.NOT_FOUND,
        FINDS_ONLY,
        True,
        1,
        Decision(Action.ASK_PERSON, unknown=True, counts=True, may_exist=True, why=Why.OVERDUE),
    ),
    (Step.RECLAIM, Event.NO_ADAPTER, POS, True, 0, Decision(Action.ASK_PERSON, why=Why.OVERDUE)),
    (
        Step.CREATE,
        Event.FAULT,
        JNT,
        True,
        0,
        Decision(Action.ASK_PERSON, counts=True, why=Why.OVERDUE),
    ),
    # a step that ends the booking or asks the courier again is not held back
    (Step.LOOKUP, Event.FOUND, JNT, True, 1, Decision(Action.BOOK)),
    (Step.RECLAIM, Event.STARTED, JNT, True, 1, Decision(Action.LOOK_UP)),
    (Step.CREATE, Event.REJECTED, POS, True, 0, Decision(Action.REJECT)),
]


@pytest.mark.parametrize(
    ("step", "event", "courier", "may_exist", "tried", "expected"), OVERDUE_ROWS
)
def test_overdue_row(
    step: Step, event: Event, courier: Courier, may_exist: bool, tried: int, expected: Decision
) -> None:
    situation = Situation(
        step=step,
        event=event,
        courier=courier,
        may_exist=may_exist,
        reconciliations=tried,
        max_reconciliations=LIMIT,
        first_create=step is Step.CREATE,
        overdue=True,
    )
    assert decide(situation) == expected


def test_nothing_waits_past_the_deadline() -> None:
    for s in _every_situation():
        late = Situation(
            s.step,
            s.event,
            s.courier,
            s.may_exist,
            s.reconciliations,
            LIMIT,
            s.first_create,
            overdue=True,
        )
        assert decide(late).action is not Action.WAIT, late


def test_faults_end_with_a_person_after_the_limit() -> None:
    # never a hot loop: each fault is a try spent, and the last one asks a person
    for tried in range(LIMIT):
        s = Situation(Step.RESEND, Event.FAULT, JNT, True, tried, LIMIT)
        d = decide(s)
        assert d.counts
        assert (d.action is Action.ASK_PERSON) == (tried + 1 >= LIMIT)


COURIERS = (JNT, JNT_NO_LOOKUP, POS, FINDS_ONLY)


def _every_situation() -> list[Situation]:
    return [
        Situation(step, event, courier, may_exist, tried, LIMIT, step is Step.CREATE)
        for step, event, courier, may_exist, tried in itertools.product(
            Step, Event, COURIERS, (True, False), range(LIMIT + 1)
        )
    ]


def test_every_situation_has_a_rule() -> None:
    for situation in _every_situation():
        assert isinstance(decide(situation), Decision)


def test_a_resend_never_risks_a_second_order() -> None:
    # invariant 1: resend only when the courier refuses a reused reference, or the last
    # create certainly never reached it
    for s in _every_situation():
        if decide(s).action is Action.RESEND:
            assert s.courier.dedupes or not s.may_exist, s


def test_an_unknown_outcome_ends_with_a_person_once_the_reconciliations_are_spent() -> None:
    for s in _every_situation():
        d = decide(s)
        if d.unknown and s.reconciliations + d.counts >= LIMIT:
            assert d.action is Action.ASK_PERSON, s
        if d.action is Action.WAIT and d.unknown:
            assert s.reconciliations + d.counts < LIMIT, s
