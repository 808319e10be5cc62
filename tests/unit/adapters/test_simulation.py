"""The shared simulator core: lifecycle plans, faults, expiring links, artefacts, control API
(simulators.lifecycle, .faults, .artefacts, .control, .orders)."""

from __future__ import annotations

import hashlib
import itertools
import zlib
from datetime import UTC, datetime, time, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import WIB, ManualClock
from simulators.artefacts import artefact_bytes, sign_link, verify_link
from simulators.control import install
from simulators.faults import FaultTable, apply_faults, run_with_faults
from simulators.lifecycle import (
    FAIL_REASONS,
    FAMILY_RELATIONS,
    MAX_ATTEMPTS,
    OTHER_RELATIONS,
    OUTCOMES,
    RELATION_SELF,
    TERMINAL_KINDS,
    StepKind,
    next_pickup,
    plan_lifecycle,
    transit_days,
)
from simulators.orders import SimOrder, SimState

# Monday 2 November 2026, 08:00 WIB
MONDAY_8_WIB = datetime(2026, 11, 2, 8, 0, tzinfo=WIB).astimezone(UTC)


def kinds(steps: list) -> list[StepKind]:
    return [s.kind for s in steps]


def plan(
    outcome: str | None = None,
    *,
    dest: str = "35.73",
    seed: str = "s1",
    booked_at: datetime = MONDAY_8_WIB,
) -> list:
    return plan_lifecycle(
        booked_at=booked_at, destination_regency_code=dest, seed=seed, outcome=outcome
    )


# ------------------------------------------------------------------------------ plan_lifecycle


def test_same_seed_same_plan_and_different_seeds_differ() -> None:
    assert plan(seed="abc") == plan(seed="abc")
    many = {tuple(plan(seed=f"seed-{i}")) for i in range(20)}
    assert len(many) > 1


def test_delivered_self_is_first_attempt_to_the_addressee() -> None:
    steps = plan("delivered_self")
    assert kinds(steps) == [
        StepKind.BOOKED,
        StepKind.PICKED_UP,
        StepKind.IN_TRANSIT,
        StepKind.ARRIVED_HUB,
        StepKind.OUT_FOR_DELIVERY,
        StepKind.DELIVERED,
    ]
    assert steps[-1].relation == RELATION_SELF
    assert steps[-1].receiver == ""  # the simulator fills in the addressee's own name


def test_delivered_family_names_a_family_member() -> None:
    last = plan("delivered_family")[-1]
    assert last.kind is StepKind.DELIVERED
    assert last.relation in FAMILY_RELATIONS
    assert last.receiver


def test_delivered_other_names_someone_outside_the_family() -> None:
    last = plan("delivered_other")[-1]
    assert last.kind is StepKind.DELIVERED
    assert last.relation in OTHER_RELATIONS
    assert last.receiver


def test_fail_once_then_deliver_retries_next_morning() -> None:
    steps = plan("fail_once_then_deliver")
    ks = kinds(steps)
    assert ks.count(StepKind.ATTEMPT_FAILED) == 1
    assert ks.count(StepKind.OUT_FOR_DELIVERY) == 2
    assert ks[-1] is StepKind.DELIVERED
    failed = steps[ks.index(StepKind.ATTEMPT_FAILED)]
    assert failed.reason in FAIL_REASONS
    first_out, second_out = (s for s in steps if s.kind is StepKind.OUT_FOR_DELIVERY)
    assert second_out.at.astimezone(WIB).date() == first_out.at.astimezone(WIB).date() + timedelta(
        days=1
    )


def test_returned_after_max_failed_attempts_back_at_origin() -> None:
    steps = plan("returned")
    ks = kinds(steps)
    assert ks.count(StepKind.ATTEMPT_FAILED) == MAX_ATTEMPTS
    assert ks[-2:] == [StepKind.RETURNING, StepKind.RETURNED]
    assert steps[-1].location == steps[0].location  # back where it was booked
    assert StepKind.DELIVERED not in ks


def test_lost_goes_silent_after_leaving_origin() -> None:
    steps = plan("lost")
    ks = kinds(steps)
    assert ks[-1] is StepKind.LOST
    assert StepKind.OUT_FOR_DELIVERY not in ks
    assert steps[-1].at - steps[-2].at == timedelta(days=7)


def test_unknown_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        plan("teleported")


def test_naive_booking_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        plan_lifecycle(
            booked_at=datetime(2026, 11, 2, 8), destination_regency_code="35.73", seed="x"
        )


