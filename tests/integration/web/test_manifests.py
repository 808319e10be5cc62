"""The pickup manifest over real HTTP, both backends: built from the office's booked shipments,
sealed, handed over with both signatures (custody events carry the manifest, seal and signature
as evidence; a later pickup scan adds no second hand), and refused when it should be: missing
seals 409, a seal number used twice 422 naming the item, another office 404, intake 403."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import tracking_kit as kit_
import worker_seed as seed
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from tracking_kit import booked_shipment, event

from core.status import Status
from courier.db.engine import SessionFactory, transaction
from courier.db.models import Application, AuditEntry, CustodyEvent, Manifest, Shipment
from courier.services import pod, staff, tracking
from courier.services.errors import ServiceError
from courier.web.manifests import MAX_SIGNATURE_BYTES, PNG_MAGIC, signature_png
from schemas import FieldError

SIGNATURE = PNG_MAGIC + b"\x00\x00\x00\rIHDR" + bytes(range(64))  # enough of a PNG to check
SIGNATURE_B64 = base64.b64encode(SIGNATURE).decode()


@dataclass
class Desk:
    """BLT's dispatcher (``token``, issued to staff user ``user_id``), KDR's dispatcher
    (``other``), BLT's intake token and a BLT dispatcher token nobody holds (``unsigned``)."""

    kit: kit_.Kit
    office_id: int
    other_office_id: int
    token: str
    user_id: int
    other: str
    intake: str
    unsigned: str

    async def call(
        self, method: str, path: str, *, token: str | None = None, json: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        async with self.kit.http.request(
            method, self.kit.url(path), json=json, headers=headers
        ) as resp:
            return resp.status, await resp.json()


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


@pytest.fixture
async def desk(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> AsyncIterator[Desk]:
    async with kit_.make_kit(engine, sessions, tmp_path) as kit:
        office_id = await seed.office(sessions, code="BLT")
        other_id = await seed.office(sessions, code="KDR")
        user_id = await kit_.staff(sessions, office_id, "dina")
        other_user = await kit_.staff(sessions, other_id, "eko")
        yield Desk(
            kit,
            office_id,
            other_id,
            await _token(sessions, "BLT", "dispatcher", user_id),
            user_id,
            await _token(sessions, "KDR", "dispatcher", other_user),
            await _token(sessions, "BLT", "intake", None),
            await _token(sessions, "BLT", "dispatcher", None),
        )


async def booked(desk: Desk, *numbers: int, office_id: int | None = None) -> list[int]:
    """Booked J&T shipments of applications ``numbers`` (waybill JO<i>): their ids."""
    ids = []
    for i in numbers:
        [delivery_id] = await seed.deliveries(
            desk.kit.sessions, office_id or desk.office_id, 1, start=i
        )
        ids.append(await booked_shipment(desk.kit.sessions, delivery_id, waybill=f"JO{i:010d}"))
    return ids


def seals(*pairs: tuple[int, str]) -> dict[str, Any]:
    return {"items": [{"shipment_id": s, "seal_number": n} for s, n in pairs]}


async def courier_custody(desk: Desk, shipment_id: int) -> list[CustodyEvent]:
    async with desk.kit.sessions() as session:
        return list(
            await session.scalars(
                select(CustodyEvent)
                .where(CustodyEvent.shipment_id == shipment_id, CustodyEvent.holder == "courier")
                .order_by(CustodyEvent.id)
            )
        )


async def test_a_manifest_is_built_sealed_and_handed_over_with_custody_evidence(
    desk: Desk,
) -> None:
    first, second = await booked(desk, 1, 2)
    await booked(desk, 3, office_id=desk.other_office_id)  # another office's: not listed

    status, made = await desk.call("POST", "/api/v1/manifests", json={"courier": "jnt"})
    assert status == 201, made
    assert made["number"] == "BLT-20261102-JNT-1" and made["state"] == "open"
    assert [i["shipment_id"] for i in made["items"]] == [first, second]
    line = made["items"][0]
    assert line["waybill"] == "JO0000000001" and line["seal_number"] is None
    assert line["destination"]["regency_code"] == "35.73"
    async with desk.kit.sessions() as session:
        apps = list(await session.scalars(select(Application)))
    for app in apps:  # printed for the courier: no applicant names or phones
        assert app.applicant_name not in repr(made) and app.phone not in repr(made)
    manifest_id = made["id"]

    status, sealed = await desk.call(
        "POST",
        f"/api/v1/manifests/{manifest_id}/seals",
        json=seals((first, "SEAL-0001"), (second, "SEAL-0002")),
    )
    assert status == 200, sealed
    assert [i["seal_number"] for i in sealed["items"]] == ["SEAL0001", "SEAL0002"]

    status, done = await desk.call(
        "POST",
        f"/api/v1/manifests/{manifest_id}/handover",
        json={"courier_agent_name": "Budi (J&T Blitar)", "courier_signature": SIGNATURE_B64},
    )
    assert status == 200, done
    digest = hashlib.sha256(SIGNATURE).hexdigest()
    assert done["state"] == "handed_over" and done["courier_signature_sha256"] == digest
    assert done["office_signer_id"] == desk.user_id and done["handed_over_at"] is not None
    assert pod.artefact_path(desk.kit.pod_store, digest).read_bytes() == SIGNATURE

    [custody] = await courier_custody(desk, first)
    assert custody.holder_ref == "jnt"
    assert custody.evidence == {
        "from": "office",
        "manifest_id": manifest_id,
        "manifest_number": "BLT-20261102-JNT-1",
        "seal_number": "SEAL0001",
        "signature_sha256": digest,
        "office_signer_id": desk.user_id,
    }
    assert len(await courier_custody(desk, second)) == 1
    async with desk.kit.sessions() as session:
        actions = list(
            await session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.entity == "manifest", AuditEntry.entity_id == manifest_id)
                .order_by(AuditEntry.id)
            )
        )
    assert actions == ["manifest.open", "manifest.seal", "manifest.handover"]

    # the courier's pickup scan arrives later: the courier already holds it, no second hand
    async with transaction(desk.kit.sessions) as session:
        shipment = await tracking.lock_shipment(session, first)
        assert shipment is not None
        at = seed.T0 + timedelta(hours=2)
        await tracking.apply_events(
            session,
            shipment,
            [event(Status.PICKED_UP, at, waybill="JO0000000001")],
            source="poll",
            now=at + timedelta(minutes=5),
        )
    async with desk.kit.sessions() as session:
        assert (await session.get_one(Shipment, first)).status == "picked_up"
    assert len(await courier_custody(desk, first)) == 1

    # signed once: a second handover and late seals are refused
    status, again = await desk.call(
        "POST",
        f"/api/v1/manifests/{manifest_id}/handover",
        json={"courier_agent_name": "Budi", "courier_signature": SIGNATURE_B64},
    )
    assert status == 409 and again["error"]["code"] == "manifest_closed"
    status, late = await desk.call(
        "POST", f"/api/v1/manifests/{manifest_id}/seals", json=seals((first, "SEAL-0009"))
    )
    assert status == 409 and late["error"]["code"] == "manifest_closed"
    status, shown = await desk.call("GET", f"/api/v1/manifests/{manifest_id}")
    assert status == 200 and shown["courier_signature_sha256"] == digest
    assert [i["status"] for i in shown["items"]] == ["picked_up", "booked"]
    assert [i["seal_number"] for i in shown["items"]] == ["SEAL0001", "SEAL0002"]


