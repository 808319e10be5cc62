"""Several machines: a `courier work` process fetches a proof-of-delivery photo into the database
artefact store, and a `courier serve` process started separately, in another folder, shows it to
the office's dispatcher. The two share nothing but the database (each has its own working
directory and its own, empty, ``pod_store``). Both backends.

With ``storage.artefacts = "local"`` the same serve cannot show it: the file stayed in the
worker's folder, which is why the database store exists.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tomli_w
import worker_seed as seed
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select
from tracking_kit import booked_shipment, event

from adapters.base import Artefact
from bench.procs import server
from core.status import Status
from courier.db.engine import SessionFactory, transaction
from courier.db.models import Proof, StoredArtefact
from courier.services import staff, tracking
from simulators import jnt as jnt_sim

pytestmark = [pytest.mark.timeout(180)]

COURIER = str(Path(sys.executable).with_name("courier"))
PNG = b"\x89PNG\r\n\x1a\n" + bytes(300)
PEPPER = "shared-artefacts-pepper-0123456789-abcdef"


@pytest.fixture
async def file_host() -> AsyncIterator[TestServer]:
    """The courier's file host: one photo."""

    async def photo(_request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/pod/photo.png", photo)
    async with TestServer(app, host="127.0.0.1") as host:
        yield host


def _config(folder: Path, db_url: str, store: str, host: TestServer) -> Path:
    folder.mkdir()
    jnt: dict[str, Any] = jnt_sim.adapter_settings("http://127.0.0.1:9")  # never called
    jnt["pod_origins"] = [{"origin": f"http://127.0.0.1:{host.port}", "allow_private": True}]
    path = folder / "courier.toml"
    config = {
        "database_url": db_url,
        "log": {"level": "info", "format": "json"},
        "security": {"passport_pepper": PEPPER},
        "storage": {"artefacts": store},
        "pod_store": str(folder / "pod"),
        "couriers": {"jnt": jnt},
    }
    path.write_bytes(tomli_w.dumps(config).encode())
    return path


async def _delivered(sessions: SessionFactory, photo_url: str) -> tuple[int, str]:
    """A delivered shipment whose proof names the courier's photo link (still pending); the
    delivery id and a dispatcher token of its office."""
    now = datetime.now(UTC)
    office_id = await seed.office(sessions, code="BLT")
    [delivery_id] = await seed.deliveries(sessions, office_id, 1)
    shipment_id = await booked_shipment(sessions, delivery_id, waybill="JO0000000042")
    async with transaction(sessions) as session:
        shipment = await tracking.lock_shipment(session, shipment_id)
        assert shipment is not None
        await tracking.apply_events(
            session,
            shipment,
            [
                event(
                    Status.DELIVERED,
                    now,
                    waybill="JO0000000042",
                    receiver_name="P",
                    relation="YBS",
                    artefacts=(Artefact("photo", photo_url),),
                )
            ],
            source="poll",
            now=now,
        )
        _, token = await staff.create_token(
            session, office_code="BLT", role="dispatcher", name="desk", now=now, actor="test"
        )
    return delivery_id, token


async def _get(url: str, token: str) -> tuple[int, str, bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def test_a_photo_a_worker_fetched_is_shown_by_another_serve(
    db_url: str, sessions: SessionFactory, file_host: TestServer, tmp_path: Path
) -> None:
    delivery_id, token = await _delivered(
        sessions, f"http://127.0.0.1:{file_host.port}/pod/photo.png"
    )
    worker_config = _config(tmp_path / "worker", db_url, "database", file_host)
    # a child process while this loop keeps serving the courier's file host
    work = await asyncio.create_subprocess_exec(
        COURIER,
        "--config",
        str(worker_config),
        "work",
        "--once",
        "--loops",
        "track",
        cwd=tmp_path / "worker",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(work.communicate(), 120)
    logs = err.decode(errors="replace")[-3000:]
    assert work.returncode == 0, logs

    async with sessions() as session:
        proof = (await session.scalars(select(Proof))).one()
        [photo] = proof.artefacts
        assert photo["state"] == "stored", (photo, logs)
        stored = await session.get(StoredArtefact, photo["sha256"])
    assert stored is not None and bytes(stored.data) == PNG
    assert not list((tmp_path / "worker").rglob("*.png")), "nothing is written to the folder"
    assert not (tmp_path / "worker" / "pod").exists()

    path = f"/api/v1/deliveries/{delivery_id}/artefacts/{photo['sha256']}"
    serve_config = _config(tmp_path / "serve", db_url, "database", file_host)
    with server(
        [COURIER, "--config", str(serve_config), "serve", "--port", "0"], cwd=tmp_path / "serve"
    ) as serve:
        status, content_type, body = await _get(serve.url + path, token)
        assert (status, content_type, body) == (200, "image/png", PNG)
        missing, _, _ = await _get(serve.url + path.replace(photo["sha256"], "0" * 64), token)
        assert missing == 404

    # the same serve keeping artefacts in its own folder has nothing to show
    local_config = _config(tmp_path / "local", db_url, "local", file_host)
    with server(
        [COURIER, "--config", str(local_config), "serve", "--port", "0"], cwd=tmp_path / "local"
    ) as serve:
        status, _, _ = await _get(serve.url + path, token)
        assert status == 404
