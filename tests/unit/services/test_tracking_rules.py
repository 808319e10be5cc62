"""Pure pieces of the tracking services: poll schedule for pushing couriers, pickup slots from
office rows, the content-addressed POD store, and when a return can still be re-shipped."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from adapters.base import TrackingEvent
from core.status import Status
from courier.db.models import Office, Shipment
from courier.services import lifecycle, pod, tracking, watch

NOW = datetime(2026, 11, 3, 3, 0, tzinfo=UTC)  # Tuesday 10:00 WIB


def test_pushing_couriers_are_polled_less_often_and_finished_ones_never() -> None:
    slots = (time(10), time(15))
    polled = tracking.poll_time(Status.IN_TRANSIT, NOW, NOW, slots)
    pushed = tracking.poll_time(Status.IN_TRANSIT, NOW, NOW, slots, pushes=True)
    assert polled is not None and pushed is not None
    assert pushed - NOW == (polled - NOW) * tracking.PUSH_FALLBACK_FACTOR
    assert tracking.poll_time(Status.DELIVERED, NOW, NOW, slots) is None
    # booked before the afternoon slot: the next poll waits for that slot, not before
    booked = tracking.poll_time(Status.BOOKED, None, NOW, slots)
    assert booked is not None and booked >= datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


def test_pickup_slots_come_from_the_office_with_a_default() -> None:
    office = Office(pickup_slots=["10:00", "15:30", "bad"])
    assert lifecycle.pickup_slots(office) == (time(10), time(15, 30))
    assert lifecycle.pickup_slots(None) == lifecycle.DEFAULT_PICKUP_SLOTS
    assert lifecycle.pickup_slots(Office(pickup_slots=[])) == lifecycle.DEFAULT_PICKUP_SLOTS


def test_event_key_is_scoped_to_the_shipment() -> None:
    event = TrackingEvent("JO1", NOW, "100", "x", Status.IN_TRANSIT)
    one, two = Shipment(id=1), Shipment(id=2)
    assert tracking.event_key(one, event) == tracking.event_key(one, event)
    assert tracking.event_key(one, event) != tracking.event_key(two, event)


def test_store_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    data = b"\x89PNG fake"
    digest = pod.store_bytes(tmp_path, data)
    assert digest == hashlib.sha256(data).hexdigest()
    path = pod.artefact_path(tmp_path, digest)
    assert path.read_bytes() == data and path.parent.name == digest[:2]
    mtime = path.stat().st_mtime_ns
    assert pod.store_bytes(tmp_path, data) == digest  # stored once
    assert path.stat().st_mtime_ns == mtime
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]


def test_reship_needs_enough_time_before_the_deadline() -> None:
    assert watch.reship_allowed(None, NOW)
    assert watch.reship_allowed(NOW + watch.RESHIP_MARGIN, NOW)
    assert not watch.reship_allowed(NOW + watch.RESHIP_MARGIN - timedelta(minutes=1), NOW)
