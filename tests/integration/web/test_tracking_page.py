"""The applicant's tracking page ``/t/{token}`` over real HTTP, both backends: a delivery taken to
"delivered" by the worker against the J&T simulator, then read and confirmed as a person would."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import tracking_kit as kit_
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import WIB
from courier.db.engine import SessionFactory
from courier.db.models import Delivery, Handover, Shipment
from courier.web import pages

DAY_ID = "(Senin|Selasa|Rabu|Kamis|Jumat|Sabtu|Minggu)"
MONTH_ID = (
    "(Januari|Februari|Maret|April|Mei|Juni|Juli|Agustus|September|Oktober|November|Desember)"
)
WIB_ID = re.compile(rf"{DAY_ID}, \d{{1,2}} {MONTH_ID} \d{{4}} \d{{2}}\.\d{{2}} WIB")


class Delivered:
    """A kit whose one delivery the courier delivered to the applicant in person."""

    def __init__(self, kit: kit_.Kit, office_id: int, delivery_id: int) -> None:
        self.kit = kit
        self.delivery_id = delivery_id
        self.token = kit_.token(office_id, 1)

    def url(self, suffix: str = "") -> str:
        return self.kit.url(f"/t/{self.token}{suffix}")

    async def page(self) -> tuple[aiohttp.ClientResponse, str]:
        async with self.kit.http.get(self.url()) as resp:
            return resp, await resp.text()

    async def post(
        self, form: dict[str, str], headers: dict[str, str] | None = None
    ) -> tuple[aiohttp.ClientResponse, str]:
        async with self.kit.http.post(
            self.url("/confirm"), data=form, headers=headers, allow_redirects=False
        ) as resp:
            return resp, await resp.text()

    async def csrf(self) -> str:
        _, body = await self.page()
        found = re.search(r'name="csrf" value="([^"]+)"', body)
        assert found is not None, "no confirmation form on the page"
        return html.unescape(found.group(1))

    async def record(self) -> tuple[str, Handover]:
        async with self.kit.sessions() as session:
            delivery = await session.get_one(Delivery, self.delivery_id)
            record = (
                await session.scalars(
                    select(Handover).where(Handover.delivery_id == self.delivery_id)
                )
            ).one()
            return delivery.state, record


@pytest.fixture
async def delivered(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> AsyncIterator[Delivered]:
    async with kit_.make_kit(engine, sessions, tmp_path) as kit:
        office_id, delivery_id = await kit_.seed_delivery(kit, outcome="delivered_self")
        await kit_.drive(kit, kit_.state_is(kit, delivery_id, "delivered"))
        yield Delivered(kit, office_id, delivery_id)


def _text(body: str) -> str:
    """The page's visible text, tags dropped, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def _assert_page_headers(resp: aiohttp.ClientResponse) -> None:
    assert resp.headers["Content-Type"].startswith("text/html")
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "form-action 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "script-src" not in csp  # no script may run at all


def test_times_read_as_indonesian_and_english_words() -> None:
    when = datetime(2026, 11, 30, 7, 5, tzinfo=UTC)  # 14:05 WIB on a Monday
    assert pages.wib_text(when) == {
        "id": "Senin, 30 November 2026 14.05 WIB",
        "en": "Monday, 30 November 2026 14:05 WIB",
    }
    # past midnight UTC+7 is already the next day
    late = pages.wib_text(datetime(2026, 8, 16, 17, 30, tzinfo=UTC))
    assert late["id"] == "Senin, 17 Agustus 2026 00.30 WIB"


