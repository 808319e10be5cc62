from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.status import Status
from courier.domain.states import (
    DELIVERY_MOVES,
    FINAL_DELIVERY_STATES,
    STATUS_MOVES,
    STATUS_RANK,
    TERMINAL_STATUSES,
    DeliveryState,
    TransitionRefused,
    check_delivery_move,
    check_status_move,
    is_final,
    is_open,
    next_status,
)

S = Status
D = DeliveryState


def test_every_state_and_status_has_rules() -> None:
    assert set(DELIVERY_MOVES) == set(DeliveryState)
    assert set(STATUS_MOVES) == set(Status)
    assert set(STATUS_RANK) == set(Status)


def test_final_delivery_states() -> None:
    assert {D.HANDED_OVER, D.COLLECTED_AT_OFFICE, D.CANCELLED, D.EXPIRED} == FINAL_DELIVERY_STATES
    assert is_final(D.EXPIRED) and not is_final(D.NEEDS_ATTENTION)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (D.REQUESTED, D.QUEUED),
        (D.QUEUED, D.SHIPPING),
        (D.SHIPPING, D.DELIVERED),
        (D.DELIVERED, D.HANDED_OVER),
        (D.SHIPPING, D.RETURNED),
        (D.RETURNED, D.QUEUED),
        (D.RETURNED, D.COLLECTED_AT_OFFICE),
        (D.QUEUED, D.EXPIRED),
        (D.NEEDS_ATTENTION, D.QUEUED),
    ],
)
def test_delivery_moves_allowed(current: DeliveryState, target: DeliveryState) -> None:
    check_delivery_move(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (D.REQUESTED, D.SHIPPING),  # passport not ready: cannot ship
        (D.HANDED_OVER, D.SHIPPING),
        (D.DELIVERED, D.QUEUED),
        (D.CANCELLED, D.QUEUED),
        (D.EXPIRED, D.NEEDS_ATTENTION),
        (D.QUEUED, D.QUEUED),
    ],
)
def test_delivery_moves_refused(current: DeliveryState, target: DeliveryState) -> None:
    with pytest.raises(TransitionRefused) as info:
        check_delivery_move(current, target)
    assert (info.value.current, info.value.target) == (current.value, target.value)
    assert current.value in str(info.value) and target.value in str(info.value)


def test_final_states_reachable_from_needs_attention() -> None:
    # invariant 3: a delivery parked for a human can always be brought to an end
    assert DELIVERY_MOVES[D.NEEDS_ATTENTION] >= FINAL_DELIVERY_STATES


def test_every_allowed_status_move_keeps_or_raises_rank() -> None:
    for current, targets in STATUS_MOVES.items():
        for target in targets:
            assert STATUS_RANK[target] >= STATUS_RANK[current], (current, target)


def test_is_open() -> None:
    assert not any(is_open(s) for s in TERMINAL_STATUSES)
    assert all(is_open(s) for s in set(Status) - TERMINAL_STATUSES)
    assert {S.DELIVERED, S.RETURNED, S.CANCELLED, S.LOST, S.BOOKING_FAILED} == TERMINAL_STATUSES


@pytest.mark.parametrize(
    ("current", "incoming", "expected"),
    [
        (S.BOOKING, S.BOOKED, S.BOOKED),
        (S.BOOKED, S.IN_TRANSIT, S.IN_TRANSIT),  # a skipped pickup scan
        (S.DELIVERED, S.IN_TRANSIT, S.DELIVERED),  # late event changes nothing
        (S.IN_TRANSIT, S.PICKED_UP, S.IN_TRANSIT),
        (S.OUT_FOR_DELIVERY, S.DELIVERY_FAILED, S.DELIVERY_FAILED),
        (S.DELIVERY_FAILED, S.OUT_FOR_DELIVERY, S.OUT_FOR_DELIVERY),  # second attempt
        (S.DELIVERY_FAILED, S.RETURNING, S.RETURNING),
        (S.RETURNING, S.RETURNED, S.RETURNED),
        (S.RETURNING, S.DELIVERED, S.RETURNING),
        (S.RETURNING, S.OUT_FOR_DELIVERY, S.RETURNING),
        (S.IN_TRANSIT, None, S.IN_TRANSIT),  # unmapped code
        (S.IN_TRANSIT, S.LOST, S.LOST),
        (S.BOOKED, S.BOOKING_FAILED, S.BOOKED),
        (S.BOOKING, S.BOOKING_FAILED, S.BOOKING_FAILED),
        (S.CANCELLED, S.DELIVERED, S.CANCELLED),
    ],
)
def test_next_status(current: Status, incoming: Status | None, expected: Status) -> None:
    assert next_status(current, incoming) is expected


def test_check_status_move() -> None:
    check_status_move(S.IN_TRANSIT, S.LOST)
    with pytest.raises(TransitionRefused):
        check_status_move(S.DELIVERED, S.LOST)


statuses = st.sampled_from(list(Status))


@given(start=statuses, incoming=st.lists(st.one_of(st.none(), statuses), max_size=40))
def test_status_never_moves_backwards(start: Status, incoming: list[Status | None]) -> None:
    current = start
    for status in incoming:
        after = next_status(current, status)
        assert STATUS_RANK[after] >= STATUS_RANK[current]
        if not is_open(current):
            assert after is current
        assert after is current or after in STATUS_MOVES[current]
        current = after


@given(incoming=st.permutations(list(Status)))
def test_order_never_lets_delivered_regress(incoming: list[Status]) -> None:
    current = S.BOOKED
    seen_delivered = False
    for status in incoming:
        current = next_status(current, status)
        seen_delivered |= current is S.DELIVERED
        if seen_delivered:
            assert current is S.DELIVERED


@given(start=st.sampled_from(list(DeliveryState)), path=st.lists(st.sampled_from(list(D))))
def test_delivery_final_states_stay_final(start: DeliveryState, path: list[DeliveryState]) -> None:
    current = start
    for target in path:
        try:
            check_delivery_move(current, target)
        except TransitionRefused:
            continue
        assert not is_final(current)
        current = target
