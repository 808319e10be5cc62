"""What the tracking page adds for the applicant, over real HTTP on both backends: the office's
contact, the collect-by date only while it matters, report a problem (an exception item with the
applicant's words masked), rate once, the opt-out link, and guessed links: one 404, then 429."""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import tracking_kit as kit_
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from courier.db.engine import SessionFactory
from courier.db.models import AuditEntry, ExceptionItem, NotifyOptOut, Rating
from courier.services import applicant, notices

CONTACT = {
    "phone": "0342-801344",
    "whatsapp": "0812-3456-7890",
    "hours": "Senin-Jumat 08.00-15.00 WIB",
    "address": "Jl. Sudanco Supriyadi No. 40, Kota Blitar",
}


class Page:
    def __init__(self, kit: kit_.Kit, office_id: int, delivery_id: int) -> None:
        self.kit = kit
        self.delivery_id = delivery_id
        self.token = kit_.token(office_id, 1)

    def url(self, suffix: str = "") -> str:
        return self.kit.url(f"/t/{self.token}{suffix}")

    async def text(self, suffix: str = "") -> tuple[int, str, str]:
        async with self.kit.http.get(self.url(suffix)) as resp:
            body = await resp.text()
        return resp.status, body, " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())

    async def post(self, path: str, form: dict[str, str]) -> tuple[int, str]:
        _, body, _ = await self.text()
        found = re.search(r'name="csrf" value="([^"]+)"', body)
        assert found is not None
        form = {**form, "csrf": html.unescape(found.group(1))}
        async with self.kit.http.post(self.url(path), data=form, allow_redirects=False) as resp:
            return resp.status, resp.headers.get("Location", "") or await resp.text()


@pytest.fixture
async def page(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> AsyncIterator[Page]:
    async with kit_.make_kit(engine, sessions, tmp_path) as kit:
        office_id, delivery_id = await kit_.seed_delivery(kit, outcome="delivered_self")
        await kit_.drive(kit, kit_.state_is(kit, delivery_id, "delivered"))
        office = {"code": kit_.office_code("jnt"), "name": "Kanim", "contact": CONTACT}
        kit.ctx.settings = dataclasses.replace(kit.ctx.settings, offices=(office,))
        yield Page(kit, office_id, delivery_id)


async def test_the_page_gives_the_offices_contact_and_the_courier_link(page: Page) -> None:
    status, body, text = await page.text()
    assert status == 200
    assert "Hubungi kantor Contact the office" in text
    assert 'href="tel:0342-801344"' in body
    assert 'href="https://wa.me/6281234567890"' in body
    assert "Senin-Jumat 08.00-15.00 WIB" in text and "Jl. Sudanco Supriyadi" in text
    assert 'href="https://jet.co.id/track?awb=' in body
    assert "Batas pengambilan" in text  # delivered, not yet confirmed: it still matters
    assert "Ada masalah? A problem?" in text  # the courier says delivered: a report is possible
    assert "Nilai layanan kami" not in text  # nothing to rate before the handover


async def test_a_report_opens_one_item_with_the_words_masked_then_a_rating_once(
    page: Page,
) -> None:
    words = "Tidak ada yang datang, hubungi saya di 0812 9999 8888"
    status, location = await page.post("/report", {"problem": "not_received", "words": words})
    assert status == 303 and location.endswith("?m=reported")
    _, _, text = await page.text("?m=reported")
    assert "Laporan Anda sudah kami terima" in text
    status, _ = await page.post("/report", {"problem": "not_received", "words": "lagi"})
    assert status == 303  # the same reason again: nothing new
    async with page.kit.sessions() as session:
        [item] = list(
            await session.scalars(
                select(ExceptionItem).where(ExceptionItem.kind == "applicant_report")
            )
        )
        audit = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "delivery.problem_reported")
            )
        ).one()
    assert item.delivery_id == page.delivery_id
    assert item.detail.startswith("I did not receive the passport: Tidak ada yang datang")
    assert "9999" not in item.detail  # the list shows no phone number
    assert audit.reason == words  # the words as written, on the delivery's own record

    status, location = await page.post("/rate", {"score": "2", "comment": "lama sekali"})
    assert status == 303 and location.endswith("?m=rated")
    status, location = await page.post("/rate", {"score": "4", "comment": ""})
    _, body, text = await page.text()
    assert "Terima kasih, penilaian Anda (2 dari 4) sudah tercatat." in text
    assert 'name="score"' not in body  # no second rating form
    async with page.kit.sessions() as session:
        [rating] = list(await session.scalars(select(Rating)))
    assert (rating.score, rating.comment) == (2, "lama sekali")


