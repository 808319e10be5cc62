"""Invariant 4: the intake, ready, opt-in, address-change and refusal flows over real HTTP, plus a
CSV import; a database error logged by the error middleware; and the worker's booking, tracking
and delivery against the J&T simulator with the applicant's confirmation on the tracking API:
none writes a name, phone, date of birth, passport number, address or token to the logs —
whatever logged it (our code, aiohttp, SQLAlchemy, the standard library), at debug level."""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import structlog
import tracking_kit as kit_
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from web.webapi import APPLICANT, MALANG, PASSPORT_NO, START, make_api, settings_for

from core.clock import ManualClock
from courier import logging as courier_logging
from courier.context import AppContext
from courier.db.engine import SessionFactory, make_engine, transaction
from courier.db.models import Application, Delivery, Handover, Office
from courier.services import csv_import, hashing, staff
from courier.web.app import create_app
from courier.web.keys import context_of

SECOND = {
    "applicant_name": "Bambang Pamungkas Wibowo",
    "date_of_birth": "1961-08-09",
    "phone": "0813-9876-5432",
}
CSV = (
    "application_no,applicant_name,date_of_birth,phone,issued_at,passport_no\n"
    "BLT-2026-0903,Kartika Sari Dewi,1979-12-24,081977776666,2026-11-02 08:00,AB9988776\n"
    "BLT-2026-0904,Yohanes Bagus,1979-12-25,0819,2026-11-02 08:00,C5544332\n"
)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    stream = io.StringIO()
    courier_logging.configure("debug", "json", stream)
    yield stream
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(root_level)


def _forbidden(tokens: list[str]) -> list[str]:
    digits = lambda s: "".join(c for c in s if c.isdigit())  # noqa: E731
    values = [
        APPLICANT["applicant_name"],
        "Siti Rahayu",
        "Rahayu",
        APPLICANT["date_of_birth"],
        APPLICANT["phone"],
        digits(APPLICANT["phone"])[1:],
        PASSPORT_NO,
        SECOND["applicant_name"],
        "Pamungkas",
        SECOND["date_of_birth"],
        SECOND["phone"],
        digits(SECOND["phone"])[1:],
        "Kartika",
        "Yohanes",
        "1979-12-24",
        "1979-12-25",
        "81977776666",
        "AB9988776",
        "C5544332",
        "X7654321",
        MALANG["street"],
        "Borobudur",
        "pagar hijau",
        "Jl. Ijen",
        "Balearjosari",
    ]
    return values + tokens


