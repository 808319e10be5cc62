"""A realistic office day at Kantor Imigrasi Kelas II Non TPI Blitar, for `courier demo`.

:func:`plan_day` is pure: from a date and a seed it draws ~110 applicants whose passports are
ready that day — most live in the office's home area (Kota Blitar 35.72, Kabupaten Blitar
35.05) and collect at the counter; about a third live in other regencies (Kota Malang,
Kabupaten Tulungagung, Kota Kediri, Kabupaten Malang…) and opt into home delivery, as do the
priority cases (elderly, disabled, sick: the office's "Sambang" programmes) at home. Some are
express ("percepatan"): interviewed this morning, ready from 12:00 WIB. Names, phone numbers,
streets and region codes look real; every village, district and postal code comes from the
regions dataset (courier.domain.regions), so the service's own address checks accept them.

:func:`seed` writes the day through the service functions the API uses (staff, intake,
opt-in) — never raw SQL — so the demo exercises the same rules.

Contracts (:func:`seed_contracts`): the Pos Indonesia contract lapsed yesterday; J&T's main
contract starts today and covers every regency of the day's applicants but Kabupaten Kediri and
Kota Surabaya, whose addendum is still a draft. Their passports therefore wait with "no courier
contract covers KABUPATEN KEDIRI (35.06) today" until the contract manager activates the
addendum at :data:`ADDENDUM_AT` (courier/demo/run.py), and then book by themselves.
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from core.clock import WIB
from courier.config import Settings
from courier.context import AppContext
from courier.db.engine import SessionFactory, transaction
from courier.domain import deadlines, regions
from courier.domain.contracts import ContractStatus
from courier.domain.eligibility import check_eligibility
from courier.domain.phones import to_e164
from courier.services import contracts, intake, optin, staff
from courier.services.errors import ServiceError

ACTOR = "demo"
OFFICE_CODE = "BLT"
OFFICE_NAME = "Kantor Imigrasi Kelas II Non TPI Blitar"
HOME_REGENCIES = ("35.72", "35.05")  # Kota Blitar, Kabupaten Blitar
OFFICE: dict[str, Any] = {
    "code": OFFICE_CODE,
    "name": OFFICE_NAME,
    "home_regency_codes": list(HOME_REGENCIES),
    "pickup_slots": ["10:00", "15:00"],
    "collect_days": 30,
    "courier": "jnt",  # used only while the office has no contract; contracts route it
    "sender": {
        "contact": "Seksi Dokumen Perjalanan",
        "phone": "0342-801344",
        "street": "Jl. Sudanco Supriyadi No. 40",
        "village": "Bendogerit",
        "district": "Sananwetan",
        "regency": "KOTA BLITAR",
        "province": "JAWA TIMUR",
        "regency_code": "35.72",
        "district_code": "35.72.03",
        "postal_code": "66133",
    },
}

# (regency code, name, how many of the day's applicants live there)
OUT_OF_AREA: tuple[tuple[str, str, int], ...] = (
    ("35.73", "Kota Malang", 11),
    ("35.04", "Kabupaten Tulungagung", 9),
    ("35.71", "Kota Kediri", 7),
    ("35.07", "Kabupaten Malang", 6),
    ("35.06", "Kabupaten Kediri", 3),
    ("35.78", "Kota Surabaya", 1),
)

POS_CONTRACT = "POS/BLT/2025"
JNT_CONTRACT = "JNT/BLT/2026"
ADDENDUM = "JNT/BLT/2026-A1"  # Kabupaten Kediri and Kota Surabaya, activated during the day
ADDENDUM_REGENCIES = ("35.06", "35.78")
ADDENDUM_AT = time(10, 30)  # WIB

DISPATCHER = "dispatch.blt"
# username, role, password (demo only: printed on start)
STAFF: tuple[tuple[str, str, str], ...] = (
    ("admin.blt", "admin", "demo-admin-2026"),
    (DISPATCHER, "dispatcher", "demo-dispatch-2026"),
    ("intake.blt", "intake", "demo-intake-2026"),
    ("kontrak.blt", "contract_manager", "demo-kontrak-2026"),
)

_GIVEN_F = (
    "Siti",
    "Sri",
    "Dewi",
    "Rina",
    "Lestari",
    "Wulan",
    "Endang",
    "Ratna",
    "Yuliana",
    "Nur",
    "Ayu",
    "Fitri",
    "Indah",
    "Kartika",
    "Puji",
    "Retno",
    "Sulastri",
    "Tri",
    "Umi",
    "Winarti",
)
_GIVEN_M = (
    "Budi",
    "Agus",
    "Eko",
    "Joko",
    "Wahyu",
    "Hadi",
    "Slamet",
    "Bambang",
    "Dwi",
    "Rudi",
    "Arif",
    "Bayu",
    "Dimas",
    "Fajar",
    "Gunawan",
    "Heru",
    "Imam",
    "Sugeng",
    "Teguh",
    "Yusuf",
)
_FAMILY = (
    "Santoso",
    "Rahayu",
    "Wulandari",
    "Prasetyo",
    "Hidayat",
    "Susanti",
    "Purnomo",
    "Setiawan",
    "Kurniawan",
    "Handayani",
    "Saputra",
    "Wibowo",
    "Suryani",
    "Nugroho",
    "Utomo",
    "Lestari",
    "Hartono",
    "Maharani",
    "Firmansyah",
    "Anggraini",
)
_STREETS = (
    "Merdeka",
    "Diponegoro",
    "Sudirman",
    "Ahmad Yani",
    "Veteran",
    "Imam Bonjol",
    "Gajah Mada",
    "Hayam Wuruk",
    "Brawijaya",
    "Kenanga",
    "Melati",
    "Mawar",
    "Anggrek",
    "Cempaka",
    "Kawi",
    "Semeru",
    "Bromo",
    "Kartini",
    "Pattimura",
    "Panglima Polim",
    "Raya Tlogomas",
    "Soekarno Hatta",
)
_NOTES = ("pagar hijau", "depan masjid", "samping toko kelontong", "rumah cat kuning", "", "")
# Indonesian mobile prefixes (Telkomsel, Indosat, XL, Tri, Smartfren)
_MOBILE_PREFIXES = (
    "811",
    "812",
    "813",
    "821",
    "822",
    "852",
    "853",
    "857",
    "858",
    "877",
    "878",
    "895",
    "896",
    "881",
    "882",
)


@dataclass(frozen=True)
class Applicant:
    application_no: str
    name: str
    date_of_birth: date
    phone: str  # as the office typed it (national format)
    priority_kind: str | None
    express: bool
    passport_no: str
    ready_at: datetime  # when the passport is printed (aware UTC)
    regency_code: str
    address: dict[str, Any] | None  # delivery address when the applicant opts in
    opts_in: bool


@dataclass(frozen=True)
class DemoDay:
    day: date
    opens_at: datetime  # 08:00 WIB: the demo's clock starts here
    applicants: tuple[Applicant, ...]


@dataclass
class Seeded:
    """What the demo keeps in memory only (never logged): the applicants' secrets, so its
    simulated applicants can track and confirm like real ones."""

    tracking_tokens: dict[str, str] = field(default_factory=dict)  # application_no -> token
    passports: dict[str, str] = field(default_factory=dict)  # application_no -> number
    api_tokens: dict[str, str] = field(default_factory=dict)  # role -> bearer token
    ready: set[str] = field(default_factory=set)  # application numbers marked ready
    opted_in: int = 0
    registered: int = 0


def demo_day(today: date) -> date:
    """The office day the demo plays: today when it is a working day, else the next one."""
    return today if deadlines.is_working_day(today) else deadlines.next_working_day(today)


def _at(day: date, hh: int, mm: int = 0) -> datetime:
    """``hh:mm`` WIB on ``day``, as aware UTC."""
    return datetime.combine(day, time(hh, mm), tzinfo=WIB).astimezone(UTC)


def interview_day_for(ready_day: date, working_days: int = 3) -> date:
    """The interview day of a regular passport ready on ``ready_day`` (three working days on)."""
    d, n = ready_day, 0
    while n < working_days:
        d -= timedelta(days=1)
        n += deadlines.is_working_day(d)
    return d


def random_phone(rng: random.Random) -> str:
    while True:
        digits = f"0{rng.choice(_MOBILE_PREFIXES)}{rng.randrange(10**7, 10**8)}"
        try:
            to_e164(digits)
        except ValueError:
            continue
        return f"{digits[:4]}-{digits[4:8]}-{digits[8:]}"


def random_name(rng: random.Random) -> str:
    given = rng.choice(_GIVEN_F if rng.random() < 0.5 else _GIVEN_M)
    if rng.random() < 0.25:  # many Javanese names are a single word, or two given names
        return given
    return f"{given} {rng.choice(_FAMILY)}"


def random_address(rng: random.Random, regency_code: str) -> dict[str, Any]:
    district = rng.choice(regions.districts_of(regency_code))
    village = rng.choice(regions.villages_of(district.code))
    street = (
        f"Jl. {rng.choice(_STREETS)} No. {rng.randint(1, 180)}, "
        f"RT {rng.randint(1, 12):02d}/RW {rng.randint(1, 8):02d}"
    )
    address: dict[str, Any] = {
        "street": street,
        "province_code": regency_code.split(".")[0],
        "regency_code": regency_code,
        "district_code": district.code,
        "village_code": village.code,
        "postal_code": village.postal_code,
    }
    note = rng.choice(_NOTES)
    if note:
        address["note"] = note
    return address


def _birth_date(rng: random.Random, day: date, priority_kind: str | None) -> date:
    years = rng.randint(65, 82) if priority_kind == "elderly" else rng.randint(19, 60)
    return day - timedelta(days=365 * years + rng.randint(0, 364))


def plan_day(day: date, *, seed: int = 2026, count: int = 110) -> DemoDay:
    """The day's applicants, drawn from ``seed`` (same seed, same day)."""
    rng = random.Random(f"{seed}:{day.isoformat()}")
    homes: list[str] = []
    scale = min(1.0, count / 110)
    for regency, _, n in OUT_OF_AREA:
        # a smaller day keeps every out-of-area regency (the contract lapse needs its two)
        homes += [regency] * max(1, round(n * scale))
    homes = homes[:count]
    while len(homes) < count:
        homes.append(rng.choice(HOME_REGENCIES))
    rng.shuffle(homes)

    interview_day = interview_day_for(day)
    passports: set[str] = set()
    applicants = []
    for seq, regency in enumerate(homes, start=1):
        express = rng.random() < 0.12
        priority = None
        roll = rng.random()
        if roll < 0.05:
            priority = "elderly"
        elif roll < 0.08:
            priority = "disabled"
        elif roll < 0.10:
            priority = "sick"
        while True:
            passport_no = f"{rng.choice('XCE')}{rng.randrange(10**6, 10**7):07d}"
            if passport_no not in passports:
                passports.add(passport_no)
                break
        if express:  # interviewed this morning, printed and ready from 12:00 WIB
            number_day, ready = day, _at(day, 12, rng.randint(0, 20))
        else:  # printed early this morning, before the counter opens
            number_day, ready = interview_day, _at(day, 7, rng.randint(0, 50))
        eligible = check_eligibility(
            home_regency_codes=HOME_REGENCIES,
            destination_regency_code=regency,
            priority_kind=priority,
        ).ok
        # most who may have it delivered want it; a few prefer the counter anyway
        opts_in = eligible and rng.random() < 0.92
        applicants.append(
            Applicant(
                application_no=f"{number_day:%Y%m%d}{seq:05d}",
                name=random_name(rng),
                date_of_birth=_birth_date(rng, day, priority),
                phone=random_phone(rng),
                priority_kind=priority,
                express=express,
                passport_no=passport_no,
                ready_at=ready,
                regency_code=regency,
                address=random_address(rng, regency) if opts_in else None,
                opts_in=opts_in,
            )
        )
    return DemoDay(day=day, opens_at=_at(day, 8), applicants=tuple(applicants))


