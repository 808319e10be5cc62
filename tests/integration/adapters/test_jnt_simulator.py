"""The J&T adapter against the J&T simulator, over real HTTP on loopback, on a ManualClock."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters import registry
from adapters.base import (
    Address,
    AuthFailed,
    Booking,
    CourierAdapter,
    CourierRejected,
    CourierUnavailable,
    OutcomeUnknown,
    Party,
    ResponseInvalid,
    ShipmentOrder,
    TrackingEvent,
)
from adapters.http import CircuitOpen
from adapters.jnt import push
from adapters.jnt.adapter import JntAdapter
from core.clock import ManualClock
from core.status import Status
from simulators import jnt as simulator

ORIGIN = Address(
    "Jl. Kenari No. 54",
    "Sananwetan",
    "Sananwetan",
    "Kota Blitar",
    "Jawa Timur",
    "66137",
    "35.05",
    "35.05.01",
)
MALANG = Address(
    "Jl. Ijen No. 7 / Gg. Mawar",
    "Oro-oro Dowo",
    "Klojen",
    "Kota Malang",
    "Jawa Timur",
    "65119",
    "35.73",
    "35.73.01",
)


def order(reference: str = "BLT-0001-1", **changes: Any) -> ShipmentOrder:
    values: dict[str, Any] = {
        "reference": reference,
        "sender": Party("Kanim Blitar", "+62342801234", ORIGIN),
        "receiver": Party("Budi Santoso", "+6281234567890", MALANG),
        "weight_kg": Decimal("0.2"),
        "declared_value": 0,
        "service": "EZ",
    }
    values.update(changes)
    return ShipmentOrder(**values)


@dataclass
class Sim:
    clock: ManualClock
    server: TestServer
    session: aiohttp.ClientSession
    app: web.Application

    def url(self, path: str = "/") -> str:
        return str(self.server.make_url(path))

    @property
    def state(self) -> simulator.JntSimulator:
        return self.app[simulator.SIM_KEY]

    def adapter(self, transport: Mapping[str, Any] | None = None, **settings: Any) -> JntAdapter:
        merged = {**simulator.adapter_settings(self.url()), **settings}
        merged["transport"] = {"backoff_initial": 0.1, "backoff_max": 5, **(transport or {})}
        adapter = registry.create("jnt", merged, clock=self.clock, session=self.session)
        assert isinstance(adapter, JntAdapter)
        return adapter

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, self.url(path), json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def faults(self, **spec: Any) -> None:
        await self.control("POST", "/_sim/faults", spec)

    def advance(self, **delta: float) -> None:
        self.clock.advance(timedelta(**delta))


async def start(options: Mapping[str, Any] | None = None) -> tuple[Sim, TestServer]:
    clock = ManualClock()
    app = simulator.create_app(clock, options=options)
    server = TestServer(app)
    await server.start_server()
    return Sim(clock, server, aiohttp.ClientSession(), app), server


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    s, server = await start()
    yield s
    await s.session.close()
    await server.close()


async def events_of(adapter: CourierAdapter, waybill: str) -> list[TrackingEvent]:
    outcome = (await adapter.track([waybill]))[waybill]
    assert not isinstance(outcome, Exception), outcome
    return list(outcome)


# --------------------------------------------------------------------------------------------
# Book, duplicate, find, cancel


async def test_book_returns_a_jo_waybill_and_the_simulator_holds_one_order(sim: Sim) -> None:
    booking = await sim.adapter().book(order())
    assert re.fullmatch(r"JO\d{10}", booking.waybill)
    assert booking.reference == "BLT-0001-1"
    assert booking.raw["desCode"] == "MLG-MLG001"
    listed = await sim.control("GET", "/_sim/orders")
    assert listed["create_counts"] == {"BLT-0001-1": 1}
    assert [o["waybill"] for o in listed["orders"]] == [booking.waybill]


async def test_duplicate_book_is_outcome_unknown_then_find_recovers_the_waybill(sim: Sim) -> None:
    assert sim.adapter().capabilities.dedupes_reference  # "Orderid tidak boleh sama"
    adapter = sim.adapter()
    first = await adapter.book(order())
    with pytest.raises(OutcomeUnknown):
        await adapter.book(order())
    found = await adapter.find("BLT-0001-1")
    assert found is not None and found.waybill == first.waybill
    assert await adapter.find("BLT-9999-1") is None
    assert len(sim.state.state.orders) == 1  # invariant 1: one order, two attempts
    assert sim.state.state.create_counts["BLT-0001-1"] == 2


async def test_cancel_before_pickup_succeeds_and_is_idempotent(sim: Sim) -> None:
    adapter = sim.adapter()
    booking = await adapter.book(order())
    await adapter.cancel(booking, "pemohon ambil sendiri di kantor imigrasi")
    await adapter.cancel(booking, "again")  # "Status pesanan adalah : CANCEL" reads as done
    found = await adapter.find(booking.reference)
    assert found is not None and found.raw["orderStatus"] == "104"


async def test_cancel_after_pickup_is_refused_with_jnt_wording(sim: Sim) -> None:
    adapter = sim.adapter()
    booking = await adapter.book(order())
    sim.advance(days=1)  # past the next pickup slot
    with pytest.raises(CourierRejected) as refused:
        await adapter.cancel(booking, "batal")
    assert refused.value.code == "picked_up"
    assert "Status pesanan adalah : GOT" in refused.value.reason


async def test_cancel_of_an_unknown_order_is_rejected(sim: Sim) -> None:
    ghost = Booking(reference="BLT-0404-1", waybill="JO0000000404")
    with pytest.raises(CourierRejected) as refused:
        await sim.adapter().cancel(ghost, "batal")
    assert "tidak ditemukan" in refused.value.reason


async def test_field_too_long_is_refused_before_anything_is_sent(sim: Sim) -> None:
    long_name = Party("Raden Mas Bagus Prasetyo Wicaksono Adi", "+6281234567890", MALANG)
    with pytest.raises(CourierRejected) as refused:
        await sim.adapter().book(order(receiver=long_name))
    assert refused.value.code == "field_too_long"
    assert "receiver_name" in refused.value.reason
    assert sim.state.state.create_counts == {}


# --------------------------------------------------------------------------------------------
# Tracking through whole lifecycles


ORDER_OF = [
    Status.BOOKED,
    Status.PICKED_UP,
    Status.IN_TRANSIT,
    Status.OUT_FOR_DELIVERY,
    Status.DELIVERY_FAILED,
    Status.DELIVERED,
    Status.RETURNING,
    Status.RETURNED,
    Status.LOST,
]


async def lifecycle(sim: Sim, outcome: str, reference: str) -> list[TrackingEvent]:
    adapter = sim.adapter()
    await sim.control("POST", "/_sim/outcomes", {"reference": reference, "outcome": outcome})
    booking = await adapter.book(order(reference))
    seen: list[Status | None] = []
    for _ in range(12):  # day by day, as the worker would poll
        events = await events_of(adapter, booking.waybill)
        assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
        assert len(events) >= len(seen)  # history only grows
        seen = [e.status for e in events]
        sim.advance(days=1)
    return await events_of(adapter, booking.waybill)


async def test_track_a_delivery_to_the_applicant_through_its_whole_life(sim: Sim) -> None:
    events = await lifecycle(sim, "delivered_self", "BLT-0002-1")
    statuses = [e.status for e in events]
    assert statuses[0] is Status.BOOKED and statuses[-1] is Status.DELIVERED
    assert None not in statuses
    assert statuses[:2] == [Status.BOOKED, Status.PICKED_UP]
    assert Status.OUT_FOR_DELIVERY in statuses
    delivered = events[-1]
    assert delivered.raw_code == "200"
    assert (delivered.receiver_name, delivered.relation) == ("Budi Santoso", "YBS")
    assert {a.kind for a in delivered.artefacts} == {"photo", "signature"}
    assert all(e.occurred_at.tzinfo is not None for e in events)


async def test_track_a_failed_attempt_then_delivery_to_family(sim: Sim) -> None:
    events = await lifecycle(sim, "fail_once_then_deliver", "BLT-0003-1")
    failed = [e for e in events if e.status is Status.DELIVERY_FAILED]
    assert len(failed) == 1 and failed[0].raw_code == "150" and failed[0].reason
    assert events[-1].status is Status.DELIVERED


async def test_track_a_family_receiver_gives_name_and_relation(sim: Sim) -> None:
    events = await lifecycle(sim, "delivered_family", "BLT-0004-1")
    delivered = events[-1]
    assert delivered.status is Status.DELIVERED
    assert delivered.relation and delivered.relation != "YBS"
    assert delivered.receiver_name and delivered.receiver_name != "Budi Santoso"


async def test_track_a_return_after_repeated_failures(sim: Sim) -> None:
    events = await lifecycle(sim, "returned", "BLT-0005-1")
    statuses = [e.status for e in events]
    assert statuses.count(Status.DELIVERY_FAILED) == 3
    assert statuses[-2:] == [Status.RETURNING, Status.RETURNED]


async def test_track_a_lost_parcel(sim: Sim) -> None:
    events = await lifecycle(sim, "lost", "BLT-0006-1")
    assert events[-1].status is Status.LOST and events[-1].raw_text == "Paket hilang"


async def test_track_unknown_awb_is_empty_and_one_call_per_awb(sim: Sim) -> None:
    calls: list[str] = []

    class Count:
        def on_call(self, courier: str, operation: str, outcome: str, seconds: float) -> None:
            calls.append(operation)

        def on_retry(self, courier: str, operation: str) -> None: ...
        def on_circuit(self, courier: str, state: str) -> None: ...
        def on_rate_wait(self, courier: str, seconds: float) -> None: ...
        def on_quota(self, courier: str, remaining: int, refused: bool) -> None: ...

    settings = {**simulator.adapter_settings(sim.url())}
    adapter = registry.create(
        "jnt", settings, clock=sim.clock, session=sim.session, observer=Count()
    )
    booking = await adapter.book(order())
    result = await adapter.track([booking.waybill, "JO0000000001", booking.waybill])
    assert result["JO0000000001"] == []
    manifest = result[booking.waybill]
    assert not isinstance(manifest, Exception) and len(manifest) == 1  # the manifest
    assert calls.count("track") == 2  # distinct AWBs, one call each


async def test_pod_links_serve_images_then_expire(sim: Sim) -> None:
    events = await lifecycle(sim, "delivered_self", "BLT-0007-1")
    photo = next(a for a in events[-1].artefacts if a.kind == "photo")
    async with sim.session.get(photo.url) as resp:
        assert resp.status == 200 and resp.content_type == "image/png"
        assert (await resp.read()).startswith(b"\x89PNG")
    sim.advance(hours=2)  # links live one clock hour
    async with sim.session.get(photo.url) as resp:
        assert resp.status == 403
    async with sim.session.get(photo.url.replace("photo.png", "signature.png")) as resp:
        assert resp.status == 403  # a signature for one path does not open another


# --------------------------------------------------------------------------------------------
# Faults


async def test_track_retries_through_5xx(sim: Sim) -> None:
    adapter = sim.adapter()
    booking = await adapter.book(order())
    await sim.faults(force=[{"endpoint": "track", "kind": "error", "count": 2}])
    before = sim.clock.now()
    events = await events_of(adapter, booking.waybill)
    assert events[0].status is Status.BOOKED
    assert sim.clock.now() > before  # backed off on the clock, not the wall


async def test_latency_within_the_read_timeout_is_just_slow(sim: Sim) -> None:
    adapter = sim.adapter(transport={"read_timeout": 1})
    booking = await adapter.book(order())
    await sim.faults(endpoints={"track": {"latency_ms": [20, 40]}})
    assert [e.status for e in await events_of(adapter, booking.waybill)] == [Status.BOOKED]


async def test_track_honours_retry_after_on_429(sim: Sim) -> None:
    adapter = sim.adapter()
    booking = await adapter.book(order())
    await sim.faults(
        endpoints={"track": {"retry_after": 3}},
        force=[{"endpoint": "track", "kind": "rate_limit", "count": 1}],
    )
    before = sim.clock.now()
    assert await events_of(adapter, booking.waybill)
    assert sim.clock.now() - before >= timedelta(seconds=3)


async def test_persistent_429_becomes_rate_limited_for_the_waybill(sim: Sim) -> None:
    adapter = sim.adapter(transport={"max_attempts": 2})
    booking = await adapter.book(order())
    await sim.faults(endpoints={"track": {"rate_limit_rate": 1.0, "retry_after": 2}})
    outcome = (await adapter.track([booking.waybill]))[booking.waybill]
    assert isinstance(outcome, CourierUnavailable)
    assert getattr(outcome, "retry_after", None) == 2


async def test_create_is_not_retried_on_5xx(sim: Sim) -> None:
    await sim.faults(force=[{"endpoint": "create", "kind": "error", "count": 1}])
    # a 5xx on a create may hide a made order: unknown (reconcile by reference), not "down"
    with pytest.raises(OutcomeUnknown):
        await sim.adapter().book(order())
    assert sim.state.state.create_counts == {}  # never repeated


async def test_timed_out_create_is_outcome_unknown_and_find_settles_it(sim: Sim) -> None:
    adapter = sim.adapter(transport={"read_timeout": 0.3, "total_timeout": 1})
    await sim.faults(
        endpoints={"create": {"timeout_seconds": 2}},
        force=[{"endpoint": "create", "kind": "timeout_processed", "count": 1}],
    )
    with pytest.raises(OutcomeUnknown):
        await adapter.book(order())
    found = await adapter.find("BLT-0001-1")  # the order was made although we never heard
    assert found is not None
    assert sim.state.state.create_counts["BLT-0001-1"] == 1


async def test_timed_out_create_that_never_happened_finds_nothing(sim: Sim) -> None:
    adapter = sim.adapter(transport={"read_timeout": 0.3, "total_timeout": 1})
    await sim.faults(
        endpoints={"create": {"timeout_seconds": 2}},
        force=[{"endpoint": "create", "kind": "timeout", "count": 1}],
    )
    with pytest.raises(OutcomeUnknown):
        await adapter.book(order())
    assert await adapter.find("BLT-0001-1") is None
    booking = await adapter.book(order())  # same reference again: now it is made, once
    assert sim.state.state.create_counts["BLT-0001-1"] == 1 and booking.waybill


async def test_malformed_answers(sim: Sim) -> None:
    adapter = sim.adapter(transport={"max_attempts": 1})
    booking = await adapter.book(order())
    await sim.faults(force=[{"endpoint": "track", "kind": "malformed", "count": 1}])
    outcome = (await adapter.track([booking.waybill]))[booking.waybill]
    assert isinstance(outcome, ResponseInvalid)
    await sim.faults(force=[{"endpoint": "create", "kind": "malformed", "count": 1}])
    with pytest.raises(OutcomeUnknown):  # a 200 we cannot read may hide a created order
        await adapter.book(order("BLT-0002-1"))


async def test_circuit_opens_fails_fast_then_closes_after_a_good_probe(sim: Sim) -> None:
    adapter = sim.adapter(transport={"max_attempts": 1, "failures_to_open": 3, "open_seconds": 30})
    booking = await adapter.book(order())
    await sim.faults(endpoints={"track": {"error_rate": 1.0}})
    for _ in range(3):
        outcome = (await adapter.track([booking.waybill]))[booking.waybill]
        assert isinstance(outcome, CourierUnavailable)
    assert adapter.transport.circuit_state == "open"
    outcome = (await adapter.track([booking.waybill]))[booking.waybill]
    assert isinstance(outcome, CircuitOpen)
    await sim.control("DELETE", "/_sim/faults")
    outcome = (await adapter.track([booking.waybill]))[booking.waybill]
    assert isinstance(outcome, CircuitOpen)  # still open: no clock time has passed
    sim.advance(seconds=31)
    assert await events_of(adapter, booking.waybill)  # the half-open probe
    assert adapter.transport.circuit_state == "closed"


async def test_rate_limit_spaces_calls_on_the_clock(sim: Sim) -> None:
    adapter = sim.adapter(transport={"requests_per_second": 2})
    bookings = [await adapter.book(order(f"BLT-{i:04d}-1")) for i in range(2)]
    start = sim.clock.now()
    for _ in range(3):
        await adapter.track([b.waybill for b in bookings])
    # 6 calls at 2/s after the initial burst was spent on the 2 creates: >= 3 s of clock time
    assert sim.clock.now() - start >= timedelta(seconds=3)


async def test_the_simulator_counts_api_requests_per_second_and_per_wib_day(sim: Sim) -> None:
    adapter = sim.adapter()
    booking = await adapter.book(order())
    await adapter.track([booking.waybill])
    sim.advance(hours=24)
    await adapter.track([booking.waybill])
    traffic = await sim.control("GET", "/_sim/traffic")  # the control API is not counted
    assert traffic["total"] == 3 and traffic["max_per_second"] == 2
    assert sorted(traffic["per_day"].values()) == [1, 2]
    assert sorted(traffic["per_second"].values()) == [1, 2]
    assert (await sim.control("DELETE", "/_sim/traffic"))["total"] == 0


# --------------------------------------------------------------------------------------------
# Credentials and signatures


async def test_bad_order_key_is_auth_failed(sim: Sim) -> None:
    with pytest.raises(AuthFailed):
        await sim.adapter(order_key="not-the-key").book(order())
    assert sim.state.state.orders == {}


async def test_bad_api_key_is_auth_failed(sim: Sim) -> None:
    with pytest.raises(AuthFailed):
        await sim.adapter(api_key="wrong").book(order())


async def test_bad_cancel_key_is_auth_failed(sim: Sim) -> None:
    booking = await sim.adapter().book(order())
    with pytest.raises(AuthFailed):
        await sim.adapter(cancel_key="wrong").cancel(booking, "batal")


async def test_bad_tracking_password_is_auth_failed(sim: Sim) -> None:
    booking = await sim.adapter().book(order())
    outcome = await sim.adapter(tracking_password="wrong").track([booking.waybill])
    assert isinstance(outcome[booking.waybill], AuthFailed)


async def test_bad_jms_key_is_auth_failed_on_find(sim: Sim) -> None:
    with pytest.raises(AuthFailed):
        await sim.adapter(private_key="wrong").find("BLT-0001-1")
    with pytest.raises(AuthFailed):
        await sim.adapter(api_account="someone-else").find("BLT-0001-1")


async def test_raw_md5_variant_is_accepted_only_behind_the_flag() -> None:
    for variants, accepted in ((("hex",), False), (("hex", "raw"), True)):
        s, server = await start({"sign_variants": variants})
        try:
            adapter = s.adapter(sign_variant="raw")
            if accepted:
                assert (await adapter.book(order())).waybill
            else:
                with pytest.raises(AuthFailed):
                    await adapter.book(order())
        finally:
            await s.session.close()
            await server.close()


async def test_success_flag_as_string_is_understood() -> None:
    s, server = await start({"success_as_string": True})
    try:
        async with s.session.post(s.url(simulator.CREATE_PATH), data={}) as resp:
            assert (await resp.json())["success"] is False  # refusals stay boolean false
        booking = await s.adapter().book(order())
        assert booking.waybill.startswith("JO")
    finally:
        await s.session.close()
        await server.close()


# --------------------------------------------------------------------------------------------
# Push


@dataclass
class Receiver:
    adapter: JntAdapter
    events: list[TrackingEvent]
    refused: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        accepted = self.adapter.verify_push(dict(request.headers), body)
        if accepted:
            self.events.extend(self.adapter.parse_push(body))
        else:
            self.refused += 1
        reply = self.adapter.push_ack(accepted)
        return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)


async def with_receiver(test: Any) -> None:
    receiver_app = web.Application()
    clock = ManualClock()
    async with aiohttp.ClientSession() as session:
        receiver = Receiver(adapter=None, events=[])  # type: ignore[arg-type]
        receiver_app.router.add_post("/webhooks/jnt", receiver.handle)
        async with TestServer(receiver_app) as rserver:
            app = simulator.create_app(
                clock, options={"push_url": str(rserver.make_url("/webhooks/jnt"))}
            )
            server = TestServer(app)
            async with server:
                s = Sim(clock, server, session, app)
                receiver.adapter = s.adapter()
                await test(s, receiver, str(rserver.make_url("/webhooks/jnt")))


async def test_pushes_arrive_signed_and_are_verified() -> None:
    async def run(s: Sim, receiver: Receiver, _: str) -> None:
        booking = await receiver.adapter.book(order())
        s.advance(days=4)
        result = await s.control("POST", "/_sim/push", {})
        assert result["acked"] is True and result["sent"] >= 4
        assert receiver.refused == 0
        assert {e.waybill for e in receiver.events} == {booking.waybill}
        assert receiver.events[-1].status is Status.DELIVERED
        assert receiver.events[-1].relation == "YBS"
        again = await s.control("POST", "/_sim/push", {})
        assert again["sent"] == 0  # acknowledged scans are not pushed again

    await with_receiver(run)


async def test_duplicate_and_reordered_pushes_dedupe_to_the_same_events() -> None:
    async def run(s: Sim, receiver: Receiver, _: str) -> None:
        await receiver.adapter.book(order("BLT-0001-1"))
        await receiver.adapter.book(order("BLT-0002-1"))
        s.advance(days=4)
        result = await s.control("POST", "/_sim/push", {"duplicate": True, "reorder": True})
        assert result["deliveries"] == 2 and result["acked"]
        keys = [e.dedupe_key for e in receiver.events]
        assert len(keys) == 2 * len(set(keys))  # every event twice, same key
        for waybill in {e.waybill for e in receiver.events}:
            mine = [e.occurred_at for e in receiver.events if e.waybill == waybill]
            half = mine[: len(mine) // 2]
            assert half == sorted(half)  # parse_push puts scans back in time order

    await with_receiver(run)


async def test_forged_or_altered_push_is_refused() -> None:
    async def run(s: Sim, receiver: Receiver, url: str) -> None:
        items = [
            {
                "billCode": "JO0000000001",
                "details": [
                    {
                        "scanTime": "2026-11-03 10:00:00",
                        "scanTypeCode": "100",
                        "desc": "Paket telah diterima oleh Orang Lain (TETANGGA)",
                    }
                ],
            }
        ]
        headers, body = push.build(
            items, api_account="sim-account", private_key="guess", now=s.clock.now()
        )
        async with s.session.post(url, data=body, headers=headers) as resp:
            assert resp.status == 400
            assert (await resp.json())["code"] == "0"
        headers, body = push.build(
            items, api_account="sim-account", private_key="sim-private-key", now=s.clock.now()
        )
        altered = body.replace(b"TETANGGA", b"YBS")
        async with s.session.post(url, data=altered, headers=headers) as resp:
            assert resp.status == 400
        async with s.session.post(url, data=body, headers=headers) as resp:
            assert resp.status == 200  # the genuine one passes
            assert await resp.json() == {**await resp.json(), "code": "1", "data": "SUCCESS"}
        assert receiver.refused == 2 and len(receiver.events) == 1

    await with_receiver(run)
