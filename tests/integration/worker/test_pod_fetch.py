"""Proof-of-delivery fetch against hostile links (issue 10: the worker fetched our own /metrics
and tried port 5432): only the exact scheme, host and port allowed for the courier; no
private or loopback address after DNS unless the entry allows it; redirects only to allowed
origins; only images or PDFs (declared type and first bytes agree); a size cap. Every refusal
fails the artefact with its reason and opens the office's pod_missing item; nothing crashes.
Real aiohttp servers on loopback; both backends."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import worker_seed as seed
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select
from tracking_kit import booked_shipment, event

from adapters.base import Artefact, PodOrigin
from core.status import Status
from courier.db.engine import SessionFactory, transaction
from courier.db.models import ExceptionItem, Proof
from courier.services import pod, tracking

NOW = seed.T0 + timedelta(hours=30)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(200)
WEBP = b"RIFF\x00\x01\x00\x00WEBPVP8 " + bytes(200)
PDF = b"%PDF-1.7\n" + bytes(200)
HTML = b"<!doctype html><title>Grafana</title>"


@dataclass
class Host:
    """A courier's file host on loopback that records which paths were asked for."""

    server: TestServer
    hits: list[str] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server.port}{path}"

    def origin(self, *, allow_private: bool = True, host: str = "127.0.0.1") -> PodOrigin:
        return PodOrigin("http", host, self.server.port, allow_private)


def _routes(host_hits: list[str], other: str = "") -> web.Application:
    async def files(request: web.Request) -> web.StreamResponse:
        host_hits.append(request.path)
        name = request.match_info["name"]
        if name == "photo.png":
            return web.Response(body=PNG, content_type="image/png")
        if name == "photo.jpg":
            return web.Response(body=JPEG, content_type="image/jpeg")
        if name == "photo.webp":
            return web.Response(body=WEBP, content_type="image/webp")
        if name == "pod.pdf":
            return web.Response(body=PDF, content_type="application/pdf")
        if name == "page.html":
            return web.Response(body=HTML, content_type="text/html")
        if name == "disguised.png":  # declared an image, is a page
            return web.Response(body=HTML, content_type="image/png")
        if name == "huge.png":  # says how long it is
            return web.Response(body=PNG + bytes(64 * 1024), content_type="image/png")
        if name == "endless.png":  # says nothing and keeps sending
            reply = web.StreamResponse(headers={"Content-Type": "image/png"})
            reply.enable_chunked_encoding()
            await reply.prepare(request)
            await reply.write(PNG)
            for _ in range(64):
                await reply.write(bytes(4096))
            await reply.write_eof()
            return reply
        if name == "elsewhere.png":
            raise web.HTTPFound(request.query["to"])
        if name == "same.png":
            raise web.HTTPFound("/files/photo.png")
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/files/{name}", files)
    return app


@pytest.fixture
async def hosts() -> AsyncIterator[tuple[Host, Host]]:
    """The courier's file host and another service on this machine (another port)."""
    first: list[str] = []
    second: list[str] = []
    async with (
        TestServer(_routes(first), host="127.0.0.1") as a,
        TestServer(_routes(second), host="127.0.0.1") as b,
    ):
        yield Host(a, first), Host(b, second)


_SEEDED = itertools.count(1)


def _stored_files(store: Path) -> list[Path]:
    return [p for p in (store / "pod").rglob("*") if p.is_file()]


async def _delivered_with(sessions: SessionFactory, *urls: str) -> tuple[int, int]:
    n = next(_SEEDED)
    waybill = f"JO{n:010d}"
    office_id = await seed.office(sessions, code=f"T{n}")
    [delivery_id] = await seed.deliveries(sessions, office_id, 1)
    shipment_id = await booked_shipment(sessions, delivery_id, waybill=waybill)
    artefacts = tuple(Artefact(f"photo{i}", url) for i, url in enumerate(urls))
    async with transaction(sessions) as session:
        shipment = await tracking.lock_shipment(session, shipment_id)
        assert shipment is not None
        applied = await tracking.apply_events(
            session,
            shipment,
            [
                event(
                    Status.DELIVERED,
                    NOW,
                    waybill=waybill,
                    receiver_name="P",
                    relation="YBS",
                    artefacts=artefacts,
                )
            ],
            source="poll",
            now=NOW,
        )
    assert applied.proof_id is not None
    return office_id, applied.proof_id


async def _fetch(
    sessions: SessionFactory,
    store: Path,
    urls: list[str],
    origins: set[PodOrigin],
    *,
    max_bytes: int = pod.DEFAULT_MAX_BYTES,
) -> list[dict[str, Any]]:
    """Deliver with ``urls``, fetch once into ``store``/pod; the artefacts as recorded."""
    _, proof_id = await _delivered_with(sessions, *urls)
    await pod.fetch_pending(
        sessions, store / "pod", now=NOW, origins={"jnt": origins}, max_bytes=max_bytes
    )
    async with sessions() as session:
        proof = await session.get(Proof, proof_id)
        assert proof is not None
        return list(proof.artefacts)


async def _missing_item(sessions: SessionFactory) -> str:
    async with sessions() as session:
        items = await session.scalars(
            select(ExceptionItem).where(ExceptionItem.kind == "pod_missing")
        )
        [item] = list(items)
    return item.detail


