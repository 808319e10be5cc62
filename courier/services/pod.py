"""Proof of delivery: who received the passport, and the courier's photo and signature, kept.

Two steps, so that a crash between them loses nothing:

1. :func:`record_proof` runs inside the tracking transaction that sees the delivered event: it
   writes a :class:`~courier.db.models.Proof` with the receiver's name, the relation as the
   courier wrote it and its category, and each artefact link marked ``pending``.
2. :func:`fetch_pending` (called by the tracking and inbox loops) downloads pending artefacts
   while their signed links still work, stores each file content-addressed by sha256 under
   the configured artefact store (courier/services/artefacts.py: the local folder
   ``settings.pod_store`` or the database; storing the same bytes twice is a no-op), and
   replaces the link by the digest.

A link that fails is tried again later, each artefact on its own schedule (the next try time
is kept in the artefact's JSON as ``next_try_at``; delays grow exponentially: the one backoff
policy, core/backoff.py), and given up (``failed``) when the link refuses for good, when
the next try would fall after the link stops working (its ``expires`` query parameter, at most
:data:`LOOKBACK` after the delivery), or after :data:`MAX_FETCH_ATTEMPTS`. A given-up artefact
opens one ``pod_missing`` exception item for the office.

The links come from the courier, so they are not trusted (server-side request forgery: a push
could otherwise make the worker fetch internal addresses, our own /metrics or a database port):

* only a link whose exact scheme, host and port is allowed for that courier is fetched
  (:func:`allowed_origins`: ``pod_origins`` in the courier's settings; by default the origins
  its descriptor names (adapters/registry.py) and those of its own API URLs); credentials in a
  link are refused;
* the host may not be, or resolve to, a private, loopback, link-local or otherwise non-public
  address unless its allowlist entry says ``allow_private`` (a simulator on this machine). The
  check sits in the HTTP client's resolver, so the address checked is the address connected to;
* redirects are followed (at most :data:`MAX_REDIRECTS`) only to allowed origins;
* only JPEG, PNG, WebP or PDF is kept: the declared ``Content-Type`` and the file's first bytes
  must agree; and no more than ``pod_max_bytes`` is read (a declared larger length is refused
  before reading).

A link refused for any of these reasons fails for good, with the reason kept in the artefact
and in the office's ``pod_missing`` exception item; the worker carries on.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from sqlalchemy import Text, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters import registry
from adapters.base import PodOrigin, TrackingEvent
from adapters.http import USER_AGENT, TransportPolicy
from core.backoff import exponential_backoff
from courier.db.engine import SessionFactory, transaction
from courier.db.models import Delivery, Proof, Shipment
from courier.domain.exception_kinds import ExceptionKind
from courier.domain.handover import classify_relation
from courier.services import items
from courier.services.artefacts import ArtefactStore, LocalArtefacts, artefact_path, store_bytes

log = structlog.get_logger()

MAX_FETCH_ATTEMPTS = 12
DEFAULT_MAX_BYTES = 5 * 1024 * 1024  # as the pod_max_bytes setting's default
MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# what a photo or a signature may be: declared type -> how its file starts
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/webp": (b"RIFF",),  # and "WEBP" at offset 8, checked below
    "application/pdf": (b"%PDF-",),
}
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
# Content-addressed store: courier/services/artefacts.py (``artefact_path`` and ``store_bytes``
# are the local folder's, kept here by name for their callers)

__all__ = ["artefact_path", "store_bytes"]


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str


class FetchFailed(Exception):
    """The link did not give us the artefact; ``final`` when retrying cannot help."""

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(message)
        self.final = final


def sniffed_type(data: bytes) -> str | None:
    """The accepted type ``data`` starts like, or None."""
    for content_type, starts in _SIGNATURES.items():
        if data.startswith(starts) and (content_type != "image/webp" or data[8:12] == b"WEBP"):
            return content_type
    return None


def _non_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone is no part of it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global


class PrivateAddressRefused(OSError):
    """The link's host is or resolves to a non-public address its allowlist entry does not
    allow (an OSError: aiohttp's connector passes those on as the connection's cause)."""


class _GuardedResolver(AbstractResolver):
    """Resolves as usual, then refuses a host with any non-public address unless its origin
    allows private addresses: the addresses checked are the ones connected to."""

    def __init__(self, private_ok: Collection[tuple[str, int]]) -> None:
        self._inner = DefaultResolver()
        self._private_ok = frozenset(private_ok)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if (host.lower(), port) not in self._private_ok and any(
            _non_public(r["host"]) for r in found
        ):
            raise PrivateAddressRefused(f"{host} resolves to a non-public address")
        return found

    async def close(self) -> None:
        await self._inner.close()


def _client(origins: Collection[PodOrigin]) -> aiohttp.ClientSession:
    """A session whose every connection passes the private-address check."""
    private_ok = {(o.host, o.port) for o in origins if o.allow_private}
    return aiohttp.ClientSession(
        timeout=_TIMEOUT,
        connector=aiohttp.TCPConnector(
            resolver=_GuardedResolver(private_ok), use_dns_cache=False, limit=4
        ),
        headers={"User-Agent": USER_AGENT},
        trust_env=False,  # never through a proxy from the environment
    )


def allowed_origin(url: str, origins: Collection[PodOrigin]) -> PodOrigin | None:
    """The allowlist entry ``url`` falls under, or None. A host written as an address is
    checked here (no resolver sees it): non-public only where the entry allows it."""
    wanted = PodOrigin.of_url(url)
    if wanted is None:
        return None
    for origin in origins:
        if origin.same_place(wanted):
            try:
                literal = _non_public(wanted.host)
            except ValueError:
                return origin  # a name: the resolver checks what it resolves to
            return origin if origin.allow_private or not literal else None
    return None


async def download(
    session: aiohttp.ClientSession,
    url: str,
    origins: Collection[PodOrigin] = (),
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Fetched:
    """The artefact at ``url`` (already allowed), following redirects only to ``origins``."""
    for _ in range(MAX_REDIRECTS + 1):
        try:
            async with session.get(url, timeout=_TIMEOUT, allow_redirects=False) as reply:
                if reply.status in _REDIRECTS:
                    target = reply.headers.get("Location", "")
                    url = urljoin(str(reply.url), target) if target else ""
                    if not url or allowed_origin(url, origins) is None:
                        raise FetchFailed("redirected to a link not allowed", final=True)
                    continue
                return await _read(reply, max_bytes)
        except aiohttp.ClientConnectorError as err:
            if isinstance(err.os_error, PrivateAddressRefused):
                raise FetchFailed(
                    "link refused: its host resolves to a non-public address", final=True
                ) from err
            raise FetchFailed(type(err).__name__, final=False) from err
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            raise FetchFailed(type(err).__name__, final=False) from err
    raise FetchFailed(f"more than {MAX_REDIRECTS} redirects", final=True)


async def _read(reply: aiohttp.ClientResponse, max_bytes: int) -> Fetched:
    if reply.status in (401, 403, 404, 410):
        raise FetchFailed(f"link refused with HTTP {reply.status}", final=True)
    if reply.status != 200:
        raise FetchFailed(f"HTTP {reply.status}", final=False)
    declared = (reply.content_type or "").lower()
    if declared not in _SIGNATURES:
        # the type is named, never the body: it could hold anything
        raise FetchFailed(f"not an image or a PDF (Content-Type {declared[:60]})", final=True)
    too_large = f"larger than the limit of {max_bytes} bytes (pod_max_bytes)"
    if reply.content_length is not None and reply.content_length > max_bytes:
        raise FetchFailed(too_large, final=True)
    data = bytearray()
    async for chunk in reply.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > max_bytes:
            raise FetchFailed(too_large, final=True)  # stop reading: the rest is not wanted
    if sniffed_type(bytes(data[:16])) != declared:
        raise FetchFailed(f"the file is not the {declared} it is declared as", final=True)
    return Fetched(bytes(data), declared)


# --------------------------------------------------------------------------------------------
# Which links may be fetched, and until when


def _configured(entries: Sequence[Any]) -> frozenset[PodOrigin]:
    out = set()
    for entry in entries:
        if isinstance(entry, Mapping):
            origin = PodOrigin.of_url(
                str(entry.get("origin", "")), allow_private=bool(entry.get("allow_private"))
            )
        else:
            origin = PodOrigin.of_url(str(entry))
        if origin is not None:
            out.add(origin)
    return frozenset(out)


def allowed_origins(couriers: Mapping[str, Mapping[str, Any]]) -> dict[str, frozenset[PodOrigin]]:
    """Per courier code, where its POD links may point: ``pod_origins`` when set, else the
    origins its descriptor names and those of its own API URLs (``base_url``, ``track_url`` …),
    public addresses only."""
    out: dict[str, frozenset[PodOrigin]] = {}
    for code, settings in couriers.items():
        configured = settings.get("pod_origins")
        if configured is not None:
            out[code] = _configured(configured)
            continue
        known = registry.DESCRIPTORS.get(code)
        origins = set(known.pod_origins if known else ())
        for key, value in settings.items():
            if key.endswith("url") and isinstance(value, str):
                origin = PodOrigin.of_url(value)
                if origin is not None:
                    origins.add(origin)
        out[code] = frozenset(origins)
    return out


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
    store: ArtefactStore | str | os.PathLike[str],
    *,
    now: datetime,
    origins: Mapping[str, Collection[PodOrigin]],
    max_bytes: int = DEFAULT_MAX_BYTES,
    limit: int = 20,
) -> int:
    """Fetch and store the artefacts of recent proofs that are due for a try; the number
    stored. ``origins``: per courier code, where its links may point (:func:`allowed_origins`);
    ``max_bytes``: the largest artefact kept (``pod_max_bytes``)."""
    pending = await _pending(sessions, now, limit)
    if not pending:
        return 0
    if isinstance(store, str | os.PathLike):
        store = LocalArtefacts(Path(store))
    clients: dict[str, aiohttp.ClientSession] = {}  # one per courier: its own private-address rule
    stored = 0
    try:
        for item in pending:
            proof = item.proof
            allowed = frozenset(origins.get(item.courier_code, ()))
            client = clients.get(item.courier_code)
            if client is None:
                client = clients[item.courier_code] = _client(allowed)
            outcomes = [
                await _fetch_one(
                    client,
                    store,
                    a,
                    allowed=allowed,
                    max_bytes=max_bytes,
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
    finally:
        for client in clients.values():
            await client.close()
    return stored


def _failed(artefact: dict[str, Any], error: str, attempts: int) -> dict[str, Any]:
    # the link is useless now: drop it, keep why
    return {"kind": artefact["kind"], "state": "failed", "error": error, "attempts": attempts}


async def _fetch_one(
    client: aiohttp.ClientSession,
    store: ArtefactStore,
    artefact: dict[str, Any],
    *,
    allowed: Collection[PodOrigin],
    max_bytes: int,
    recorded_at: datetime,
    now: datetime,
    proof_id: int,
    courier: str,
) -> dict[str, Any]:
    if not is_due(artefact, now):
        return artefact
    url = str(artefact.get("url", ""))
    attempts = int(artefact.get("attempts", 0))
    if allowed_origin(url, allowed) is None:
        log.warning(
            "pod.link_refused",
            proof_id=proof_id,
            courier=courier,
            scheme=urlsplit(url).scheme if url else "",
        )
        return _failed(
            artefact,
            f"link refused: its scheme, host and port are not allowed for {courier} "
            "(pod_origins), or its host is a non-public address",
            attempts,
        )
    deadline = link_deadline(url, recorded_at)
    if now >= deadline:
        return _failed(artefact, "the link expired before it could be fetched", attempts)
    attempts += 1
    try:
        fetched = await download(client, url, allowed, max_bytes=max_bytes)
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
    digest = await store.put(fetched.data)
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
