"""One scan, one event: tracking events keyed on the normalised scan, other copies' raw kept

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 01:40:00.000000

Until now an event's key hashed its raw code and text, so the push copy and the poll copy of one
scan (different words for the same moment and place) were two rows. The key becomes the
normalised scan (shipment, status, time to the second, place without case or spacing; an
unmapped code keeps its raw code and text), frozen here as it was written (courier.domain.scans).
Rows that become one scan merge into the first stored: the later copies' raw forms move into its
``other_raws`` (one per further source, as the service keeps them from now on) and their rows go,
so the history lists each step once and no raw answer is lost.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _aware(value: Any) -> datetime:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _key(row: Any) -> str:
    what = row.status if row.status is not None else f"raw:{row.raw_code}|{row.raw_text}"
    when = _aware(row.occurred_at).replace(microsecond=0).isoformat()
    place = " ".join((row.location or "").split()).casefold()
    return hashlib.sha256("|".join((str(row.shipment_id), what, when, place)).encode()).hexdigest()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("other_raws", sa.JSON(), server_default=sa.text("'[]'"), nullable=False)
        )
    bind = op.get_bind()
    events = sa.table(
        "tracking_events",
        sa.column("id", sa.BigInteger()),
        sa.column("dedupe_key", sa.String()),
        sa.column("other_raws", sa.JSON()),
        sa.column("applied", sa.Boolean()),
    )
    rows = bind.execute(
        sa.text(
            "SELECT id, shipment_id, source, raw_code, raw_text, status, occurred_at, "
            "received_at, location, applied, raw FROM tracking_events ORDER BY id"
        )
    ).all()
    first: dict[str, Any] = {}  # new key -> the first row's id, sources, copies, applied
    for row in rows:
        key = _key(row)
        kept = first.get(key)
        if kept is None:
            first[key] = {"id": row.id, "sources": {row.source}, "copies": [], "applied": False}
            # first give every surviving row a temporary unique key: a new key may equal no old
            # one, but two renames in one pass must never collide with a row not yet renamed
            bind.execute(
                events.update().where(events.c.id == row.id).values(dedupe_key=f"tmp{row.id}")
            )
            continue
        if row.source not in kept["sources"]:
            kept["sources"].add(row.source)
            kept["copies"].append(
                {
                    "source": row.source,
                    "raw_code": row.raw_code,
                    "raw_text": row.raw_text,
                    "raw": _json(row.raw),
                    "location": row.location,
                    "received_at": _aware(row.received_at).isoformat(),
                }
            )
        kept["applied"] = kept["applied"] or bool(row.applied)
        bind.execute(events.delete().where(events.c.id == row.id))
    for key, kept in first.items():
        values: dict[str, Any] = {"dedupe_key": key, "other_raws": kept["copies"]}
        if kept["applied"]:
            values["applied"] = True
        bind.execute(events.update().where(events.c.id == kept["id"]).values(**values))


def downgrade() -> None:
    # the merged copies stay merged (their raw forms go with the column); keys stay unique
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.drop_column("other_raws")
