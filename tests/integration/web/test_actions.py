"""The dispatcher's actions over real HTTP against the courier simulators, both backends
(issue 11, Deliver 6-8): correct an address and re-book a refused booking (a new attempt, a new
reference; the old one kept), mark a shipment lost with the courier's report, hand over at the
counter with an ID checked, receive a return with its seal checked, pack (find by a scanned
application number, seal), print labels and the manifest as PDF (read back with pypdf), take a
passport off an open manifest. Refusals: wrong state 409 with its reason, bad input 422 naming
the field with nothing changed, another office 404."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

import worker_seed as seed
from pypdf import PdfReader
from reportlab.graphics.barcode import code128
from sqlalchemy import func, select
from test_dispatch import Desk, _custody, _feed, desk  # noqa: F401 (the fixture)
from tracking_kit import booked_shipment, event

from core.status import Status
from courier.db.engine import SessionFactory, transaction
from courier.db.models import (
    AuditEntry,
    CustodyEvent,
    Delivery,
    ExceptionItem,
    Manifest,
    ManifestItem,
    OutboxItem,
    Shipment,
)
from courier.domain.envelopes import mask_name
from courier.domain.exception_kinds import ExceptionKind
from courier.services import items
from worker import book

MALANG = {
    "street": "Jl. Borobudur No. 12",
    "province_code": "35",
    "regency_code": "35.73",
    "district_code": "35.73.01",
    "village_code": "35.73.01.1001",
    "postal_code": "65126",
}


async def refused(sessions: SessionFactory, office_id: int, i: int) -> int:
    """Application ``i``'s delivery whose booking the courier refused, as the worker leaves it
    (courier/services/booking.py ``_settle_rejected``)."""
    [delivery_id] = await seed.deliveries(sessions, office_id, 1, start=i)
    async with transaction(sessions) as session:
        delivery = await session.get_one(Delivery, delivery_id)
        delivery.state = "needs_attention"
        shipment = Shipment(
            delivery_id=delivery_id,
            attempt_no=1,
            courier_code="jnt",
            client_reference=f"BLT2026{i:08d}01",
            status=Status.BOOKING_FAILED.value,
            claim_count=1,
            reconcile_count=0,
            created_at=seed.T0,
            updated_at=seed.T0,
        )
        session.add(shipment)
        await session.flush()
        await items.open_exception(
            session,
            office_id=office_id,
            delivery_id=delivery_id,
            shipment_id=shipment.id,
            kind=ExceptionKind.BOOKING_REJECTED,
            detail="J&T Express refused the order (receiver address): kecamatan tidak dikenal",
            dedupe_key=f"booking_rejected:{shipment.id}",
            now=seed.T0,
        )
    return delivery_id


async def _shipments(desk: Desk, delivery_id: int) -> list[tuple[int, str, str]]:  # noqa: F811
    async with desk.kit.sessions() as session:
        rows = await session.execute(
            select(Shipment.attempt_no, Shipment.client_reference, Shipment.status)
            .where(Shipment.delivery_id == delivery_id)
            .order_by(Shipment.attempt_no)
        )
        return [(int(a), str(r), str(s)) for a, r, s in rows]


async def _count(desk: Desk, model: Any, *where: Any) -> int:  # noqa: F811
    async with desk.kit.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages)


def _code128(pdf: bytes) -> str:
    """The value of the Code 128 barcode drawn on the PDF's first page, decoded from the bars'
    geometry (each bar is a filled rectangle of the barcode's height), its checksum checked."""
    content = PdfReader(io.BytesIO(pdf)).pages[0].get_contents()
    assert content is not None
    bars = [
        (float(x), float(w), float(h))
        for x, _, w, h in re.findall(
            r"n ([0-9.]+) ([0-9.]+) ([0-9.]+) ([0-9.]+) re f", content.get_data().decode("latin-1")
        )
    ]
    height = max(h for _, _, h in bars)
    bars = sorted((x, w) for x, w, h in bars if abs(h - height) < 0.01)
    module = min(w for _, w in bars)
    runs: list[int] = []
    for n, (x, w) in enumerate(bars):
        if n:
            previous_end = bars[n - 1][0] + bars[n - 1][1]
            runs.append(round((x - previous_end) / module))
        runs.append(round(w / module))
    # the standard table: bar and space widths of each symbol value (reportlab's, as digits)
    table = {
        "".join(str("abcd".index(c.lower()) + 1) for c in pattern): value
        for value, pattern in code128._patterns.items()
    }
    values = [table["".join(map(str, runs[i : i + 6]))] for i in range(0, len(runs) - 7, 6)]
    assert "".join(map(str, runs[-7:])) == "2331112"  # the stop pattern
    start, *data, check = values
    assert check == (start + sum(i * v for i, v in enumerate(data, start=1))) % 103
    out, code_set = "", {103: "A", 104: "B", 105: "C"}[start]
    for v in data:
        if code_set == "C" and v < 100:
            out += f"{v:02d}"
        elif v in (99, 100, 101):  # code C, code B, code A (FNC4 is not used here)
            code_set = {99: "C", 100: "B", 101: "A"}[v]
        else:
            out += chr(v + 32)
    return out


async def _get(desk: Desk, path: str, token: str | None = None) -> tuple[int, str, bytes]:  # noqa: F811
    headers = {"Authorization": f"Bearer {token or desk.token}"}
    async with desk.kit.http.get(desk.url(path), headers=headers) as resp:
        return resp.status, resp.content_type, await resp.read()


# --------------------------------------------------------------------------------------------
# Correct and re-book


async def test_a_refused_booking_is_corrected_and_rebooked_as_attempt_two(desk: Desk) -> None:  # noqa: F811
    delivery_id = await refused(desk.kit.sessions, desk.office_id, 1)
    path = f"/api/v1/deliveries/{delivery_id}/address"
    audits = await desk.audit_count()

    bad = {**MALANG, "district_code": "35.72.01"}  # a Blitar district under Malang
    status, body = await desk.call(
        "POST", path, json={"address": bad, "reason": "pemohon menelepon", "rebook": True}
    )
    assert status == 422, body
    assert next(d["path"] for d in body["error"]["details"]).startswith("$.address.")
    status, body = await desk.call(
        "POST", path, json={"address": MALANG, "reason": "x", "rebook": True}
    )
    assert status == 422 and {d["path"] for d in body["error"]["details"]} == {"$.reason"}
    status, body = await desk.call(
        "POST", path, json={"address": MALANG, "reason": "pemohon menelepon"}, token=desk.other
    )
    assert status == 404 and body["error"]["code"] == "unknown_delivery"
    assert await desk.audit_count() == audits
    assert await desk.state(delivery_id) == "needs_attention"

    status, body = await desk.call(
        "POST", path, json={"address": MALANG, "reason": "pemohon menelepon", "rebook": True}
    )
    assert status == 200, body
    assert body == {
        "delivery_id": delivery_id,
        "destination_regency_code": "35.73",
        "delivery_state": "queued",
        "rebooked": True,
    }
    async with desk.kit.sessions() as session:
        actions = set(
            await session.scalars(
                select(AuditEntry.action).where(AuditEntry.entity_id == delivery_id)
            )
        )
        kept = await session.scalar(
            select(AuditEntry.after).where(AuditEntry.action == "delivery.address_corrected")
        )
    assert {"delivery.address_corrected", "delivery.rebook"} <= actions
    assert kept is not None and "Borobudur" not in str(kept)  # no street in the audit log
    assert (
        await _count(
            desk,
            ExceptionItem,
            ExceptionItem.delivery_id == delivery_id,
            ExceptionItem.resolved_at.is_(None),
        )
        == 0
    )

    assert await book.once(desk.kit.ctx, "w1") == 1
    attempts = await _shipments(desk, delivery_id)
    assert [(a, s) for a, _, s in attempts] == [(1, "booking_failed"), (2, "booked")]
    assert attempts[0][1] != attempts[1][1]  # a new reference; the old attempt's row stays

    status, again = await desk.call(
        "POST", f"/api/v1/deliveries/{delivery_id}/rebook", json={"reason": "sekali lagi"}
    )
    assert status == 409 and again["error"]["code"] == "shipment_booked"


async def test_rebook_refuses_with_the_next_step_and_changes_nothing(desk: Desk) -> None:  # noqa: F811
    delivery_id = await refused(desk.kit.sessions, desk.office_id, 2)
    path = f"/api/v1/deliveries/{delivery_id}/rebook"
    status, body = await desk.call("POST", path, json={"reason": "alamat benar"}, token=desk.other)
    assert status == 404
    status, body = await desk.call("POST", path, json={"reason": "alamat benar", "x": 1})
    assert status == 422 and body["error"]["details"][0]["path"] == "$"
    status, body = await desk.call("POST", path, json={"reason": "pengirim diperbaiki"})
    assert status == 200 and body["delivery_state"] == "queued" and body["previous_attempts"] == 1
    status, body = await desk.call("POST", path, json={"reason": "pengirim diperbaiki"})
    assert status == 409 and body["error"]["code"] == "not_rebookable"
    assert "already waiting" in body["error"]["message"]


async def test_the_office_sender_is_corrected_with_field_errors_first(desk: Desk) -> None:  # noqa: F811
    audits = await desk.audit_count()
    sender = {
        "contact": "Kantor Imigrasi Kelas II Non TPI Blitar Jawa Timur",  # > 30: J&T refuses
        "phone": "0342801234",
        "street": "Jl. Sudanco Supriyadi No. 50",
        "regency_code": "35.72",
        "district_code": "35.72.01",
        "postal_code": "66111",
    }
    status, body = await desk.call(
        "PUT", "/api/v1/office/sender", json={"sender": sender, "reason": "nama terlalu panjang"}
    )
    assert status == 422, body
    assert {d["path"] for d in body["error"]["details"]} == {"$.sender.contact"}
    assert await desk.audit_count() == audits
    sender["contact"] = "Kanim Blitar"
    status, body = await desk.call(
        "PUT", "/api/v1/office/sender", json={"sender": sender, "reason": "nama terlalu panjang"}
    )
    assert status == 200 and body == {"office_code": "BLT", "changed": True}
    assert await _count(desk, AuditEntry, AuditEntry.action == "office.sender_corrected") == 1


# --------------------------------------------------------------------------------------------
# Lost, the counter, returns


async def _picked_up(desk: Desk, i: int) -> tuple[int, int]:  # noqa: F811
    [delivery_id] = await seed.deliveries(desk.kit.sessions, desk.office_id, 1, start=i)
    waybill = f"JO{i:010d}"
    shipment_id = await booked_shipment(desk.kit.sessions, delivery_id, waybill=waybill)
    await _feed(
        desk.kit.sessions,
        shipment_id,
        event(Status.PICKED_UP, seed.T0 + timedelta(hours=3), waybill=waybill),
    )
    return delivery_id, shipment_id


async def test_mark_lost_with_the_couriers_report(desk: Desk) -> None:  # noqa: F811
    delivery_id, shipment_id = await _picked_up(desk, 3)
    [waiting] = await seed.deliveries(desk.kit.sessions, desk.office_id, 1, start=4)
    await booked_shipment(desk.kit.sessions, waiting, waybill="JO0000000004")
    desk.kit.clock.set(seed.T0 + timedelta(days=5))
    report = {
        "report_number": "ba-77 01",
        "report_date": "2026-11-06",
        "report_text": "Paket tidak ditemukan di gudang transit Surabaya",
    }
    path = f"/api/v1/deliveries/{delivery_id}/lost"
    status, body = await desk.call("POST", path, json={**report, "report_date": "2026-12-31"})
    assert status == 422 and body["error"]["details"][0]["path"] == "$.report_date"
    status, body = await desk.call("POST", path, json=report, token=desk.other)
    assert status == 404
    status, body = await desk.call(
        "POST", f"/api/v1/deliveries/{waiting}/lost", json=report
    )  # still at the office: not lost by a courier
    assert status == 409 and body["error"]["code"] == "not_with_courier"

    status, body = await desk.call("POST", path, json=report)
    assert status == 200, body
    assert body["shipment_status"] == "lost" and body["delivery_state"] == "cancelled"
    async with desk.kit.sessions() as session:
        last = await session.scalar(
            select(CustodyEvent)
            .where(CustodyEvent.delivery_id == delivery_id)
            .order_by(CustodyEvent.id.desc())
            .limit(1)
        )
        outbox = await session.scalar(
            select(OutboxItem.kind).where(OutboxItem.delivery_id == delivery_id)
        )
    assert last is not None and last.holder == "lost" and last.shipment_id == shipment_id
    assert last.evidence["report_number"] == "BA-77 01"
    assert outbox == "applicant_passport_lost"
    status, again = await desk.call("POST", path, json=report)
    assert status == 409 and again["error"]["code"] == "delivery_closed"


async def test_counter_handover_records_the_id_masked(desk: Desk) -> None:  # noqa: F811
    delivery_id = await refused(desk.kit.sessions, desk.office_id, 5)
    path = f"/api/v1/deliveries/{delivery_id}/collected"
    status, body = await desk.call("POST", path, json={})
    assert status == 422
    assert {d["path"] for d in body["error"]["details"]} == {"$"} or {
        d["path"] for d in body["error"]["details"]
    } >= {"$.id_type"}
    status, body = await desk.call(
        "POST", path, json={"id_type": "paspor", "id_number": "3505123456780001"}
    )
    assert status == 422 and body["error"]["details"][0]["path"] == "$.id_type"
    assert await desk.state(delivery_id) == "needs_attention"
    status, body = await desk.call(
        "POST", path, json={"id_type": "ktp", "id_number": "3505 1234 5678 0001"}
    )
    assert status == 200, body
    async with desk.kit.sessions() as session:
        evidence = await session.scalar(
            select(CustodyEvent.evidence)
            .where(CustodyEvent.delivery_id == delivery_id)
            .order_by(CustodyEvent.id.desc())
            .limit(1)
        )
    assert evidence is not None
    assert evidence["id_type"] == "ktp" and evidence["id_number"] == "************0001"


async def test_a_return_is_received_with_its_seal_checked(desk: Desk) -> None:  # noqa: F811
    delivery_id, shipment_id = await _picked_up(desk, 6)
    async with transaction(desk.kit.sessions) as session:  # sealed on a manifest at pickup
        manifest = Manifest(
            office_id=desk.office_id,
            courier_code="jnt",
            number="BLT-20261102-JNT-9",
            state="handed_over",
            created_at=seed.T0,
            created_by="test",
        )
        session.add(manifest)
        await session.flush()
        session.add(
            ManifestItem(
                manifest_id=manifest.id,
                office_id=desk.office_id,
                shipment_id=shipment_id,
                seal_number="SEAL0006",
            )
        )
    path = f"/api/v1/deliveries/{delivery_id}/returned-to-office"
    status, body = await desk.call("POST", path, json={"seal_intact": True, "seal_number": "!!"})
    assert status == 422 and body["error"]["details"][0]["path"] == "$.seal_number"
    status, body = await desk.call(
        "POST", path, json={"seal_intact": True, "seal_number": "seal 0007"}
    )
    assert status == 200, body
    assert body["seal_number"] == "SEAL0007" and body["seal_matches"] is False
    custody = await _custody(desk.kit.sessions, delivery_id)
    assert custody[-1][0] == "office"


# --------------------------------------------------------------------------------------------
# Packing, labels, the manifest


async def test_pack_seal_label_and_manifest(desk: Desk) -> None:  # noqa: F811
    sessions = desk.kit.sessions
    ids = await seed.deliveries(sessions, desk.office_id, 2, start=7)
    for n, delivery_id in enumerate(ids):
        await booked_shipment(sessions, delivery_id, waybill=f"JO00000000{70 + n}")
    app_no = "202600000007"

    status, body = await desk.call("GET", f"/api/v1/packing?application_no=%20{app_no}%20")
    assert status == 200, body
    assert body["delivery_id"] == ids[0] and body["waybill"] == "JO0000000070"
    assert body["seal_number"] is None and body["manifest_id"] is None
    status, body = await desk.call(
        "GET", f"/api/v1/packing?application_no={app_no}", token=desk.other
    )
    assert status == 404
    status, body = await desk.call("GET", "/api/v1/packing")
    assert status == 422 and body["error"]["details"][0]["path"] == "url.application_no"

    seal = f"/api/v1/deliveries/{ids[0]}/seal"
    status, body = await desk.call("POST", seal, json={"seal_number": " seal-000 71 "})
    assert status == 200, body
    assert body["seal_number"] == "SEAL00071" and body["manifest_state"] == "open"
    manifest_id = body["manifest_id"]
    status, body = await desk.call(
        "POST", f"/api/v1/deliveries/{ids[1]}/seal", json={"seal_number": "SEAL-00071"}
    )
    assert status == 422, body
    assert body["error"]["details"][0]["path"] == "$.seal_number"
    assert "already used" in body["error"]["details"][0]["message"]
    status, body = await desk.call(
        "POST", f"/api/v1/deliveries/{ids[1]}/seal", json={"seal_number": "SEAL-00072"}
    )
    assert status == 200 and body["manifest_id"] == manifest_id  # on the same open manifest

    status, kind, pdf = await _get(desk, f"/api/v1/deliveries/{ids[0]}/label.pdf")
    assert status == 200 and kind == "application/pdf"
    text = _text(pdf)
    assert "JO0000000070" in text and "Pemohon 7" in text and "Service" in text
    assert app_no not in text and "SEAL" not in text  # a label carries no passport identifiers
    assert _code128(pdf) == "JO0000000070"  # the bars themselves say the waybill
    status, _, _ = await _get(desk, f"/api/v1/deliveries/{ids[0]}/label.pdf", token=desk.other)
    assert status == 404

    # Pos Indonesia's API has no label: ours, the same way
    [pos] = await seed.deliveries(sessions, desk.office_id, 1, start=9)
    await booked_shipment(sessions, pos, waybill="P2611020000009", courier="posind")
    status, kind, pdf = await _get(desk, f"/api/v1/deliveries/{pos}/label.pdf")
    assert status == 200 and "Pos Indonesia" in _text(pdf)
    assert _code128(pdf) == "P2611020000009"

    status, kind, pdf = await _get(desk, "/api/v1/labels.pdf?date=2026-11-02")
    assert status == 200 and kind == "application/pdf"
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 3
    status, _, pdf = await _get(desk, "/api/v1/labels.pdf?date=2026-11-03")  # nothing booked
    assert status == 200 and "No labels to print" in _text(pdf)
    status, _, _ = await _get(desk, "/api/v1/labels.pdf?date=2026-13-40")
    assert status == 422

    status, kind, pdf = await _get(desk, f"/api/v1/manifests/{manifest_id}.pdf")
    assert status == 200 and kind == "application/pdf"
    text = _text(pdf)
    assert app_no in text and "SEAL00071" in text and mask_name("Pemohon 7") in text
    assert "Pemohon 7" not in text  # names are masked on the manifest
    assert "Petugas kantor / Office staff" in text and "Agen kurir / Courier agent" in text
    status, _, _ = await _get(desk, f"/api/v1/manifests/{manifest_id}.pdf", token=desk.other)
    assert status == 404

    remove = f"/api/v1/manifests/{manifest_id}/items/{ids[1]}"
    status, body = await desk.call(
        "DELETE", remove, json={"reason": "amplop rusak"}, token=desk.other
    )
    assert status == 404
    status, body = await desk.call("DELETE", remove, json={"reason": "amplop rusak"})
    assert status == 200, body
    assert [i["delivery_id"] for i in body["items"]] == [ids[0]]
    status, body = await desk.call("DELETE", remove, json={"reason": "amplop rusak"})
    assert status == 409 and body["error"]["code"] == "not_on_manifest"
    assert await _count(desk, AuditEntry, AuditEntry.action == "manifest.item_removed") == 1
    async with desk.kit.sessions() as session:
        status_after = await session.scalar(
            select(Shipment.status).where(Shipment.delivery_id == ids[1])
        )
    assert status_after == "booked"  # off the manifest, still booked


async def test_a_loss_the_courier_reported_is_closed_with_its_report(desk: Desk) -> None:  # noqa: F811
    delivery_id, shipment_id = await _picked_up(desk, 11)
    await _feed(
        desk.kit.sessions,
        shipment_id,
        event(Status.LOST, seed.T0 + timedelta(days=2), waybill="JO0000000011"),
    )
    assert await desk.state(delivery_id) == "needs_attention"
    desk.kit.clock.set(seed.T0 + timedelta(days=3))
    report = {
        "report_number": "KLAIM-11",
        "report_date": "2026-11-04",
        "report_text": "Kurir mengakui paket hilang",
    }
    status, body = await desk.call("POST", f"/api/v1/deliveries/{delivery_id}/lost", json=report)
    assert status == 200, body
    assert body["delivery_state"] == "cancelled" and body["items_resolved"] >= 1
    assert (
        await _count(
            desk,
            ExceptionItem,
            ExceptionItem.delivery_id == delivery_id,
            ExceptionItem.resolved_at.is_(None),
        )
        == 0
    )
