"""The contract manager's API over real HTTP, both backends: register, read, change a draft,
activate (an overlap refused naming the field), suspend; scorecards as JSON and CSV; roles."""

from __future__ import annotations

import csv
import io
from typing import Any

import contract_seed
from webapi import Api

from courier.db.engine import transaction
from courier.services import staff


async def _token(api: Api, role: str) -> dict[str, str]:
    async with transaction(api.ctx.sessions) as session:
        _, token = await staff.create_token(
            session, office_code="BLT", role=role, name=role, now=api.clock.now(), actor="test"
        )
    return {"Authorization": f"Bearer {token}"}


async def _call(
    api: Api, method: str, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, Any]:
    resp = await api.client.request(method, path, json=body, headers=headers)
    return resp.status, await resp.json()


async def test_a_contract_from_draft_to_active_to_suspended(api: Api) -> None:
    manager = await _token(api, "contract_manager")
    terms = contract_seed.terms("JNT-2026")
    status, created = await _call(api, "POST", "/api/v1/contracts", manager, terms)
    assert status == 201, created
    assert (created["status"], created["in_force"], created["regencies"]) == ("draft", False, "all")
    cid = created["id"]
    changed = {**terms, "penalty_late": 30_000}
    status, body = await _call(api, "PUT", f"/api/v1/contracts/{cid}", manager, changed)
    assert status == 200 and body["penalty_late"] == 30_000
    status, body = await _call(
        api, "POST", f"/api/v1/contracts/{cid}/status", manager, {"status": "active"}
    )
    assert status == 200 and body["status"] == "active"
    # a second J&T contract over the same period and office cannot become active
    _, second = await _call(
        api, "POST", "/api/v1/contracts", manager, contract_seed.terms("JNT-2026B")
    )
    status, refused = await _call(
        api, "POST", f"/api/v1/contracts/{second['id']}/status", manager, {"status": "active"}
    )
    assert status == 409 and refused["error"]["code"] == "contract_overlaps"
    assert refused["error"]["details"][0]["path"] == "$.valid_from"
    status, body = await _call(api, "PUT", f"/api/v1/contracts/{cid}", manager, changed)
    assert status == 409 and body["error"]["code"] == "contract_not_draft"
    status, body = await _call(
        api,
        "POST",
        f"/api/v1/contracts/{cid}/status",
        manager,
        {"status": "suspended", "reason": "audit"},
    )
    assert status == 200 and (body["status"], body["status_reason"]) == ("suspended", "audit")
    status, listed = await _call(api, "GET", "/api/v1/contracts", manager)
    assert status == 200 and [c["number"] for c in listed["items"]] == ["JNT-2026B", "JNT-2026"]


async def test_bad_terms_name_the_field_and_other_roles_are_refused(api: Api) -> None:
    manager = await _token(api, "contract_manager")
    bad = {**contract_seed.terms("X-1"), "regencies": ["35.73"], "valid_to": "2026-01-01"}
    status, body = await _call(api, "POST", "/api/v1/contracts", manager, bad)
    assert status == 422
    assert {d["path"] for d in body["error"]["details"]} == {"$.valid_to"}
    status, body = await _call(api, "POST", "/api/v1/contracts", manager, {"number": "X"})
    assert status == 422 and body["error"]["details"]
    dispatcher = await _token(api, "dispatcher")
    status, _ = await _call(api, "GET", "/api/v1/contracts", dispatcher)
    assert status == 403
    status, _ = await _call(api, "GET", "/api/v1/scorecards?period=2026-11", dispatcher)
    assert status == 403


async def test_scorecards_as_json_and_csv(api: Api) -> None:
    manager = await _token(api, "contract_manager")
    status, card = await _call(api, "GET", "/api/v1/scorecards?period=2026Q4&office=BLT", manager)
    assert status == 200, card
    assert (card["period"], card["first_day"], card["last_day"]) == (
        "2026Q4",
        "2026-10-01",
        "2026-12-31",
    )
    assert card["couriers"] == [] and card["months"] == []
    status, body = await _call(api, "GET", "/api/v1/scorecards?period=2026-13", manager)
    assert status == 422 and body["error"]["details"][0]["path"] == "url.period"
    status, body = await _call(api, "GET", "/api/v1/scorecards?period=2026-11&office=KDR", manager)
    assert status == 404
    status, body = await _call(api, "GET", "/api/v1/scorecards?period=2026-11&x=1", manager)
    assert status == 422
    resp = await api.client.get("/api/v1/scorecards.csv?period=2026-11", headers=manager)
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "scorecard-BLT-2026-11.csv" in resp.headers["Content-Disposition"]
    [header] = list(csv.reader(io.StringIO(await resp.text())))
    assert header[:4] == ["level", "courier_code", "contract_id", "contract_number"]
