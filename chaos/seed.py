"""The run's applicants: two offices (one sends by J&T, one by Pos Indonesia) and queued
deliveries whose personal data is unique and known, so the logs can be searched for it.

Rows are inserted with the models, as intake and opt-in would have left them (their own rules
are tested elsewhere; here only what the worker does with them matters)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import insert, select

from courier.db.engine import SessionFactory, transaction
from courier.db.models import Application, Delivery, Office
from courier.domain.references import client_reference
from courier.services.intake import hash_passport_no

GIVEN = ("Sri", "Agus", "Dewi", "Budi", "Rina", "Joko", "Wulan", "Eko", "Siti", "Hendra")
MIDDLE = ("Ayu", "Dwi", "Tri", "Nur", "Indah", "Putra", "Sekar", "Adi", "Ratna", "Bayu")
FAMILY = ("Wahyuningsih", "Santoso", "Pratama", "Lestari", "Kurniawan", "Handayani",
          "Setiawan", "Purnomo", "Rahayu", "Susanto", "Hidayat", "Maharani")  # fmt: skip
STREETS = ("Jl. Melati", "Jl. Kenanga", "Jl. Cempaka", "Jl. Flamboyan", "Jl. Bougenville")
#: where the passports go: regencies both simulators know, one to three days from the office
DESTINATIONS = (
    ("35.73", "Kota Malang", "Oro-oro Dowo", "Klojen", "65119"),
    ("35.07", "Kabupaten Malang", "Kepanjen", "Kepanjen", "65163"),
    ("35.04", "Kabupaten Tulungagung", "Kauman", "Tulungagung", "66261"),
)
SENDER = {
    "contact": "Seksi Dokumen Perjalanan",
    "phone": "+62342801344",
    "street": "Jl. Sudanco Supriyadi No. 40",
    "village": "Bendogerit",
    "district": "Sananwetan",
    "regency": "Kota Blitar",
    "province": "Jawa Timur",
    "regency_code": "35.72",
    "district_code": "35.72.03",
    "postal_code": "66133",
}
#: office code per courier (client references start with it)
OFFICES = {"jnt": "CHJ", "posind": "CHP"}


@dataclass(frozen=True)
class Applicant:
    courier: str
    office_code: str
    application_no: str
    name: str
    phone: str
    street: str
    passport_no: str

    @property
    def reference(self) -> str:
        """The client reference of the first booking attempt."""
        return client_reference(self.office_code, self.application_no, 1)

    def personal_data(self) -> tuple[str, ...]:
        """What must never appear in a log line: the name, the phone in the forms people write
        it (+62…, 62…, 0…), the street and the passport number."""
        local = "0" + self.phone[3:]
        return (self.name, self.phone, self.phone[1:], local, self.street, self.passport_no)


def applicants(n: int, seed: int) -> list[Applicant]:
    """``n`` applicants with unique names, phones, streets and passport numbers; alternately
    for the J&T office and the Pos office."""
    rng = random.Random(seed)
    names = [f"{g} {m} {f}" for g in GIVEN for m in MIDDLE for f in FAMILY]
    if n > len(names):
        raise ValueError(f"at most {len(names)} applicants (unique names)")
    rng.shuffle(names)
    out = []
    for i in range(n):
        courier = "jnt" if i % 2 == 0 else "posind"
        out.append(
            Applicant(
                courier=courier,
                office_code=OFFICES[courier],
                application_no=f"2026{i + 1:08d}",
                name=names[i],
                phone=f"+62812{7100000 + i * 7:07d}",
                street=f"{STREETS[i % len(STREETS)]} Gg. {i // len(STREETS) + 1} No. {i % 97 + 3}",
                passport_no=f"E{4100000 + i * 3:07d}",
            )
        )
    return out


async def seed(
    sessions: SessionFactory, people: list[Applicant], *, now: datetime, pepper: str
) -> dict[str, int]:
    """Offices and one queued delivery per applicant; returns the office ids by courier."""
    offices: dict[str, int] = {}
    async with transaction(sessions) as session:
        for courier, code in OFFICES.items():
            row = Office(
                code=code,
                name=f"Kantor Imigrasi Chaos {code}",
                home_regency_codes=["35.72", "35.05"],
                pickup_slots=["10:00", "15:00"],
                collect_days=30,
                courier_code=courier,
                sender=SENDER,
                created_at=now,
            )
            session.add(row)
            await session.flush()
            offices[courier] = row.id
    # far beyond the run: a busy machine's compressed days must not reach the collection
    # deadline (its warnings and expiry have their own tests)
    collect_by = now + timedelta(days=90)
    passport_hash = hash_passport_no(pepper, people[0].passport_no) if people else None
    async with transaction(sessions) as session:
        await session.execute(
            insert(Application),
            [
                {
                    "office_id": offices[p.courier],
                    "application_no": p.application_no,
                    "applicant_name": p.name,
                    "date_of_birth": date(1970 + i % 40, 1 + i % 12, 1 + i % 28),
                    "phone": p.phone,
                    # one argon2 hash for all: each costs ~0.1 s of CPU, and no applicant
                    # confirms in this run (the number is only searched for in the logs)
                    "passport_no_hash": passport_hash,
                    "express": False,
                    "state": "ready",
                    "issued_at": now,
                    "collect_by": collect_by,
                    "created_at": now,
                    "updated_at": now,
                }
                for i, p in enumerate(people)
            ],
        )
        rows_ = await session.execute(select(Application.application_no, Application.id))
        ids = {no: app_id for no, app_id in rows_.all()}
        rows = []
        for i, p in enumerate(people):
            code, regency, village, district, postal = DESTINATIONS[i % len(DESTINATIONS)]
            address = {
                "street": p.street,
                "village": village,
                "district": district,
                "regency": regency,
                "province": "Jawa Timur",
                "postal_code": postal,
                "regency_code": code,
                "district_code": f"{code}.01",
            }
            rows.append(
                {
                    "application_id": ids[p.application_no],
                    "office_id": offices[p.courier],
                    "address": address,
                    "destination_regency_code": code,
                    "consent_at": now,
                    "consent_version": "chaos",
                    "tracking_token_hash": hashlib.sha256(f"chaos:{i}".encode()).hexdigest(),
                    "state": "queued",
                    "priority": 0,
                    "collect_by": collect_by,
                    "claim_count": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        await session.execute(insert(Delivery), rows)
    return offices