async def test_bad_report_and_rating_forms_say_what_to_fix(page: Page) -> None:
    status, body = await page.post("/report", {"problem": "lost_my_way", "words": ""})
    assert status == 422 and "Periksa isian formulir" in body
    status, body = await page.post("/rate", {"score": "3", "comment": ""})
    assert status == 409 and "setelah serah terima selesai" in body
    status, body = await page.post("/rate", {"score": "9", "comment": ""})
    assert status == 422
    async with page.kit.http.post(
        page.url("/report"), data={"problem": "not_received", "csrf": "x.y"}
    ) as resp:
        assert resp.status == 403  # no valid CSRF field: nothing read or written


async def test_the_collect_by_date_goes_once_the_handover_is_verified(page: Page) -> None:
    status, _ = await page.post("/confirm", {"passport_no": kit_.PASSPORT_NO})
    assert status == 303
    _, body, text = await page.text()
    assert "Serah terima terverifikasi" in text
    assert "Batas pengambilan" not in text and "Collect by" not in text
    assert 'name="score"' in body  # now the rating form


async def test_guessed_links_get_one_404_then_429(page: Page) -> None:
    bodies = set()
    for i in range(applicant.MISS_LIMIT):
        async with page.kit.http.get(page.kit.url(f"/t/guess{i:04d}{'x' * 30}")) as resp:
            assert resp.status == 404
            bodies.add(await resp.text())
    assert len(bodies) == 1  # the same page whatever was guessed
    async with page.kit.http.get(page.kit.url("/t/one-more-guess")) as resp:
        assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    async with page.kit.http.get(page.url()) as resp:
        assert resp.status == 429  # the whole address waits out its window
    async with page.kit.http.get(page.kit.url(f"/api/v1/track/{page.token}")) as resp:
        assert resp.status == 429


async def test_the_opt_out_link_asks_then_stops_what_is_not_essential(page: Page) -> None:
    stop = notices.optout_token(page.kit.ctx.settings, page.delivery_id)
    async with page.kit.http.get(page.kit.url(f"/n/stop/{stop}")) as resp:
        body = await resp.text()
        assert resp.status == 200 and "Hentikan pesan yang tidak penting?" in body
    async with page.kit.sessions() as session:
        assert await session.scalar(select(NotifyOptOut.id)) is None
    csrf = html.unescape(re.findall(r'name="csrf" value="([^"]+)"', body)[0])
    async with page.kit.http.post(page.kit.url(f"/n/stop/{stop}"), data={"csrf": csrf}) as resp:
        assert resp.status == 200 and "dihentikan" in await resp.text()
    async with page.kit.sessions() as session:
        [row] = list(await session.scalars(select(NotifyOptOut)))
    assert row.delivery_id == page.delivery_id
    async with page.kit.http.get(page.kit.url(f"/n/stop/{stop[:-1]}0")) as resp:
        assert resp.status == 404


async def test_on_the_way_the_page_gives_the_expected_day_and_what_to_prepare(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with kit_.make_kit(engine, sessions, tmp_path) as kit:
        office_id, delivery_id = await kit_.seed_delivery(kit, outcome="delivered_self")
        await kit_.drive(kit, kit_.state_is(kit, delivery_id, "shipping"))
        page = Page(kit, office_id, delivery_id)
        status, _, text = await page.text()
        assert status == 200
        expected = re.search(r"Perkiraan tiba (\w+, \d{1,2} \w+ \d{4})", text)
        assert expected is not None, text
        assert re.search(r"Expected \w+day, \d{1,2} \w+ \d{4}", text)
        assert "Yang perlu disiapkan" in text and "surat kuasa" in text
        assert "Batas pengambilan" in text  # it still matters on the way
        assert "Ada masalah?" not in text  # nothing to report before the courier delivers
