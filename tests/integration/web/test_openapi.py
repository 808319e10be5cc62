"""The OpenAPI document and the app's router agree both ways; the document is valid OpenAPI 3.1
built from schemas/; /openapi.json and /docs are served from this process, nothing from a CDN."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate
from sqlalchemy.ext.asyncio import AsyncEngine

import schemas
from core.clock import ManualClock
from courier import config
from courier.context import AppContext
from courier.db.engine import SessionFactory
from courier.web import openapi, pages
from courier.web.app import create_app


@pytest.fixture
def ctx(db_url: str, engine: AsyncEngine, sessions: SessionFactory) -> AppContext:
    settings = config.from_mapping({"database_url": db_url})
    return AppContext(settings, engine, sessions, ManualClock())


def _served(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        info = route.resource.canonical if route.resource is not None else ""
        if route.method in ("HEAD", "*"):
            continue  # aiohttp adds HEAD beside every GET
        out.add((route.method, info))
    return out


def test_every_app_route_is_documented_and_every_documented_route_exists(
    ctx: AppContext,
) -> None:
    served = {
        (m, p)
        for m, p in _served(create_app(ctx))
        if openapi.is_documented_path(p) and not pages.is_page_path(p)  # HTML is not the API
    }
    documented = {(op.method, op.path) for op in openapi.CATALOGUE}
    assert served - documented == set(), "routes served but not in the OpenAPI catalogue"
    assert documented - served == set(), "routes in the OpenAPI catalogue the app does not serve"
    doc_paths = {
        (method.upper(), path)
        for path, item in openapi.document()["paths"].items()
        for method in item
    }
    assert doc_paths == documented


def test_document_is_valid_openapi_3_1_built_from_the_schemas() -> None:
    doc = openapi.build_document()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    components = doc["components"]["schemas"]
    for name in schemas.names():
        if name.startswith(("api/", "common/")):
            assert openapi.component_name(name) in components, name
    # the components are the schema files themselves, refs rewritten into the document
    put = components["api.application_put"]
    assert put["properties"] == schemas.load("api/application_put")["properties"]
    text = repr(doc)
    for ref in re.findall(r"'\$ref': '([^']+)'", text):
        assert ref.startswith("#/"), ref
        node: Any = doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        assert isinstance(node, dict), ref


def test_every_operation_lists_its_errors_with_the_one_error_shape() -> None:
    doc = openapi.document()
    error_ref = {"$ref": "#/components/schemas/api.error"}
    for status, response in doc["components"]["responses"].items():
        assert response["content"]["application/json"]["schema"] == error_ref, status
    for op in openapi.CATALOGUE:
        responses = doc["paths"][op.path][op.method.lower()]["responses"]
        errors = {int(s) for s in responses if int(s) >= 400}
        others = {status for status, _, _ in op.other_responses}
        assert errors == set(op.error_statuses()) | others, op.operation_id
        for status in errors - others:
            assert responses[str(status)] == {"$ref": f"#/components/responses/Error{status}"}
        if op.request is not None:
            assert {400, 413} <= errors, op.operation_id  # malformed; over the body limit
        if op.auth == "staff":
            assert {401, 403} <= errors, op.operation_id


def test_a_ref_between_schema_files_is_rewritten_into_the_document() -> None:
    found: set[str] = set()
    node = {"properties": {"a": {"$ref": "common/office.json#/properties/code"}}, "$id": "x"}
    out = openapi._rewrite(node, "api/example", found)
    assert out == {
        "properties": {"a": {"$ref": "#/components/schemas/common.office/properties/code"}}
    }
    local = openapi._rewrite({"$ref": "#/$defs/x"}, "api/parameters", found)
    assert local == {"$ref": "#/components/schemas/api.parameters/$defs/x"}
    assert found == {"common/office", "api/parameters"}


async def test_openapi_json_and_the_docs_page_are_served_locally(ctx: AppContext) -> None:
    app = create_app(ctx)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/openapi.json")
        assert resp.status == 200
        assert await resp.json() == openapi.document()

        page = await client.get("/docs")
        assert page.status == 200
        html = await page.text()
        assert "http://" not in html and "https://" not in html  # no CDN
        for src in re.findall(r'(?:src|href)="([^"]+)"', html):
            asset = await client.get(src)
            assert asset.status == 200, src
            assert len(await asset.read()) > 100, src
        init = await client.get("/docs/assets/docs.js")
        assert "validatorUrl: null" in await init.text()  # no badge fetched from outside

        missing = await client.get("/docs/assets/..%2Fopenapi.py")
        assert missing.status == 404
