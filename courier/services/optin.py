"""Opt-in: an applicant proves who they are, gives an address and consents; they get a private
tracking link.

Identity is the application number + date of birth + phone on file. Any mismatch (unknown
office or application, wrong date of birth, wrong phone) gets the same answer after the same
work, and counts one failure against the application and against the client address; past
``security.optin_max_failures`` in ``security.optin_window_minutes`` both are refused with 429.
The count is taken before the check, in one statement (:func:`ratelimit.take`), and given back
when the identity is proven: however many requests arrive at once, at most that many identity
checks run per window.

Changing the address: the applicant sends the same request again with the new address (one
endpoint, the same identity proof, nothing new to remember). Until a shipment exists this
replaces the address and issues a NEW tracking token (this is also how a lost link is
recovered); the old link keeps working and opens the same delivery (``tracking_links``), and the
phone and e-mail on file are told (an ``applicant_address_changed`` message with the newest
link), so a change the applicant did not make does not go unnoticed. Once a shipment exists it
is refused with 409, unless every attempt was refused by the courier or cancelled before pickup
(the address never left the office: the applicant corrects it, a dispatcher re-books).

The tracking token is ``secrets.token_urlsafe(32)`` (256 bits), returned once, stored as sha256
(:func:`courier.services.hashing.hash_token`); :func:`delivery_by_token_hash` is the one lookup.

Concurrency: identical requests at once must not fail. The delivery is inserted with INSERT … ON
CONFLICT DO NOTHING and read back locked, so the second of two racing requests becomes an address
change (a re-issued token) instead of a unique-key violation. The delivery row is locked (SELECT
… FOR UPDATE; on SQLite ``BEGIN IMMEDIATE`` already serialises writers) before its shipments are
counted, and booking locks the same row before it creates one: an address change and a booking
never both win.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.status import Status
from courier.config import Settings
from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import Application, Delivery, Office, Shipment, TrackingLink
from courier.domain import regions
from courier.domain.eligibility import Eligibility, check_eligibility
from courier.domain.phones import to_e164
from courier.domain.states import DeliveryState
from courier.services import audit, hashing, items, notices, ratelimit
from courier.services.errors import Kind, ServiceError, invalid
from courier.services.intake import delivery_priority
from courier.services.wakeups import notify_queued
from schemas import FieldError

log = structlog.get_logger("courier.optin")

CONSENT_VERSION = "2026-01"
SCOPE_APPLICATION = "optin_application"
SCOPE_CLIENT = "optin_client"
ACTOR = "applicant"
_NEVER_CARRIED = (Status.BOOKING_FAILED.value, Status.CANCELLED.value)
_CHANGEABLE = frozenset(
    {DeliveryState.REQUESTED, DeliveryState.QUEUED, DeliveryState.NEEDS_ATTENTION}
)

IDENTITY_MESSAGE = (
    "Data tidak cocok dengan catatan kami: periksa nomor permohonan, tanggal lahir dan nomor "
    "telepon. / The application number, date of birth and phone number do not match our records."
)
RATE_MESSAGE = (
    "Terlalu banyak percobaan yang gagal; coba lagi nanti. / Too many failed attempts; "
    "try again later."
)


@dataclass(frozen=True, slots=True)
class OptInRequest:
    office_code: str
    application_no: str
    date_of_birth: str  # as sent (YYYY-MM-DD)
    phone: str  # as sent
    address: Mapping[str, Any]
    client: str  # the client's network address, for the per-client failure limit
    email: str = ""  # optional, for messages (kept with the address, read when sending)


@dataclass(frozen=True, slots=True)
class OptInResult:
    delivery_id: int
    state: str
    outcome: str  # created | address_changed | token_reissued
    tracking_token: str  # shown once
    tracking_url: str
    eligibility: Eligibility
    collect_by: datetime | None


async def offices(ctx: AppContext) -> list[tuple[str, str]]:
    """(code, name) of every office an applicant may opt in with, for the opt-in page."""
    async with ctx.sessions() as session:
        rows = await session.execute(select(Office.code, Office.name).order_by(Office.code))
        return [(str(code), str(name)) for code, name in rows]


def tracking_url(settings: Settings, token: str) -> str:
    return f"{settings.base_url.rstrip('/')}/t/{token}"


async def delivery_by_token_hash(
    session: AsyncSession, token_hash: str, *, for_update: bool = False
) -> Delivery | None:
    """The delivery a tracking token opens (give :func:`hashing.hash_token` of the token), or
    None: for the tracking page, its API and the handover confirmation. An earlier link of the
    delivery (before an address change or a re-issue) opens it too."""
    query = select(Delivery).where(Delivery.tracking_token_hash == token_hash)
    if for_update:
        query = query.with_for_update()
    found = (await session.execute(query)).scalar_one_or_none()
    if found is not None:
        return found
    earlier = select(TrackingLink.delivery_id).where(TrackingLink.token_hash == token_hash)
    query = select(Delivery).where(Delivery.id.in_(earlier))
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


def normalise_address(raw: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """Check the region codes and postal code against the regions dataset; on success the stored
    form: dotted codes plus the official names the courier label needs."""
    errors = regions.validate_address(
        province_code=str(raw["province_code"]),
        regency_code=str(raw["regency_code"]),
        district_code=str(raw["district_code"]),
        village_code=str(raw["village_code"]),
        postal_code=str(raw["postal_code"]),
    )
    if errors:
        return None, errors
    village = regions.lookup_village(str(raw["village_code"]))
    district = regions.lookup_district(str(raw["district_code"]))
    regency = regions.lookup_regency(str(raw["regency_code"]))
    if village is None or district is None or regency is None:  # validate_address said known
        raise RuntimeError("regions dataset disagrees with itself")
    return {
        "street": " ".join(str(raw["street"]).split()),
        "note": " ".join(str(raw.get("note", "")).split()),
        "province_code": regency.province.code,
        "province": regency.province.name,
        "regency_code": regency.code,
        "regency": regency.name,
        "district_code": district.code,
        "district": district.name,
        "village_code": village.code,
        "village": village.name,
        "postal_code": str(raw["postal_code"]).strip(),
    }, []


def _identity_matches(app: Application | None, dob: date, phone: str) -> bool:
    # compare the same way whatever was missing, so timing does not tell which part failed
    expected = f"{app.date_of_birth.isoformat()}|{app.phone}" if app else "-|-"
    given = f"{dob.isoformat()}|{phone}"
    return hmac.compare_digest(expected.encode(), given.encode()) and app is not None


async def opt_in(ctx: AppContext, request: OptInRequest) -> OptInResult:
    """Create the delivery, or change its address; see the module docstring. Raises
    :class:`ServiceError` (invalid, identity, rate_limited, ineligible, conflict)."""
    settings = ctx.settings
    address, errors = normalise_address(request.address)
    if address is not None and request.email.strip():
        address["email"] = request.email.strip()
    dob: date | None = None
    try:
        dob = date.fromisoformat(request.date_of_birth)
    except ValueError:
        errors.append(FieldError("$.date_of_birth", "a date as YYYY-MM-DD is required"))
    phone = ""
    try:
        phone = to_e164(request.phone)
    except ValueError as err:
        errors.append(FieldError("$.phone", str(err)))
    if errors or address is None or dob is None:
        raise invalid(errors)

    secret = ratelimit.counter_key(settings.passport_pepper)
    application_no = request.application_no
    keys = (
        (SCOPE_APPLICATION, ratelimit.key_hash(secret, f"{request.office_code}/{application_no}")),
        (SCOPE_CLIENT, ratelimit.key_hash(secret, request.client)),
    )
    window = timedelta(minutes=settings.optin_window_minutes)
    now = ctx.clock.now()
    # the try is counted (and committed) before the identity is checked: parallel requests each
    # see their own count, so at most optin_max_failures of them per window are ever checked
    async with transaction(ctx.sessions) as session:
        waits = [
            await ratelimit.take(
                session, scope, key, now=now, limit=settings.optin_max_failures, window=window
            )
            for scope, key in keys
        ]
    for (scope, _), wait in zip(keys, waits, strict=True):
        if wait is not None:
            log.warning("optin_rate_limited", kind=scope)
            raise ServiceError(
                Kind.RATE_LIMITED,
                "rate_limited",
                RATE_MESSAGE,
                [FieldError("$", RATE_MESSAGE)],
                retry_after=wait,
            )
    refused: ServiceError | None = None
    async with transaction(ctx.sessions) as session:
        office = (
            await session.execute(select(Office).where(Office.code == request.office_code))
        ).scalar_one_or_none()
        app = (
            await session.execute(
                select(Application).where(
                    Application.office_id == (office.id if office else -1),
                    Application.application_no == request.application_no,
                )
            )
        ).scalar_one_or_none()
        verified = office is not None and _identity_matches(app, dob, phone)
        if verified and office is not None and app is not None:
            # proven: the try is given back (the counters count failures), whatever follows
            for scope, key in keys:
                await ratelimit.refund(session, scope, key, now=now, window=window)
            try:
                async with session.begin_nested():  # a refusal undoes its own work only
                    return await _opt_in_verified(session, settings, now, office, app, address)
            except ServiceError as err:
                refused = err
    if refused is not None:
        raise refused
    log.info("optin_identity_refused")
    raise ServiceError(
        Kind.IDENTITY,
        "identity_not_verified",
        IDENTITY_MESSAGE,
        [FieldError("$", IDENTITY_MESSAGE)],
    )


async def _opt_in_verified(
    session: AsyncSession,
    settings: Settings,
    now: datetime,
    office: Office,
    app: Application,
    address: dict[str, Any],
) -> OptInResult:
    verdict = check_eligibility(
        home_regency_codes=office.home_regency_codes,
        destination_regency_code=address["regency_code"],
        priority_kind=app.priority_kind,
    )
    if not verdict.ok:
        log.info("optin_ineligible", application_id=app.id, code=verdict.code)
        raise ServiceError(
            Kind.INELIGIBLE,
            "not_eligible",
            f"{verdict.message_id} / {verdict.message_en}",
            [
                FieldError("$.address.regency_code", verdict.message_id),
                FieldError("$.address.regency_code", verdict.message_en),
            ],
        )
    if app.collect_by is not None and now >= app.collect_by:
        raise ServiceError(
            Kind.CONFLICT,
            "deadline_passed",
            "Batas waktu pengambilan paspor sudah lewat. / The passport's collection deadline "
            "has passed.",
        )
    token = secrets.token_urlsafe(32)
    # insert unless a delivery exists (a racing identical request may be inserting it right now:
    # ON CONFLICT waits for it), then read the row back locked, whoever inserted it
    new_id = await items.insert_ignore(
        session, Delivery, _new_delivery(now, office, app, address, token), key="application_id"
    )
    delivery = (
        await session.execute(
            select(Delivery).where(Delivery.application_id == app.id).with_for_update()
        )
    ).scalar_one()
    if new_id is not None:
        if delivery.state == DeliveryState.QUEUED.value:
            await notify_queued(session)
        audit.record(
            session,
            at=now,
            actor=ACTOR,
            action="delivery.opted_in",
            entity="delivery",
            entity_id=delivery.id,
            office_id=office.id,
            after={
                "state": delivery.state,
                "destination_regency_code": address["regency_code"],
                "consent_version": CONSENT_VERSION,
                "eligibility": verdict.code,
            },
        )
        outcome = "created"
    else:
        outcome = await _change_address(session, now, delivery, address, token)
    # the link goes to the phone (and e-mail) on file, in this transaction: an address changed
    # by someone else is heard of by the applicant
    await notices.queue(
        session,
        "applicant_address_changed" if outcome == "address_changed" else "applicant_opted_in",
        delivery,
        now=now,
        key=hashing.hash_token(token)[:16],
        facts={"link": tracking_url(settings, token)},
    )
    log.info("optin_accepted", delivery_id=delivery.id, outcome=outcome, state=delivery.state)
    return OptInResult(
        delivery_id=delivery.id,
        state=delivery.state,
        outcome=outcome,
        tracking_token=token,
        tracking_url=tracking_url(settings, token),
        eligibility=verdict,
        collect_by=delivery.collect_by,
    )


def _new_delivery(
    now: datetime, office: Office, app: Application, address: dict[str, Any], token: str
) -> dict[str, Any]:
    """The columns of a new delivery row."""
    ready = app.state == "ready"
    return {
        "application_id": app.id,
        "office_id": office.id,
        "address": address,
        "destination_regency_code": address["regency_code"],
        "consent_at": now,
        "consent_version": CONSENT_VERSION,
        "tracking_token_hash": hashing.hash_token(token),
        "state": (DeliveryState.QUEUED if ready else DeliveryState.REQUESTED).value,
        "priority": delivery_priority(app.priority_kind, app.express),
        "collect_by": app.collect_by,
        "next_attempt_at": now if ready else None,
        "claim_count": 0,
        "created_at": now,
        "updated_at": now,
    }


async def _change_address(
    session: AsyncSession, now: datetime, delivery: Delivery, address: dict[str, Any], token: str
) -> str:
    """``delivery`` was read FOR UPDATE: booking, which locks it too, cannot add a shipment
    between the count below and the commit."""
    # an attempt the courier refused or the office cancelled before pickup never carried the
    # address anywhere: the applicant may still correct it (a dispatcher then re-books)
    shipments = (
        await session.execute(
            select(func.count())
            .select_from(Shipment)
            .where(
                Shipment.delivery_id == delivery.id,
                Shipment.status.not_in(_NEVER_CARRIED),
            )
        )
    ).scalar_one()
    if shipments or DeliveryState(delivery.state) not in _CHANGEABLE:
        raise ServiceError(
            Kind.CONFLICT,
            "already_booked",
            "Alamat tidak dapat diubah lagi: paspor sudah dipesan ke kurir atau pengiriman sudah "
            "selesai. / The address can no longer be changed: the passport is already booked with "
            "a courier or the delivery is closed.",
        )
    moved = address != delivery.address
    before: dict[str, Any] = {"tracking_token": "[replaced]"}
    after: dict[str, Any] = {"tracking_token": "[new]"}
    if moved:
        before |= {"destination_regency_code": delivery.destination_regency_code}
        before["address"] = "[old]"
        after |= {"destination_regency_code": address["regency_code"], "address": "[changed]"}
        delivery.address = address
        delivery.destination_regency_code = address["regency_code"]
    # the link the applicant already has keeps working (it opens the same, changed delivery)
    await items.insert_ignore(
        session,
        TrackingLink,
        {
            "delivery_id": delivery.id,
            "token_hash": delivery.tracking_token_hash,
            "created_at": now,
        },
        key="token_hash",
    )
    delivery.tracking_token_hash = hashing.hash_token(token)
    delivery.consent_at = now
    delivery.updated_at = now
    action = "delivery.address_changed" if moved else "delivery.token_reissued"
    audit.record(
        session,
        at=now,
        actor=ACTOR,
        action=action,
        entity="delivery",
        entity_id=delivery.id,
        office_id=delivery.office_id,
        before=before,
        after=after,
    )
    return "address_changed" if moved else "token_reissued"
