"""Helpers to drive the HTTP API like the office's system and an applicant would: a real aiohttp
server on loopback over a fresh migrated database, an office, an intake token, sample PII.

Imported as ``webapi`` by tests in this folder and as ``web.webapi`` from tests/integration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import ManualClock
from courier import config
from courier.context import AppContext
from courier.db.engine import SessionFactory, transaction
from courier.db.models import (
    ApiToken,
    Application,
    AuditEntry,
    Base,
    Delivery,
    Office,
    RateCounter,
    StaffUser,
)
from courier.services import staff
from courier.web.app import create_app

PEPPER = "test-pepper-0123456789abcdef"
MAX_BODY = 4096
START = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # Monday 09:00 WIB

OFFICE = {
    "code": "BLT",
    "name": "Kantor Imigrasi Kelas II Non TPI Blitar",
    "home_regency_codes": ["35.05", "35.72"],  # Kabupaten Blitar, Kota Blitar
    "pickup_slots": ["10:00", "15:00"],
    "collect_days": 30,
}

# Kota Malang: outside Blitar's home area, so eligible
MALANG = {
    "street": "Jl. Borobudur No. 12, RT 03/RW 05",
    "province_code": "35",
    "regency_code": "35.73",
    "district_code": "35.73.01",
    "village_code": "35.73.01.1001",
    "postal_code": "65126",
    "note": "pagar hijau",
}
# Kota Blitar: the office's own town
BLITAR = {
    "street": "Jl. Merdeka No. 5",
    "province_code": "35",
    "regency_code": "35.72",
    "district_code": "35.72.01",
    "village_code": "35.72.01.1001",
    "postal_code": "66117",
}

APPLICANT = {
    "applicant_name": "Siti Rahayu Wulandari",
    "date_of_birth": "1984-03-17",
    "phone": "0812-3456-7890",
}
PASSPORT_NO = "X1234567"


def settings_for(db_url: str, **security: Any) -> config.Settings:
    return config.from_mapping(
        {
            "database_url": db_url,
            "http": {"max_body_bytes": MAX_BODY, "public_url": "https://courier.test"},
            "security": {"passport_pepper": PEPPER, **security},
        }
    )


@dataclass
class Api:
    client: TestClient[Any, Any]
    ctx: AppContext
    clock: ManualClock
    token: str  # an intake token of office BLT

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def put_application(self, no: str, **overrides: Any) -> Any:
        body = {**APPLICANT, **overrides}
        return await self.client.put(f"/api/v1/applications/{no}", json=body, headers=self.auth)

    async def ready(
        self, no: str, passport_no: str = PASSPORT_NO, issued_at: str | None = None
    ) -> Any:
        body = {"issued_at": issued_at or "2026-11-02T08:30:00+07:00", "passport_no": passport_no}
        return await self.client.post(
            f"/api/v1/applications/{no}/ready", json=body, headers=self.auth
        )

    async def opt_in(self, no: str, address: dict[str, Any] | None = None, **overrides: Any) -> Any:
        body = {
            "application_no": no,
            "office_code": "BLT",
            "date_of_birth": APPLICANT["date_of_birth"],
            "phone": "+62 812 3456 7890",
            "address": address or MALANG,
            "consent": True,
            **overrides,
        }
        return await self.client.post("/api/v1/delivery-requests", json=body)

    async def counts(self) -> dict[str, int]:
        """Rows per table that a refused request must leave alone."""
        tables: list[type[Base]] = [
            Office,
            Application,
            Delivery,
            AuditEntry,
            StaffUser,
            ApiToken,
            RateCounter,
        ]
        out = {}
        async with self.ctx.sessions() as session:
            for model in tables:
                n = await session.scalar(select(func.count()).select_from(model))
                out[model.__tablename__] = int(n or 0)
        return out

    async def snapshot(self) -> dict[str, Any]:
        """Counts plus the mutable columns of applications and deliveries."""
        async with self.ctx.sessions() as session:
            apps = (await session.execute(select(Application).order_by(Application.id))).scalars()
            app_rows = [
                (a.applicant_name, a.phone, a.state, a.passport_no_hash, a.updated_at) for a in apps
            ]
            dels = (await session.execute(select(Delivery).order_by(Delivery.id))).scalars()
            del_rows = [(d.address, d.state, d.tracking_token_hash, d.updated_at) for d in dels]
        return {"counts": await self.counts(), "applications": app_rows, "deliveries": del_rows}


async def make_api(
    db_url: str, engine: AsyncEngine, sessions: SessionFactory, **security: Any
) -> AsyncIterator[Api]:
    clock = ManualClock(START)
    ctx = AppContext(settings_for(db_url, **security), engine, sessions, clock)
    async with transaction(sessions) as session:
        await staff.upsert_office(session, OFFICE, now=clock.now(), actor="test")
        _, token = await staff.create_token(
            session, office_code="BLT", role="intake", name="siap", now=clock.now(), actor="test"
        )
    async with TestClient(TestServer(create_app(ctx))) as client:
        yield Api(client, ctx, clock, token)
