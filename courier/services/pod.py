"""Proof of delivery: who received the passport, and the courier's photo and signature, kept.

Two steps, so that a crash between them loses nothing:

1. :func:`record_proof` runs inside the tracking transaction that sees the delivered event: it
   writes a :class:`~courier.db.models.Proof` with the receiver's name, the relation as the
   courier wrote it and its category, and each artefact link marked ``pending``.
2. :func:`fetch_pending` (called by the tracking and inbox loops) downloads pending artefacts
   while their signed links still work, stores each file content-addressed by sha256 under
   ``settings.pod_store`` (written to a temporary file, then renamed: a reader never sees half a
   file, and storing the same bytes twice is a no-op), and replaces the link by the digest. A
   link that keeps failing is given up after :data:`MAX_FETCH_ATTEMPTS` and reported.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from sqlalchemy import Text, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import TrackingEvent
from courier.db.engine import SessionFactory, transaction
from courier.db.models import Delivery, Proof, Shipment
from courier.domain.handover import classify_relation
from courier.services import items

log = structlog.get_logger()

MAX_FETCH_ATTEMPTS = 5
MAX_ARTEFACT_BYTES = 10 * 1024 * 1024
LOOKBACK = timedelta(days=7)  # signed links do not live longer than this
_TIMEOUT = aiohttp.ClientTimeout(total=20, connect=5, sock_connect=5, sock_read=15)


async def record_proof(
    session: AsyncSession, shipment: Shipment, event: TrackingEvent, *, now: datetime
) -> Proof:
    """The Proof row for a delivered event (artefacts still to fetch)."""
    proof = Proof(
        shipment_id=shipment.id,
        receiver_name=event.receiver_name[:120],
        relation=event.relation[:120],
        relation_kind=classify_relation(event.relation).value,
        occurred_at=event.occurred_at,
        artefacts=[
            {"kind": a.kind, "url": a.url, "state": "pending", "attempts": 0}
            for a in event.artefacts
        ],
        created_at=now,
    )
    session.add(proof)
    await session.flush()
    return proof


# --------------------------------------------------------------------------------------------
# Content-addressed store


def artefact_path(root: str | os.PathLike[str], sha256: str) -> Path:
    """``<root>/ab/abcdef…``: two-level fan-out keeps directories small."""
    return Path(root) / sha256[:2] / sha256


def store_bytes(root: str | os.PathLike[str], data: bytes) -> str:
    """Write ``data`` under its sha256 (atomically, once); return the digest."""
    digest = hashlib.sha256(data).hexdigest()
    path = artefact_path(root, digest)
    if path.exists():
        return digest
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str


class FetchFailed(Exception):
    """The link did not give us the artefact; ``final`` when retrying cannot help."""

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(message)
        self.final = final


async def download(session: aiohttp.ClientSession, url: str) -> Fetched:
    try:
        async with session.get(url, timeout=_TIMEOUT, allow_redirects=False) as reply:
            if reply.status in (401, 403, 404, 410):
                raise FetchFailed(f"link refused with HTTP {reply.status}", final=True)
            if reply.status != 200:
                raise FetchFailed(f"HTTP {reply.status}", final=False)
            data = await reply.content.read(MAX_ARTEFACT_BYTES + 1)
            if len(data) > MAX_ARTEFACT_BYTES:
                raise FetchFailed("artefact larger than the limit", final=True)
            return Fetched(data, reply.content_type or "application/octet-stream")
    except (aiohttp.ClientError, TimeoutError) as err:
        raise FetchFailed(type(err).__name__, final=False) from err


# --------------------------------------------------------------------------------------------
# Fetching pending artefacts


async def _pending(sessions: SessionFactory, now: datetime, limit: int) -> list[Proof]:
    async with sessions() as session:
        result = await session.execute(
            select(Proof)
            .where(
                Proof.created_at >= now - LOOKBACK,
                # JSON as text on both backends: a cheap pre-filter, checked exactly below
                cast(Proof.artefacts, Text).like('%"pending"%'),
            )
            .order_by(Proof.id)
            .limit(limit * 5)
        )
        found = [
            p for p in result.scalars() if any(a.get("state") == "pending" for a in p.artefacts)
        ]
    return found[:limit]


async def fetch_pending(
    sessions: SessionFactory,
    store: str | os.PathLike[str],
    *,
    now: datetime,
    http: aiohttp.ClientSession | None = None,
    limit: int = 20,
) -> int:
    """Fetch and store every pending artefact of recent proofs; the number stored."""
    proofs = await _pending(sessions, now, limit)
    if not proofs:
        return 0
    own = http is None
    client = http or aiohttp.ClientSession(timeout=_TIMEOUT, trust_env=False)
    stored = 0
    try:
        for proof in proofs:
            outcomes = [await _fetch_one(client, store, a) for a in proof.artefacts]
            stored += sum(1 for o in outcomes if o.get("state") == "stored")
            await _save(sessions, proof.id, proof.artefacts, outcomes, now)
    finally:
        if own:
            await client.close()
    return stored


async def _fetch_one(
    client: aiohttp.ClientSession, store: str | os.PathLike[str], artefact: dict[str, Any]
) -> dict[str, Any]:
    if artefact.get("state") != "pending":
        return artefact
    attempts = int(artefact.get("attempts", 0)) + 1
    try:
        fetched = await download(client, str(artefact["url"]))
    except FetchFailed as err:
        if err.final or attempts >= MAX_FETCH_ATTEMPTS:
            # the link is useless now: drop it, keep why
            return {"kind": artefact["kind"], "state": "failed", "error": str(err),
                    "attempts": attempts}
        return {**artefact, "attempts": attempts, "error": str(err)}
    digest = await asyncio.to_thread(store_bytes, store, fetched.data)
    return {
        "kind": artefact["kind"],
        "state": "stored",
        "sha256": digest,
        "size": len(fetched.data),
        "content_type": fetched.content_type,
        "attempts": attempts,
    }


async def _save(
    sessions: SessionFactory,
    proof_id: int,
    before: Sequence[dict[str, Any]],
    after: list[dict[str, Any]],
    now: datetime,
) -> None:
    async with transaction(sessions) as session:
        proof = await session.get(Proof, proof_id, with_for_update=True)
        if proof is None or proof.artefacts != list(before):
            return  # another worker got there first: its result stands
        for artefact in after:
            if artefact.get("state") == "stored" and "fetched_at" not in artefact:
                artefact["fetched_at"] = now.isoformat()
        proof.artefacts = after  # a new list: the JSON column sees the change
        failed = [a for a in after if a.get("state") == "failed"]
        if failed:
            shipment = await session.get(Shipment, proof.shipment_id)
            delivery = await session.get(Delivery, shipment.delivery_id) if shipment else None
            if shipment is not None and delivery is not None:
                await items.open_exception(
                    session,
                    office_id=delivery.office_id,
                    delivery_id=delivery.id,
                    shipment_id=shipment.id,
                    kind="pod_missing",
                    detail=f"{len(failed)} proof-of-delivery artefact(s) could not be fetched "
                    "before the courier's link stopped working",
                    next_step="ask the courier for the photo/signature under the contract",
                    dedupe_key=f"pod_missing:{proof.id}",
                    now=now,
                )
    log.info(
        "pod_artefacts", proof_id=proof_id,
        stored=sum(1 for a in after if a.get("state") == "stored"),
        failed=sum(1 for a in after if a.get("state") == "failed"),
    )
