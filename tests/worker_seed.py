"""Rows for worker tests: an office and queued deliveries, inserted directly with the models
(the intake/opt-in services have their own tests; here only the worker's input matters)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from courier.db.engine import SessionFactory, transaction
from courier.db.models import Application, Delivery, Office, Shipment

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # Monday 08:00 WIB

SENDER = {
    "contact": "Loket Paspor",
    "phone": "+62342801234",
    "street": "Jl. Raya Blitar No. 1",
    "village": "Kepanjen Kidul",
    "district": "Kepanjenkidul",
    "regency": "Kota Blitar",
    "province": "Jawa Timur",
    "regency_code": "35.72",
    "district_code": "35.72.01",
    "postal_code": "66117",
}


def address(regency_code: str = "35.73") -> dict[str, Any]:
    return {
        "street": "Jl. Ijen No. 10",
        "village": "Oro-oro Dowo",
        "district": "Klojen",
        "regency": "Kota Malang",
        "province": "Jawa Timur",
        "postal_code": "65119",
        "regency_code": regency_code,
        "district_code": f"{regency_code}.01",
    }


async def office(sessions: SessionFactory, *, courier: str = "jnt", code: str = "BLT") -> int:
    async with transaction(sessions) as session:
        row = Office(
            code=code,
            name="Kantor Imigrasi Blitar",
            home_regency_codes=["35.05", "35.72"],
            pickup_slots=["10:00", "15:00"],
            collect_days=30,
            courier_code=courier,
            sender=SENDER,
            created_at=T0,
        )
        session.add(row)
        await session.flush()
        return row.id


async def deliveries(
    sessions: SessionFactory,
    office_id: int,
    n: int,
    *,
    start: int = 1,
    regency_code: str = "35.73",
    priority: int = 0,
    collect_in_days: int = 30,
) -> list[int]:
    """``n`` queued deliveries with application numbers ``start``, ``start+1``…"""
    ids = []
    async with transaction(sessions) as session:
        for i in range(start, start + n):
            app = Application(
                office_id=office_id,
                application_no=f"2026{i:08d}",
                applicant_name=f"Pemohon {i}",
                date_of_birth=date(1990, 1, 1),
                phone=f"+6281234{i:06d}",
                priority_kind=None,
                express=False,
                issued_at=T0,
                collect_by=T0 + timedelta(days=collect_in_days),
                state="ready",
                created_at=T0,
                updated_at=T0,
            )
            session.add(app)
            await session.flush()
            d = Delivery(
                application_id=app.id,
                office_id=office_id,
                address=address(regency_code),
                destination_regency_code=regency_code,
                consent_at=T0,
                consent_version="v1",
                tracking_token_hash=hashlib.sha256(f"t{office_id}:{i}".encode()).hexdigest(),
                state="queued",
                priority=priority,
                collect_by=T0 + timedelta(days=collect_in_days),
                created_at=T0,
                updated_at=T0,
            )
            session.add(d)
            await session.flush()
            ids.append(d.id)
    return ids


async def shipments(sessions: SessionFactory) -> list[Shipment]:
    async with sessions() as session:
        return list(await session.scalars(select(Shipment).order_by(Shipment.id)))


async def delivery_states(sessions: SessionFactory) -> dict[int, str]:
    async with sessions() as session:
        rows = await session.execute(select(Delivery.id, Delivery.state))
        return {int(i): str(s) for i, s in rows}