async def test_images_and_pdfs_from_the_allowed_origin_are_stored(
    sessions: SessionFactory, tmp_path: Path, hosts: tuple[Host, Host]
) -> None:
    files, _ = hosts
    names = ("photo.png", "photo.jpg", "photo.webp", "pod.pdf", "same.png")
    artefacts = await _fetch(
        sessions, tmp_path, [files.url(f"/files/{n}") for n in names], {files.origin()}
    )
    assert [a["state"] for a in artefacts] == ["stored"] * 5
    assert [a["content_type"] for a in artefacts] == [
        "image/png",
        "image/jpeg",
        "image/webp",
        "application/pdf",
        "image/png",  # a redirect within the origin is followed
    ]
    for artefact, body in zip(artefacts, (PNG, JPEG, WEBP, PDF, PNG), strict=True):
        assert pod.artefact_path(tmp_path / "pod", artefact["sha256"]).read_bytes() == body


async def test_another_port_or_scheme_on_the_allowed_host_is_refused_without_a_request(
    sessions: SessionFactory, tmp_path: Path, hosts: tuple[Host, Host]
) -> None:
    files, other = hosts
    urls = [
        other.url("/files/photo.png"),  # same host, another port (our /metrics, a database…)
        files.url("/files/photo.png").replace("http://", "https://"),  # another scheme
    ]
    artefacts = await _fetch(sessions, tmp_path, urls, {files.origin()})
    assert [a["state"] for a in artefacts] == ["failed", "failed"]
    assert other.hits == [] and files.hits == []
    assert (await _missing_item(sessions)).count("not allowed for jnt") == 2


async def test_html_or_a_disguised_page_is_not_kept(
    sessions: SessionFactory, tmp_path: Path, hosts: tuple[Host, Host]
) -> None:
    files, _ = hosts
    urls = [files.url("/files/page.html"), files.url("/files/disguised.png")]
    artefacts = await _fetch(sessions, tmp_path, urls, {files.origin()})
    assert [a["state"] for a in artefacts] == ["failed", "failed"]
    assert "not an image or a PDF (Content-Type text/html)" in artefacts[0]["error"]
    assert "not the image/png it is declared as" in artefacts[1]["error"]
    assert "Grafana" not in await _missing_item(sessions)  # the body is never quoted
    assert _stored_files(tmp_path) == []  # nothing stored


async def test_a_body_over_the_cap_is_not_kept_declared_or_streamed(
    sessions: SessionFactory, tmp_path: Path, hosts: tuple[Host, Host]
) -> None:
    files, _ = hosts
    urls = [files.url("/files/huge.png"), files.url("/files/endless.png")]
    artefacts = await _fetch(sessions, tmp_path, urls, {files.origin()}, max_bytes=32 * 1024)
    assert [a["state"] for a in artefacts] == ["failed", "failed"]
    assert all("larger than the limit of 32768 bytes" in a["error"] for a in artefacts)
    assert _stored_files(tmp_path) == []
    # under a larger cap the same links are kept: the cap is the setting, not a constant
    more = await _fetch(sessions, tmp_path, urls, {files.origin()}, max_bytes=1024 * 1024)
    assert [a["state"] for a in more] == ["stored", "stored"]


async def test_a_redirect_to_another_port_is_not_followed(
    sessions: SessionFactory, tmp_path: Path, hosts: tuple[Host, Host]
) -> None:
    files, other = hosts
    away = other.url("/files/photo.png")
    artefacts = await _fetch(
        sessions, tmp_path, [files.url(f"/files/elsewhere.png?to={away}")], {files.origin()}
    )
    assert artefacts[0]["state"] == "failed"
    assert artefacts[0]["error"] == "redirected to a link not allowed"
    assert files.hits == ["/files/elsewhere.png"] and other.hits == []


async def test_a_name_resolving_to_loopback_needs_an_entry_that_allows_private(
    sessions: SessionFactory, tmp_path: Path, hosts: tuple[Host, Host]
) -> None:
    files, _ = hosts
    urls = [files.url("/files/photo.png", host="localhost")]
    refused = await _fetch(
        sessions, tmp_path, urls, {files.origin(host="localhost", allow_private=False)}
    )
    assert refused[0]["state"] == "failed"
    assert "resolves to a non-public address" in refused[0]["error"]
    assert files.hits == []
    allowed = await _fetch(sessions, tmp_path, urls, {files.origin(host="localhost")})
    assert allowed[0]["state"] == "stored" and files.hits == ["/files/photo.png"]


async def test_production_defaults_refuse_the_couriers_own_host_on_a_private_address(
    sessions: SessionFactory, tmp_path: Path, hosts: tuple[Host, Host]
) -> None:
    """Without pod_origins the courier's API origins are allowed, public addresses only: a
    courier API on loopback (a simulator) must be allowed explicitly."""
    files, _ = hosts
    settings = {"track_url": files.url("/track")}
    [origin] = pod.allowed_origins({"jnt": settings})["jnt"]
    assert origin == files.origin(allow_private=False)
    artefacts = await _fetch(sessions, tmp_path, [files.url("/files/photo.png")], {origin})
    assert artefacts[0]["state"] == "failed" and files.hits == []
