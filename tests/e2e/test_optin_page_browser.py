"""The opt-in page in a real browser on phone widths (390 and 320 px): the address chosen
province → regency → district → village by posting the form back (the page has no script at
all), the postal code filled from the village, a wrong phone answered with the API's one
generic error, then the link shown once; the axe check passes at every step and nothing
scrolls sideways."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import accessibility
import pytest
import worker_seed as seed
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, ViewportSize
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import ManualClock
from courier import config
from courier.context import AppContext
from courier.db.engine import SessionFactory, transaction
from courier.db.models import Application, OutboxItem
from courier.web.app import create_app

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])  # one backend is enough here


@pytest.fixture
async def site(engine: AsyncEngine, sessions: SessionFactory) -> AsyncIterator[TestServer]:
    office_id = await seed.office(sessions)
    async with transaction(sessions) as session:
        session.add(
            Application(
                office_id=office_id,
                application_no="BLT-2026-0101",
                applicant_name="Siti Rahayu",
                date_of_birth=date(1984, 3, 17),
                phone="+6281234567890",
                priority_kind=None,
                express=False,
                issued_at=seed.T0,
                collect_by=seed.T0 + timedelta(days=30),
                state="ready",
                created_at=seed.T0,
                updated_at=seed.T0,
            )
        )
    settings = config.from_mapping({"http": {"public_url": "https://kirim.test"}})
    ctx = AppContext(settings, engine, sessions, ManualClock(seed.T0))
    async with TestServer(create_app(ctx), host="127.0.0.1") as server:
        yield server


async def _visible(page: Page) -> str:
    return " ".join((await page.inner_text("body")).split())


async def _checked(page: Page, width: int) -> None:
    assert await accessibility.violations(page) == [], page.url
    assert await page.evaluate("document.documentElement.scrollWidth") <= width
    # no inline script: at most the one same-origin enhancement file
    sources = await page.locator("script").evaluate_all("els => els.map(e => e.src || 'inline')")
    assert all(s.endswith("/static/optin.js") for s in sources), sources


async def _refresh(page: Page) -> None:
    async with page.expect_navigation():
        await page.click("button[value=refresh]")


@pytest.mark.parametrize("width", [390, 320])
async def test_an_applicant_opts_in_on_a_phone(
    backend: str,
    width: int,
    site: TestServer,
    sessions: SessionFactory,
    browser: Browser,
    tmp_path: Path,
) -> None:
    viewport: ViewportSize = {"width": width, "height": 800}
    context = await browser.new_context(viewport=viewport, is_mobile=True, locale="id-ID")
    try:
        page = await context.new_page()
        response = await page.goto(str(site.make_url("/opt-in")))
        assert response is not None and response.status == 200
        assert response.headers["cache-control"] == "no-store"
        await _checked(page, width)
        assert await page.locator("#regency_code").is_disabled()

        await page.fill("#application_no", "BLT-2026-0101")
        await page.fill("#date_of_birth", "1984-03-17")
        await page.fill("#phone", "0812 9999 0000")  # not the number on file
        await page.select_option("#province_code", "35")
        await _refresh(page)
        await page.select_option("#regency_code", "35.73")
        await _refresh(page)
        await page.select_option("#district_code", "35.73.01")
        await _refresh(page)
        await page.select_option("#village_code", "35.73.01.1001")
        await _refresh(page)
        assert await page.input_value("#postal_code") == "65126"  # from the village
        assert await page.input_value("#phone") == "0812 9999 0000"  # kept across the round trips
        await _checked(page, width)
        await page.fill("#street", "Jl. Borobudur No. 12, RT 03/RW 05")

        async with page.expect_navigation():
            await page.click("button[value=submit]")
        text = await _visible(page)
        assert "Ada isian yang perlu diperbaiki" in text  # no consent yet
        assert await page.get_attribute("#consent", "aria-invalid") == "true"
        await _checked(page, width)

        await page.check("#consent")
        async with page.expect_navigation():
            await page.click("button[value=submit]")
        text = await _visible(page)
        assert "Data tidak cocok dengan catatan kami" in text  # the API's one generic answer
        assert "do not match our records" in text

        await page.fill("#phone", "0812-3456-7890")
        await page.check("#consent")
        async with page.expect_navigation():
            await page.click("button[value=submit]")
        text = await _visible(page)
        assert "Pengiriman paspor terdaftar" in text
        link = await page.locator(".link a").inner_text()
        assert link.startswith("https://kirim.test/t/")
        await _checked(page, width)
        await page.screenshot(path=str(tmp_path / f"optin-done-{width}.png"), full_page=True)
    finally:
        await context.close()
    async with sessions() as session:
        kinds = list(await session.scalars(select(OutboxItem.kind)))
    assert kinds == ["applicant_opted_in"]  # the link is also sent to the phone on file


async def test_the_address_cascades_without_javascript_and_faster_with_it(
    backend: str, site: TestServer, browser: Browser
) -> None:
    viewport: ViewportSize = {"width": 320, "height": 800}
    plain = await browser.new_context(viewport=viewport, java_script_enabled=False)
    scripted = await browser.new_context(viewport=viewport)
    try:
        page = await plain.new_page()
        await page.goto(str(site.make_url("/opt-in")))
        await page.select_option("#province_code", "35")
        await _refresh(page)  # the form posted back: the next list is there
        assert not await page.locator("#regency_code").is_disabled()
        assert await page.locator("#regency_code option[value='35.73']").count() == 1

        page = await scripted.new_page()
        response = await page.goto(str(site.make_url("/opt-in")))
        assert response is not None
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        url = page.url
        await page.select_option("#province_code", "35")
        await page.wait_for_selector("#regency_code option[value='35.73']", state="attached")
        await page.select_option("#regency_code", "35.73")
        await page.wait_for_selector("#district_code option[value='35.73.01']", state="attached")
        await page.select_option("#district_code", "35.73.01")
        await page.wait_for_selector(
            "#village_code option[value='35.73.01.1001']", state="attached"
        )
        await page.select_option("#village_code", "35.73.01.1001")
        assert await page.input_value("#postal_code") == "65126"
        assert page.url == url  # no round trip
    finally:
        await plain.close()
        await scripted.close()
