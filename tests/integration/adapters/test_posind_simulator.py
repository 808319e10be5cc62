"""PosIndonesiaAdapter against the Pos simulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import BaseTestServer, TestServer

import schemas
from adapters import registry
from adapters.base import (
    Address,
    AuthFailed,
    CourierRejected,
    NotSupported,
    OutcomeUnknown,
    Party,
    ResponseInvalid,
    ShipmentOrder,
    TrackingEvent,
)
from adapters.posind.adapter import SANDBOX_POSTING_PATH, PosIndonesiaAdapter
from core.clock import WIB, ManualClock
from core.status import Status
from simulators.posind import STATE_KEY, PosSimulator, adapter_settings, create_app

START = datetime(2026, 11, 2, 8, 0, tzinfo=WIB).astimezone(UTC)  # Monday 08:00 WIB
KEY, SECRET = "kanim-blitar", "s3cret"
TRANSPORT = {
    "connect_timeout": 1,
    "read_timeout": 0.4,
    "total_timeout": 0.5,
    "max_attempts": 3,
    "backoff_initial": 0.01,
    "backoff_max": 10,
    "requests_per_second": 1000,
    "failures_to_open": 50,
}
SIM_OPTIONS = {
    "consumer_key": KEY,
    "consumer_secret": SECRET,
    "userid": 7,
    "memberid": "BLT0001",
    "token_ttl_seconds": 3600,
}

OFFICE = Party(
    name="Kantor Imigrasi Blitar",
    phone="+62342801234",
    address=Address(
        street="Jl. Sudanco Supriadi No. 50",
        village="Bendogerit",
        district="Sananwetan",
        regency="Kota Blitar",
        province="Jawa Timur",
        postal_code="66133",
        regency_code="35.72",
        district_code="35.72.03",
    ),
)
APPLICANT = Party(
    name="Siti Rahayu",
    phone="+6281234567890",
    address=Address(
        street="Jl. Ijen No. 7",
        village="Oro-oro Dowo",
        district="Klojen",
        regency="Kota Malang",
        province="Jawa Timur",
        postal_code="65119",
        regency_code="35.73",
        district_code="35.73.02",
    ),
)


def order(reference: str = "BLT-0001-1") -> ShipmentOrder:
    return ShipmentOrder(
        reference=reference,
        sender=OFFICE,
        receiver=APPLICANT,
        weight_kg=Decimal("0.2"),
        declared_value=350000,
        service="240",
    )


class Harness:
    def __init__(
        self,
        clock: ManualClock,
        server: BaseTestServer,
        session: aiohttp.ClientSession,
        sim: PosSimulator,
    ) -> None:
        self.clock = clock
        self.server = server
        self.session = session
        self.sim = sim

    def adapter(self, **settings: Any) -> PosIndonesiaAdapter:
        """Built the way the service builds it: registry, settings schema, transport block."""
        base = adapter_settings(str(self.server.make_url("")), SIM_OPTIONS)
        built = registry.create(
            "posind",
            base | {"transport": TRANSPORT} | settings,
            clock=self.clock,
            session=self.session,
        )
        assert isinstance(built, PosIndonesiaAdapter)
        return built

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, self.server.make_url(path), json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    def force(self, endpoint: str, kind: str, count: int = 1, **settings: Any) -> None:
        if settings:
            self.sim.state.faults.set(endpoint, **settings)
        self.sim.state.faults.force(endpoint, kind, count)


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    clock = ManualClock(START)
    app = create_app(clock, options=SIM_OPTIONS)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        yield Harness(clock, server, session, app[STATE_KEY])


async def track_one(adapter: PosIndonesiaAdapter, waybill: str) -> Sequence[TrackingEvent]:
    result = (await adapter.track([waybill]))[waybill]
    assert not isinstance(result, Exception), result
    return result


# ---------------------------------------------------------------------------------- token


async def test_token_is_fetched_once_and_cached(h: Harness) -> None:
    adapter = h.adapter()
    booking = await adapter.book(order())
    await track_one(adapter, booking.waybill)
    await track_one(adapter, booking.waybill)
    assert adapter.tokens.fetches == 1
    assert len(h.sim.tokens) == 1


async def test_token_is_renewed_before_it_expires(h: Harness) -> None:
    adapter = h.adapter(token_refresh_margin_seconds=60)
    await adapter.book(order("R1"))
    first = next(iter(h.sim.tokens))
    h.clock.advance(timedelta(seconds=3600 - 59))  # inside the margin, not yet expired
    assert h.clock.now() < h.sim.tokens[first]
    await adapter.book(order("R2"))
    assert adapter.tokens.fetches == 2


async def test_refused_token_is_replaced_once(h: Harness) -> None:
    adapter = h.adapter()
    booking = await adapter.book(order())
    h.force("track", "expired_token")
    assert await track_one(adapter, booking.waybill) == []  # not picked up yet
    assert adapter.tokens.fetches == 2


async def test_revoked_tokens_are_replaced_for_a_create_too(h: Harness) -> None:
    adapter = h.adapter()
    await adapter.book(order("R1"))
    h.sim.tokens.clear()  # the gateway forgot every token
    await adapter.book(order("R2"))
    assert adapter.tokens.fetches == 2
    assert h.sim.state.create_counts == {"R1": 1, "R2": 1}


async def test_token_refused_twice_is_auth_failed(h: Harness) -> None:
    adapter = h.adapter()
    h.force("track", "expired_token", count=2)
    result = (await adapter.track(["P0"]))["P0"]
    assert isinstance(result, AuthFailed)


async def test_bad_consumer_secret_is_auth_failed(h: Harness) -> None:
    adapter = h.adapter(consumer_secret="wrong")
    with pytest.raises(AuthFailed, match="token refused"):
        await adapter.book(order())
    assert h.sim.state.create_counts == {}


async def test_expired_token_is_refused_by_the_gateway(h: Harness) -> None:
    adapter = h.adapter()
    await adapter.book(order())
    token = next(iter(h.sim.tokens))
    h.clock.advance(timedelta(hours=2))
    url = h.server.make_url("/utilitas/1.0.1/getTrackAndTrace")
    async with h.session.post(
        url, json={"barcode": "P1"}, headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        assert resp.status == 401
        assert (await resp.json())["fault"]["code"] == 900901
    async with h.session.post(url, json={"barcode": "P1"}) as resp:
        assert resp.status == 401
        assert (await resp.json())["fault"]["code"] == 900902


# ---------------------------------------------------------------------------------- book


async def test_book_returns_a_p_barcode_and_sends_the_full_body(h: Harness) -> None:
    booking = await h.adapter().book(order())
    assert re.fullmatch(r"P\d{13}", booking.waybill)
    assert booking.reference == "BLT-0001-1"
    stored = h.sim.state.orders["BLT-0001-1"]
    assert schemas.check("couriers/posind/posting_request", stored.payload) == []
    assert {a["addresstype"] for a in stored.payload["addresses"]} == {
        "senderlocation",
        "receiverlocation",
        "pickuplocation",
        "deliverylocation",
    }
    assert stored.destination_regency_code.startswith("35.")


async def test_sandbox_posting_path(h: Harness) -> None:
    booking = await h.adapter(posting_path=SANDBOX_POSTING_PATH).book(order())
    assert booking.waybill.startswith("P")


async def test_duplicate_reference_is_outcome_unknown_never_a_second_order(h: Harness) -> None:
    adapter = h.adapter()
    await adapter.book(order())
    with pytest.raises(OutcomeUnknown, match="already used"):
        await adapter.book(order())
    counts = await h.control("GET", "/_sim/orders")
    assert counts["create_counts"] == {"BLT-0001-1": 2}
    assert len(counts["orders"]) == 1


async def test_invalid_order_is_rejected_with_the_path(h: Harness) -> None:
    bad = replace(
        order(), receiver=replace(APPLICANT, address=replace(APPLICANT.address, postal_code="651"))
    )
    with pytest.raises(CourierRejected) as info:
        await h.adapter().book(bad)
    assert info.value.code == "101"
    assert "zipcode" in info.value.reason


async def test_wrong_member_is_rejected(h: Harness) -> None:
    with pytest.raises(CourierRejected) as info:
        await h.adapter(memberid="SOMEONE").book(order())
    assert info.value.code == "103"


# ---------------------------------------------------------------------------------- track


async def statuses_until_terminal(
    h: Harness, adapter: PosIndonesiaAdapter, waybill: str, days: int = 12
) -> list[TrackingEvent]:
    """Advance the clock half a day at a time (through the control API) and track."""
    seen: list[TrackingEvent] = []
    for _ in range(days * 2):
        await h.control("POST", "/_sim/clock/advance", {"seconds": 12 * 3600})
        seen = list(await track_one(adapter, waybill))
    return seen


async def test_unknown_barcode_and_unscanned_parcel_are_empty(h: Harness) -> None:
    adapter = h.adapter()
    booking = await adapter.book(order())
    assert await track_one(adapter, "P9999999999999") == []
    assert await track_one(adapter, booking.waybill) == []  # booked, not yet at the counter


async def test_single_event_comes_as_one_object_and_is_read(h: Harness) -> None:
    adapter = h.adapter()
    booking = await adapter.book(order())
    h.clock.set(datetime(2026, 11, 2, 10, 30, tzinfo=WIB))  # after pickup, before departure
    url = h.server.make_url("/utilitas/1.0.1/getTrackAndTrace")
    token = await adapter.tokens.token()
    async with h.session.post(
        url, json={"barcode": booking.waybill}, headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        wire = await resp.json()
    assert isinstance(wire["rs_tnt"]["r_tnt"], dict)
    assert wire["rs_tnt"]["r_tnt"]["eventName"] == "POSTING LOKET"
    assert len(wire["rs_tnt"]["r_tnt"]["description"].split(";")) >= 12
    events = await track_one(adapter, booking.waybill)
    assert [e.status for e in events] == [Status.PICKED_UP]


async def test_whole_lifecycle_delivered_to_family(h: Harness) -> None:
    adapter = h.adapter()
    await h.control("POST", "/_sim/outcomes", {"reference": "R-FAM", "outcome": "delivered_family"})
    booking = await adapter.book(order("R-FAM"))
    events = await statuses_until_terminal(h, adapter, booking.waybill)
    assert [e.status for e in events] == [
        Status.PICKED_UP,
        Status.IN_TRANSIT,
        Status.IN_TRANSIT,
        Status.OUT_FOR_DELIVERY,
        Status.DELIVERED,
    ]
    assert [e.raw_code for e in events] == [
        "POSTING LOKET",
        "MANIFEST SERAH",
        "MANIFEST TERIMA",
        "PROSES ANTAR",
        "SELESAI ANTAR",
    ]
    last = events[-1]
    assert last.relation in ("ISTRI", "SUAMI", "ORANG TUA", "ANAK", "Orang Serumah")
    if last.relation != "Orang Serumah":
        assert last.receiver_name
    assert all(a.occurred_at < b.occurred_at for a, b in itertools.pairwise(events))
    assert last.occurred_at == h.sim.state.orders["R-FAM"].steps[-1].at


async def test_whole_lifecycle_self_names_the_applicant(h: Harness) -> None:
    adapter = h.adapter()
    h.sim.state.forced_outcomes["R-SELF"] = "delivered_self"
    booking = await adapter.book(order("R-SELF"))
    last = (await statuses_until_terminal(h, adapter, booking.waybill))[-1]
    assert (last.status, last.receiver_name, last.relation) == (
        Status.DELIVERED,
        "SITI RAHAYU",
        "YBS",
    )


async def test_failed_attempt_then_delivered(h: Harness) -> None:
    adapter = h.adapter()
    h.sim.state.forced_outcomes["R-FAIL"] = "fail_once_then_deliver"
    booking = await adapter.book(order("R-FAIL"))
    events = await statuses_until_terminal(h, adapter, booking.waybill)
    statuses = [e.status for e in events]
    assert statuses[-4:] == [
        Status.OUT_FOR_DELIVERY,
        Status.DELIVERY_FAILED,
        Status.OUT_FOR_DELIVERY,
        Status.DELIVERED,
    ]
    failed = events[statuses.index(Status.DELIVERY_FAILED)]
    assert failed.reason in ("Penerima tidak di tempat", "Alamat tidak jelas")


async def test_returned_after_three_attempts(h: Harness) -> None:
    adapter = h.adapter()
    h.sim.state.forced_outcomes["R-RET"] = "returned"
    booking = await adapter.book(order("R-RET"))
    statuses = [e.status for e in await statuses_until_terminal(h, adapter, booking.waybill)]
    assert statuses.count(Status.DELIVERY_FAILED) == 3
    assert statuses[-2:] == [Status.RETURNING, Status.RETURNED]


async def test_lost_parcel_goes_silent(h: Harness) -> None:
    adapter = h.adapter()
    h.sim.state.forced_outcomes["R-LOST"] = "lost"
    booking = await adapter.book(order("R-LOST"))
    events = await statuses_until_terminal(h, adapter, booking.waybill)
    assert [e.status for e in events] == [Status.PICKED_UP, Status.IN_TRANSIT]


# ---------------------------------------------------------------------------------- faults


async def test_5xx_on_track_is_retried(h: Harness) -> None:
    adapter = h.adapter()
    h.force("track", "error", count=2)
    assert await track_one(adapter, "P1") == []
    assert h.sim.state.faults.forced == []


async def test_5xx_on_track_beyond_attempts_is_reported_per_waybill(h: Harness) -> None:
    adapter = h.adapter()
    h.force("track", "error", count=3)
    result = await adapter.track(["P1", "P2"])
    assert isinstance(result["P1"], Exception) and not isinstance(result["P1"], ResponseInvalid)
    assert result["P2"] == []  # one waybill's failure does not hide another's answer


async def test_timeout_on_create_is_outcome_unknown(h: Harness) -> None:
    adapter = h.adapter()
    h.force("create", "timeout", timeout_seconds=1.0)
    with pytest.raises(OutcomeUnknown):
        await adapter.book(order())
    assert h.sim.state.orders == {}


async def test_lost_reply_then_resend_keeps_one_order(h: Harness) -> None:
    adapter = h.adapter()
    h.force("create", "timeout_processed", timeout_seconds=1.0)
    with pytest.raises(OutcomeUnknown):
        await adapter.book(order())
    with pytest.raises(OutcomeUnknown):  # same reference again: "already used", no new order
        await adapter.book(order())
    assert h.sim.state.create_counts["BLT-0001-1"] == 2
    assert list(h.sim.state.orders) == ["BLT-0001-1"]


async def test_garbled_create_answer_is_outcome_unknown(h: Harness) -> None:
    adapter = h.adapter()
    h.force("create", "malformed")
    with pytest.raises(OutcomeUnknown, match="unreadable"):
        await adapter.book(order())


async def test_garbled_track_answer_is_response_invalid(h: Harness) -> None:
    adapter = h.adapter()
    h.force("track", "malformed")
    result = (await adapter.track(["P1"]))["P1"]
    assert isinstance(result, ResponseInvalid)


async def test_429_retry_after_is_honoured_on_the_clock(h: Harness) -> None:
    adapter = h.adapter()
    await adapter.tokens.token()
    h.force("track", "rate_limit", retry_after=5)
    before = h.clock.now()
    assert await track_one(adapter, "P1") == []
    assert h.clock.now() - before >= timedelta(seconds=5)


# ---------------------------------------------------------------------------------- no cancel


def test_bad_settings_are_refused_by_path() -> None:
    with pytest.raises(ValueError, match=r"\$\.userid"):
        registry.validate("posind", adapter_settings("http://127.0.0.1:1") | {"userid": "x"})
    with pytest.raises(ValueError, match="unknown field"):
        registry.validate("posind", adapter_settings("http://127.0.0.1:1") | {"tokn_path": "/t"})


async def test_cancel_find_and_push_are_not_supported(h: Harness) -> None:
    adapter = h.adapter()
    booking = await adapter.book(order())
    caps = adapter.capabilities
    assert (caps.cancel, caps.push, caps.find, caps.track_batch_size) == (False, False, False, 1)
    # "102" on a reused orderid is our inference, not documented: never relied on to resend
    assert caps.dedupes_reference is False
    with pytest.raises(NotSupported, match="no cancel"):
        await adapter.cancel(booking, "applicant moved")
    with pytest.raises(NotSupported, match="no lookup"):
        await adapter.find(booking.reference)
    assert adapter.verify_push({}, b"{}") is False
    with pytest.raises(NotSupported):
        adapter.parse_push(b"{}")
    with pytest.raises(NotSupported):
        adapter.push_ack(True)


# ---------------------------------------------------------------------------------- standalone


@pytest.mark.slow
async def test_courier_simulate_posind_runs_standalone_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "courier.cli",
        "simulate",
        "posind",
        "--port",
        "0",
        "--epoch",
        "2026-11-02T08:00:00+07:00",
        "--seed",
        "e2e",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), timeout=15)
        match = re.search(rb"listening on (http://\S+)", first)
        assert match, first
        url = match.group(1).decode()
        clock = ManualClock(START)
        async with aiohttp.ClientSession() as session:
            adapter = registry.create("posind", adapter_settings(url), clock=clock, session=session)
            booking = await adapter.book(order())
            assert booking.waybill.startswith("P")
            async with session.get(f"{url}/_sim/orders") as resp:
                assert (await resp.json())["create_counts"] == {"BLT-0001-1": 1}
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), timeout=15)
    assert rc == 0
