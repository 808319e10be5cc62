"""``POST /webhooks/{courier}``: a push that is validly signed but cannot be parsed — here JSON
nested deeper than the parser can follow, which raises RecursionError, not ValueError — gets the
courier's own refusal (J&T: HTTP 400, ``"msg":"fail"``), never a 500, and nothing is stored."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import tracking_kit as kit_
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.jnt.codec import jms_digest
from adapters.jnt.push import CONTENT_TYPE
from courier.db.engine import SessionFactory
from courier.db.models import InboxItem

DEPTH = 5000  # far past the parser's recursion limit, well under the body limit (6 bytes/level)


async def _inbox(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(InboxItem)) or 0)


async def test_a_signed_push_nested_too_deep_is_refused_and_not_stored(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with kit_.make_kit(engine, sessions, tmp_path, jnt_push=True) as kit:
        jnt = kit.ctx.settings.couriers["jnt"]
        content = "[" * DEPTH + "]" * DEPTH
        headers = {
            "Content-Type": CONTENT_TYPE,
            "apiAccount": jnt["api_account"],
            "digest": jms_digest(content, jnt["private_key"]),  # a valid signature
            "timestamp": str(int(kit.clock.now().timestamp() * 1000)),
        }
        body = urlencode({"bizContent": content}).encode("ascii")
        assert len(body) < kit.ctx.settings.max_body_bytes
        async with kit.http.post(kit.url("/webhooks/jnt"), data=body, headers=headers) as resp:
            assert resp.status == 400, await resp.text()
            answer = await resp.json()
        assert answer["code"] == "0" and answer["msg"] == "fail" and answer["data"] == "FAIL"
        assert await _inbox(sessions) == 0
