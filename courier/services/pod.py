"""Proof of delivery: who received the passport, and the courier's photo and signature, kept.

Two steps, so that a crash between them loses nothing:

1. :func:`record_proof` runs inside the tracking transaction that sees the delivered event: it
   writes a :class:`~courier.db.models.Proof` with the receiver's name, the relation as the
   courier wrote it and its category, and each artefact link marked ``pending``.
2. :func:`fetch_pending` (called by the tracking and inbox loops) downloads pending artefacts
   while their signed links still work, stores each file content-addressed by sha256 under
   ``settings.pod_store`` (written to a temporary file, then renamed: a reader never sees half a
   file, and storing the same bytes twice is a no-op), and replaces the link by the digest.

A link that fails is tried again later, each artefact on its own schedule (the next try time
is kept in the artefact's JSON as ``next_try_at``; delays grow exponentially: the one backoff
policy, core/backoff.py), and given up (``failed``) when the link refuses for good, when
the next try would fall after the link stops working (its ``expires`` query parameter, at most
:data:`LOOKBACK` after the delivery), or after :data:`MAX_FETCH_ATTEMPTS`. A given-up artefact
opens one ``pod_missing`` exception item for the office.

The links come from the courier, so they are not trusted: only ``http(s)`` URLs whose host is
allowed for that courier are fetched (``pod_hosts`` in the courier's settings; by default the
hosts its descriptor names (adapters/registry.py) and the hosts of its own API URLs). Any
other link is refused without a request (server-side request forgery: a push could otherwise
make the worker fetch internal addresses).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import structlog
from sqlalchemy import Text, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters import registry
from adapters.base import TrackingEvent
from adapters.http import TransportPolicy, shared_session
from core.backoff import exponential_backoff
from courier.db.engine import SessionFactory, transaction
from courier.db.models import Delivery, Proof, Shipment
from courier.domain.exception_kinds import ExceptionKind
from courier.domain.handover import classify_relation
from courier.services import items

log = structlog.get_logger()

MAX_FETCH_ATTEMPTS = 12
MAX_ARTEFACT_BYTES = 10 * 1024 * 1024
LOOKBACK = timedelta(days=7)  # signed links do not live longer than this
# waits between tries of one link (clock seconds): 1, 2, 4 … minutes, at most 3 hours
RETRY_FIRST = 60.0
RETRY_CAP = 3 * 3600.0
# the couriers' own timeouts (adapters/http.py), set on every request
_POLICY = TransportPolicy()
_TIMEOUT = aiohttp.ClientTimeout(
    total=_POLICY.total_timeout,
    connect=_POLICY.connect_timeout,
    sock_connect=_POLICY.connect_timeout,
    sock_read=_POLICY.read_timeout,
)


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
# Which links may be fetched, and until when


def allowed_hosts(couriers: Mapping[str, Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """Per courier code, the host names its POD links may point at: ``pod_hosts`` when set,
    else the hosts of the courier's own API URLs (``base_url``, ``track_url`` …)."""
    out: dict[str, frozenset[str]] = {}
    for code, settings in couriers.items():
        configured = settings.get("pod_hosts")
        if configured is not None:
            out[code] = frozenset(str(h).lower() for h in configured)
            continue
        known = registry.DESCRIPTORS.get(code)
        hosts = set(known.pod_hosts if known else ())
        for key, value in settings.items():
            if key.endswith("url") and isinstance(value, str):
                host = urlsplit(value).hostname
                if host:
                    hosts.add(host.lower())
        out[code] = frozenset(hosts)
    return out


