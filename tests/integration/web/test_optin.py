"""Opt-in over real HTTP on both backends: intake → ready → opt-in → tracking token; identity
refusals that are generic and rate-limited; address and eligibility errors; address changes
until a shipment exists."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from webapi import BLITAR, MALANG, Api, make_api

import schemas
from courier.db.engine import SessionFactory, transaction
from courier.db.models import AuditEntry, Delivery, RateCounter, Shipment
from courier.services import ratelimit


async def _delivery(api: Api) -> Delivery:
    async with api.ctx.sessions() as session:
        return (await session.execute(select(Delivery))).scalar_one()


async def _actions(api: Api) -> list[str]:
    async with api.ctx.sessions() as session:
        rows = await session.execute(select(AuditEntry.action).order_by(AuditEntry.id))
        return list(rows.scalars())


async def test_intake_ready_optin_gives_a_tracking_token(api: Api) -> None:
    assert (await api.put_application("BLT-2026-0101")).status == 201
    assert (await api.ready("BLT-2026-0101")).status == 200
    resp = await api.opt_in("BLT-2026-0101")
    assert resp.status == 201, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    data = await resp.json()
    assert schemas.check("api/delivery_request_result", data) == []  # the documented answer
    token = data["tracking_token"]
    assert len(token) >= 43  # token_urlsafe(32): 256 bits
    assert data["tracking_url"] == f"https://courier.test/t/{token}"
    assert data["state"] == "queued"
    assert data["eligibility"]["code"] == "outside_home_area"
    assert data["eligibility"]["message_id"] and data["eligibility"]["message_en"]

    delivery = await _delivery(api)
    assert delivery.tracking_token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert delivery.destination_regency_code == "35.73"
    assert delivery.address["regency"] == "KOTA MALANG"
    assert delivery.address["village_code"] == "35.73.01.1001"
    assert delivery.collect_by is not None and delivery.next_attempt_at is not None
    assert "delivery.opted_in" in await _actions(api)


async def test_opt_in_before_ready_is_requested_and_address_can_change(api: Api) -> None:
    await api.put_application("BLT-2026-0102")
    first = await api.opt_in("BLT-2026-0102")
    assert first.status == 201
    old_token = (await first.json())["tracking_token"]
    assert (await first.json())["state"] == "requested"

    moved = {**MALANG, "street": "Jl. Ijen No. 7", "village_code": "3573011002"}
    second = await api.opt_in("BLT-2026-0102", address=moved)
    assert second.status == 200, await second.text()
    data = await second.json()
    assert data["outcome"] == "address_changed"
    assert data["tracking_token"] != old_token
    # the link the applicant already has keeps working, on the changed delivery
    for token in (old_token, data["tracking_token"]):
        assert (await api.client.get(f"/api/v1/track/{token}")).status == 200
    delivery = await _delivery(api)
    assert delivery.address["street"] == "Jl. Ijen No. 7"
    assert delivery.address["village_code"] == "35.73.01.1002"
    assert (
        delivery.tracking_token_hash == hashlib.sha256(data["tracking_token"].encode()).hexdigest()
    )

    again = await api.opt_in("BLT-2026-0102", address=moved)
    assert (await again.json())["outcome"] == "token_reissued"
    actions = await _actions(api)
    assert actions.count("delivery.address_changed") == 1
    assert actions.count("delivery.token_reissued") == 1


async def test_address_change_refused_once_a_shipment_exists(api: Api) -> None:
    await api.put_application("BLT-2026-0103")
    await api.ready("BLT-2026-0103")
    assert (await api.opt_in("BLT-2026-0103")).status == 201
    delivery = await _delivery(api)
    now = api.clock.now()
    async with transaction(api.ctx.sessions) as session:
        session.add(
            Shipment(
                delivery_id=delivery.id,
                attempt_no=1,
                courier_code="jnt",
                client_reference="BLT0103A1",
                status="booked",
                created_at=now,
                updated_at=now,
            )
        )
        row = await session.get_one(Delivery, delivery.id)
        row.state = "shipping"
    before = await api.snapshot()
    resp = await api.opt_in("BLT-2026-0103", address={**MALANG, "street": "Jl. Lain No. 1"})
    assert resp.status == 409
    err = (await resp.json())["error"]
    assert err["code"] == "already_booked" and " / " in err["message"]
    assert await api.snapshot() == before


async def test_the_address_is_corrected_after_the_courier_refused_the_booking(api: Api) -> None:
    """The refused attempt never carried the address anywhere: the applicant corrects it (the
    old 409 left a refused booking with no way forward) and the attempt's row stays."""
    await api.put_application("BLT-2026-0104")
    await api.ready("BLT-2026-0104")
    assert (await api.opt_in("BLT-2026-0104")).status == 201
    delivery = await _delivery(api)
    now = api.clock.now()
    async with transaction(api.ctx.sessions) as session:
        session.add(
            Shipment(
                delivery_id=delivery.id,
                attempt_no=1,
                courier_code="jnt",
                client_reference="BLT0104A1",
                status="booking_failed",
                created_at=now,
                updated_at=now,
            )
        )
        row = await session.get_one(Delivery, delivery.id)
        row.state = "needs_attention"
    resp = await api.opt_in("BLT-2026-0104", address={**MALANG, "street": "Jl. Lain No. 1"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["outcome"] == "address_changed"
    changed = await _delivery(api)
    assert changed.address["street"] == "Jl. Lain No. 1" and changed.state == "needs_attention"
    async with api.ctx.sessions() as session:
        kept = await session.scalar(
            select(Shipment.status).where(Shipment.delivery_id == delivery.id)
        )
    assert kept == "booking_failed"


@pytest.mark.parametrize(
    "overrides",
    [
        {"application_no": "BLT-2026-9999"},  # unknown application
        {"date_of_birth": "1984-03-18"},  # wrong date of birth
        {"phone": "0812-0000-0000"},  # wrong phone
        {"office_code": "MLG"},  # unknown office
    ],
    ids=["unknown-application", "wrong-dob", "wrong-phone", "wrong-office"],
)
async def test_wrong_identity_gets_one_generic_error(api: Api, overrides: dict[str, str]) -> None:
    await api.put_application("BLT-2026-0104")
    before = await api.snapshot()
    resp = await api.opt_in("BLT-2026-0104", **overrides)
    assert resp.status == 422
    body = await resp.json()
    assert body["error"]["code"] == "identity_not_verified"
    assert [d["path"] for d in body["error"]["details"]] == ["$"]
    after = await api.snapshot()
    # nothing changed but the two failure counters (per application, per client)
    assert after["deliveries"] == before["deliveries"] == []
    assert after["counts"]["audit_log"] == before["counts"]["audit_log"]
    assert after["counts"]["rate_counters"] == 2


async def test_rate_counter_keys_use_a_key_derived_from_the_pepper(api: Api) -> None:
    """The counters are keyed by HMAC under HMAC(pepper, "rate-limit"), never the pepper itself:
    one secret, one job."""
    await api.put_application("BLT-2026-0108")
    assert (await api.opt_in("BLT-2026-0108", date_of_birth="1990-01-01")).status == 422
    async with api.ctx.sessions() as session:
        stored = set((await session.execute(select(RateCounter.key))).scalars())
    pepper = api.ctx.settings.passport_pepper
    derived = ratelimit.counter_key(pepper)
    assert derived != pepper
    assert ratelimit.key_hash(derived, "BLT/BLT-2026-0108") in stored
    assert ratelimit.key_hash(pepper, "BLT/BLT-2026-0108") not in stored
    assert len(stored) == 2


async def test_identity_errors_are_identical_whatever_failed(api: Api) -> None:
    await api.put_application("BLT-2026-0105")
    bodies = []
    for overrides in ({"date_of_birth": "1990-01-01"}, {"application_no": "BLT-2026-0000"}):
        resp = await api.opt_in("BLT-2026-0105", **overrides)
        bodies.append((resp.status, await resp.json()))
    assert bodies[0] == bodies[1]


@pytest.fixture
async def strict_api(
    db_url: str, engine: AsyncEngine, sessions: SessionFactory
) -> AsyncIterator[Api]:
    async for value in make_api(
        db_url, engine, sessions, optin_max_failures=3, optin_window_minutes=30
    ):
        yield value


async def test_repeated_failures_are_rate_limited_per_application(strict_api: Api) -> None:
    api = strict_api
    await api.put_application("BLT-2026-0106")
    for _ in range(3):
        assert (await api.opt_in("BLT-2026-0106", date_of_birth="1990-01-01")).status == 422
    # now even the right identity waits: a guesser cannot tell a hit from a miss
    blocked = await api.opt_in("BLT-2026-0106")
    assert blocked.status == 429
    assert (await blocked.json())["error"]["code"] == "rate_limited"
    assert 1 <= int(blocked.headers["Retry-After"]) <= 30 * 60
    api.clock.advance(timedelta(minutes=31))
    assert (await api.opt_in("BLT-2026-0106")).status == 201


async def test_repeated_failures_are_rate_limited_per_client(strict_api: Api) -> None:
    api = strict_api
    await api.put_application("BLT-2026-0107")
    for n in range(3):  # a different application each time: the per-client limit bites
        assert (await api.opt_in(f"BLT-2026-090{n}")).status == 422
    resp = await api.opt_in("BLT-2026-0107")
    assert resp.status == 429
    async with api.ctx.sessions() as session:
        keys = (await session.execute(select(AuditEntry))).scalars().all()
    assert all(e.entity != "delivery" for e in keys)


async def test_address_errors_are_field_level_and_change_nothing(api: Api) -> None:
    await api.put_application("BLT-2026-0108")
    before = await api.snapshot()
    bad_postal = await api.opt_in("BLT-2026-0108", address={**MALANG, "postal_code": "66117"})
    assert bad_postal.status == 422
    details = (await bad_postal.json())["error"]["details"]
    assert [d["path"] for d in details] == ["$.address.postal_code"]

    shape = await api.opt_in("BLT-2026-0108", address={**MALANG, "postal_code": "651"})
    assert [d["path"] for d in (await shape.json())["error"]["details"]] == [
        "$.address.postal_code"
    ]

    wrong_level = await api.opt_in("BLT-2026-0108", address={**MALANG, "district_code": "35.72.01"})
    paths = {d["path"] for d in (await wrong_level.json())["error"]["details"]}
    assert "$.address.district_code" in paths

    missing = await api.opt_in(
        "BLT-2026-0108",
        address={k: v for k, v in MALANG.items() if k != "village_code"},
        consent=False,
    )
    paths = {d["path"] for d in (await missing.json())["error"]["details"]}
    assert paths == {"$.address.village_code", "$.consent"}
    assert await api.snapshot() == before  # address errors do not even count as failures


async def test_ineligible_address_is_explained_in_both_languages(api: Api) -> None:
    await api.put_application("BLT-2026-0109")
    before = await api.snapshot()
    resp = await api.opt_in("BLT-2026-0109", address=BLITAR)
    assert resp.status == 422
    err = (await resp.json())["error"]
    assert err["code"] == "not_eligible"
    assert "Alamat tujuan" in err["message"] and "delivery address" in err["message"]
    assert [d["path"] for d in err["details"]] == ["$.address.regency_code"] * 2
    assert await api.snapshot() == before


async def test_priority_case_in_the_home_area_is_eligible(api: Api) -> None:
    await api.put_application("BLT-2026-0110", priority_kind="disabled")
    resp = await api.opt_in("BLT-2026-0110", address=BLITAR)
    assert resp.status == 201
    data = await resp.json()
    assert data["eligibility"]["code"] == "priority_case"
    delivery = await _delivery(api)
    assert delivery.priority == 2