async def test_the_page_tells_where_the_passport_is_indonesian_first(
    delivered: Delivered,
) -> None:
    async with delivered.kit.http.get(delivered.url("?m=confirmed")) as resp:
        assert resp.status == 200
        body = await resp.text()
    _assert_page_headers(resp)
    assert "Terima kasih" not in body  # no thanks for a confirmation that did not happen
    assert "<script" not in body.lower()
    assert re.search(r"\son[a-z]+\s*=", body) is None  # no inline event handlers either
    text = _text(body)
    pairs = [
        ("Kurir melaporkan paspor sudah diantar.", "The courier reports the passport delivered."),
        ("Langkah berikutnya", "What happens next"),
        ("Batas pengambilan", "Collect by"),
        ("Perjalanan paspor", "The passport's journey"),
        ("Sudah dijemput kurir", "Picked up by the courier"),
        ("Sudah diterima di alamat tujuan", "Delivered"),
        ("Konfirmasi penerimaan paspor", "Confirm you received the passport"),
    ]
    for indonesian, english in pairs:
        assert indonesian in text and english in text, indonesian
        assert text.index(indonesian) < text.index(english, text.index(indonesian)), indonesian
    assert "J&T Express" in text
    async with delivered.kit.sessions() as session:
        delivery = await session.get_one(Delivery, delivered.delivery_id)
        waybill = (await session.scalars(select(Shipment.waybill))).one()
    assert waybill and waybill in text
    # the deadline in WIB words, right under its label
    local = delivery.collect_by.astimezone(WIB) if delivery.collect_by else None
    assert local is not None
    deadline = WIB_ID.search(text, text.index("Batas pengambilan"))
    assert deadline is not None
    assert f" {local.day} " in deadline.group(0) and f"{local.hour:02d}.{local.minute:02d}" in (
        deadline.group(0)
    )
    assert len(WIB_ID.findall(text)) >= 3  # the deadline and each step of the journey
    # nothing personal: the link may be forwarded
    for private in ("Pemohon", "Jl. Ijen", "+6281234", "1990", "argon2"):
        assert private not in body, private
    assert "Sisa percobaan: 5" in text and "Attempts left: 5" in text


async def test_a_wrong_number_is_refused_and_counted_then_the_right_one_hands_over(
    delivered: Delivered,
) -> None:
    resp, body = await delivered.post({"csrf": await delivered.csrf(), "passport_no": "X7654321"})
    assert resp.status == 422
    _assert_page_headers(resp)
    text = _text(body)
    assert "Nomor paspor tidak cocok." in text and "The passport number does not match." in text
    assert "Sisa percobaan: 4" in text and "Attempts left: 4" in text
    state, record = await delivered.record()
    assert (state, record.confirm_failures, record.verified) == ("delivered", 1, False)

    # a number not shaped like a passport number is explained and not counted
    resp, body = await delivered.post({"csrf": await delivered.csrf(), "passport_no": "hello"})
    assert resp.status == 422
    assert "Percobaan ini tidak dihitung" in _text(body)
    assert (await delivered.record())[1].confirm_failures == 1

    # typed as people type it: lower case, spaces
    typed = " " + kit_.PASSPORT_NO[0].lower() + " " + kit_.PASSPORT_NO[1:]
    resp, _ = await delivered.post({"csrf": await delivered.csrf(), "passport_no": typed})
    assert resp.status == 303
    assert resp.headers["Location"] == f"/t/{delivered.token}?m=confirmed"
    assert resp.headers["Cache-Control"] == "no-store"
    state, record = await delivered.record()
    assert state == "handed_over" and record.verified

    async with delivered.kit.http.get(delivered.kit.url(resp.headers["Location"])) as page:
        assert page.status == 200
        text = _text(await page.text())
    assert "Terima kasih, penerimaan paspor Anda sudah tercatat." in text
    assert "Serah terima terverifikasi" in text and "Handover verified" in text
    assert 'name="passport_no"' not in text and "Sisa percobaan" not in text
    assert WIB_ID.search(text, text.index("Serah terima terverifikasi"))  # when it was verified


async def test_too_many_wrong_numbers_lock_the_form_and_point_to_the_office(
    delivered: Delivered,
) -> None:
    statuses = []
    for _ in range(5):
        resp, body = await delivered.post(
            {"csrf": await delivered.csrf(), "passport_no": "X0000000"}
        )
        statuses.append(resp.status)
    assert statuses == [422, 422, 422, 422, 429]
    text = _text(body)
    assert "Terlalu banyak percobaan" in text and "Too many attempts" in text
    assert "Konfirmasi terkunci" in text and "Confirmation locked" in text
    assert "Kantor Imigrasi" in text or "+62342801234" in text  # whom to contact
    assert 'name="passport_no"' not in body
    state, record = await delivered.record()
    assert (state, record.confirm_failures, record.verified) == ("delivered", 5, False)