# --------------------------------------------------------------------------------------------
# Writing the day through the services


async def seed_office(sessions: SessionFactory, *, now: datetime) -> dict[str, str]:
    """The office, its staff sign-ins and API tokens; returns role -> API token."""
    tokens: dict[str, str] = {}
    async with transaction(sessions) as session:
        await staff.upsert_office(session, OFFICE, now=now, actor=ACTOR)
        for username, role, password in STAFF:
            user = await staff.add_user(
                session,
                office_code=OFFICE_CODE,
                username=username,
                password=password,
                role=role,
                now=now,
                actor=ACTOR,
            )
            _, token = await staff.create_token(
                session,
                office_code=OFFICE_CODE,
                role=role,
                name=f"demo {role}",
                now=now,
                actor=ACTOR,
                staff_user_id=user.id,
            )
            tokens[role] = token
    return tokens


async def register(sessions: SessionFactory, applicant: Applicant, *, now: datetime) -> None:
    raw = {
        "applicant_name": applicant.name,
        "date_of_birth": applicant.date_of_birth.isoformat(),
        "phone": applicant.phone,
        "priority_kind": applicant.priority_kind,
        "express": applicant.express,
    }
    data, errors = intake.parse_application(applicant.application_no, raw, today=now.date())
    if data is None:
        raise ValueError(f"demo applicant {applicant.application_no} is invalid: {errors}")
    async with transaction(sessions) as session:
        office = await staff.office_by_code(session, OFFICE_CODE)
        await intake.upsert_application(session, office=office, data=data, now=now, actor=ACTOR)


