"""The simulators' real-world variations (simulators.variations), switched through the control
API, seeded, and read by the real clients over loopback HTTP: every variation still parses into
events our status tables know, with receivers and relations kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters import registry
from adapters.base import Address, Party, ShipmentOrder, TrackingEvent
from adapters.jnt import push
from adapters.jnt.adapter import JntAdapter
from adapters.posind.adapter import PosIndonesiaAdapter
from core.clock import WIB, ManualClock
from core.status import Status
from courier.domain.handover import Relation, classify_relation
from simulators import jnt as jnt_sim
from simulators import posind as pos_sim
from simulators.lifecycle import OUTCOMES
from simulators.variations import NAMES

START = datetime(2026, 11, 2, 8, 0, tzinfo=WIB).astimezone(UTC)  # Monday 08:00 WIB
TRANSPORT = {"backoff_initial": 0.01, "backoff_max": 0.05, "max_attempts": 2}
EVERY_VARIATION_BUT_LOOKUP = {n: 1 for n in NAMES if n != "no_lookup"}

OFFICE = Party(
    "Kanim Blitar",
    "+62342801234",
    Address(
        "Jl. Kenari 54",
        "Sananwetan",
        "Sananwetan",
        "Kota Blitar",
        "Jawa Timur",
        "66137",
        "35.05",
        "35.05.01",
    ),
)
APPLICANT = Party(
    "Budi Santoso",
    "+6281234567890",
    Address(
        "Jl. Ijen 7",
        "Oro-oro Dowo",
        "Klojen",
        "Kota Malang",
        "Jawa Timur",
        "65119",
        "35.73",
        "35.73.01",
    ),
)


def order(reference: str, service: str) -> ShipmentOrder:
    return ShipmentOrder(reference, OFFICE, APPLICANT, Decimal("0.2"), 0, service)


class Receiver:
    """Our side of a J&T push, with the client's own verify and parse: what a push carries."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.events: list[TrackingEvent] = []
        self.deliveries = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.deliveries += 1
        ok = push.verify(
            dict(request.headers),
            body,
            api_account=self.options["api_account"],
            private_key=self.options["private_key"],
        )
        if ok:
            self.events.extend(push.parse(body))
        reply = push.ack(ok)
        return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _control(
    http: aiohttp.ClientSession, server: TestServer, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(method, server.make_url(path), json=body) as resp:
        return resp.status, (await resp.json() if resp.status == 200 else await resp.text())


async def test_variations_are_switched_through_the_control_api(http: aiohttp.ClientSession) -> None:
    app = jnt_sim.create_app(ManualClock(START))
    async with TestServer(app) as server:
        status, body = await _control(http, server, "GET", "/_sim/variations")
        assert status == 200 and set(body["rates"]) == set(NAMES)
        assert not any(body["rates"].values())
        status, body = await _control(
            http, server, "POST", "/_sim/variations", {"all": 1, "seed": "s1"}
        )
        assert body == {"seed": "s1", "rates": dict.fromkeys(NAMES, 1.0)}
        status, body = await _control(
            http, server, "POST", "/_sim/variations", {"rates": {"no_lookup": 0}}
        )
        assert body["rates"]["no_lookup"] == 0 and body["rates"]["text_after_bracket"] == 1
        for bad in ({"rates": {"made_up": 1}}, {"rates": {"no_lookup": 2}}, {"surprise": 1}):
            status, _ = await _control(http, server, "POST", "/_sim/variations", bad)
            assert status == 400, bad
        status, body = await _control(http, server, "DELETE", "/_sim/variations")
        assert not any(body["rates"].values())


async def _jnt_run(
    http: aiohttp.ClientSession, variations: dict[str, Any], references: list[str]
) -> tuple[dict[str, list[TrackingEvent]], Receiver, list[dict[str, Any]]]:
    """Book ``references`` (outcomes cycling through every script), let 12 days pass, then
    track each parcel and push everything: (poll events by reference, push receiver, results)."""
    clock = ManualClock(START)
    receiver = Receiver(dict(jnt_sim.DEFAULT_OPTIONS))
    ours = web.Application()
    ours.router.add_post("/webhooks/jnt", receiver.handle)
    async with TestServer(ours) as hook:
        options = {"push_url": str(hook.make_url("/webhooks/jnt")), "variations": variations}
        app = jnt_sim.create_app(clock, options=options)
        async with TestServer(app) as server:
            sim = app[jnt_sim.SIM_KEY]
            settings = {
                **jnt_sim.adapter_settings(str(server.make_url("/"))),
                "transport": TRANSPORT,
            }
            adapter = registry.create("jnt", settings, clock=clock, session=http)
            assert isinstance(adapter, JntAdapter)
            waybills = {}
            for i, reference in enumerate(references):
                sim.state.forced_outcomes[reference] = OUTCOMES[i % len(OUTCOMES)]
                waybills[reference] = (await adapter.book(order(reference, "EZ"))).waybill
            clock.advance(timedelta(days=12))
            polled = {}
            for reference, waybill in waybills.items():
                outcome = (await adapter.track([waybill]))[waybill]
                assert not isinstance(outcome, Exception), outcome
                polled[reference] = list(outcome)
            pushes = [await jnt_sim.push_now(sim), await jnt_sim.push_now(sim)]
    return polled, receiver, pushes


def _check_parsed(events: list[TrackingEvent], outcome: str) -> None:
    """What every variation must still give: mapped statuses, receivers and relations kept."""
    statuses = [e.status for e in events]
    assert None not in statuses, [(e.raw_code, e.raw_text) for e in events if e.status is None]
    delivered = [e for e in events if e.status is Status.DELIVERED]
    if outcome.startswith("delivered") or outcome == "fail_once_then_deliver":
        assert delivered, outcome
        for event in delivered:
            assert event.receiver_name, event.raw
            assert event.relation, event.raw
            kind = classify_relation(event.relation)
            expected = {
                "delivered_family": {Relation.FAMILY},
                "delivered_other": {Relation.OTHER},
            }.get(outcome, {Relation.SELF})
            assert kind in expected, (event.relation, outcome)
    if outcome in ("fail_once_then_deliver", "returned"):
        failed = [e for e in events if e.status is Status.DELIVERY_FAILED]
        assert failed and all(e.reason for e in failed)


async def test_jnt_every_variation_still_parses_by_poll_and_push(
    http: aiohttp.ClientSession,
) -> None:
    references = [f"BLT-V{i:03d}-1" for i in range(12)]
    polled, receiver, pushes = await _jnt_run(
        http, {"rates": EVERY_VARIATION_BUT_LOOKUP}, references
    )
    for i, reference in enumerate(references):
        outcome = OUTCOMES[i % len(OUTCOMES)]
        events = polled[reference]
        _check_parsed(events, outcome)
        # duplicated scans: the poll lists every scan twice, the same event both times
        assert len({e.dedupe_key for e in events}) * 2 == len(events)
        if outcome == "returned":  # no final scan: the parcel stays returning
            assert events[-1].status is Status.RETURNING
            assert Status.RETURNED not in {e.status for e in events}
    assert pushes[0]["acked"] and pushes[0]["statuses"] == [200, 200]  # delivered twice
    by_waybill: dict[str, list[TrackingEvent]] = {}
    for event in receiver.events:
        by_waybill.setdefault(event.waybill, []).append(event)
    for i, reference in enumerate(references):
        waybill = polled[reference][0].waybill
        _check_parsed(by_waybill[waybill], OUTCOMES[i % len(OUTCOMES)])


async def test_jnt_variation_texts_differ_from_the_tidy_ones_and_are_seeded(
    http: aiohttp.ClientSession,
) -> None:
    references = [f"BLT-S{i:03d}-1" for i in range(6)]
    tidy, _, _ = await _jnt_run(http, {}, references)
    varied, _, _ = await _jnt_run(
        http, {"seed": "a", "rates": EVERY_VARIATION_BUT_LOOKUP}, references
    )
    again, _, _ = await _jnt_run(
        http, {"seed": "a", "rates": EVERY_VARIATION_BUT_LOOKUP}, references
    )
    delivered_texts = {
        e.raw_text for events in varied.values() for e in events if e.status is Status.DELIVERED
    }
    assert delivered_texts and all("【" in text for text in delivered_texts)
    assert {e.raw_text for e in tidy["BLT-S000-1"]} != {e.raw_text for e in varied["BLT-S000-1"]}
    assert [[e.raw_text for e in v] for v in varied.values()] == [
        [e.raw_text for e in v] for v in again.values()
    ]
    notes = {
        e.raw.get("note")
        for events in varied.values()
        for e in events
        if e.status is Status.DELIVERED
    }
    assert notes - {"", None}  # relations moved into the note


async def test_jnt_account_without_lookup_answers_404(http: aiohttp.ClientSession) -> None:
    app = jnt_sim.create_app(
        ManualClock(START), options={"variations": {"rates": {"no_lookup": 1}}}
    )
    async with TestServer(app) as server:
        async with http.post(server.make_url(jnt_sim.FIND_PATH), data={"bizContent": "{}"}) as resp:
            assert resp.status == 404
            assert (await resp.json())["path"] == jnt_sim.FIND_PATH
        status, _ = await _control(http, server, "DELETE", "/_sim/variations")
        assert status == 200
        async with http.post(server.make_url(jnt_sim.FIND_PATH), data={"bizContent": "{}"}) as resp:
            assert resp.status == 200  # the route exists again: a JMS answer (here a refusal)


# ------------------------------------------------------------------------------------------- Pos


POS_OPTIONS = {"consumer_key": "k", "consumer_secret": "s", "userid": 7, "memberid": "BLT0001"}


async def _pos(
    http: aiohttp.ClientSession, variations: dict[str, Any], n: int
) -> tuple[list[dict[str, Any]], dict[str, list[TrackingEvent]]]:
    clock = ManualClock(START)
    app = pos_sim.create_app(clock, options={**POS_OPTIONS, "variations": variations})
    async with TestServer(app) as server:
        sim = app[pos_sim.STATE_KEY]
        settings = pos_sim.adapter_settings(str(server.make_url("")), POS_OPTIONS)
        adapter = registry.create(
            "posind", settings | {"transport": TRANSPORT}, clock=clock, session=http
        )
        assert isinstance(adapter, PosIndonesiaAdapter)
        bookings = []
        for i in range(n):
            reference = f"BLT-P{i:03d}-1"
            sim.state.forced_outcomes[reference] = OUTCOMES[i % len(OUTCOMES)]
            bookings.append(await adapter.book(order(reference, "240")))
        clock.advance(timedelta(days=12))
        polled = {}
        for booking in bookings:
            outcome = (await adapter.track([booking.waybill]))[booking.waybill]
            assert not isinstance(outcome, Exception), outcome
            polled[booking.reference] = list(outcome)
        await adapter.close()
    return [dict(b.raw) for b in bookings], polled


async def test_pos_both_answer_shapes_book(http: aiohttp.ClientSession) -> None:
    answers, _ = await _pos(http, {"seed": "mix", "rates": {"pos_alt_answer": 0.5}}, 12)
    shapes = {"respcode" if "respcode" in a else "responseCode" for a in answers}
    assert shapes == {"respcode", "responseCode"}  # both seen, every one booked


async def test_pos_every_variation_still_parses(http: aiohttp.ClientSession) -> None:
    answers, polled = await _pos(http, {"rates": EVERY_VARIATION_BUT_LOOKUP}, 12)
    assert all("respcode" in a for a in answers)
    for i, (reference, events) in enumerate(polled.items()):
        outcome = OUTCOMES[i % len(OUTCOMES)]
        if outcome == "lost":
            continue  # a lost Pos item goes silent
        _check_pos(events, outcome, reference)


def _check_pos(events: list[TrackingEvent], outcome: str, reference: str) -> None:
    assert None not in [e.status for e in events], reference
    assert len({e.dedupe_key for e in events}) * 2 == len(events)  # each scan listed twice
    delivered = [e for e in events if e.status is Status.DELIVERED]
    if outcome == "delivered_family":
        assert all(classify_relation(e.relation) is Relation.FAMILY for e in delivered)
    if outcome in ("fail_once_then_deliver", "returned"):
        failed = [e for e in events if e.status is Status.DELIVERY_FAILED]
        assert failed and all(e.reason and e.reason == e.reason.upper() for e in failed)
    if outcome == "returned":
        assert events[-1].status is Status.RETURNING