@pytest.mark.parametrize(
    "forge",
    ["missing", "tampered", "other_token", "cross_site"],
)
async def test_a_form_without_a_valid_csrf_field_is_refused_and_changes_nothing(
    delivered: Delivered, forge: str
) -> None:
    valid = await delivered.csrf()
    nonce, _, mac = valid.partition(".")
    form: dict[str, str] = {"passport_no": kit_.PASSPORT_NO}  # the RIGHT number
    headers: dict[str, str] = {}
    if forge == "tampered":
        form["csrf"] = f"{nonce}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}"
    elif forge == "other_token":
        key = pages.hashing.derive_key(kit_.PEPPER, pages.CSRF_PURPOSE)
        form["csrf"] = pages.csrf_field(key, delivered.token + "x")
    elif forge == "cross_site":
        form["csrf"] = valid
        headers["Sec-Fetch-Site"] = "cross-site"
    resp, body = await delivered.post(form, headers)
    assert resp.status == 403
    _assert_page_headers(resp)
    assert "Formulir tidak dapat diterima" in _text(body)
    assert "The form could not be accepted" in _text(body)
    state, record = await delivered.record()
    assert (state, record.confirm_failures, record.verified) == ("delivered", 0, False)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("csrf=a.%C3%A9&passport_no=X1234567", "application/x-www-form-urlencoded"),
        (b"csrf=\xff\xfe&passport_no=X1234567", "application/x-www-form-urlencoded"),
        ("csrf=a.b&passport_no=X1234567", "application/x-www-form-urlencoded; charset=nope"),
    ],
    ids=["non-ascii-csrf", "not-utf8", "unknown-charset"],
)
async def test_an_unreadable_form_is_refused_not_a_server_error(
    delivered: Delivered, body: str | bytes, content_type: str
) -> None:
    async with delivered.kit.http.post(
        delivered.url("/confirm"),
        data=body,
        headers={"Content-Type": content_type},
        allow_redirects=False,
    ) as resp:
        text = await resp.text()
    assert resp.status == 403
    assert "Formulir tidak dapat diterima" in _text(text)
    state, record = await delivered.record()
    assert (state, record.confirm_failures, record.verified) == ("delivered", 0, False)


async def test_an_unknown_token_gets_one_404_page_whatever_it_looks_like(
    delivered: Delivered,
) -> None:
    bodies = set()
    odd = ("/t/" + "A" * 43, "/t/x", "/t/%3Cscript%3E", "/t/a/b/c", f"/t/{delivered.token}/x")
    for path in odd:
        async with delivered.kit.http.get(delivered.kit.url(path)) as resp:
            assert resp.status == 404, path
            _assert_page_headers(resp)
            bodies.add(await resp.text())
    assert len(bodies) == 1  # no hint of what the token looked like or whether it existed
    text = _text(bodies.pop())
    assert "Tautan pelacakan tidak ditemukan" in text and "Tracking link not found" in text
    assert text.index("Tautan pelacakan") < text.index("Tracking link")

    # a POST with a well-formed form for a token that opens nothing is the same 404 page
    key = pages.hashing.derive_key(kit_.PEPPER, pages.CSRF_PURPOSE)
    unknown = "B" * 43
    async with delivered.kit.http.post(
        delivered.kit.url(f"/t/{unknown}/confirm"),
        data={"csrf": pages.csrf_field(key, unknown), "passport_no": kit_.PASSPORT_NO},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 404
        assert "Tracking link not found" in _text(await resp.text())


async def test_the_stylesheet_is_served_from_this_process(delivered: Delivered) -> None:
    _, body = await delivered.page()
    # what the page loads (links out, such as the courier's own tracking page, load nothing)
    hrefs = re.findall(r'(?:<link[^>]*\shref|\ssrc)="([^"]+)"', body)
    assert "/static/site.css" in hrefs
    assert not [h for h in hrefs if h.startswith(("http:", "https:", "//"))]  # no CDN
    async with delivered.kit.http.get(delivered.kit.url("/static/site.css")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/css")
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        css = await resp.text()
    assert "@import" not in css and "url(" not in css and "max-width" in css