async def test_handover_with_an_unsealed_passport_is_409_naming_it(desk: Desk) -> None:
    first, second = await booked(desk, 1, 2)
    _, made = await desk.call("POST", "/api/v1/manifests", json={"courier": "jnt"})
    manifest_id = made["id"]
    status, _ = await desk.call(
        "POST", f"/api/v1/manifests/{manifest_id}/seals", json=seals((first, "SEAL-0001"))
    )
    assert status == 200
    status, body = await desk.call(
        "POST",
        f"/api/v1/manifests/{manifest_id}/handover",
        json={"courier_agent_name": "Budi", "courier_signature": SIGNATURE_B64},
    )
    assert status == 409 and body["error"]["code"] == "unsealed_items"
    assert str(second) in body["error"]["message"]
    assert body["error"]["details"] == [{"path": "$", "message": f"shipment {second} has no seal"}]
    assert await courier_custody(desk, first) == []  # nothing recorded
    _, shown = await desk.call("GET", f"/api/v1/manifests/{manifest_id}")
    assert shown["state"] == "open"


async def test_a_seal_number_used_twice_is_422_naming_the_item(desk: Desk) -> None:
    first, second = await booked(desk, 1, 2)
    _, made = await desk.call("POST", "/api/v1/manifests", json={"courier": "jnt"})
    path = f"/api/v1/manifests/{made['id']}/seals"

    status, body = await desk.call(
        "POST", path, json=seals((first, "SEAL-0001"), (second, "SEAL-0001"))
    )
    assert status == 422, body
    assert body["error"]["details"] == [
        {"path": "$.items[1].seal_number", "message": "named more than once"}
    ]
    assert (await desk.call("POST", path, json=seals((first, "SEAL-0001"))))[0] == 200
    status, body = await desk.call("POST", path, json=seals((second, "SEAL-0001")))
    assert status == 422
    assert body["error"]["details"] == [
        {"path": "$.items[0].seal_number", "message": "already used at this office"}
    ]
    status, body = await desk.call("POST", path, json=seals((999999, "SEAL-0003")))
    assert status == 422
    assert body["error"]["details"][0]["path"] == "$.items[0].shipment_id"
    status, body = await desk.call("POST", path, json=seals((first, "bad*seal")))
    assert status == 422 and body["error"]["details"][0]["path"] == "$.items[0].seal_number"
    # swapping two envelopes' numbers is fine: no collision half-way
    assert (await desk.call("POST", path, json=seals((second, "SEAL-0002"))))[0] == 200
    status, body = await desk.call(
        "POST", path, json=seals((first, "SEAL-0002"), (second, "SEAL-0001"))
    )
    assert status == 200, body
    assert [i["seal_number"] for i in body["items"]] == ["SEAL0002", "SEAL0001"]


