"""The dispatch console over HTTP (both backends): sign-in with lockout, the session's expiry and
its server-side checks, CSRF, the board, find (every search key, pages, CSV), resolving items by
hand and by themselves, the delivery page and its proof-of-delivery files, office scoping."""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import site_kit
from site_kit import Site
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from courier.db.engine import SessionFactory, transaction
from courier.db.models import (
    Application,
    AuditEntry,
    ExceptionItem,
    ManifestItem,
    Proof,
    Shipment,
    StaffUser,
)
from courier.domain.exception_kinds import ExceptionKind
from courier.services import hashing, items, pod, staff
from courier.web.staff_session import COOKIE

PASSWORD = "kata-sandi-rahasia-1"
_KEYS = itertools.count()
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def site(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> AsyncIterator[Site]:
    async with site_kit.make_site(engine, sessions, tmp_path) as made:
        async with transaction(sessions) as session:
            for user in await session.scalars(select(StaffUser)):
                user.password_hash = hashing.argon2_hash(PASSWORD)
        yield made


@asynccontextmanager
async def browser_like() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that keeps cookies for 127.0.0.1 (aiohttp's default jar ignores IP hosts)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield http


async def _get(
    site: Site, http: aiohttp.ClientSession, path: str, **kw: Any
) -> tuple[int, str, aiohttp.ClientResponse]:
    async with http.get(site.url(path), allow_redirects=False, **kw) as resp:
        return resp.status, await resp.text(), resp


async def _post(
    site: Site, http: aiohttp.ClientSession, path: str, data: dict[str, str]
) -> tuple[int, str, aiohttp.ClientResponse]:
    async with http.post(site.url(path), data=data, allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp


def _csrf(page: str) -> str:
    found = _CSRF.search(page)
    assert found, page[:500]
    return found.group(1)


async def sign_in(
    site: Site,
    http: aiohttp.ClientSession,
    username: str = "dispatcher-blt",
    password: str = PASSWORD,
) -> tuple[int, str, aiohttp.ClientResponse]:
    _, page, _ = await _get(site, http, "/login")
    form = {"csrf": _csrf(page), "username": username, "password": password, "next": "/"}
    return await _post(site, http, "/login", form)


async def test_sign_in_sets_a_strict_httponly_session_and_opens_the_board(site: Site) -> None:
    async with browser_like() as http:
        status, _, resp = await _get(site, http, "/")
        assert status == 303 and resp.headers["Location"].startswith("/login?next=/")
        status, body, _ = await sign_in(site, http, password="wrong-password-0")
        assert status == 401 and "Wrong username or password" not in body  # Indonesian first
        assert "Nama pengguna atau kata sandi salah" in body
        status, unknown, _ = await sign_in(site, http, username="no-such-user")
        assert status == 401 and "Nama pengguna atau kata sandi salah" in unknown  # the same
        status, _, resp = await sign_in(site, http)
        assert status == 303 and resp.headers["Location"] == "/"
        cookie = resp.cookies[COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
        assert "passport" not in cookie.value and "dispatcher" not in cookie.value  # encrypted
        status, body, resp = await _get(site, http, "/")
        assert status == 200, body
        assert "Papan" in body and "Pengecualian terbuka" in body
        assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "<script" not in body


async def test_repeated_wrong_passwords_lock_the_username_in_every_process(site: Site) -> None:
    limit = site.kit.ctx.settings.console_max_failures
    async with browser_like() as http:
        for _ in range(limit):
            status, _, _ = await sign_in(site, http, password="wrong-password-0")
            assert status == 401
        status, body, resp = await sign_in(site, http)  # the right password, too late
        assert status == 429 and "Terlalu banyak percobaan" in body
        assert int(resp.headers["Retry-After"]) > 0
        status, _, _ = await sign_in(site, http, username="admin-blt")  # another user is not
        assert status == 303
    site.kit.clock.advance(timedelta(minutes=site.kit.ctx.settings.console_lockout_minutes))
    async with browser_like() as http:
        status, _, _ = await sign_in(site, http)
        assert status == 303
    async with site.kit.sessions() as session:
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert "staff_user.sign_in_failed" in actions and "staff_user.sign_in_locked" in actions


async def test_sessions_end_when_idle_too_old_disabled_or_signed_out(site: Site) -> None:
    clock = site.kit.clock
    async with browser_like() as http:
        await sign_in(site, http)
        clock.advance(timedelta(minutes=29))
        assert (await _get(site, http, "/"))[0] == 200  # and the idle clock starts again
        clock.advance(timedelta(minutes=29))
        assert (await _get(site, http, "/"))[0] == 200
        clock.advance(timedelta(minutes=31))
        assert (await _get(site, http, "/"))[0] == 303  # idle
    async with browser_like() as http:
        await sign_in(site, http)
        for _ in range(12 * 3):
            clock.advance(timedelta(minutes=20))
            status = (await _get(site, http, "/"))[0]
        assert status == 303  # 12 hours after sign-in, however busy
    async with browser_like() as http:
        await sign_in(site, http)
        async with transaction(site.kit.sessions) as session:
            await staff.set_user_active(
                session, "dispatcher-blt", active=False, now=clock.now(), actor="test"
            )
        assert (await _get(site, http, "/"))[0] == 303  # at the very next request
        async with transaction(site.kit.sessions) as session:
            await staff.set_user_active(
                session, "dispatcher-blt", active=True, now=clock.now(), actor="test"
            )
    async with browser_like() as http, browser_like() as thief:
        await sign_in(site, http)
        _, page, _ = await _get(site, http, "/")
        value = http.cookie_jar.filter_cookies(site.kit.web.make_url("/"))[COOKIE].value
        thief.cookie_jar.update_cookies({COOKIE: value}, site.kit.web.make_url("/"))
        assert (await _get(site, thief, "/"))[0] == 200
        status, _, resp = await _post(site, http, "/logout", {"csrf": _csrf(page)})
        assert status == 303 and resp.headers["Location"] == "/login"
        assert (await _get(site, http, "/"))[0] == 303
        assert (await _get(site, thief, "/"))[0] == 303  # the copy is dead too
        status, _, _ = await sign_in(site, http)  # same clock instant: a new session works
        assert status == 303 and (await _get(site, http, "/"))[0] == 200


async def test_forms_without_their_csrf_field_are_refused(site: Site) -> None:
    item_id = await _open_item(site, "BLT")
    async with browser_like() as http:
        status, _, _ = await _post(
            site, http, "/login", {"username": "dispatcher-blt", "password": PASSWORD}
        )
        assert status == 403
        await sign_in(site, http)
        status, body, _ = await _post(
            site, http, f"/exceptions/{item_id}/resolve", {"note": "sudah ditelepon"}
        )
        assert status == 403, body
        status, body, _ = await _post(
            site, http, f"/exceptions/{item_id}/resolve", {"note": "x", "csrf": "a.b"}
        )
        assert status == 403
        assert (await _get(site, http, "/"))[0] == 200  # still signed in
    async with site.kit.sessions() as session:
        item = await session.get_one(ExceptionItem, item_id)
    assert item.resolved_at is None


async def _open_item(site: Site, office: str, kind: ExceptionKind = ExceptionKind.STUCK) -> int:
    o = site.offices[office]
    async with transaction(site.kit.sessions) as session:
        new_id = await items.open_exception(
            session,
            office_id=o.id,
            kind=kind,
            detail="no scan for 3 days",
            dedupe_key=f"test:{office}:{kind}:{next(_KEYS)}",
            now=site.kit.clock.now(),
            delivery_id=o.delivery_id,
        )
    assert new_id is not None
    return new_id


def _bearer(site: Site, office: str = "BLT", role: str = "dispatcher") -> dict[str, str]:
    return {"Authorization": f"Bearer {site.offices[office].tokens[role]}"}


async def test_board_as_json_counts_the_office_only(site: Site) -> None:
    await _open_item(site, "BLT")
    async with site.kit.http.get(site.url("/api/v1/board"), headers=_bearer(site)) as resp:
        assert resp.status == 200
        board = await resp.json()
    states = {s["state"]: s["count"] for s in board["by_state"]}
    assert states["delivered"] == 1 and states["shipping"] == 1  # BLT's two, not KDR's
    assert board["office"]["code"] == "BLT"
    assert {(c["courier"], c["status"], c["count"]) for c in board["by_courier"]} == {
        ("jnt", "booked", 1)
    }
    assert [k["kind"] for k in board["exceptions"]] == ["stuck"]
    assert [s["at"][11:16] for s in board["pickup_slots"]] == ["10:00", "15:00"]
    assert board["at_risk"] == []
    site.kit.clock.advance(timedelta(days=28))  # collect-by is 30 days after T0
    async with site.kit.http.get(site.url("/api/v1/board"), headers=_bearer(site)) as resp:
        board = await resp.json()
    assert {r["delivery_id"] for r in board["at_risk"]} >= {site.offices["BLT"].delivery_id}


async def _find(site: Site, query: str, office: str = "BLT") -> dict[str, Any]:
    async with site.kit.http.get(
        site.url("/api/v1/deliveries?" + query), headers=_bearer(site, office)
    ) as resp:
        assert resp.status == 200, await resp.text()
        found: dict[str, Any] = await resp.json()
        return found


async def test_find_by_every_key_within_the_office(site: Site) -> None:
    blt = site.offices["BLT"]
    async with transaction(site.kit.sessions) as session:
        application = await session.scalar(
            select(Application).where(Application.office_id == blt.id).order_by(Application.id)
        )
        assert application is not None
        application.applicant_name = "Siti Nur'aini Rahayu Ñoño"
        application_no = application.application_no
    async with site.kit.sessions() as session:
        delivered = await session.get_one(
            Shipment,
            await session.scalar(
                select(Shipment.id).where(Shipment.delivery_id == blt.delivery_id)
            ),
        )
        item = await session.scalar(
            select(ManifestItem).where(ManifestItem.office_id == blt.id).limit(1)
        )
    ids = lambda found: [r["id"] for r in found["items"]]  # noqa: E731
    assert len(ids(await _find(site, ""))) == 2
    assert ids(await _find(site, f"q={application_no}")) != []
    assert ids(await _find(site, f"q={delivered.waybill.lower()}")) == [blt.delivery_id]
    assert ids(await _find(site, "q=SITI%20nur%20AINI")) != []  # case, accents, punctuation
    assert ids(await _find(site, "q=siti nur'aini rahayu nono")) != []
    assert ids(await _find(site, "q=rahayu")) == []  # a prefix of the name, not any word
    assert ids(await _find(site, "q=%25")) == []  # LIKE wildcards are text
    assert ids(await _find(site, "state=delivered")) == [blt.delivery_id]
    assert ids(await _find(site, "regency=35.73&courier=jnt")) != []
    assert ids(await _find(site, "from=2026-11-02&to=2026-11-02")) != []
    assert ids(await _find(site, "to=2026-11-01")) == []
    await _open_item(site, "BLT")
    assert ids(await _find(site, "kind=stuck")) == [blt.delivery_id]
    if item is not None:
        async with transaction(site.kit.sessions) as session:
            row = await session.get_one(ManifestItem, item.id)
            row.seal_number = "SEAL-0042"
            target = (await session.get_one(Shipment, row.shipment_id)).delivery_id
        assert ids(await _find(site, "q=seal-0042")) == [target]
    # another office finds none of BLT's
    assert ids(await _find(site, f"q={delivered.waybill}", office="KDR")) == []
    # keyset pages
    first = await _find(site, "limit=1")
    assert first["next_cursor"] and len(first["items"]) == 1
    second = await _find(site, f"limit=1&cursor={first['next_cursor']}")
    assert second["next_cursor"] is None and ids(second) != ids(first)
    async with site.kit.http.get(
        site.url("/api/v1/deliveries?cursor=nope!&lmit=3"), headers=_bearer(site)
    ) as resp:
        assert resp.status == 422
        paths = {d["path"] for d in (await resp.json())["error"]["details"]}
    assert {"url.lmit", "url.cursor"} <= paths


async def test_csv_export_defuses_formulas(site: Site) -> None:
    async with transaction(site.kit.sessions) as session:
        application = await session.scalar(
            select(Application).where(Application.office_id == site.offices["BLT"].id).limit(1)
        )
        assert application is not None
        application.applicant_name = '=HYPERLINK("http://x")'
    async with site.kit.http.get(
        site.url("/api/v1/deliveries?format=csv"), headers=_bearer(site)
    ) as resp:
        assert resp.status == 200 and resp.content_type == "text/csv"
        text = (await resp.read()).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["delivery_id", "application_no", "applicant_name"]
    assert len(rows) == 3
    assert '\'=HYPERLINK("http://x")' in [r[2] for r in rows]


async def test_resolve_by_hand_with_a_note_audited_and_by_itself_when_the_cause_goes(
    site: Site,
) -> None:
    item_id = await _open_item(site, "BLT")
    url = site.url(f"/api/v1/exceptions/{item_id}/resolve")
    async with site.kit.http.post(url, json={"note": "  "}, headers=_bearer(site)) as resp:
        assert resp.status == 422
    async with site.kit.http.post(url, json={"note": "x"}, headers=_bearer(site, "KDR")) as resp:
        assert resp.status in (404, 422)
    async with site.kit.http.post(
        url, json={"note": "kurir sudah memindai"}, headers=_bearer(site, "KDR")
    ) as resp:
        assert resp.status == 404
    async with site.kit.http.post(
        url, json={"note": "kurir sudah memindai"}, headers=_bearer(site)
    ) as resp:
        assert resp.status == 200, await resp.text()
        done = await resp.json()
    assert done["resolution"] == "kurir sudah memindai" and done["resolved_by"].startswith("token:")
    async with site.kit.http.post(
        url, json={"note": "kurir sudah memindai"}, headers=_bearer(site)
    ) as resp:
        assert resp.status == 409
    async with site.kit.sessions() as session:
        entry = await session.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "exception_item.resolved", AuditEntry.entity_id == item_id
            )
        )
    assert entry is not None and entry.reason == "kurir sudah memindai"
    # the handover is approved: the delivery's open items lose their cause, but a claim for a
    # lost parcel outlives it; the review's own resolution keeps its words
    blt = site.offices["BLT"]
    stuck = await _open_item(site, "BLT", ExceptionKind.STUCK)
    review = await _open_item(site, "BLT", ExceptionKind.UNCONFIRMED)
    lost = await _open_item(site, "BLT", ExceptionKind.SHIPMENT_LOST)
    async with site.kit.http.post(
        site.url(f"/api/v1/handovers/{blt.handover_id}/review"),
        json={"approve": True, "reason": "pemohon menelepon, paspor diterima"},
        headers=_bearer(site),
    ) as resp:
        assert resp.status == 200, await resp.text()
    async with site.kit.sessions() as session:
        closed = await session.get_one(ExceptionItem, stuck)
        reviewed = await session.get_one(ExceptionItem, review)
        kept = await session.get_one(ExceptionItem, lost)
    assert closed.resolved_at is not None and "handed_over" in (closed.resolution or "")
    assert reviewed.resolution == "handover verified"
    assert kept.resolved_at is None


async def test_delivery_page_merges_the_timeline_and_serves_its_proof(site: Site) -> None:
    blt = site.offices["BLT"]
    image = b"\x89PNG\r\n\x1a\n" + bytes(64)
    digest = pod.store_bytes(site.kit.ctx.settings.pod_store, image)
    async with transaction(site.kit.sessions) as session:
        proof = await session.scalar(
            select(Proof)
            .join(Shipment, Shipment.id == Proof.shipment_id)
            .where(Shipment.delivery_id == blt.delivery_id)
        )
        assert proof is not None
        proof.artefacts = [
            {
                "kind": "photo",
                "state": "stored",
                "sha256": digest,
                "size": len(image),
                "content_type": "image/png",
            }
        ]
        proof_id = proof.id
    async with browser_like() as http:
        await sign_in(site, http)
        status, body, _ = await _get(site, http, f"/deliveries/{blt.delivery_id}")
        assert status == 200, body
        for text in ("Linimasa", "courier", "custody", "delivered", "Pemohon 1", "YBS"):
            assert text in body, text
        pod_path = f"/deliveries/{blt.delivery_id}/pod/{proof_id}/0"
        assert pod_path in body
        async with http.get(site.url(pod_path)) as resp:
            assert resp.status == 200 and resp.content_type == "image/png"
            assert await resp.read() == image
        kdr = site.offices["KDR"]
        assert (await _get(site, http, f"/deliveries/{kdr.delivery_id}"))[0] == 404
        assert (await _get(site, http, f"/deliveries/{kdr.delivery_id}/pod/{proof_id}/0"))[0] == 404
        assert (await _get(site, http, f"/deliveries/{blt.delivery_id}/pod/{proof_id}/1"))[0] == 404


async def test_pages_resolve_and_find_in_the_browser_flow(site: Site) -> None:
    item_id = await _open_item(site, "BLT")
    async with browser_like() as http:
        await sign_in(site, http)
        status, body, _ = await _get(site, http, "/exceptions")
        assert status == 200 and f"/exceptions/{item_id}/resolve" in body
        assert "Tanyakan posisi paket ke kurir" in body  # the next step, in words
        status, _, resp = await _post(
            site,
            http,
            f"/exceptions/{item_id}/resolve",
            {"note": "kurir menemukan paket", "csrf": _csrf(body)},
        )
        assert status == 303 and resp.headers["Location"] == "/exceptions?m=resolved"
        status, body, _ = await _get(site, http, "/exceptions?m=resolved")
        assert status == 200 and "Item ditutup" in body
        status, body, _ = await _get(site, http, "/deliveries?q=pemohon&state=")
        assert status == 200 and "Pemohon 1" in body and "Pemohon 2" not in body
        status, body, _ = await _get(site, http, "/deliveries?regency=nowhere")
        assert status == 422 and "url.regency" in body
        await _get(site, http, "/lang/en?next=/deliveries")
        status, body, _ = await _get(site, http, "/deliveries")
        assert "Find deliveries" in body and '<html lang="en">' in body
        status, _, resp = await _get(site, http, "/lang/en?next=//evil.example/")
        assert resp.headers["Location"] == "/"


async def test_a_role_that_may_not_dispatch_gets_a_page_that_says_so_and_can_sign_out(
    site: Site,
) -> None:
    async with transaction(site.kit.sessions) as session:
        await staff.add_user(
            session,
            office_code="BLT",
            username="loket-blt",
            password=PASSWORD,
            role="intake",
            now=site.kit.clock.now(),
            actor="test",
        )
    async with browser_like() as http:
        status, _, _ = await sign_in(site, http, username="loket-blt")
        assert status == 303
        status, body, _ = await _get(site, http, "/")
        assert status == 403 and "Tidak diizinkan" in body and 'action="/logout"' in body
        status, _, _ = await _post(site, http, "/logout", {"csrf": _csrf(body)})
        assert status == 303
        assert (await _get(site, http, "/"))[0] == 303
