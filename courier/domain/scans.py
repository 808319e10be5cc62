"""One scan, one event (issue 9): what makes two courier events the same scan.

A courier reports one scan through two doors with different words: J&T's push says ``10 Pickup
scan`` where its tracking history says ``100 Paket telah di pick up oleh Sprinter J&T`` for the
same moment at the same place. Comparing the raw code and text stores that scan twice and the
applicant's page lists the step twice, so a scan is identified by its normalised content: the
shipment (one waybill), the status it means, when it happened and where. An unmapped code has no
status to compare, so its raw code and text stand in for it (two unknown codes stay two events).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from core.status import Status


def normalised_place(location: str) -> str:
    """Where, compared without case or spacing differences (``"KDR  Hub"`` = ``"kdr hub"``)."""
    return " ".join(location.split()).casefold()


def scan_key(
    shipment_id: int,
    status: Status | None,
    occurred_at: datetime,
    location: str,
    *,
    raw_code: str = "",
    raw_text: str = "",
) -> str:
    """The stored event's unique key: equal for the push and the poll copy of one scan.

    Times compare in UTC to the second (couriers give wall-clock seconds; a push and a poll of
    one scan parse to the same instant). ``shipment_id`` stands for the waybill: a shipment has
    one, and couriers reuse waybills over the years."""
    if occurred_at.tzinfo is None:
        raise ValueError("occurred_at must be aware")
    what = status.value if status is not None else f"raw:{raw_code}|{raw_text}"
    when = occurred_at.astimezone(UTC).replace(microsecond=0).isoformat()
    basis = "|".join((str(shipment_id), what, when, normalised_place(location)))
    return hashlib.sha256(basis.encode()).hexdigest()