async def test_a_second_manifest_lists_only_shipments_on_no_manifest(desk: Desk) -> None:
    [first] = await booked(desk, 1)
    status, one = await desk.call("POST", "/api/v1/manifests", json={"courier": "jnt"})
    assert status == 201
    status, none = await desk.call("POST", "/api/v1/manifests", json={"courier": "jnt"})
    assert status == 409 and none["error"]["code"] == "nothing_to_pick_up"
    [later] = await booked(desk, 2)
    status, two = await desk.call("POST", "/api/v1/manifests", json={"courier": "jnt"})
    assert status == 201, two
    assert [i["shipment_id"] for i in one["items"]] == [first]
    assert [i["shipment_id"] for i in two["items"]] == [later]
    assert two["number"] == "BLT-20261102-JNT-2"
    status, posind = await desk.call("POST", "/api/v1/manifests", json={"courier": "posind"})
    assert status == 409 and posind["error"]["code"] == "nothing_to_pick_up"  # no Pos one
    status, body = await desk.call("POST", "/api/v1/manifests", json={"courier": "dhl"})
    assert status == 422 and body["error"]["details"][0]["path"] == "$.courier"


async def test_another_office_gets_404_and_other_roles_403(desk: Desk) -> None:
    [first] = await booked(desk, 1)
    _, made = await desk.call("POST", "/api/v1/manifests", json={"courier": "jnt"})
    base = f"/api/v1/manifests/{made['id']}"
    handover = {"courier_agent_name": "Budi", "courier_signature": SIGNATURE_B64}
    for method, path, body in (
        ("GET", base, None),
        ("POST", f"{base}/seals", seals((first, "SEAL-0001"))),
        ("POST", f"{base}/handover", handover),
    ):
        status, answer = await desk.call(method, path, token=desk.other, json=body)
        assert status == 404 and answer["error"]["code"] == "unknown_manifest", (path, answer)
        status, answer = await desk.call(method, path, token=desk.intake, json=body)
        assert status == 403, (path, answer)
    status, _ = await desk.call(
        "POST", "/api/v1/manifests", token=desk.intake, json={"courier": "jnt"}
    )
    assert status == 403
    status, missing = await desk.call("GET", "/api/v1/manifests/987654")
    assert status == 404 and missing["error"]["code"] == "unknown_manifest"
    status, bad = await desk.call("GET", "/api/v1/manifests/abc")
    assert status == 422 and bad["error"]["details"][0]["path"] == "url.id"

    # the office signs through a person: a token nobody holds may not hand over
    await desk.call("POST", f"{base}/seals", json=seals((first, "SEAL-0001")))
    status, answer = await desk.call("POST", f"{base}/handover", token=desk.unsigned, json=handover)
    assert status == 403 and answer["error"]["code"] == "signer_required"
    async with desk.kit.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(CustodyEvent))
        assert count == 0
        assert (await session.get_one(Manifest, made["id"])).state == "open"


async def test_a_signature_that_is_not_a_small_png_is_422(desk: Desk) -> None:
    [first] = await booked(desk, 1)
    _, made = await desk.call("POST", "/api/v1/manifests", json={"courier": "jnt"})
    base = f"/api/v1/manifests/{made['id']}"
    await desk.call("POST", f"{base}/seals", json=seals((first, "SEAL-0001")))
    # the schema refuses what the server would: not a PNG, not base64, too long (issue 10)
    not_png = base64.b64encode(b"GIF89a-not-a-png").decode()
    big = base64.b64encode(PNG_MAGIC + bytes(MAX_SIGNATURE_BYTES)).decode()
    for signature in (not_png, "bm90IHBhZGRlZA", 7, big):
        status, body = await desk.call(
            "POST",
            f"{base}/handover",
            json={"courier_agent_name": "Budi", "courier_signature": signature},
        )
        assert status == 422, body
        assert [d["path"] for d in body["error"]["details"]] == ["$.courier_signature"]
    for signature, message in (
        (not_png, "must be a PNG image"),
        ("bm90IHBhZGRlZA", "must be base64"),
        (big, "must be at most 40 KB"),
    ):
        with pytest.raises(ServiceError) as refused:
            signature_png(signature)
        assert refused.value.details == [FieldError("$.courier_signature", message)]
    assert signature_png(SIGNATURE_B64) == SIGNATURE
