"""Invariant 4: the intake, ready, opt-in, address-change and refusal flows over real HTTP, plus a
CSV import, write no name, phone, date of birth, passport number, address or token to the logs
— whatever logged it (our code, aiohttp, the standard library), at debug level."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from web.webapi import APPLICANT, MALANG, PASSPORT_NO, make_api

from courier import logging as courier_logging
from courier.db.engine import SessionFactory
from courier.services import csv_import

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
        APPLICANT["applicant_name"], "Siti Rahayu", "Rahayu", APPLICANT["date_of_birth"],
        APPLICANT["phone"], digits(APPLICANT["phone"])[1:], PASSPORT_NO,
        SECOND["applicant_name"], "Pamungkas", SECOND["date_of_birth"], SECOND["phone"],
        digits(SECOND["phone"])[1:], "Kartika", "Yohanes", "1979-12-24", "1979-12-25",
        "81977776666", "AB9988776", "C5544332", "X7654321",
        MALANG["street"], "Borobudur", "pagar hijau", "Jl. Ijen", "Balearjosari",
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
            api.ctx.sessions, office_code="BLT", rows=rows, pepper="csv-pepper-0123456789",
            clock=api.clock, actor="test",
        )
        assert report.created == 1 and len(report.errors) == 1 and not errors

        # careless log calls, a library's and our own: the one processor still masks them (in
        # free text only what has a recognisable shape can be found: phones, passport numbers)
        stdlib.warning("phone %s passport %s", APPLICANT["phone"], PASSPORT_NO)
        structlog.get_logger().debug(
            "careless", applicant_name=SECOND["applicant_name"], phone=SECOND["phone"],
            address=MALANG, passport_no=PASSPORT_NO, tracking_token=tokens[-1],
        )

    text = captured.getvalue()
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    names = {e["event"] for e in events}
    # the flows did log: requests, intake, opt-in refusals and acceptances
    assert {"http_request", "application_registered", "optin_accepted"} <= names
    assert "optin_identity_refused" in names and "careless" in names
    leaked = [value for value in _forbidden(tokens) if value in text]
    assert leaked == []
