"""A whole site for route-by-route tests: the real app on loopback (tracking_kit's, with J&T push
verification on), offices BLT and KDR with a delivery each at every stage a route acts on, one
API token per role and office, and for every route of the app's router a request that reaches
its use case (path values of BLT's own records, a valid body). Imported as ``site_kit``.

:func:`requests_for` fails for a route it does not know: a new route must be added here, and so
to the authorization matrix and the outage test that walk every route."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import tracking_kit as kit_
import worker_seed as seed
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.jnt.codec import jms_digest
from core.status import Status
from courier.db.engine import SessionFactory, transaction
from courier.db.models import Application, Delivery, Handover, Proof, Shipment, StaffUser
from courier.domain.exception_kinds import ExceptionKind
from courier.services import artefacts, items, notices, staff, tracking
from courier.services.intake import hash_passport_no
from courier.services.staff import ROLES

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(32)
PNG_B64 = base64.b64encode(PNG).decode()


@dataclass
class Office:
    code: str
    id: int
    tokens: dict[str, str]  # role -> token (dispatcher and admin tokens act for a person)
    delivery_id: int  # a delivered, awaiting-confirmation delivery (tracking token below)
    tracking_token: str
    handover_id: int
    manifest_id: int | None = None
    item_id: int = 0  # an open exception item of the delivery
    proof_id: int = 0  # the delivery's proof, with one stored photo (artefact 0)
    contract_id: int | None = None
    artefact_sha256: str = ""  # the courier's photo on the delivered delivery's proof


@dataclass
class Site:
    kit: kit_.Kit
    offices: dict[str, Office] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.kit.url(path)

    @property
    def app(self) -> web.Application:
        app: web.Application = self.kit.web.app  # type: ignore[assignment]
        return app


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: bytes | None = None
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


async def _token(sessions: SessionFactory, code: str, role: str, user_id: int | None) -> str:
    async with transaction(sessions) as session:
        _, plaintext = await staff.create_token(
            session,
            office_code=code,
            role=role,
            name=f"{role} {code}",
            now=seed.T0,
            actor="test",
            staff_user_id=user_id,
        )
    return plaintext


async def _office(kit: kit_.Kit, code: str, start: int) -> Office:
    sessions = kit.sessions
    office_id = await seed.office(sessions, code=code)
    tokens: dict[str, str] = {}
    for role in ROLES:
        user = None
        if role in ("admin", "dispatcher"):
            user = await kit_.staff(sessions, office_id, f"{role}-{code.lower()}")
            async with transaction(sessions) as session:
                row = await session.get_one(StaffUser, user)
                row.role = role
        tokens[role] = await _token(sessions, code, role, user)
    [delivery_id] = await seed.deliveries(sessions, office_id, 1, start=start)
    async with transaction(sessions) as session:  # its passport number: kit_.PASSPORT_NO
        delivery = await session.get_one(Delivery, delivery_id)
        application = await session.get_one(Application, delivery.application_id)
        application.passport_no_hash = hash_passport_no(kit_.PEPPER, kit_.PASSPORT_NO)
    waybill = f"JO{start:010d}"
    shipment_id = await kit_.booked_shipment(sessions, delivery_id, waybill=waybill)
    async with transaction(sessions) as session:
        shipment = await session.get_one(Shipment, shipment_id)
        await tracking.apply_events(
            session,
            shipment,
            [
                kit_.event(
                    Status.DELIVERED,
                    seed.T0,
                    waybill=waybill,
                    receiver_name=f"Pemohon {start}",
                    relation="YBS",
                )
            ],
            source="poll",
            now=seed.T0,
        )
    async with sessions() as session:
        handover_id = await session.scalar(
            select(Handover.id).where(Handover.delivery_id == delivery_id)
        )
    assert handover_id is not None
    digest = await artefacts.store(kit.ctx).put(PNG)  # the courier's photo, as the worker keeps it
    async with transaction(sessions) as session:  # an open item; a stored proof photo
        item_id = await items.open_exception(
            session,
            office_id=office_id,
            kind=ExceptionKind.STUCK,
            detail="no scan for 3 days",
            dedupe_key=f"site:{code}",
            now=seed.T0,
            delivery_id=delivery_id,
        )
        assert item_id is not None
        proof = await session.scalar(select(Proof).where(Proof.shipment_id == shipment_id))
        assert proof is not None
        proof.artefacts = [
            {
                "kind": "photo",
                "state": "stored",
                "sha256": digest,
                "size": len(PNG),
                "content_type": "image/png",
            }
        ]
        proof_id = proof.id
    # a second passport, booked and waiting for pickup: the day's manifest lists it
    [waiting] = await seed.deliveries(sessions, office_id, 1, start=start + 10)
    await kit_.booked_shipment(sessions, waiting, waybill=f"JO{start + 10:010d}")
    return Office(
        code,
        office_id,
        tokens,
        delivery_id,
        kit_.token(office_id, start),
        int(handover_id),
        item_id=item_id,
        proof_id=proof_id,
        artefact_sha256=digest,
    )


async def _open_manifest(site: Site, office: Office) -> None:
    headers = {"Authorization": f"Bearer {office.tokens['dispatcher']}"}
    async with site.kit.http.post(
        site.url("/api/v1/manifests"), json={"courier": "jnt"}, headers=headers
    ) as resp:
        assert resp.status == 201, await resp.text()
        office.manifest_id = int((await resp.json())["id"])


def contract_terms(office: str) -> dict[str, Any]:
    """A valid draft contract serving ``office``."""
    return {
        "number": f"{office}-JNT-2026",
        "courier": "jnt",
        "parties": ["Kantor Imigrasi", "PT Global Jet Express"],
        "offices": [office],
        "valid_from": "2026-11-01",
        "valid_to": "2027-10-31",
        "regencies": "all",
        "zones": [{"name": "Jawa", "regencies": "*", "sla_days": 2, "tariff_per_kg": 9000}],
        "declared_value_cap": 1_000_000,
        "insurance_cover": 650_000,
        "penalty_late": 25_000,
        "penalty_lost": 1_000_000,
    }


async def _draft_contract(site: Site, office: Office) -> None:
    headers = {"Authorization": f"Bearer {office.tokens['contract_manager']}"}
    async with site.kit.http.post(
        site.url("/api/v1/contracts"), json=contract_terms(office.code), headers=headers
    ) as resp:
        assert resp.status == 201, await resp.text()
        office.contract_id = int((await resp.json())["id"])


@asynccontextmanager
async def make_site(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> AsyncIterator[Site]:
    async with kit_.make_kit(engine, sessions, tmp_path, jnt_push=True) as kit:
        site = Site(kit)
        site.offices["BLT"] = await _office(kit, "BLT", 1)
        site.offices["KDR"] = await _office(kit, "KDR", 2)
        for office in site.offices.values():
            await _open_manifest(site, office)
            await _draft_contract(site, office)
        yield site


def jnt_push(site: Site, *, biz: Any = None) -> tuple[bytes, dict[str, str]]:
    """A push signed with the J&T adapter's own account and key (a valid one by default)."""
    settings = site.kit.ctx.settings.couriers["jnt"]
    content = json.dumps(
        biz if biz is not None else [{"billCode": "JO0000000001", "details": []}],
        separators=(",", ":"),
    )
    body = urlencode({"bizContent": content}).encode()
    headers = {
        "apiAccount": str(settings["api_account"]),
        "digest": jms_digest(content, str(settings["private_key"])),
        "timestamp": "1764633600000",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return body, headers


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _bodies(office: str, app_no: str) -> dict[tuple[str, str], Any]:
    """A valid JSON body per route that takes one."""
    return {
        ("PUT", "/api/v1/applications/{application_no}"): {
            "applicant_name": "Siti Rahayu",
            "date_of_birth": "1984-03-17",
            "phone": "0812345678",
        },
        ("POST", "/api/v1/applications/{application_no}/ready"): {
            "issued_at": "2026-11-02T07:30:00+07:00",  # before the site's clock (08:00 WIB)
            "passport_no": "X1234567",
        },
        ("POST", "/api/v1/delivery-requests"): {
            "application_no": app_no,
            "office_code": office,
            "date_of_birth": "1990-01-01",
            "phone": "+62812340000" + ("01" if office == "BLT" else "02"),
            "address": {
                "street": "Jl. Borobudur No. 12",
                "province_code": "35",
                "regency_code": "35.73",
                "district_code": "35.73.01",
                "village_code": "35.73.01.1001",
                "postal_code": "65126",
            },
            "consent": True,
        },
        ("POST", "/api/v1/track/{token}/confirm"): {"passport_no": "X7654321"},
        ("POST", "/api/v1/handovers/{id}/review"): {"approve": False, "reason": "KK tidak cocok"},
        ("POST", "/api/v1/deliveries/{id}/reship"): {},
        ("POST", "/api/v1/deliveries/{id}/collected"): {"id_type": "ktp", "id_number": "3505"},
        ("POST", "/api/v1/deliveries/{id}/rebook"): {"reason": "alamat sudah benar"},
        ("POST", "/api/v1/deliveries/{id}/address"): {
            "address": {
                "street": "Jl. Borobudur No. 12",
                "province_code": "35",
                "regency_code": "35.73",
                "district_code": "35.73.01",
                "village_code": "35.73.01.1001",
                "postal_code": "65126",
            },
            "reason": "pemohon menelepon",
        },
        ("PUT", "/api/v1/office/sender"): {
            "sender": {
                "contact": "Kanim " + office,
                "phone": "0342801234",
                "street": "Jl. Sudanco Supriyadi No. 50",
                "regency_code": "35.72",
                "district_code": "35.72.01",
                "postal_code": "66111",
            },
            "reason": "nomor telepon baru",
        },
        ("POST", "/api/v1/deliveries/{id}/lost"): {
            "report_number": "BA-001",
            "report_date": "2026-11-01",
            "report_text": "paket hilang di gudang transit",
        },
        ("POST", "/api/v1/deliveries/{id}/seal"): {"seal_number": "seal-0009"},
        ("DELETE", "/api/v1/manifests/{id}/items/{delivery_id}"): {"reason": "amplop rusak"},
        ("POST", "/api/v1/deliveries/{id}/booking/waybill"): {"waybill": "JO0027364832"},
        ("POST", "/api/v1/deliveries/{id}/booking/release"): {"reason": "tidak ada di portal"},
        ("POST", "/api/v1/deliveries/{id}/cancel"): {"reason": "alamat salah", "then": "counter"},
        ("POST", "/api/v1/deliveries/{id}/returned-to-office"): {"seal_intact": True},
        ("POST", "/api/v1/manifests"): {"courier": "jnt"},
        ("POST", "/api/v1/exceptions/{id}/resolve"): {"note": "sudah ditangani"},
        ("POST", "/api/v1/contracts"): contract_terms(office),
        ("PUT", "/api/v1/contracts/{id}"): contract_terms("BLT"),
        # a draft cannot be suspended: 409, and nothing changes for the routes after it
        ("POST", "/api/v1/contracts/{id}/status"): {"status": "suspended"},
        ("POST", "/api/v1/manifests/{id}/seals"): {
            "items": [{"shipment_id": 1, "seal_number": "SEAL-0001"}]
        },
        ("POST", "/api/v1/manifests/{id}/handover"): {
            "courier_agent_name": "Budi",
            "courier_signature": PNG_B64,
        },
    }


def _path(site: Site, template: str, office: str, app_no: str) -> str:
    o = site.offices[office]
    record = o.delivery_id
    if template.startswith("/api/v1/handovers/"):
        record = o.handover_id
    elif template.startswith("/api/v1/manifests/"):
        record = o.manifest_id or 999_999
    elif template.startswith(("/api/v1/exceptions/", "/exceptions/")):
        record = o.item_id
    elif template.startswith("/api/v1/contracts/"):
        record = o.contract_id or 999_999
    elif template.startswith("/api/v1/scorecards"):
        return f"{template}?period=2026-11"
    values = {
        "application_no": app_no,
        "token": o.tracking_token,
        "courier": "jnt",
        "name": "docs.js",
        "rest": "x/y",
        # /lang/{code} (the console's language) or /api/v1/regions/{code} (a regency)
        "code": "en" if template.startswith("/lang/") else "35.73",
        "proof": str(o.proof_id),
        "index": "0",
        "id": str(record),
        "delivery_id": str(o.delivery_id),  # not on the manifest: the use case answers 409
        "stop": notices.optout_token(site.kit.ctx.settings, o.delivery_id),
        "sha256": o.artefact_sha256,
    }
    path = template
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path


def requests_for(site: Site, method: str, template: str, office: str = "BLT") -> Call:
    """A request for the route that gets as far as its use case, on ``office``'s records."""
    app_no = f"2026{(1 if office == 'BLT' else 2):08d}"
    path = _path(site, template, office, app_no)
    key = (method, template)
    if key == ("POST", "/t/{token}/report"):
        form = b"problem=not_received&words=belum+sampai&csrf=x.y"
        return Call(method, path, form, "application/x-www-form-urlencoded")
    if key == ("POST", "/t/{token}/rate"):
        return Call(method, path, b"score=4&comment=&csrf=x.y", "application/x-www-form-urlencoded")
    if key == ("POST", "/opt-in"):
        return Call(method, path, b"action=refresh&csrf=x.y", "application/x-www-form-urlencoded")
    if key == ("POST", "/n/stop/{stop}"):
        return Call(method, path, b"csrf=x.y", "application/x-www-form-urlencoded")
    if key == ("POST", "/t/{token}/confirm"):
        form = b"passport_no=X7654321&csrf=x.y"
        return Call(method, path, form, "application/x-www-form-urlencoded")
    if key in (("POST", "/login"), ("POST", "/logout")):  # no CSRF field: refused before
        return Call(method, path, b"username=x&password=y", "application/x-www-form-urlencoded")
    if key == ("POST", "/exceptions/{id}/resolve"):  # a token needs no CSRF field
        return Call(method, path, b"note=sudah+ditangani", "application/x-www-form-urlencoded")
    if key == ("POST", "/webhooks/{courier}"):
        raw, headers = jnt_push(site)
        return Call(method, path, raw, None, tuple(headers.items()))
    bodies = _bodies(office, app_no)
    if key in bodies:
        return Call(method, path, _json(bodies[key]), "application/json")
    if key == ("GET", "/api/v1/packing"):
        return Call(method, f"{path}?application_no={app_no}")
    if method not in ("GET", "HEAD"):
        raise AssertionError(f"no sample request for {method} {template}: add one to site_kit")
    return Call(method, path)


def app_routes(app: web.Application) -> list[tuple[str, str]]:
    """Every (method, template) the app's router serves (HEAD is GET's twin)."""
    out = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method in ("HEAD", "*"):
            continue
        out.append((route.method, resource.canonical))
    return sorted(set(out))


async def send(
    site: Site, call: Call, *, token: str | None = None, extra: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = dict(call.headers)
    if call.content_type:
        headers["Content-Type"] = call.content_type
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(extra or {})
    async with site.kit.http.request(
        call.method, site.url(call.path), data=call.body, headers=headers, allow_redirects=False
    ) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def raw_request(site: Site, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Bytes on the wire, exactly as given (headers a client library would refuse to send)."""
    server = site.kit.web
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(head + b"Connection: close\r\n" + b"Content-Length: %d\r\n\r\n" % len(body))
        writer.write(body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer
