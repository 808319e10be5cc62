"""The applicant's pages in a real browser on phone widths (390 and 320 px): with no JavaScript
the applicant reports a problem and rates the delivery; every page state passes the
accessibility check (axe-core, WCAG 2.1 AA) and nothing scrolls sideways."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import accessibility
import pytest
import tracking_kit as kit_
from playwright.async_api import Browser, Page, ViewportSize
from sqlalchemy.ext.asyncio import AsyncEngine

from courier.db.engine import SessionFactory
from courier.services import notices

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])  # one backend is enough here

CONTACT = {
    "phone": "0342-801344",
    "whatsapp": "+62 812 3456 7890",
    "hours": "Senin-Jumat 08.00-15.00 WIB",
    "address": "Jl. Sudanco Supriyadi No. 40, Bendogerit, Sananwetan, Kota Blitar",
}


async def _visible(page: Page) -> str:
    return " ".join((await page.inner_text("body")).split())


async def _check(checker: Page, url: str, width: int) -> None:
    """axe on ``url`` as it stands, and no sideways scrolling at ``width``."""
    response = await checker.goto(url)
    assert response is not None
    assert await accessibility.violations(checker) == [], url
    scroll = await checker.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, (url, scroll)


@pytest.mark.parametrize("width", [390, 320])
async def test_an_applicant_reports_then_rates_on_a_phone(
    backend: str,
    width: int,
    engine: AsyncEngine,
    sessions: SessionFactory,
    tmp_path: Path,
    browser: Browser,
) -> None:
    viewport: ViewportSize = {"width": width, "height": 800}
    async with kit_.make_kit(engine, sessions, tmp_path) as kit:
        office_id, delivery_id = await kit_.seed_delivery(kit, outcome="delivered_self")
        await kit_.drive(kit, kit_.state_is(kit, delivery_id, "delivered"))
        office = {"code": kit_.office_code("jnt"), "name": "Kanim", "contact": CONTACT}
        kit.ctx.settings = dataclasses.replace(kit.ctx.settings, offices=(office,))
        url = kit.url(f"/t/{kit_.token(office_id, 1)}")
        phone = await browser.new_context(
            viewport=viewport, is_mobile=True, has_touch=True, java_script_enabled=False
        )
        checks = await browser.new_context(viewport=viewport, locale="id-ID")
        try:
            page = await phone.new_page()
            checker = await checks.new_page()
            await page.goto(url)
            text = await _visible(page)
            for words in ("Hubungi kantor", "0342-801344", "Ada masalah?", "Lacak di situs"):
                assert words in text, words
            await _check(checker, url, width)

            await page.check("#problem-seal_broken")
            await page.fill("#words", "Segel sobek waktu diterima")
            async with page.expect_navigation():
                await page.click(".report button[type=submit]")
            assert page.url.endswith("?m=reported")
            text = await _visible(page)
            assert "Laporan Anda sudah kami terima." in text
            assert "We have your report." in text
            assert "Nilai layanan kami" in text  # a report opens the rating
            await _check(checker, page.url, width)

            await page.check("#score-3")
            async with page.expect_navigation():
                await page.click(".rate button[type=submit]")
            text = await _visible(page)
            assert "Terima kasih, penilaian Anda (3 dari 4) sudah tercatat." in text
            assert await page.locator("#score-3").count() == 0
            await page.screenshot(path=str(tmp_path / f"rated-{width}.png"), full_page=True)
            await _check(checker, page.url, width)

            stop = notices.optout_token(kit.ctx.settings, delivery_id)
            await page.goto(kit.url(f"/n/stop/{stop}"))
            await _check(checker, kit.url(f"/n/stop/{stop}"), width)
            async with page.expect_navigation():
                await page.click("button[type=submit]")
            assert "Pesan yang tidak penting dihentikan" in await _visible(page)
            await _check(checker, kit.url("/n/stop/1.0000"), width)  # the 404 page
        finally:
            await phone.close()
            await checks.close()
