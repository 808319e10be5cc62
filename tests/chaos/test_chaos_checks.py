"""The chaos run's checks find what they look for: a run that passes proves something only if
each check fails on the violation it names. Pure: rows and order books built here."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from chaos import checks
from chaos.seed import applicants
from core.clock import ManualClock
from courier.db.models import AuditEntry
from simulators.orders import SimState

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


def _move(n: int, entity: str, entity_id: int, key: str, before: str, after: str) -> AuditEntry:
    return AuditEntry(
        id=n,
        at=T0,
        actor="worker:w1",
        action=f"{entity}.{key}",
        entity=entity,
        entity_id=entity_id,
        before={key: before},
        after={key: after},
    )


def test_regressions_are_found_in_the_audit_log() -> None:
    forward = [
        _move(1, "shipment", 1, "status", "booking", "booked"),
        _move(2, "shipment", 1, "status", "booked", "in_transit"),
        _move(3, "shipment", 1, "status", "in_transit", "delivery_failed"),
        _move(4, "shipment", 1, "status", "delivery_failed", "out_for_delivery"),  # a loop
        _move(5, "delivery", 9, "state", "queued", "shipping"),
        _move(6, "delivery", 9, "state", "shipping", "delivered"),
    ]
    assert checks._regressions(forward) == []
    backwards = [*forward, _move(7, "shipment", 1, "status", "out_for_delivery", "picked_up")]
    assert checks._regressions(backwards) == ["shipment 1 (shipment.status, audit 7): "
                                              "out_for_delivery -> picked_up"]  # fmt: skip
    # a move that starts somewhere the row never was, and one the delivery machine refuses
    skipped = [*forward, _move(7, "shipment", 1, "status", "booked", "delivered")]
    assert "was out_for_delivery" in checks._regressions(skipped)[0]
    refused = [*forward, _move(7, "delivery", 9, "state", "delivered", "queued")]
    assert "not a delivery move" in checks._regressions(refused)[0]


def test_two_live_orders_for_one_application_are_a_duplicate() -> None:
    state = SimState(clock=ManualClock(T0))
    state.add_order("CHJ20260000000101", "JO1", "35.73")
    state.add_order("CHJ20260000000201", "JO2", "35.73")
    assert checks.duplicate_orders({"jnt": state}) == []
    state.add_order("CHJ20260000000102", "JO3", "35.73")  # a second attempt, first not cancelled
    assert checks.duplicate_orders({"jnt": state}) == ["jnt CHJ202600000001: 2 orders"]
    state.orders["CHJ20260000000101"].cancelled_at = T0
    assert checks.duplicate_orders({"jnt": state}) == []


def test_personal_data_is_found_in_any_form_and_case(tmp_path: Path) -> None:
    people = applicants(3, seed=1)
    p = people[1]
    clean = tmp_path / "clean.log"
    clean.write_text('{"event": "booking.booked", "reference": "CHP20260000000201"}\n')
    assert checks._personal_data(people, [clean]) == []
    for leak in (p.name.upper(), "0" + p.phone[3:], p.phone, p.street, p.passport_no):
        log = tmp_path / "leak.log"
        log.write_text(f'{{"event": "tracking_applied", "text": "diterima {leak} (YBS)"}}\n')
        found = checks._personal_data(people, [log])
        assert len(found) == 1 and p.application_no in found[0], leak


def test_at_rest_means_final_delivered_or_with_a_person() -> None:
    assert checks.resting("handed_over", set())
    assert checks.resting("delivered", set())
    assert checks.resting("needs_attention", {"booking_unknown"})
    assert not checks.resting("needs_attention", set())
    assert checks.resting("shipping", {"return_overdue"})
    assert checks.resting("shipping", {"stuck"})  # e.g. lost at Pos: no scan will ever come
    assert not checks.resting("shipping", {"delivery_failed"})
    assert not checks.resting("queued", set())
