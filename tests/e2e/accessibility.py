"""An automated accessibility check of a page: axe-core (vendored, MPL-2.0, tests/e2e/vendor) run
in the page as it stands. Pages carry a strict Content-Security-Policy that refuses injected
scripts, so the check runs through Playwright's evaluate (the DevTools protocol), which the
page's policy does not govern; the page under test must be in a context with JavaScript on.

Imported as ``accessibility``: ``assert await accessibility.violations(page) == []``."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from playwright.async_api import Page

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
# WCAG 2.1 A and AA: what an Indonesian public-service site is held to (Permen PANRB 2021 cites it)
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@cache
def _axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


async def violations(page: Page) -> list[str]:
    """One line per rule the page breaks (rule id, impact, the first offending elements)."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(_axe_source())
    result: dict[str, Any] = await page.evaluate(
        "rules => axe.run(document, {runOnly: {type: 'tag', values: rules}})", RULES
    )
    return [
        f"{v['id']} ({v.get('impact')}): "
        + "; ".join(" ".join(node["target"]) for node in v["nodes"][:3])
        for v in result["violations"]
    ]
