"""Intake over real HTTP on both backends: register, update, mark ready; idempotent; scoped by
office and role; every change audited without personal data."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from webapi import APPLICANT, PASSPORT_NO, PEPPER, Api

import schemas
from courier.db.engine import transaction
from courier.db.models import Application, AuditEntry
from courier.services import intake, staff


async def _audit(api: Api) -> list[AuditEntry]:
    async with api.ctx.sessions() as session:
        rows = await session.execute(select(AuditEntry).order_by(AuditEntry.id))
        return list(rows.scalars())


async def _application(api: Api, no: str) -> Application:
    async with api.ctx.sessions() as session:
        row = await session.execute(select(Application).where(Application.application_no == no))
        return row.scalar_one()


async def test_register_update_and_ready(api: Api) -> None:
    resp = await api.put_application("BLT-2026-0001", priority_kind="elderly")
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["outcome"] == "created"
    app = await _application(api, "BLT-2026-0001")
    assert app.phone == "+6281234567890"  # stored as E.164
    assert app.state == "registered"

    same = await api.put_application("BLT-2026-0001", priority_kind="elderly")
    assert same.status == 200
    assert (await same.json())["outcome"] == "unchanged"

    # PUT replaces: fields left out take their defaults, so the priority is sent again
    changed = await api.put_application(
        "BLT-2026-0001", phone="0857 1111 2222", priority_kind="elderly"
    )
    assert (await changed.json())["outcome"] == "updated"

    ready = await api.ready("BLT-2026-0001")
    assert ready.status == 200, await ready.text()
    data = await ready.json()
    assert schemas.check("api/application_view", data) == []  # the documented answer
    assert data["state"] == "ready" and data["outcome"] == "ready"
    # 30 days after the WIB issue date, end of that day in WIB (= 16:59:59 UTC)
    assert data["collect_by"] == "2026-12-02T16:59:59+00:00"

    again = await api.ready("BLT-2026-0001")
    assert (await again.json())["outcome"] == "unchanged"

    app = await _application(api, "BLT-2026-0001")
    assert app.passport_no_hash is not None and PASSPORT_NO not in app.passport_no_hash
    assert intake.verify_passport_no(PEPPER, app.passport_no_hash, "x 1234567")
    assert not intake.verify_passport_no(PEPPER, app.passport_no_hash, "X7654321")
    assert not intake.verify_passport_no("other-pepper-1234567", app.passport_no_hash, PASSPORT_NO)

    entries = await _audit(api)
    actions = [e.action for e in entries if e.entity == "application"]
    assert actions == ["application.registered", "application.updated", "application.ready"]
    update = next(e for e in entries if e.action == "application.updated")
    assert update.after == {"phone": "[changed]"} and update.actor.startswith("token:")
    text = repr([(e.before, e.after) for e in entries])
    for secret in (PASSPORT_NO, APPLICANT["applicant_name"], "1234567890", "1984-03-17"):
        assert secret not in text


async def test_ready_for_an_opted_in_application_queues_the_delivery(api: Api) -> None:
    await api.put_application("BLT-2026-0002")
    opted = await api.opt_in("BLT-2026-0002")
    assert opted.status == 201
    assert (await opted.json())["state"] == "requested"
    await api.ready("BLT-2026-0002")
    entries = await _audit(api)
    queued = [e for e in entries if e.action == "delivery.queued"]
    assert len(queued) == 1 and queued[0].after == {"state": "queued"}


async def test_a_new_passport_number_replaces_the_hash(api: Api) -> None:
    await api.put_application("BLT-2026-0003")
    await api.ready("BLT-2026-0003")
    resp = await api.ready("BLT-2026-0003", passport_no="X7654321")
    assert (await resp.json())["outcome"] == "updated"
    app = await _application(api, "BLT-2026-0003")
    assert app.passport_no_hash is not None
    assert intake.verify_passport_no(PEPPER, app.passport_no_hash, "X7654321")


async def test_field_errors_name_each_bad_field_and_change_nothing(api: Api) -> None:
    await api.put_application("BLT-2026-0004")
    before = await api.snapshot()
    resp = await api.put_application(
        "BLT-2026-0004", phone="0812", date_of_birth="2099-01-01", priority_kind="vip"
    )
    assert resp.status == 422
    paths = {d["path"] for d in (await resp.json())["error"]["details"]}
    assert paths == {"$.phone", "$.priority_kind"}  # schema first: the date is only checked after

    future = await api.put_application("BLT-2026-0004", date_of_birth="2099-01-01")
    assert future.status == 422
    assert [d["path"] for d in (await future.json())["error"]["details"]] == ["$.date_of_birth"]

    bad_no = await api.put_application("x")
    assert bad_no.status == 422
    assert (await bad_no.json())["error"]["details"][0]["path"] == "url.application_no"

    ready = await api.ready("BLT-2026-0004", passport_no="12345", issued_at="2026-11-02T08:00:00")
    assert ready.status == 422
    paths = {d["path"] for d in (await ready.json())["error"]["details"]}
    assert paths == {"$.issued_at", "$.passport_no"}

    ancient = await api.ready("BLT-2026-0004", issued_at="0001-01-01T00:00:00+07:00")
    assert [d["path"] for d in (await ancient.json())["error"]["details"]] == ["$.issued_at"]

    unknown = await api.ready("BLT-9999-0000")
    assert unknown.status == 404
    assert (await unknown.json())["error"]["code"] == "unknown_application"
    assert await api.snapshot() == before


async def test_tokens_roles_and_offices(api: Api) -> None:
    now = datetime(2026, 11, 2, tzinfo=UTC)
    async with transaction(api.ctx.sessions) as session:
        await staff.upsert_office(
            session,
            {"code": "MLG", "name": "Kantor Imigrasi Malang", "home_regency_codes": ["35.73"]},
            now=now,
            actor="test",
        )
        _, dispatcher = await staff.create_token(
            session, office_code="BLT", role="dispatcher", name="d", now=now, actor="test"
        )
        other, malang = await staff.create_token(
            session, office_code="MLG", role="admin", name="m", now=now, actor="test"
        )
    body = {**APPLICANT}
    url = "/api/v1/applications/BLT-2026-0005"

    missing = await api.client.put(url, json=body)
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await missing.json())["error"]["code"] == "unauthorized"

    wrong = await api.client.put(url, json=body, headers={"Authorization": "Bearer cpt_nope"})
    assert wrong.status == 401

    forbidden = await api.client.put(
        url, json=body, headers={"Authorization": f"Bearer {dispatcher}"}
    )
    assert forbidden.status == 403
    assert (await forbidden.json())["error"]["code"] == "forbidden"

    assert (await api.put_application("BLT-2026-0005")).status == 201
    # an admin of another office neither sees nor touches BLT's application: it is MLG's own
    mlg = {"Authorization": f"Bearer {malang}"}
    ready = await api.client.post(
        f"{url}/ready",
        json={"issued_at": "2026-11-02T08:00:00+07:00", "passport_no": "X1111111"},
        headers=mlg,
    )
    assert ready.status == 404

    async with transaction(api.ctx.sessions) as session:
        await staff.revoke_token(session, other.prefix, now=now, actor="test")
    revoked = await api.client.put(url, json=body, headers=mlg)
    assert revoked.status == 401
