"""The dispatch console in a real browser (the system's headless Chromium driven by Playwright) on a
tablet-sized screen: sign in (a wrong password, a locked username, the right password), the
board, find a delivery by application number, waybill and name, its page with the proof photo,
resolve an exception, another office's delivery is 404, a form posted without its CSRF field is
refused, the language switch, sign-out; no console errors, and axe-core passes on every page.

``COURIER_SCREENSHOTS=docs/screenshots`` also writes the README's screenshots there."""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path

import accessibility
import pytest
from playwright.async_api import Browser, Page, ViewportSize
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from courier.db.engine import SessionFactory, transaction
from courier.db.models import Application, Proof, Shipment, StaffUser
from courier.services import hashing, pod
from tests.integration.web import site_kit

TABLET: ViewportSize = {"width": 1024, "height": 768}
PASSWORD = "kata-sandi-rahasia-1"

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])  # the use cases run on both elsewhere


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG (a plain colour): the page shows the proof photo, not a broken image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


async def _text(page: Page) -> str:
    return " ".join((await page.inner_text("body")).split())


async def _accessible(page: Page) -> None:
    assert await accessibility.violations(page) == [], page.url


async def _sign_in(page: Page, username: str, password: str) -> None:
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("button[type=submit]")


async def test_a_dispatcher_works_the_console_on_a_tablet(
    backend: str,
    engine: AsyncEngine,
    sessions: SessionFactory,
    tmp_path: Path,
    browser: Browser,
) -> None:
    shots = Path(os.environ.get("COURIER_SCREENSHOTS") or tmp_path)
    async with site_kit.make_site(engine, sessions, tmp_path) as site:
        blt, kdr = site.offices["BLT"], site.offices["KDR"]
        photo = _png(320, 200, (46, 125, 50))
        digest = pod.store_bytes(site.kit.ctx.settings.pod_store, photo)
        async with transaction(sessions) as session:
            for user in await session.scalars(select(StaffUser)):
                user.password_hash = hashing.argon2_hash(PASSWORD)
            proof = await session.get_one(Proof, blt.proof_id)
            proof.artefacts = [
                {
                    "kind": "photo",
                    "state": "stored",
                    "sha256": digest,
                    "size": len(photo),
                    "content_type": "image/png",
                }
            ]
            application = await session.scalar(
                select(Application).where(Application.office_id == blt.id).order_by(Application.id)
            )
            assert application is not None
            application.applicant_name = "Siti Nurhaliza Ramadhani"
            application_no = application.application_no
            waybill = await session.scalar(
                select(Shipment.waybill).where(Shipment.delivery_id == blt.delivery_id)
            )
        assert waybill is not None

        context = await browser.new_context(
            viewport=TABLET, has_touch=True, java_script_enabled=True, locale="id-ID"
        )
        errors: list[str] = []
        try:
            page = await context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            # not signed in: every page sends the browser to the sign-in form
            await page.goto(site.url("/exceptions"))
            assert "/login?next=/exceptions" in page.url
            await _accessible(page)

            # a wrong password; a locked username (another one: the dispatcher is not locked)
            await _sign_in(page, "dispatcher-blt", "wrong-password-0")
            assert "Nama pengguna atau kata sandi salah" in await _text(page)
            await _accessible(page)
            for _ in range(site.kit.ctx.settings.console_max_failures):
                await _sign_in(page, "admin-blt", "wrong-password-0")
            await _sign_in(page, "admin-blt", PASSWORD)
            assert "Terlalu banyak percobaan" in await _text(page)

            # the right password: back where the browser was going
            await _sign_in(page, "dispatcher-blt", PASSWORD)
            assert page.url.endswith("/exceptions")
            text = await _text(page)
            assert "Tanyakan posisi paket ke kurir" in text  # the stuck item's next step
            await _accessible(page)

            # the board
            await page.click("nav >> text=Papan")
            text = await _text(page)
            assert "Pengiriman berjalan" in text and "Jadwal penjemputan hari ini" in text
            assert "10.00 WIB" in text
            await _accessible(page)
            await page.screenshot(path=str(shots / "console-board.png"), full_page=True)

            # find: by application number, by waybill, by a name typed without care
            for query, expected in (
                (application_no, application_no),
                (waybill.lower(), application_no),
                ("siti NURHALIZA", "Siti Nurhaliza Ramadhani"),
            ):
                await page.goto(site.url("/deliveries"))
                await page.fill("#q", query)
                await page.click("form[role=search] button[type=submit]")
                assert expected in await _text(page), query
            await _accessible(page)

            # the delivery: its timeline, handover, proof photo from our store
            await page.click(f"table.results >> text={application_no}")
            assert page.url.endswith(f"/deliveries/{blt.delivery_id}")
            text = await _text(page)
            for part in ("Linimasa", "Serah terima", "YBS", "Bukti serah terima"):
                assert part in text, part
            loaded = await page.eval_on_selector(".artefacts img", "img => img.naturalWidth")
            assert loaded == 320
            await _accessible(page)
            await page.screenshot(path=str(shots / "console-delivery.png"), full_page=True)

            # resolve the item from the delivery page, with a note
            await page.fill(f"#note-{blt.item_id}", "Kurir sudah menemukan paketnya")
            await page.click(f"#note-{blt.item_id} ~ button")
            assert page.url.endswith(f"/deliveries/{blt.delivery_id}")
            await page.goto(site.url("/exceptions"))
            assert f"note-{blt.item_id}" not in await page.content()

            # another office's delivery is not found, exactly like one that does not exist
            answer = await page.goto(site.url(f"/deliveries/{kdr.delivery_id}"))
            assert answer is not None and answer.status == 404
            await _accessible(page)

            # a form posted without its CSRF field (the session cookie alone) is refused
            refused = await page.request.post(
                site.url(f"/exceptions/{kdr.item_id}/resolve"),
                form={"note": "tanpa token"},
                max_redirects=0,
            )
            assert refused.status == 403

            # the language switch is remembered
            await page.goto(site.url("/"))
            await page.click("a[lang=en]")
            text = await _text(page)
            assert "Deliveries under way" in text and "Pengiriman berjalan" not in text
            await _accessible(page)
            await page.click("a[lang=id]")

            # sign out: the pages ask for a sign-in again
            await page.click("form.signout button")
            assert page.url.endswith("/login")
            await page.goto(site.url("/"))
            assert "/login" in page.url
        finally:
            await context.close()
        # the refusals this test asked for are logged by the browser as failed loads; nothing else
        expected = re.compile(r"Failed to load resource: .* status of (401|403|404|429)\b")
        assert [e for e in errors if not expected.search(e)] == []
