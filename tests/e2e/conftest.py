"""The system's headless Chromium for browser tests, driven by Playwright.

Never `playwright install` (its browser download does not work here): ``make test`` installs
Debian's ``chromium`` when it is missing, and a missing binary is a failure, not a skip."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
# headless, and no background traffic: this machine has no network beyond loopback
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 (one stat, before any await)
        pytest.fail(
            f"{CHROMIUM} is missing: install the system Chromium (apt-get install chromium; "
            "`make test` does) — never `playwright install`"
        )
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()
