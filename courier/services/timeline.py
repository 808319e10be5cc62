"""One delivery as the console shows it: everything :func:`courier.services.dispatch.
delivery_detail` has, plus one timeline merging the courier's events (normalised status and the
raw code and text), the custody chain, every handover, the exception items and the audit log,
oldest first; the proof of delivery with its artefacts (served from our own store); and who did
what, by name (an audit actor ``staff:3`` or ``token:7`` is shown as the person or the token).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from courier.context import AppContext
from courier.db.models import (
    ApiToken,
    AuditEntry,
    Delivery,
    ExceptionItem,
    Handover,
    Proof,
    Shipment,
    StaffUser,
)
from courier.services import artefacts
from courier.services.dispatch import DeliveryView, _delivery_view
from courier.services.errors import Kind, ServiceError
from courier.services.staff import Caller


@dataclass(frozen=True, slots=True)
class Entry:
    at: datetime
    source: str  # courier | custody | handover | item | audit
    title: str
    detail: str
    who: str  # a person's or a system's name; "" when the courier says it
    raw: str = ""  # the courier's own code and text


@dataclass(frozen=True, slots=True)
class Artefact:
    proof_id: int
    index: int
    kind: str  # photo | signature | …
    state: str  # stored | pending | failed
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class HandoverRecord:
    id: int
    method: str
    state: str
    verified: bool
    verified_at: datetime | None
    reviewer: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    view: DeliveryView
    timeline: tuple[Entry, ...]
    artefacts: tuple[Artefact, ...]
    handovers: tuple[HandoverRecord, ...]


@dataclass(frozen=True, slots=True)
class StoredArtefact:
    data: bytes
    content_type: str


def _summary(values: dict[str, Any] | None) -> str:
    if not values:
        return ""
    return ", ".join(f"{k}={v}" for k, v in values.items())


async def _names(session: Any, actors: set[str]) -> dict[str, str]:
    """``staff:<id>`` → the username; ``token:<id>`` → the token's name (and its person)."""
    staff_ids = {int(a[6:]) for a in actors if a.startswith("staff:") and a[6:].isdigit()}
    token_ids = {int(a[6:]) for a in actors if a.startswith("token:") and a[6:].isdigit()}
    out: dict[str, str] = {}
    if staff_ids:
        for user_id, username in (
            await session.execute(
                select(StaffUser.id, StaffUser.username).where(StaffUser.id.in_(staff_ids))
            )
        ).all():
            out[f"staff:{user_id}"] = username
    if token_ids:
        for token_id, name, username in (
            await session.execute(
                select(ApiToken.id, ApiToken.name, StaffUser.username)
                .outerjoin(StaffUser, StaffUser.id == ApiToken.staff_user_id)
                .where(ApiToken.id.in_(token_ids))
            )
        ).all():
            out[f"token:{token_id}"] = f"{username} (API: {name})" if username else f"API: {name}"
    return out