def link_allowed(url: str, hosts: Collection[str]) -> bool:
    """An ``http(s)`` URL whose host is one of ``hosts`` (credentials in the URL refused)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host or "@" in parts.netloc:
        return False
    return host.lower() in hosts


def link_deadline(url: str, recorded_at: datetime) -> datetime:
    """When the link stops working: its ``expires`` (epoch seconds) when it says so, never
    later than :data:`LOOKBACK` after the proof was recorded."""
    limit = recorded_at + LOOKBACK
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        return limit
    for key in ("expires", "Expires"):
        for value in query.get(key, []):
            try:
                expires = datetime.fromtimestamp(int(value), UTC)
            except (ValueError, OverflowError, OSError):
                continue
            return min(limit, expires)
    return limit


def _next_try(artefact: dict[str, Any]) -> datetime | None:
    raw = artefact.get("next_try_at")
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(str(raw))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def is_due(artefact: dict[str, Any], now: datetime) -> bool:
    """Pending and not waiting for its next try."""
    if artefact.get("state") != "pending":
        return False
    when = _next_try(artefact)
    return when is None or when <= now


# --------------------------------------------------------------------------------------------
# Fetching pending artefacts


@dataclass(frozen=True)
class _Pending:
    proof: Proof
    courier_code: str


async def _pending(sessions: SessionFactory, now: datetime, limit: int) -> list[_Pending]:
    """Recent proofs with an artefact due now, oldest first. Proofs waiting for a later try are
    filtered here, not by a LIMIT before the filter: they must not hide a due one."""
    async with sessions() as session:
        result = await session.execute(
            select(Proof, Shipment.courier_code)
            .join(Shipment, Shipment.id == Proof.shipment_id)
            .where(
                Proof.created_at >= now - LOOKBACK,
                # JSON as text on both backends: a cheap pre-filter, checked exactly below
                cast(Proof.artefacts, Text).like('%"pending"%'),
            )
            .order_by(Proof.id)
        )
        found = [
            _Pending(proof, str(code))
            for proof, code in result.all()
            if any(is_due(a, now) for a in proof.artefacts)
        ]
    return found[:limit]


async def fetch_pending(
    sessions: SessionFactory,
    store: str | os.PathLike[str],
    *,
    now: datetime,
    hosts: Mapping[str, Collection[str]],
    http: aiohttp.ClientSession | None = None,
    limit: int = 20,
) -> int:
    """Fetch and store the artefacts of recent proofs that are due for a try; the number
    stored. ``hosts``: per courier code, the hosts its links may point at
    (:func:`allowed_hosts`). ``http`` defaults to the process's shared session."""
    pending = await _pending(sessions, now, limit)
    if not pending:
        return 0
    client = http or shared_session()
    stored = 0
    for item in pending:
        proof = item.proof
        allowed = hosts.get(item.courier_code, frozenset())
        outcomes = [
            await _fetch_one(
                client,
                store,
                a,
                allowed=allowed,
                recorded_at=proof.created_at,
                now=now,
                proof_id=proof.id,
                courier=item.courier_code,
            )
            for a in proof.artefacts
        ]
        stored += sum(
            1
            for o, a in zip(outcomes, proof.artefacts, strict=True)
            if o.get("state") == "stored" and a.get("state") != "stored"
        )
        if outcomes != list(proof.artefacts):
            await _save(sessions, proof.id, proof.artefacts, outcomes, now)
    return stored


def _failed(artefact: dict[str, Any], error: str, attempts: int) -> dict[str, Any]:
    # the link is useless now: drop it, keep why
    return {"kind": artefact["kind"], "state": "failed", "error": error, "attempts": attempts}


async def _fetch_one(
    client: aiohttp.ClientSession,
    store: str | os.PathLike[str],
    artefact: dict[str, Any],
    *,
    allowed: Collection[str],
    recorded_at: datetime,
    now: datetime,
    proof_id: int,
    courier: str,
) -> dict[str, Any]:
    if not is_due(artefact, now):
        return artefact
    url = str(artefact.get("url", ""))
    attempts = int(artefact.get("attempts", 0))
    if not link_allowed(url, allowed):
        log.warning(
            "pod.link_refused",
            proof_id=proof_id,
            courier=courier,
            scheme=urlsplit(url).scheme if url else "",
        )
        return _failed(
            artefact,
            f"link refused: not an http(s) link to a host allowed for {courier} (pod_hosts)",
            attempts,
        )
    deadline = link_deadline(url, recorded_at)
    if now >= deadline:
        return _failed(artefact, "the link expired before it could be fetched", attempts)
    attempts += 1
    try:
        fetched = await download(client, url)
    except FetchFailed as err:
        wait = exponential_backoff(
            attempts - 1, initial=RETRY_FIRST, cap=RETRY_CAP, jitter=RETRY_FIRST / 2
        )
        retry_at = now + timedelta(seconds=wait)
        if err.final or attempts >= MAX_FETCH_ATTEMPTS:
            return _failed(artefact, str(err), attempts)
        if retry_at >= deadline:
            return _failed(artefact, f"{err}; the link expires before the next try", attempts)
        return {
            **artefact,
            "attempts": attempts,
            "error": str(err),
            "next_try_at": retry_at.isoformat(),
        }
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
                    kind=ExceptionKind.POD_MISSING,
                    detail=f"{len(failed)} proof-of-delivery artefact(s) could not be kept: "
                    + "; ".join(f"{a['kind']}: {a.get('error', 'failed')}" for a in failed),
                    dedupe_key=f"pod_missing:{proof.id}",
                    now=now,
                )
    log.info(
        "pod_artefacts",
        proof_id=proof_id,
        stored=sum(1 for a in after if a.get("state") == "stored"),
        failed=sum(1 for a in after if a.get("state") == "failed"),
    )
