"""/metrics: requests by route template (never the raw path), courier calls through the
observer, and the database gauges read at scrape time (deliveries by state, open exceptions,
inbox / outbox / poll lag, the couriers' daily quota left) on the service's clock, at most every
db_refresh_seconds of it; served only to the configured bearer token, or on the separate
metrics.listen address, never open by default (issue 10)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.http import RateLimits
from core.clock import ManualClock
from courier import config, metrics
from courier.context import AppContext
from courier.db.engine import SessionFactory, make_engine, make_sessions, transaction
from courier.db.limits import DatabaseGate
from courier.db.models import (
    Application,
    Delivery,
    ExceptionItem,
    InboxItem,
    Office,
    OutboxItem,
    Shipment,
)
from courier.web import metrics as web_metrics
from courier.web.app import create_app

NOW = datetime(2026, 11, 4, 3, 0, tzinfo=UTC)
TOKEN = "scrape-token-0123456789-abcdefghijkl"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _app(ctx: AppContext) -> web.Application:
    return create_app(ctx)


def _ctx(
    db_url: str, engine: AsyncEngine, sessions: SessionFactory, **metrics_settings: Any
) -> AppContext:
    settings = config.from_mapping(
        {"database_url": db_url, "metrics": {"bearer_token": TOKEN, **metrics_settings}}
    )
    return AppContext(settings, engine, sessions, ManualClock(NOW))


@contextmanager
def _statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement the engine runs meanwhile."""
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


