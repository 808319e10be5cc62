"""Where artefacts are kept: the couriers' proof-of-delivery photos and signatures, and the
courier agents' manifest signatures. One interface, :class:`ArtefactStore`, two stores chosen by
``storage.artefacts``:

* ``local`` (the default): files under ``pod_store``, by sha256 (:func:`store_bytes`: written
  to a temporary file, then renamed: a reader never sees half a file). Only the machine that
  fetched a file has it: for one machine, or a folder every machine mounts.
* ``database``: a row per artefact in the ``artefacts`` table of the same database (bytea on
  PostgreSQL, a BLOB on SQLite). Any ``serve`` on any machine can show what any worker fetched,
  and the database backup holds them.

Both are content-addressed and write once: storing the same bytes again is a no-op, so a put
needs no transaction with the row that refers to the digest (a put whose referring row never
commits leaves an unreferenced artefact, harmless).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import Clock
from courier.context import AppContext
from courier.db.engine import one_statement, transaction
from courier.db.models import Delivery, Proof, Shipment, StoredArtefact
from courier.services.staff import Caller

_SHA256 = re.compile(r"[0-9a-f]{64}")


class ArtefactStore(Protocol):
    async def put(self, data: bytes) -> str:
        """Keep ``data``; its sha256 (hex), which :meth:`get` takes."""

    async def get(self, sha256: str) -> bytes | None:
        """The bytes kept under ``sha256``, or None."""

    async def exists(self, sha256: str) -> bool: ...


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
class LocalArtefacts:
    root: Path

    async def put(self, data: bytes) -> str:
        return await asyncio.to_thread(store_bytes, self.root, data)

    async def get(self, sha256: str) -> bytes | None:
        if not _SHA256.fullmatch(sha256):
            return None  # never a path built from anything but a digest
        path = artefact_path(self.root, sha256)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def exists(self, sha256: str) -> bool:
        return bool(_SHA256.fullmatch(sha256)) and artefact_path(self.root, sha256).is_file()


_TABLE: Table = StoredArtefact.__table__  # type: ignore[assignment]
_PUT = {
    name: dialect.insert(_TABLE).on_conflict_do_nothing(index_elements=[_TABLE.c.sha256])
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


@dataclass(frozen=True)
class DatabaseArtefacts:
    engine: AsyncEngine
    clock: Clock

    async def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        async with one_statement(self.engine) as conn:
            await conn.execute(
                _PUT[conn.dialect.name],
                {"sha256": digest, "size": len(data), "data": data, "created_at": self.clock.now()},
            )
        return digest

    async def get(self, sha256: str) -> bytes | None:
        async with one_statement(self.engine) as conn:
            data = await conn.scalar(select(_TABLE.c.data).where(_TABLE.c.sha256 == sha256))
        return bytes(data) if data is not None else None

    async def exists(self, sha256: str) -> bool:
        async with one_statement(self.engine) as conn:
            found = await conn.scalar(select(_TABLE.c.size).where(_TABLE.c.sha256 == sha256))
        return found is not None


def store(ctx: AppContext) -> ArtefactStore:
    """The store ``storage.artefacts`` names (validated with the configuration)."""
    if ctx.settings.artefact_store == "database":
        return DatabaseArtefacts(ctx.engine, ctx.clock)
    return LocalArtefacts(Path(ctx.settings.pod_store))


# --------------------------------------------------------------------------------------------
# Showing a proof-of-delivery artefact to the office


@dataclass(frozen=True, slots=True)
class ArtefactView:
    kind: str
    content_type: str
    data: bytes


async def proof_artefact(
    ctx: AppContext, caller: Caller, delivery_id: int, sha256: str
) -> ArtefactView | None:
    """One stored artefact of a proof of delivery of one of the caller's office's deliveries;
    None when the delivery is not the office's, no proof of it names that digest, or the store
    does not have it (yet)."""
    if not _SHA256.fullmatch(sha256):
        return None
    async with transaction(ctx.sessions) as session:
        proofs = await session.scalars(
            select(Proof)
            .join(Shipment, Shipment.id == Proof.shipment_id)
            .join(Delivery, Delivery.id == Shipment.delivery_id)
            .where(Delivery.id == delivery_id, Delivery.office_id == caller.office_id)
        )
        named = [
            a
            for p in proofs
            for a in p.artefacts
            if a.get("state") == "stored" and a.get("sha256") == sha256
        ]
    if not named:
        return None
    data = await store(ctx).get(sha256)
    if data is None:
        return None
    artefact = named[0]
    return ArtefactView(
        kind=str(artefact.get("kind", "")),
        content_type=str(artefact.get("content_type") or "application/octet-stream"),
        data=data,
    )