async def delivery_page(ctx: AppContext, caller: Caller, delivery_id: int) -> DeliveryPage:
    """The delivery of the caller's office with its merged timeline; not found otherwise."""
    async with ctx.sessions() as session:
        view = await _delivery_view(session, caller.office_id, delivery_id)
        if view is None:
            raise ServiceError(Kind.NOT_FOUND, "unknown_delivery", "no such delivery")
        shipment_ids = [s.id for s in view.shipments]
        handovers = list(
            await session.scalars(
                select(Handover).where(Handover.delivery_id == delivery_id).order_by(Handover.id)
            )
        )
        items = list(
            await session.scalars(
                select(ExceptionItem)
                .where(ExceptionItem.delivery_id == delivery_id)
                .order_by(ExceptionItem.id)
            )
        )
        proofs = (
            list(
                await session.scalars(
                    select(Proof).where(Proof.shipment_id.in_(shipment_ids)).order_by(Proof.id)
                )
            )
            if shipment_ids
            else []
        )
        scopes = [(AuditEntry.entity == "delivery") & (AuditEntry.entity_id == delivery_id)]
        if shipment_ids:
            scopes.append(
                (AuditEntry.entity == "shipment") & AuditEntry.entity_id.in_(shipment_ids)
            )
        if handovers:
            ids = [h.id for h in handovers]
            scopes.append((AuditEntry.entity == "handover") & AuditEntry.entity_id.in_(ids))
        if items:
            ids = [i.id for i in items]
            scopes.append((AuditEntry.entity == "exception_item") & AuditEntry.entity_id.in_(ids))
        audits = list(
            await session.scalars(
                select(AuditEntry)
                .where(or_(*scopes), AuditEntry.office_id == caller.office_id)
                .order_by(AuditEntry.at, AuditEntry.id)
            )
        )
        actors = {a.actor for a in audits} | {c.recorded_by for c in view.custody}
        actors |= {i.resolved_by for i in items if i.resolved_by}
        actors |= {f"staff:{h.reviewer_id}" for h in handovers if h.reviewer_id}
        names = await _names(session, actors)

    def who(actor: str | None) -> str:
        return names.get(actor or "", actor or "")

    attempt = {s.id: s.attempt_no for s in view.shipments}
    entries: list[Entry] = []
    for e in view.events:
        entries.append(
            Entry(
                e.occurred_at,
                "courier",
                e.status or "unmapped",
                f"attempt {attempt.get(e.shipment_id, '?')} · {e.location}".rstrip(" ·"),
                f"courier ({', '.join(s for s in e.sources if s)})",
                f"{e.raw_code} {e.raw_text}".strip(),
            )
        )
    for c in view.custody:
        ref = f" {c.holder_ref}" if c.holder_ref else ""
        entries.append(
            Entry(c.occurred_at, "custody", f"custody → {c.holder}{ref}", "", who(c.recorded_by))
        )
    for h in handovers:
        entries.append(Entry(h.created_at, "handover", f"handover {h.method}", h.state, ""))
        if h.verified_at is not None:
            reviewer = who(f"staff:{h.reviewer_id}") if h.reviewer_id else ""
            entries.append(Entry(h.verified_at, "handover", "handover verified", h.state, reviewer))
    for i in items:
        entries.append(Entry(i.opened_at, "item", f"item opened: {i.kind}", i.detail, ""))
        if i.resolved_at is not None:
            entries.append(
                Entry(
                    i.resolved_at,
                    "item",
                    f"item closed: {i.kind}",
                    i.resolution or "",
                    who(i.resolved_by),
                )
            )
    for a in audits:
        change = " → ".join(p for p in (_summary(a.before), _summary(a.after)) if p)
        detail = "; ".join(p for p in (change, a.reason or "") if p)
        entries.append(Entry(a.at, "audit", a.action, detail, who(a.actor)))
    entries.sort(key=lambda e: e.at)

    artefacts = []
    for proof in proofs:
        for index, found in enumerate(proof.artefacts or []):
            artefacts.append(
                Artefact(
                    proof.id,
                    index,
                    str(found.get("kind", "")),
                    str(found.get("state", "")),
                    str(found.get("content_type", "")),
                    int(found.get("size", 0) or 0),
                )
            )
    return DeliveryPage(
        view=view,
        timeline=tuple(entries),
        artefacts=tuple(artefacts),
        handovers=tuple(
            HandoverRecord(
                h.id,
                h.method,
                h.state,
                h.verified,
                h.verified_at,
                who(f"staff:{h.reviewer_id}") if h.reviewer_id else None,
                h.created_at,
            )
            for h in handovers
        ),
    )


async def stored_artefact(
    ctx: AppContext, caller: Caller, delivery_id: int, proof_id: int, index: int
) -> StoredArtefact:
    """A proof-of-delivery file of the caller's office, kept in our store; not found for
    anything else (another office's, one still pending or failed)."""
    async with ctx.sessions() as session:
        proof = await session.scalar(
            select(Proof)
            .join(Shipment, Shipment.id == Proof.shipment_id)
            .join(Delivery, Delivery.id == Shipment.delivery_id)
            .where(
                Proof.id == proof_id,
                Delivery.id == delivery_id,
                Delivery.office_id == caller.office_id,
            )
        )
    found = proof.artefacts if proof is not None else []
    if not (0 <= index < len(found)) or found[index].get("state") != "stored":
        raise ServiceError(Kind.NOT_FOUND, "unknown_artefact", "no such artefact")
    artefact = found[index]
    # from whichever store this deployment keeps artefacts in (storage.artefacts)
    data = await artefacts.store(ctx).get(str(artefact["sha256"]))
    if data is None:
        raise ServiceError(Kind.NOT_FOUND, "unknown_artefact", "no such artefact")
    # only the types the store accepted are served as such (the file was sniffed when kept)
    content_type = str(artefact.get("content_type", "")).split(";")[0].strip().lower()
    if content_type not in _SERVED_TYPES:
        content_type = "application/octet-stream"
    return StoredArtefact(data, content_type)


_SERVED_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "application/pdf"})