def _sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def _scraped(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_requests_are_counted_by_route_template_and_status(
    db_url: str, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    route = "/api/v1/applications/{application_no}"
    before_put = _sample("courier_http_requests_total", route=route, method="PUT", status="401")
    before_ok = _sample("courier_http_requests_total", route="/healthz", method="GET", status="200")
    before_hist = _sample(
        "courier_http_request_duration_seconds_count", route="/healthz", method="GET"
    )
    async with TestClient(TestServer(_app(_ctx(db_url, engine, sessions)))) as client:
        for _ in range(2):
            assert (await client.get("/healthz")).status == 200
        resp = await client.put("/api/v1/applications/SECRET-APP-123", json={})
        assert resp.status == 401
        assert (await client.get("/no/such/page")).status == 404
        scrape = await client.get("/metrics", headers=AUTH)
        assert scrape.status == 200
        assert scrape.content_type == "text/plain"
        text = await scrape.text()
    assert _sample("courier_http_requests_total", route=route, method="PUT", status="401") == (
        before_put + 1
    )
    assert (
        _sample("courier_http_requests_total", route="/healthz", method="GET", status="200")
        == before_ok + 2
    )
    assert (
        _sample("courier_http_request_duration_seconds_count", route="/healthz", method="GET")
        == before_hist + 2
    )
    assert (
        _sample(
            "courier_http_requests_total", route=web_metrics.UNMATCHED, method="GET", status="404"
        )
        >= 1
    )
    assert "SECRET-APP-123" not in text  # labels are templates, never raw paths
    assert "/no/such/page" not in text


def test_the_observer_feeds_courier_call_metrics() -> None:
    observer = metrics.PrometheusObserver()
    calls = _sample("courier_courier_calls_total", courier="jnt", operation="book", outcome="ok")
    retries = _sample("courier_courier_retries_total", courier="jnt", operation="track")
    waits = _sample("courier_rate_limit_waits_total", courier="posind")
    observer.on_call("jnt", "book", "ok", 0.2)
    observer.on_retry("jnt", "track")
    observer.on_rate_wait("posind", 1.5)
    observer.on_circuit("jnt", "open")
    assert (
        _sample("courier_courier_calls_total", courier="jnt", operation="book", outcome="ok")
        == calls + 1
    )
    assert _sample("courier_courier_retries_total", courier="jnt", operation="track") == (
        retries + 1
    )
    assert _sample("courier_rate_limit_waits_total", courier="posind") == waits + 1
    assert _sample("courier_circuit_state", courier="jnt") == 2
    observer.on_circuit("jnt", "half_open")
    assert _sample("courier_circuit_state", courier="jnt") == 1
    observer.on_circuit("jnt", "closed")
    assert _sample("courier_circuit_state", courier="jnt") == 0
    claims = _sample("courier_claims_total", kind="book")
    metrics.count_claims("book", 3)
    metrics.count_lease_expiry("book", 1)
    assert _sample("courier_claims_total", kind="book") == claims + 3
    assert _sample("courier_lease_expiries_total", kind="book") >= 1


async def _seed(sessions: SessionFactory) -> None:
    async with transaction(sessions) as s:
        office = Office(
            code="BLT",
            name="Kantor Imigrasi Blitar",
            home_regency_codes=["35.72"],
            pickup_slots=["10:00"],
            collect_days=30,
            courier_code="jnt",
            sender={},
            created_at=NOW,
        )
        s.add(office)
        await s.flush()
        states = ["queued", "queued", "shipping", "needs_attention"]
        deliveries = []
        for i, state in enumerate(states):
            app = Application(
                office_id=office.id,
                application_no=f"A{i:04d}",
                applicant_name="x",
                date_of_birth=date(1980, 1, 1),
                phone="+6281234567890",
                express=False,
                state="ready",
                created_at=NOW,
                updated_at=NOW,
            )
            s.add(app)
            await s.flush()
            d = Delivery(
                application_id=app.id,
                office_id=office.id,
                address={},
                destination_regency_code="35.73",
                consent_at=NOW,
                consent_version="t",
                tracking_token_hash=f"{i:064d}",
                state=state,
                priority=0,
                claim_count=0,
                created_at=NOW,
                updated_at=NOW,
            )
            s.add(d)
            deliveries.append(d)
        await s.flush()
        s.add(
            Shipment(
                delivery_id=deliveries[2].id,
                attempt_no=1,
                courier_code="jnt",
                client_reference="BLT-A0002-1",
                status="in_transit",
                claim_count=0,
                reconcile_count=0,
                next_poll_at=NOW - timedelta(seconds=90),
                created_at=NOW,
                updated_at=NOW,
            )
        )
        s.add(
            ExceptionItem(
                office_id=office.id,
                delivery_id=deliveries[3].id,
                kind="unmapped_code",
                detail="d",
                next_step="n",
                opened_at=NOW,
            )
        )
        s.add(
            InboxItem(
                courier_code="jnt",
                dedupe_key="k1",
                body="{}",
                attempts=0,
                received_at=NOW - timedelta(minutes=10),
            )
        )
        s.add(
            InboxItem(
                courier_code="jnt",
                dedupe_key="k2",
                body="{}",
                attempts=0,
                received_at=NOW - timedelta(hours=5),
                processed_at=NOW - timedelta(hours=4),
            )
        )
        s.add(
            OutboxItem(
                kind="sms",
                payload={},
                attempts=0,
                created_at=NOW - timedelta(minutes=2),
                next_attempt_at=NOW - timedelta(seconds=30),
            )
        )
        s.add(  # not due yet: no lag
            OutboxItem(
                kind="sms",
                payload={},
                attempts=0,
                created_at=NOW,
                next_attempt_at=NOW + timedelta(hours=1),
            )
        )


async def test_database_gauges_are_read_at_scrape_time(
    db_url: str, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ctx = _ctx(db_url, engine, sessions)
    async with TestClient(TestServer(_app(ctx))) as client:
        empty = _scraped(await (await client.get("/metrics", headers=AUTH)).text())
        assert empty[("courier_deliveries", (("state", "queued"),))] == 0
        assert empty[("courier_inbox_lag_seconds", ())] == 0
        await _seed(sessions)
        assert isinstance(ctx.clock, ManualClock)
        ctx.clock.advance(timedelta(seconds=30))  # the default db_refresh_seconds
        seen = _scraped(await (await client.get("/metrics", headers=AUTH)).text())
    assert seen[("courier_deliveries", (("state", "queued"),))] == 2
    assert seen[("courier_deliveries", (("state", "shipping"),))] == 1
    assert seen[("courier_deliveries", (("state", "needs_attention"),))] == 1
    assert seen[("courier_deliveries", (("state", "handed_over"),))] == 0
    assert seen[("courier_exceptions_open", (("kind", "unmapped_code"),))] == 1
    assert seen[("courier_inbox_lag_seconds", ())] == 600 + 30
    assert seen[("courier_outbox_lag_seconds", ())] == 30 + 30
    assert seen[("courier_poll_lag_seconds", ())] == 90 + 30


async def test_the_daily_quota_left_is_read_from_the_shared_gate_at_scrape_time(
    db_url: str, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    # what the workers' transports spent: 3 of the account's 10 requests today
    gate = DatabaseGate(engine)
    for _ in range(3):
        await gate.acquire("jnt", RateLimits(interval=0.1, daily_quota=10), NOW)
    ctx = _ctx(db_url, engine, sessions)
    async with TestClient(TestServer(_app(ctx))) as client:
        seen = _scraped(await (await client.get("/metrics", headers=AUTH)).text())
        assert seen[("courier_quota_remaining", (("courier", "jnt"),))] == 7
        ctx.clock.advance(timedelta(days=1))  # type: ignore[attr-defined]
        tomorrow = _scraped(await (await client.get("/metrics", headers=AUTH)).text())
    assert tomorrow[("courier_quota_remaining", (("courier", "jnt"),))] == 10


def test_the_observer_shows_the_quota_and_counts_refusals() -> None:
    observer = metrics.PrometheusObserver()
    refusals = _sample("courier_quota_refusals_total", courier="posind")
    observer.on_quota("posind", 4, False)
    assert _sample("courier_quota_remaining", courier="posind") == 4
    observer.on_quota("posind", 0, True)
    assert _sample("courier_quota_remaining", courier="posind") == 0
    assert _sample("courier_quota_refusals_total", courier="posind") == refusals + 1


async def test_a_scrape_answers_when_the_database_is_gone() -> None:
    broken = config.from_mapping(
        {
            "database_url": "sqlite+aiosqlite:////nonexistent/dir/x.db",
            "metrics": {"bearer_token": TOKEN},
        }
    )
    bad_engine = make_engine(broken.database_url)
    ctx = AppContext(broken, bad_engine, make_sessions(bad_engine), ManualClock(NOW))
    errors = _sample("courier_metrics_db_errors_total")
    async with TestClient(TestServer(_app(ctx))) as client:
        resp = await client.get("/metrics", headers=AUTH)
        assert resp.status == 200
        assert (await client.get("/metrics", headers=AUTH)).status == 200
    # the second scrape, within db_refresh_seconds, did not try the database again
    assert _sample("courier_metrics_db_errors_total") == errors + 1
    await bad_engine.dispose()


async def test_scrapes_between_refreshes_do_not_query_the_database(
    db_url: str, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ctx = _ctx(db_url, engine, sessions, db_refresh_seconds=60)
    assert isinstance(ctx.clock, ManualClock)
    async with TestClient(TestServer(_app(ctx))) as client:
        with _statements(engine) as first:
            assert (await client.get("/metrics", headers=AUTH)).status == 200
        assert first  # the first scrape reads the gauges
        await _seed(sessions)
        ctx.clock.advance(timedelta(seconds=59))
        with _statements(engine) as between:
            for _ in range(20):
                text = await (await client.get("/metrics", headers=AUTH)).text()
        assert between == []  # twenty scrapes, not one query
        assert _scraped(text)[("courier_deliveries", (("state", "queued"),))] == 0  # last values
        ctx.clock.advance(timedelta(seconds=1))
        with _statements(engine) as after:
            text = await (await client.get("/metrics", headers=AUTH)).text()
        assert after
        assert _scraped(text)[("courier_deliveries", (("state", "queued"),))] == 2


async def test_metrics_are_closed_by_default_and_need_the_bearer_token(
    db_url: str, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    closed = AppContext(
        config.from_mapping({"database_url": db_url}), engine, sessions, ManualClock(NOW)
    )
    with _statements(engine) as queries:
        async with TestClient(TestServer(_app(closed))) as client:
            resp = await client.get("/metrics", headers=AUTH)
            assert resp.status == 404  # not served at all without a token or a listen address
            assert "courier_http_requests" not in await resp.text()
    assert queries == []
    async with TestClient(TestServer(_app(_ctx(db_url, engine, sessions)))) as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": f"Bearer {TOKEN[:-1]}"},
            {"Authorization": "Bearer sk\u00e9"},
        ):
            resp = await client.get("/metrics", headers=headers)
            assert resp.status == 401, headers
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await client.get("/metrics", headers=AUTH)).status == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_metrics_listen_serves_them_on_their_own_address_only(
    db_url: str, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    port = _free_port()
    settings = config.from_mapping(
        {"database_url": db_url, "metrics": {"listen": f"127.0.0.1:{port}"}}
    )
    ctx = AppContext(settings, engine, sessions, ManualClock(NOW))
    async with TestClient(TestServer(_app(ctx))) as client, aiohttp.ClientSession() as http:
        assert (await client.get("/metrics")).status == 404  # not on the API's address
        async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            assert resp.status == 200
            assert "courier_deliveries" in await resp.text()
        async with http.get(f"http://127.0.0.1:{port}/api/v1/exceptions") as resp:
            assert resp.status == 404  # the second address serves metrics and nothing else
    with pytest.raises(aiohttp.ClientConnectionError):  # closed with the application
        async with aiohttp.ClientSession() as http:
            await http.get(f"http://127.0.0.1:{port}/metrics")


async def test_a_taken_metrics_address_leaves_the_api_serving_and_metrics_closed(
    db_url: str, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = config.from_mapping(
            {"database_url": db_url, "metrics": {"listen": f"127.0.0.1:{port}"}}
        )
        ctx = AppContext(settings, engine, sessions, ManualClock(NOW))
        async with TestClient(TestServer(_app(ctx))) as client:
            assert (await client.get("/healthz")).status == 200
            assert (await client.get("/metrics")).status == 404