async def mark_ready(
    sessions: SessionFactory, settings: Settings, applicant: Applicant, *, now: datetime
) -> None:
    raw = {"issued_at": applicant.ready_at.isoformat(), "passport_no": applicant.passport_no}
    ready, errors = intake.parse_ready(raw, now=now)
    if ready is None:
        raise ValueError(f"demo passport {applicant.application_no} is invalid: {errors}")
    async with transaction(sessions) as session:
        office_id = (await staff.office_by_code(session, OFFICE_CODE)).id
    passport_hash = await intake.passport_hash_for(
        sessions,
        office_id=office_id,
        application_no=applicant.application_no,
        passport_no=ready.passport_no,
        pepper=settings.passport_pepper,
    )
    async with transaction(sessions) as session:
        office = await staff.office_by_code(session, OFFICE_CODE)
        await intake.mark_ready(
            session,
            office=office,
            application_no=applicant.application_no,
            ready=ready,
            passport_hash=passport_hash,
            now=now,
            actor=ACTOR,
        )


async def opt_in(ctx: AppContext, applicant: Applicant) -> str | None:
    """The applicant opts in; their tracking token, or None when the service refuses."""
    if applicant.address is None:
        return None
    try:
        result = await optin.opt_in(
            ctx,
            optin.OptInRequest(
                office_code=OFFICE_CODE,
                application_no=applicant.application_no,
                date_of_birth=applicant.date_of_birth.isoformat(),
                phone=applicant.phone,
                address=applicant.address,
                client="demo-applicant",
                # the demo's SMTP sink receives every message (courier/demo/mailbox.py)
                email=f"{applicant.application_no.lower()}@pemohon.demo.invalid",
            ),
        )
    except ServiceError:
        return None
    return result.tracking_token


