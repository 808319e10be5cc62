"""The one error shape everywhere (DESIGN §8): bad JSON, unknown fields, oversized bodies (declared
or chunked), aiohttp's own 404/405, unexpected exceptions; request ids in and out; request logs
that name the route template, never the raw path."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from webapi import MAX_BODY, Api

import schemas
from courier import logging as courier_logging
from courier.web.app import create_app


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    stream = io.StringIO()
    courier_logging.configure("info", "json", stream)
    yield stream
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(root_level)


def _assert_shape(body: Any) -> dict[str, Any]:
    assert schemas.check("api/error", body) == []
    err: dict[str, Any] = body["error"]
    return err


async def test_malformed_json_is_400_at_the_root_and_changes_nothing(api: Api) -> None:
    before = await api.snapshot()
    for raw in (b"{not json", b"", '{"applicant_name": "\xff"}'.encode("latin-1")):
        headers = {**api.auth, "Content-Type": "application/json"}
        resp = await api.client.put("/api/v1/applications/BLT-1", data=raw, headers=headers)
        assert resp.status == 400
        err = _assert_shape(await resp.json())
        assert err["code"] == "bad_request"
        assert [d["path"] for d in err["details"]] == ["$"]
    assert await api.snapshot() == before


async def test_unknown_fields_and_wrong_types_are_refused_by_path(api: Api) -> None:
    before = await api.snapshot()
    resp = await api.put_application("BLT-2026-0201", is_admin=True, express="yes")
    assert resp.status == 422
    err = _assert_shape(await resp.json())
    assert err["code"] == "invalid_fields"
    details = {d["path"]: d["message"] for d in err["details"]}
    assert details["$"] == "unknown field(s): is_admin"
    assert "$.express" in details

    nested = await api.opt_in("BLT-2026-0201", address={"extra": 1})
    paths = {d["path"] for d in _assert_shape(await nested.json())["details"]}
    assert "$.address" in paths and "$.address.street" in paths

    not_object = await api.client.post("/api/v1/delivery-requests", json=[1, 2])
    assert not_object.status == 422

    # valid JSON, but no database column takes a NUL: refused by path, not a 500 later
    nul = await api.put_application("BLT-2026-0201", applicant_name="Siti\u0000Rahayu")
    assert nul.status == 422
    assert [d["path"] for d in _assert_shape(await nul.json())["details"]] == ["$.applicant_name"]
    assert await api.snapshot() == before


async def test_declared_oversized_body_is_refused_before_reading(api: Api) -> None:
    before = await api.snapshot()
    big = json.dumps({"applicant_name": "x" * (MAX_BODY * 4)}).encode()
    resp = await api.client.put(
        "/api/v1/applications/BLT-2026-0202",
        data=big,
        headers={**api.auth, "Content-Type": "application/json"},
    )
    assert resp.status == 413
    err = _assert_shape(await resp.json())
    assert err["code"] == "body_too_large"
    assert [d["path"] for d in err["details"]] == ["$"]
    assert await api.snapshot() == before


async def test_chunked_oversized_body_is_stopped_while_reading(api: Api) -> None:
    before = await api.snapshot()

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"application_no": "'
        for _ in range(16):
            yield b"A" * 1024
        yield b'"}'

    resp = await api.client.post(
        "/api/v1/delivery-requests",
        data=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert _assert_shape(await resp.json())["code"] == "body_too_large"
    assert await api.snapshot() == before


async def test_aiohttp_404_and_405_use_the_shape(api: Api) -> None:
    missing = await api.client.get("/no/such/thing")
    assert missing.status == 404
    assert _assert_shape(await missing.json())["code"] == "not_found"

    wrong = await api.client.delete("/api/v1/delivery-requests")
    assert wrong.status == 405
    assert _assert_shape(await wrong.json())["code"] == "method_not_allowed"
    assert "POST" in wrong.headers["Allow"]


async def test_unexpected_exception_is_a_generic_500_logged_with_request_id(
    api: Api, logs: io.StringIO
) -> None:
    app = create_app(api.ctx)

    async def boom(_request: web.Request) -> web.Response:
        raise RuntimeError("database said something about +6281234567890")

    app.router.add_get("/boom", boom)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/boom", headers={"X-Request-Id": "req-boom-0001"})
        assert resp.status == 500
        text = await resp.text()
    err = _assert_shape(json.loads(text))
    assert err["code"] == "internal"
    assert "RuntimeError" not in text and "Traceback" not in text and "6281234567890" not in text
    assert resp.headers["X-Request-Id"] == "req-boom-0001"
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    failure = next(line for line in lines if line["event"] == "unhandled_error")
    assert failure["request_id"] == "req-boom-0001"
    assert "RuntimeError" in failure["exception"]
    assert "6281234567890" not in logs.getvalue()


async def test_request_ids_and_route_templates_in_the_request_log(
    api: Api, logs: io.StringIO
) -> None:
    resp = await api.put_application("SECRET-APP-123")
    assert resp.status == 201
    generated = resp.headers["X-Request-Id"]
    assert len(generated) >= 16
    echoed = await api.client.get("/healthz", headers={"X-Request-Id": "lb-7f3a9c21"})
    assert echoed.headers["X-Request-Id"] == "lb-7f3a9c21"
    unsafe = await api.client.get("/healthz", headers={"X-Request-Id": "<script>"})
    assert unsafe.headers["X-Request-Id"] != "<script>"

    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    requests = [line for line in lines if line["event"] == "http_request"]
    put = next(line for line in requests if line["method"] == "PUT")
    assert put["route"] == "/api/v1/applications/{application_no}"
    assert put["status"] == 201 and put["request_id"] == generated and "ms" in put
    assert "SECRET-APP-123" not in logs.getvalue()