@pytest.mark.parametrize(
    ("booked_wib", "expected_wib"),
    [
        (datetime(2026, 11, 2, 8, 0), datetime(2026, 11, 2, 10, 0)),  # before the first slot
        (datetime(2026, 11, 2, 10, 0), datetime(2026, 11, 2, 15, 0)),  # exactly at a slot: next
        (datetime(2026, 11, 2, 12, 30), datetime(2026, 11, 2, 15, 0)),
        (datetime(2026, 11, 2, 16, 0), datetime(2026, 11, 3, 10, 0)),  # after the last: tomorrow
        (datetime(2026, 11, 2, 23, 59), datetime(2026, 11, 3, 10, 0)),
    ],
)
def test_next_pickup_slot_in_wib(booked_wib: datetime, expected_wib: datetime) -> None:
    booked = booked_wib.replace(tzinfo=WIB)
    assert next_pickup(booked, (time(10), time(15))) == expected_wib.replace(tzinfo=WIB)
    picked = plan_lifecycle(
        booked_at=booked, destination_regency_code="35.73", seed="p", outcome="delivered_self"
    )[1]
    assert picked.kind is StepKind.PICKED_UP
    slot = expected_wib.replace(tzinfo=WIB)
    assert slot <= picked.at <= slot + timedelta(minutes=20)


def test_custom_pickup_slots_are_used() -> None:
    steps = plan_lifecycle(
        booked_at=MONDAY_8_WIB,
        destination_regency_code="35.73",
        seed="p",
        outcome="delivered_self",
        pickup_slots=(time(13, 30),),
    )
    picked = steps[1].at.astimezone(WIB)
    assert (picked.hour, picked.minute // 30) == (13, 1)


@pytest.mark.parametrize(
    ("dest", "days"),
    [("35.05", 1), ("35.73", 1), ("31.71", 2), ("32.73", 2), ("51.71", 3), ("73.71", 3)],
)
def test_transit_days_by_distance(dest: str, days: int) -> None:
    assert transit_days("35.05", dest) == days
    steps = plan("delivered_self", dest=dest)
    picked = next(s for s in steps if s.kind is StepKind.PICKED_UP)
    out = next(s for s in steps if s.kind is StepKind.OUT_FOR_DELIVERY)
    gap = out.at.astimezone(WIB).date() - picked.at.astimezone(WIB).date()
    assert gap == timedelta(days=days)
    assert 7 <= out.at.astimezone(WIB).hour < 10  # out for delivery in the morning


def test_every_outcome_is_reachable_from_seeds_alone() -> None:
    seen = {plan(seed=f"reach-{i}")[-1].kind for i in range(400)}
    assert seen == TERMINAL_KINDS


@settings(max_examples=150, deadline=None)
@given(
    booked=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    ),
    dest=st.sampled_from(["35.05", "35.73", "31.71", "51.71", "94.71"]),
    seed=st.text(max_size=12),
    outcome=st.sampled_from([None, *OUTCOMES]),
)
def test_property_steps_strictly_ordered_and_end_terminal(
    booked: datetime, dest: str, seed: str, outcome: str | None
) -> None:
    steps = plan_lifecycle(
        booked_at=booked, destination_regency_code=dest, seed=seed, outcome=outcome
    )
    assert steps[0].kind is StepKind.BOOKED and steps[0].at == booked
    assert all(a.at < b.at for a, b in itertools.pairwise(steps))
    assert steps[-1].kind in TERMINAL_KINDS
    assert not any(s.kind in TERMINAL_KINDS for s in steps[:-1])
    assert all(s.at.utcoffset() == timedelta(0) for s in steps)


# ------------------------------------------------------------------------------ SimOrder


def test_visible_steps_follow_the_clock_and_stop_at_cancel() -> None:
    steps = plan("delivered_self")
    order = SimOrder("REF1", "P1", MONDAY_8_WIB, "35.73", steps)
    assert kinds(order.visible_steps(MONDAY_8_WIB)) == [StepKind.BOOKED]
    assert not order.picked_up(MONDAY_8_WIB)
    assert order.visible_steps(steps[-1].at) == steps
    order.cancelled_at = MONDAY_8_WIB + timedelta(minutes=5)
    assert kinds(order.visible_steps(steps[-1].at + timedelta(days=3))) == [StepKind.BOOKED]


# ------------------------------------------------------------------------------ faults


def test_forced_faults_are_exact_and_counted_down() -> None:
    table = FaultTable({"force": [{"endpoint": "create", "kind": "timeout", "count": 2}]})
    assert table.draw("track") is None
    assert table.draw("create") == "timeout"
    assert table.draw("create") == "timeout"
    assert table.draw("create") is None


def test_single_forced_fault_body_and_wildcard_endpoint() -> None:
    table = FaultTable()
    table.configure({"endpoint": "*", "kind": "error"})
    assert table.draw("anything") == "error"
    assert table.draw("anything") is None


def test_rates_with_a_seed_are_reproducible() -> None:
    spec = {"seed": 3, "endpoints": {"*": {"error_rate": 0.5}}}
    a, b = FaultTable(spec), FaultTable(spec)
    assert [a.draw("track") for _ in range(50)] == [b.draw("track") for _ in range(50)]
    drawn = [a.draw("track") for _ in range(200)]
    assert 40 < drawn.count("error") < 160


def test_endpoint_settings_merge_and_fall_back_to_star() -> None:
    table = FaultTable({"endpoints": {"*": {"latency_ms": [1, 2]}}})
    table.set("create", error_rate=1.0)
    table.set("create", retry_after=7)
    assert table.settings("create").error_rate == 1.0
    assert table.settings("create").retry_after == 7.0
    assert table.settings("track").latency_ms == (1, 2)


