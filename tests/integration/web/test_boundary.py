"""Hostile input at the HTTP boundary (issue 10): never a 500 for input, text held to the one rule,
the headers every answer carries, unique races, courier free text kept off shared screens."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import site_kit
import tracking_kit as kit_
import worker_seed as seed
from site_kit import Site
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

import schemas
from core.status import Status
from courier.db.engine import SessionFactory, transaction
from courier.db.models import Application, ExceptionItem, InboxItem, Shipment
from courier.services import manifests, tracking
from courier.web import openapi

# public data served with a validator and a day of caching (no personal data)
PUBLIC_CACHED = frozenset({"/api/v1/regions", "/api/v1/regions/{code}"})


@pytest.fixture
async def site(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> AsyncIterator[Site]:
    async with site_kit.make_site(engine, sessions, tmp_path) as made:
        yield made


def _error(raw: bytes) -> dict[str, Any]:
    body = json.loads(raw)
    assert schemas.check("api/error", body) == []
    found: dict[str, Any] = body["error"]
    return found


# ---------------------------------------------------------------------------------------------
# Raw bytes in headers


async def test_raw_bytes_in_the_authorization_header_are_401_on_every_api_route(
    site: Site,
) -> None:
    staff_routes = {(op.method, op.path) for op in openapi.CATALOGUE if op.auth == "staff"}
    seen = 0
    for method, template in site_kit.app_routes(site.app):
        if not template.startswith("/api/v1/"):
            continue
        call = site_kit.requests_for(site, method, template)
        head = (
            f"{method} {call.path} HTTP/1.1\r\nHost: localhost\r\n".encode()
            + b"Authorization: Bearer \xff\xfe\r\n"
            + b"Content-Type: application/json\r\n"
        )
        status, answer = await site_kit.raw_request(site, head, call.body or b"")
        assert status < 500, (method, template, answer)
        if (method, template) in staff_routes:
            seen += 1
            assert status == 401, (method, template, answer)
            body = answer.split(b"\r\n\r\n", 1)[1]
            assert _error(body)["code"] == "unauthorized"
    assert seen >= 10


@pytest.mark.parametrize("header", ["apiAccount", "digest", "timestamp"])
async def test_raw_bytes_in_a_push_s_headers_are_refused_and_nothing_is_stored(
    site: Site, header: str
) -> None:
    raw, headers = site_kit.jnt_push(site)
    lines = b"".join(
        k.encode() + b": " + (b"\xff\xfe" if k == header else v.encode()) + b"\r\n"
        for k, v in headers.items()
    )
    head = b"POST /webhooks/jnt HTTP/1.1\r\nHost: localhost\r\n" + lines
    status, answer = await site_kit.raw_request(site, head, raw)
    assert status == 401, answer
    assert _error(answer.split(b"\r\n\r\n", 1)[1])["code"] == "invalid_signature"
    async with site.kit.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(InboxItem)) == 0
    # the same push with its own headers is taken: the refusal was the bytes
    async with site.kit.http.post(site.url("/webhooks/jnt"), data=raw, headers=headers) as resp:
        assert resp.status == 200, await resp.text()


# ---------------------------------------------------------------------------------------------
# Bodies


async def test_an_integer_of_more_than_4300_digits_is_400_naming_its_field(site: Site) -> None:
    blt = site.offices["BLT"]
    huge = "9" * 5000
    raw = (
        '{"applicant_name": "Siti", "date_of_birth": "1984-03-17", "phone": "0812345678", '
        f'"express": {huge}}}'
    ).encode()
    status, _, answer = await site_kit.send(
        site,
        site_kit.Call("PUT", "/api/v1/applications/2026BIG00001", raw, "application/json"),
        token=blt.tokens["intake"],
    )
    assert status == 400, answer
    err = _error(answer)
    assert err["code"] == "bad_request" and [d["path"] for d in err["details"]] == ["$.express"]
    seals = f'{{"items": [{{"shipment_id": -{huge}, "seal_number": "SEAL-1"}}]}}'.encode()
    status, _, answer = await site_kit.send(
        site,
        site_kit.Call(
            "POST", f"/api/v1/manifests/{blt.manifest_id}/seals", seals, "application/json"
        ),
        token=blt.tokens["dispatcher"],
    )
    assert status == 400 and [d["path"] for d in _error(answer)["details"]] == [
        "$.items[0].shipment_id"
    ]


async def test_a_seal_number_with_a_trailing_newline_is_refused_not_a_500(site: Site) -> None:
    blt = site.offices["BLT"]
    async with site.kit.sessions() as session:
        items = (await manifests.manifest(site.kit.ctx, _caller(blt), blt.manifest_id or 0)).lines
    body = {"items": [{"shipment_id": items[0].shipment_id, "seal_number": "S" * 40 + "\n"}]}
    status, _, answer = await site_kit.send(
        site,
        site_kit.Call(
            "POST",
            f"/api/v1/manifests/{blt.manifest_id}/seals",
            json.dumps(body).encode(),
            "application/json",
        ),
        token=blt.tokens["dispatcher"],
    )
    assert status == 422, answer
    assert [d["path"] for d in _error(answer)["details"]] == ["$.items[0].seal_number"]
    del session


def _caller(office: site_kit.Office) -> Any:
    from courier.services.staff import Caller

    return Caller(office_id=office.id, actor="test", role="admin", token_id=0)


async def test_a_body_not_declared_json_is_415_on_every_json_route(site: Site) -> None:
    admin = site.offices["BLT"].tokens["admin"]
    json_routes = [
        (op.method, op.path)
        for op in openapi.CATALOGUE
        if op.request is not None and op.request_type == "application/json"
    ]
    assert len(json_routes) >= 10
    for method, template in json_routes:
        call = site_kit.requests_for(site, method, template)
        for kind in ("text/plain", "application/x-www-form-urlencoded", None):
            plain = site_kit.Call(call.method, call.path, call.body, kind)
            status, _, answer = await site_kit.send(site, plain, token=admin)
            assert status == 415, (method, template, kind, answer)
            assert _error(answer)["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("method", "template", "field", "path"),
    [
        ("PUT", "/api/v1/applications/{application_no}", "applicant_name", "$.applicant_name"),
        ("POST", "/api/v1/manifests/{id}/handover", "courier_agent_name", "$.courier_agent_name"),
        ("POST", "/api/v1/handovers/{id}/review", "reason", "$.reason"),
    ],
)
async def test_a_lone_surrogate_is_a_field_error_never_a_500(
    site: Site, method: str, template: str, field: str, path: str
) -> None:
    admin = site.offices["BLT"].tokens["admin"]
    call = site_kit.requests_for(site, method, template)
    body = json.loads(call.body or b"{}")
    body[field] = "Siti Rahayu Wulandari\ud800"
    raw = json.dumps(body).encode()  # "\ud800" as a JSON escape: valid JSON, invalid text
    status, _, answer = await site_kit.send(
        site, site_kit.Call(method, call.path, raw, "application/json"), token=admin
    )
    assert status == 422, answer
    assert path in [d["path"] for d in _error(answer)["details"]]


async def test_names_are_one_rule_nfc_and_something_visible(site: Site) -> None:
    intake = site.offices["BLT"].tokens["intake"]
    base = {"date_of_birth": "1984-03-17", "phone": "0812345678"}
    for name in ("\u200b\u200b", "\u202eilaS", "\u3164", "Siti\nRahayu", "=cmd|' /C calc'!A0\t"):
        body = json.dumps({**base, "applicant_name": name}).encode()
        status, _, answer = await site_kit.send(
            site,
            site_kit.Call("PUT", "/api/v1/applications/2026NAME0001", body, "application/json"),
            token=intake,
        )
        assert status == 422, (name, answer)
        assert [d["path"] for d in _error(answer)["details"]] == ["$.applicant_name"]
    body = json.dumps({**base, "applicant_name": "Jose\u0301  Sa\u0301nchez"}).encode()
    status, _, answer = await site_kit.send(
        site,
        site_kit.Call("PUT", "/api/v1/applications/2026NAME0001", body, "application/json"),
        token=intake,
    )
    assert status == 201, answer
    async with site.kit.sessions() as session:
        stored = await session.scalar(
            select(Application.applicant_name).where(Application.application_no == "2026NAME0001")
        )
    assert stored == "José Sánchez"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("phone", "000000"),
        ("date_of_birth", "0000-00-00"),
    ],
)
async def test_values_the_server_refuses_are_refused_by_the_schema_first(
    site: Site, field: str, value: str
) -> None:
    intake = site.offices["BLT"].tokens["intake"]
    body = {"applicant_name": "Siti", "date_of_birth": "1984-03-17", "phone": "0812345678"}
    body[field] = value
    assert f"$.{field}" in {e.path for e in schemas.check("api/application_put", body)}
    status, _, answer = await site_kit.send(
        site,
        site_kit.Call(
            "PUT",
            "/api/v1/applications/2026SCHEMA001",
            json.dumps(body).encode(),
            "application/json",
        ),
        token=intake,
    )
    assert status == 422 and f"$.{field}" in [d["path"] for d in _error(answer)["details"]]


# ---------------------------------------------------------------------------------------------
# Headers of every answer


async def test_every_answer_names_no_versions_and_html_carries_security_headers(
    site: Site,
) -> None:
    admin = site.offices["BLT"].tokens["admin"]
    for method, template in site_kit.app_routes(site.app):
        call = site_kit.requests_for(site, method, template)
        status, headers, _ = await site_kit.send(site, call, token=admin)
        assert status < 500, (method, template)
        server = headers.get("Server", "")
        assert "Python" not in server and "aiohttp" not in server and "/" not in server, server
        assert headers.get("X-Content-Type-Options") == "nosniff", (method, template)
        kind = headers.get("Content-Type", "")
        if kind.startswith("text/html"):
            csp = headers.get("Content-Security-Policy", "")
            assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, template
            assert headers.get("X-Frame-Options") == "DENY", template
            assert headers.get("Referrer-Policy") == "no-referrer", template
        if template in PUBLIC_CACHED:
            assert headers.get("Cache-Control", "").startswith("public"), template
        elif kind.startswith("application/json") and template.startswith("/api/"):
            assert headers.get("Cache-Control") == "no-store", (method, template)


async def test_docs_page_has_its_own_strict_policy(site: Site) -> None:
    status, headers, _ = await site_kit.send(site, site_kit.Call("GET", "/docs"))
    assert status == 200
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"


async def test_personal_json_is_never_cached(site: Site) -> None:
    blt = site.offices["BLT"]
    status, headers, answer = await site_kit.send(
        site,
        site_kit.Call("GET", f"/api/v1/deliveries/{blt.delivery_id}"),
        token=blt.tokens["dispatcher"],
    )
    assert status == 200 and b"Pemohon 1" in answer
    assert headers["Cache-Control"] == "no-store"


# ---------------------------------------------------------------------------------------------
# Unique races


async def test_two_manifests_sealed_with_one_number_at_once_is_a_409(
    site: Site, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both requests check the number (free), then both write it: the UNIQUE index refuses the
    second write, and the use case answers 409 instead of a 500. The first request holds its
    transaction open after its write until the second, past its check, waits on that write
    (PostgreSQL; SQLite serialises writers, so there the second sees the first and is refused
    by the check: 422)."""
    blt = site.offices["BLT"]
    first_manifest = blt.manifest_id or 0
    # a second manifest of the same office: another booked shipment, opened now
    [other] = await seed.deliveries(site.kit.sessions, blt.id, 1, start=40)
    await kit_.booked_shipment(site.kit.sessions, other, waybill="JO0000000040")
    token = blt.tokens["dispatcher"]
    async with site.kit.http.post(
        site.url("/api/v1/manifests"),
        json={"courier": "jnt"},
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        assert resp.status == 201
        second_manifest = int((await resp.json())["id"])
    lines = {}
    for manifest_id in (first_manifest, second_manifest):
        view = await manifests.manifest(site.kit.ctx, _caller(blt), manifest_id)
        lines[manifest_id] = view.lines[0].shipment_id

    original = manifests._record_seals
    calls = 0

    async def blocked_on_our_write() -> None:
        """Until another transaction waits on a lock: the second request, past its check, is
        writing the same seal number and waits for ours to commit (PostgreSQL)."""
        # waiting on the seal write itself (the UNIQUE index), not on any other lock a busy
        # request may meet first (a token's last use, a counter)
        query = text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database() "
            "AND query ILIKE '%manifest_items%'"
        )
        for _ in range(200):
            async with site.kit.ctx.engine.connect() as conn:
                if (await conn.execute(query)).scalar_one():
                    return
            await asyncio.sleep(0.05)
        raise AssertionError("the second request never reached its write")

    async def held(session: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        me = calls  # read before the await: the other request counts meanwhile
        written = await original(session, **kwargs)  # checked and flushed, not committed
        if me == 1 and backend == "postgresql":
            await blocked_on_our_write()
        return written

    monkeypatch.setattr(manifests, "_record_seals", held)

    async def seal(manifest_id: int) -> tuple[int, dict[str, Any]]:
        body = {"items": [{"shipment_id": lines[manifest_id], "seal_number": "SEAL-RACE-1"}]}
        async with site.kit.http.post(
            site.url(f"/api/v1/manifests/{manifest_id}/seals"),
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            return resp.status, await resp.json()

    answers = await asyncio.gather(seal(first_manifest), seal(second_manifest))
    [(won, _), (lost, refusal)] = sorted(answers, key=lambda a: a[0])
    assert won == 200, answers
    if backend == "postgresql":
        assert lost == 409, refusal
        assert refusal["error"]["code"] == "seal_number_taken"
        assert [d["path"] for d in refusal["error"]["details"]] == ["$.items"]
    else:
        assert lost == 422, refusal  # serialised: the check saw the other's seal


# ---------------------------------------------------------------------------------------------
# Courier free text


async def test_courier_free_text_is_masked_before_items_and_pages(site: Site) -> None:
    """A driver's failed-attempt note naming the applicant, their phone and street (and a
    neighbour's number), and a location with a name in it: none of it reaches the exceptions
    queue, the shipment's reason or the applicant's page."""
    blt = site.offices["BLT"]
    [delivery_id] = await seed.deliveries(site.kit.sessions, blt.id, 1, start=50)
    shipment_id = await kit_.booked_shipment(site.kit.sessions, delivery_id, waybill="JO0000000050")
    said = (
        "Paket gagal dikirim: penerima Pemohon 50 tidak di rumah, sudah telp 081234000050 dan "
        "tetangga 0813-1111-2222, Jl. Ijen No. 10 pagar tutup"
    )
    async with transaction(site.kit.sessions) as session:
        shipment = await session.get_one(Shipment, shipment_id)
        await tracking.apply_events(
            session,
            shipment,
            [
                kit_.event(Status.OUT_FOR_DELIVERY, seed.T0, waybill="JO0000000050"),
                kit_.event(
                    Status.DELIVERY_FAILED,
                    seed.T0 + timedelta(hours=1),
                    waybill="JO0000000050",
                    text=said,
                    reason=said,
                    location="Hub Malang (kurir Andi 0857-3333-4444)",
                ),
            ],
            source="poll",
            now=seed.T0,
        )
    personal = ["Pemohon 50", "081234000050", "0813-1111-2222", "Ijen", "0857-3333-4444"]
    status, _, queue = await site_kit.send(
        site, site_kit.Call("GET", "/api/v1/exceptions"), token=blt.tokens["dispatcher"]
    )
    assert status == 200
    items = json.loads(queue)["items"]
    details = [i["detail"] for i in items if i["kind"] == "delivery_failed"]
    assert details and "tidak di rumah" in details[0], items
    assert [p for p in personal if p in queue.decode()] == []
    async with site.kit.sessions() as session:
        item = await session.scalar(
            select(ExceptionItem).where(ExceptionItem.kind == "delivery_failed")
        )
        row = await session.get_one(Shipment, shipment_id)
    assert item is not None and [p for p in personal if p in item.detail] == []
    assert [p for p in personal if p in (row.status_reason or "")] == []
    status, _, page = await site_kit.send(
        site, site_kit.Call("GET", f"/t/{kit_.token(blt.id, 50)}")
    )
    assert status == 200 and b"Hub Malang" in page
    assert [p for p in personal if p in page.decode()] == []