def _contract(
    number: str, courier: str, first: date, last: date, regencies: list[str], *, tariff: int
) -> dict[str, Any]:
    """Terms in the API's form: the home area in a day, the rest of East Java in two."""
    zones: list[dict[str, Any]] = []
    if set(HOME_REGENCIES) <= set(regencies):
        home = list(HOME_REGENCIES)
        zones.append(
            {"name": "Blitar Raya", "regencies": home, "sla_days": 1, "tariff_per_kg": tariff}
        )
    zones.append(
        {"name": "Jawa Timur", "regencies": "*", "sla_days": 2, "tariff_per_kg": tariff + 3_000}
    )
    party = "PT Global Jet Express" if courier == "jnt" else "PT Pos Indonesia"
    return {
        "number": number,
        "courier": courier,
        "parties": [OFFICE_NAME, party],
        "offices": [OFFICE_CODE],
        "valid_from": first.isoformat(),
        "valid_to": last.isoformat(),
        "regencies": regencies,
        "zones": zones,
        "declared_value_cap": 1_000_000,
        "insurance_cover": 650_000,
        "penalty_late": 25_000,
        "penalty_lost": 1_000_000,
    }


async def seed_contracts(ctx: AppContext, day: date) -> None:
    """Pos Indonesia's contract, lapsed yesterday; J&T's, in force from today for every regency
    of the day but Kabupaten Kediri and Kota Surabaya; J&T's addendum for those two, a draft
    (activated during the day)."""
    caller = await contracts.local_caller(ctx, OFFICE_CODE, actor="demo:kontrak.blt")
    regencies = [*HOME_REGENCIES, *(r for r, _, _ in OUT_OF_AREA if r not in ADDENDUM_REGENCIES)]
    year = timedelta(days=364)
    yesterday = day - timedelta(days=1)
    everywhere = [*HOME_REGENCIES, *(r for r, _, _ in OUT_OF_AREA)]
    lapsed = await contracts.create(
        ctx,
        caller,
        _contract(POS_CONTRACT, "posind", yesterday - year, yesterday, everywhere, tariff=8_000),
    )
    main = await contracts.create(
        ctx, caller, _contract(JNT_CONTRACT, "jnt", day, day + year, regencies, tariff=9_000)
    )
    for found in (lapsed, main):
        await contracts.set_status(ctx, caller, found.id, ContractStatus.ACTIVE)
    await contracts.create(
        ctx,
        caller,
        _contract(ADDENDUM, "jnt", day, day + year, list(ADDENDUM_REGENCIES), tariff=12_000),
    )


async def seed(ctx: AppContext, plan: DemoDay) -> Seeded:
    """Office, staff, the day's applications; passports printed this morning marked ready;
    every applicant who wants delivery opted in (express ones before their passport is ready).
    """
    sessions, settings = ctx.sessions, ctx.settings
    now = ctx.clock.now()
    out = Seeded(api_tokens=await seed_office(sessions, now=now))
    await seed_contracts(ctx, now.astimezone(WIB).date())
    # one applicant per core at a time: hashing a passport number (argon2) is most of the work
    # and runs outside the event loop, so the day is seeded in about 1/cores of the time
    cores = asyncio.Semaphore(max(1, os.cpu_count() or 1))

    async def one(applicant: Applicant) -> None:
        async with cores:
            await register(sessions, applicant, now=now)
            out.registered += 1
            out.passports[applicant.application_no] = applicant.passport_no
            if applicant.ready_at <= now:
                await mark_ready(sessions, settings, applicant, now=now)
                out.ready.add(applicant.application_no)
            token = await opt_in(ctx, applicant)
            if token is not None:
                out.tracking_tokens[applicant.application_no] = token
                out.opted_in += 1

    await asyncio.gather(*(one(a) for a in plan.applicants))
    return out