@pytest.mark.parametrize(
    "spec",
    [
        {"endpoints": {"create": {"error_rate": 2}}},
        {"endpoints": {"create": {"bogus": 1}}},
        {"endpoints": {"create": {"latency_ms": [5, 1]}}},
        {"force": [{"endpoint": "create", "kind": "meteor"}]},
        {"unexpected": True},
    ],
)
def test_bad_fault_specs_are_refused(spec: dict) -> None:
    with pytest.raises(ValueError):
        FaultTable(spec)


async def test_apply_faults_answers_each_kind() -> None:
    state = SimState(clock=ManualClock())
    state.faults.set("create", retry_after=4, timeout_seconds=0.01)
    for kind, status in [
        ("error", 503),
        ("rate_limit", 429),
        ("malformed", 200),
        ("expired_token", 401),
        ("timeout", 504),
    ]:
        state.faults.force("create", kind)
        response = await apply_faults(state, "create")
        assert response is not None and response.status == status, kind
        if kind == "rate_limit":
            assert response.headers["Retry-After"] == "4"
    assert await apply_faults(state, "create") is None


async def test_timeout_processed_runs_the_handler_then_holds() -> None:
    state = SimState(clock=ManualClock())
    state.faults.set("create", timeout_seconds=0.01)
    state.faults.force("create", "timeout_processed")
    ran: list[bool] = []

    async def handler() -> web.StreamResponse:
        ran.append(True)
        return web.json_response({"ok": True})

    response = await run_with_faults(state, "create", handler)
    assert ran == [True] and response.status == 200
    assert state.faults.forced == []


async def test_held_reply_is_released_on_shutdown() -> None:
    state = SimState(clock=ManualClock())
    state.faults.set("create", timeout_seconds=60)
    state.faults.force("create", "timeout")
    state.closing.set()
    response = await apply_faults(state, "create")  # returns at once, not after 60 s
    assert response is not None and response.status == 504


# ------------------------------------------------------------------------------ links, artefacts


def test_signed_link_verifies_until_it_expires() -> None:
    secret = b"k" * 32
    expires = MONDAY_8_WIB + timedelta(hours=1)
    link = sign_link(secret, "/pod/P1/photo.png", expires)
    path, _, query_text = link.partition("?")
    query = dict(part.split("=", 1) for part in query_text.split("&"))
    assert verify_link(secret, path, query, MONDAY_8_WIB)
    assert not verify_link(secret, path, query, expires)
    assert not verify_link(b"x" * 32, path, query, MONDAY_8_WIB)
    assert not verify_link(secret, "/pod/P2/photo.png", query, MONDAY_8_WIB)
    assert not verify_link(secret, path, query | {"expires": "99999999999"}, MONDAY_8_WIB)
    assert not verify_link(secret, path, {"expires": "soon"}, MONDAY_8_WIB)


def test_artefact_is_a_stable_valid_png() -> None:
    png = artefact_bytes("photo", "P123")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert hashlib.sha256(png).digest() == hashlib.sha256(artefact_bytes("photo", "P123")).digest()
    assert png != artefact_bytes("signature", "P123")
    idat_len = int.from_bytes(png[33:37], "big")
    raw = zlib.decompress(png[41 : 41 + idat_len])
    assert len(raw) == 8 * (1 + 8 * 3)


# ------------------------------------------------------------------------------ control API


async def test_control_api_orders_clock_faults_outcomes() -> None:
    clock = ManualClock(MONDAY_8_WIB)
    state = SimState(clock=clock)
    app = web.Application()
    install(app, state)
    state.create_counts["REF1"] += 2
    state.add_order("REF1", "P0001", "35.73")
    async with TestClient(TestServer(app)) as client:
        body = await (await client.get("/_sim/orders")).json()
        assert body["create_counts"] == {"REF1": 2}
        assert body["orders"][0]["current"] == "booked"

        moved = await client.post("/_sim/clock/advance", json={"seconds": 86400 * 10})
        assert moved.status == 200
        assert clock.now() == MONDAY_8_WIB + timedelta(days=10)
        assert (await (await client.get("/_sim/clock")).json())["now"] == clock.now().isoformat()
        assert (await client.post("/_sim/clock/advance", json={"seconds": -1})).status == 400

        set_ = await client.post("/_sim/faults", json={"endpoint": "track", "kind": "error"})
        assert (await set_.json())["force"][0]["kind"] == "error"
        assert (await client.post("/_sim/faults", json={"nonsense": 1})).status == 400
        assert (await client.delete("/_sim/faults")).status == 200
        assert state.faults.forced == []

        outcome = await client.post("/_sim/outcomes", json={"reference": "REF1", "outcome": "lost"})
        assert outcome.status == 200
        assert state.orders["REF1"].steps[-1].kind is StepKind.LOST
        bad = await client.post("/_sim/outcomes", json={"reference": "REF1", "outcome": "x"})
        assert bad.status == 400
