"""The tracking page in a real browser (the system's headless Chromium driven by Playwright):
no JavaScript needed, readable on a phone, a wrong then the right passport number.

The page is served on 127.0.0.1 over a SQLite database whose delivery the worker took to
"delivered" against the J&T simulator. A missing /usr/bin/chromium is a failure, not a skip:
``make test`` installs it."""

from __future__ import annotations

from pathlib import Path

import accessibility
import pytest
import tracking_kit as kit_
from playwright.async_api import Browser, Page, ViewportSize
from sqlalchemy.ext.asyncio import AsyncEngine

from courier.db.engine import SessionFactory

PHONE: ViewportSize = {"width": 390, "height": 844}

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])  # one backend is enough here


async def _visible(page: Page) -> str:
    return " ".join((await page.inner_text("body")).split())


async def test_an_applicant_confirms_receipt_on_a_phone(
    backend: str,
    engine: AsyncEngine,
    sessions: SessionFactory,
    tmp_path: Path,
    browser: Browser,
) -> None:
    async with kit_.make_kit(engine, sessions, tmp_path) as kit:
        office_id, delivery_id = await kit_.seed_delivery(kit, outcome="delivered_self")
        await kit_.drive(kit, kit_.state_is(kit, delivery_id, "delivered"))
        url = kit.url(f"/t/{kit_.token(office_id, 1)}")
        assert url.startswith("http://127.0.0.1:")

        context = await browser.new_context(
            viewport=PHONE,
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            java_script_enabled=False,  # the page must work with no script at all
            locale="id-ID",
        )
        try:
            page = await context.new_page()
            blocked: list[str] = []
            page.on(
                "console",
                lambda m: blocked.append(m.text) if "Content Security" in m.text else None,
            )
            response = await page.goto(url)
            assert response is not None and response.status == 200
            text = await _visible(page)
            assert text.index("Kurir melaporkan paspor sudah diantar.") < text.index(
                "The courier reports the passport delivered."
            )
            for words in (
                "Batas pengambilan",
                "Perjalanan paspor",
                "J&T Express",
                " WIB",
                "Sisa percobaan: 5",
            ):
                assert words in text, words
            # the stylesheet applied: the English line sits under the Indonesian, quieter
            id_box = await page.locator("h1 [lang=id]").bounding_box()
            en_box = await page.locator("h1 [lang=en]").bounding_box()
            assert id_box is not None and en_box is not None
            assert en_box["y"] >= id_box["y"] + id_box["height"] - 1  # English under Indonesian
            assert id_box["x"] + id_box["width"] <= PHONE["width"]  # no sideways scrolling

            await page.fill("#passport_no", "X7654321")
            async with page.expect_navigation():
                await page.click("button[type=submit]")
            text = await _visible(page)
            assert "Nomor paspor tidak cocok." in text
            assert "The passport number does not match." in text
            assert "Sisa percobaan: 4" in text
            await page.screenshot(path=str(tmp_path / "tracking-wrong.png"), full_page=True)

            await page.fill("#passport_no", kit_.PASSPORT_NO.lower())
            async with page.expect_navigation():
                await page.click("button[type=submit]")
            assert page.url.endswith("?m=confirmed")
            text = await _visible(page)
            assert "Terima kasih, penerimaan paspor Anda sudah tercatat." in text
            assert "Serah terima terverifikasi" in text and "Handover verified" in text
            assert await page.locator("#passport_no").count() == 0
            await page.screenshot(path=str(tmp_path / "tracking-confirmed.png"), full_page=True)
            assert blocked == []  # nothing on the page fought the Content-Security-Policy
        finally:
            await context.close()
        assert await kit_.delivery_state(kit, delivery_id) == "handed_over"


async def test_the_tracking_page_passes_an_accessibility_check(
    backend: str,
    engine: AsyncEngine,
    sessions: SessionFactory,
    tmp_path: Path,
    browser: Browser,
) -> None:
    async with kit_.make_kit(engine, sessions, tmp_path) as kit:
        office_id, delivery_id = await kit_.seed_delivery(kit, outcome="delivered_self")
        await kit_.drive(kit, kit_.state_is(kit, delivery_id, "delivered"))
        context = await browser.new_context(viewport=PHONE, locale="id-ID")
        try:
            page = await context.new_page()
            for path in (f"/t/{kit_.token(office_id, 1)}", "/t/not-a-real-link-0000000000"):
                response = await page.goto(kit.url(path))
                assert response is not None
                assert await accessibility.violations(page) == [], path
        finally:
            await context.close()