async def test_flows_leave_no_pii_in_logs(
    captured: io.StringIO, db_url: str, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    stdlib = logging.getLogger("courier.test.stdlib")
    tokens: list[str] = []
    async for api in make_api(db_url, engine, sessions, optin_max_failures=2):
        tokens.append(api.token)
        assert (await api.put_application("BLT-2026-0901")).status == 201
        assert (await api.put_application("BLT-2026-0901", phone="0813-9876-5432")).status == 200
        assert (await api.put_application("BLT-2026-0901")).status == 200
        assert (await api.ready("BLT-2026-0901")).status == 200
        assert (await api.ready("BLT-2026-0901", passport_no="X7654321")).status == 200
        first = await api.opt_in("BLT-2026-0901")
        assert first.status == 201
        tokens.append((await first.json())["tracking_token"])
        moved = {**MALANG, "street": "Jl. Ijen No. 7", "village_code": "35.73.01.1002"}
        second = await api.opt_in("BLT-2026-0901", address=moved)
        assert second.status == 200
        tokens.append((await second.json())["tracking_token"])

        assert (await api.put_application("BLT-2026-0902", **SECOND)).status == 201
        wrong = await api.opt_in("BLT-2026-0902", date_of_birth=SECOND["date_of_birth"])
        assert wrong.status == 422  # the phone is the first applicant's
        assert (await api.opt_in("BLT-2026-0902", phone=SECOND["phone"])).status == 422
        assert (await api.opt_in("BLT-2026-0902", phone=SECOND["phone"])).status == 429
        bad = await api.put_application("BLT-2026-0902", **{**SECOND, "phone": "08139"})
        assert bad.status == 422
        tracking_path = await api.client.get(f"/t/{tokens[-1]}")  # a token in a raw path
        assert tracking_path.status in (200, 404)

        rows, errors = csv_import.read_rows(CSV)
        report = await csv_import.import_rows(
            api.ctx.sessions,
            office_code="BLT",
            rows=rows,
            pepper="csv-pepper-0123456789",
            clock=api.clock,
            actor="test",
        )
        assert report.created == 1 and len(report.errors) == 1 and not errors

        # careless log calls, a library's and our own: the one processor still masks them (in
        # free text only what has a recognisable shape can be found: phones, passport numbers)
        stdlib.warning("phone %s passport %s", APPLICANT["phone"], PASSPORT_NO)
        structlog.get_logger().debug(
            "careless",
            applicant_name=SECOND["applicant_name"],
            phone=SECOND["phone"],
            address=MALANG,
            passport_no=PASSPORT_NO,
            tracking_token=tokens[-1],
        )

    text = captured.getvalue()
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    names = {e["event"] for e in events}
    # the flows did log: requests, intake, opt-in refusals and acceptances
    assert {"http_request", "application_registered", "optin_accepted"} <= names
    assert "optin_identity_refused" in names and "careless" in names
    leaked = [value for value in _forbidden(tokens) if value in text]
    assert leaked == []


def _leaks(text: str, values: list[str]) -> list[str]:
    return [value for value in values if value in text]


async def test_a_database_error_in_a_handler_logs_no_pii(
    captured: io.StringIO, db_url: str, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    """A forced IntegrityError (a NOT NULL column left empty) whose statement carries the
    applicant's details: the middleware's traceback keeps neither the bound values nor
    PostgreSQL's DETAIL line quoting the row."""
    clock = ManualClock(START)
    async with transaction(sessions) as session:
        office, _ = await staff.upsert_office(
            session,
            {"code": "BLT", "name": "Kantor Imigrasi Blitar", "home_regency_codes": ["35.05"]},
            now=clock.now(),
            actor="test",
        )
        office_id = office.id

    async def broken(request: web.Request) -> web.Response:
        async with transaction(context_of(request).sessions) as session:
            session.add(
                Application(
                    office_id=office_id,
                    application_no="BLT-2026-0999",
                    applicant_name=APPLICANT["applicant_name"],
                    date_of_birth=date(1984, 3, 17),
                    phone=None,
                    priority_kind="elderly",
                    express=False,
                    state="registered",
                    created_at=clock.now(),
                    updated_at=clock.now(),
                )
            )
        return web.Response(text="unreachable")

    app = create_app(AppContext(settings_for(db_url), engine, sessions, clock))
    app.router.add_post("/broken", broken)
    async with TestClient(TestServer(app)) as client:
        resp = await client.post("/broken")
        assert resp.status == 500
        assert (await resp.json())["error"]["code"] == "internal"
    text = captured.getvalue()
    [failure] = [json.loads(x) for x in text.splitlines() if "unhandled_error" in x]
    assert "IntegrityError" in failure["exception"]  # the error is there, its values are not
    assert "[SQL: redacted]" in failure["exception"]
    values = [APPLICANT["applicant_name"], "Rahayu", "1984-03-17"]
    assert _leaks(text, values) == []


async def test_worker_flows_and_handover_confirmation_log_no_pii(
    captured: io.StringIO, engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    """Booking, tracking polls, the proof of delivery and the applicant's confirmation over
    HTTP, against the J&T simulator: the applicant's (and receiver's) name, phone, date of
    birth, street, passport number and tracking token never reach a log line."""
    name, phone, street = "Kusumawati Handayani", "+6281399887766", "Jl. Kawi Atas No. 77"
    token = secrets.token_urlsafe(32)
    async with kit_.make_kit(engine, sessions, tmp_path) as kit:
        _, delivery_id = await kit_.seed_delivery(kit, courier="jnt", outcome="delivered_self")
        async with transaction(sessions) as session:
            delivery = await session.get_one(Delivery, delivery_id)
            delivery.address = {**delivery.address, "street": street}
            delivery.tracking_token_hash = hashing.hash_token(token)
            application = await session.get_one(Application, delivery.application_id)
            application.applicant_name = name  # the receiver's name too: delivered to self
            application.phone = phone
            application.date_of_birth = date(1977, 5, 21)
        await kit_.drive(kit, kit_.state_is(kit, delivery_id, "delivered"))
        async with kit.http.get(kit.url(f"/api/v1/track/{token}")) as resp:
            assert resp.status == 200
        confirm = kit.url(f"/api/v1/track/{token}/confirm")
        async with kit.http.post(confirm, json={"passport_no": "X7654321"}) as resp:
            assert resp.status == 422
        async with kit.http.post(confirm, json={"passport_no": kit_.PASSPORT_NO}) as resp:
            assert resp.status == 200, await resp.text()
        assert await kit_.delivery_state(kit, delivery_id) == "handed_over"
        async with sessions() as session:
            record = await session.scalar(
                select(Handover).where(Handover.delivery_id == delivery_id)
            )
            assert record is not None and record.verified
            assert await session.scalar(select(Office.code)) == kit_.office_code("jnt")

    text = captured.getvalue()
    events = {json.loads(x)["event"] for x in text.splitlines() if x.startswith("{")}
    assert {"http_request", "handover_verified"} <= events  # the flows did log
    values = [
        name,
        "Kusumawati",
        "Handayani",
        phone,
        phone[3:],
        "1977-05-21",
        street,
        "Kawi Atas",
        kit_.PASSPORT_NO,
        "X7654321",
        token,
    ]
    assert _leaks(text, values) == []


async def _driver_errors(engine: AsyncEngine, backend: str) -> list[BaseException]:
    """Each driver's own error texts, raised for real: a lone surrogate bound as a parameter
    (asyncpg: "invalid input for query argument $2: '…'"; sqlite3: the codec's error), a value
    PostgreSQL quotes back ('invalid input syntax for type date: "…"'), a UNIQUE and a CHECK
    refusal with the row in the statement, and an engine built without hide_parameters."""
    raised: list[BaseException] = []
    probe = "CREATE TABLE pii_probe (name VARCHAR(60) UNIQUE, born DATE, CHECK (length(name) < 40))"
    careless = make_engine(engine.url.render_as_string(hide_password=False), hide_parameters=False)
    statements: list[tuple[AsyncEngine, str, dict[str, object]]] = [
        (
            engine,
            "INSERT INTO pii_probe (name) VALUES (:n)",
            {"n": f"{APPLICANT['applicant_name']}\ud800"},
        ),
        (engine, "INSERT INTO pii_probe (name) VALUES ('Siti Rahayu Wulandari')", {}),
        (careless, "INSERT INTO pii_probe (name) VALUES (:n)", {"n": APPLICANT["applicant_name"]}),
        (
            careless,
            "INSERT INTO pii_probe (name) VALUES (:n)",
            {"n": f"{APPLICANT['phone']}\ud800"},
        ),
        (engine, "INSERT INTO pii_probe (name) VALUES (:n)", {"n": "Siti Rahayu Wulandari " * 2}),
    ]
    if backend == "postgresql":
        statements += [
            (engine, "SELECT CAST('Siti Rahayu Wulandari' AS DATE)", {}),
            (engine, "SELECT CAST(:n AS INTEGER)", {"n": APPLICANT["phone"]}),
            (
                careless,
                "INSERT INTO pii_probe (name, born) VALUES ('Budi', :d)",
                {"d": "1984-03-17"},
            ),
        ]
    try:
        async with engine.begin() as conn:
            await conn.execute(text(probe))
            await conn.execute(
                text("INSERT INTO pii_probe (name) VALUES ('Siti Rahayu Wulandari')")
            )
        for target, sql, params in statements:
            try:
                async with target.begin() as conn:
                    await conn.execute(text(sql), params)
            except Exception as err:
                raised.append(err)
            else:
                raise AssertionError(f"did not fail: {sql}")
    finally:
        await careless.dispose()
    return raised


async def test_every_driver_s_own_error_text_is_redacted(
    captured: io.StringIO, engine: AsyncEngine, backend: str
) -> None:
    errors = await _driver_errors(engine, backend)
    log = structlog.get_logger("courier.test.drivers")
    stdlib = logging.getLogger("courier.test.drivers")
    for err in errors:
        try:
            raise err
        except Exception:
            log.exception("driver_error")  # a traceback, rendered then redacted
            stdlib.exception("driver error")  # the standard library's path
        log.error("driver_error_value", error=err, text=str(err))  # as values, too
    text_out = captured.getvalue()
    lines = [json.loads(x) for x in text_out.splitlines() if x.startswith("{")]
    assert sum(1 for x in lines if x["event"] == "driver_error") == len(errors)
    if backend == "postgresql":
        assert "query argument $1: [redacted]" in text_out  # the shape was found, not missed
    values = [APPLICANT["applicant_name"], "Rahayu", "Wulandari", APPLICANT["phone"], "1984-03-17"]
    assert _leaks(text_out, values) == []


async def test_a_lone_surrogate_reaching_the_database_logs_no_pii(
    captured: io.StringIO, db_url: str, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    """The issue's finding, end to end: a name with a lone surrogate that reaches the driver (here
    through a handler that skips the boundary) fails, and the error middleware's log line names
    the error without the name."""
    clock = ManualClock(START)
    async with transaction(sessions) as session:
        office, _ = await staff.upsert_office(
            session,
            {"code": "BLT", "name": "Kantor Imigrasi Blitar", "home_regency_codes": ["35.05"]},
            now=clock.now(),
            actor="test",
        )
        office_id = office.id

    async def careless(request: web.Request) -> web.Response:
        async with transaction(context_of(request).sessions) as session:
            session.add(
                Application(
                    office_id=office_id,
                    application_no="BLT-2026-0998",
                    applicant_name=APPLICANT["applicant_name"] + "\ud800",
                    date_of_birth=date(1984, 3, 17),
                    phone="+6281234567890",
                    priority_kind=None,
                    express=False,
                    state="registered",
                    created_at=clock.now(),
                    updated_at=clock.now(),
                )
            )
        return web.Response(text="unreachable")

    app = create_app(AppContext(settings_for(db_url), engine, sessions, clock))
    app.router.add_post("/careless", careless)
    async with TestClient(TestServer(app)) as client:
        resp = await client.post("/careless")
        assert resp.status == 500
    text_out = captured.getvalue()
    assert "unhandled_error" in text_out
    assert _leaks(text_out, [APPLICANT["applicant_name"], "Rahayu", "6281234567890"]) == []
