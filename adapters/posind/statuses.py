"""Pos Indonesia ``eventName`` → our status, as data (couriers.md §2).

Confirmed across several integrators' clients [C-3p]: POSTING LOKET, MANIFEST SERAH,
MANIFEST TERIMA, PROSES ANTAR, SELESAI ANTAR. ``SELESAI ANTAR`` ("delivery attempt finished")
is delivered *or* failed: :func:`adapters.posind.codec.split_selesai_antar` decides from the
description, so it is not in this table.

PROSES RETUR / SELESAI RETUR are **our inference [I]**: no public capture shows how Pos reports a
return to sender. Our simulator emits them; replace them with the real words when a real capture
is available. "Puri Kirim" / "Puri Terima" were seen once, meaning unknown: left unmapped on
purpose. Anything not here maps to None: stored raw, reported as unmapped, never guessed.
"""

from __future__ import annotations

from types import MappingProxyType

from core.status import Status

SELESAI_ANTAR = "SELESAI ANTAR"

EVENT_STATUS: MappingProxyType[str, Status] = MappingProxyType(
    {
        "POSTING LOKET": Status.PICKED_UP,  # accepted at the counter / by the pickup courier
        "MANIFEST SERAH": Status.IN_TRANSIT,  # handed on towards "KANTOR TUJUAN"
        "MANIFEST TERIMA": Status.IN_TRANSIT,  # received at a hub or the delivering office
        "PROSES ANTAR": Status.OUT_FOR_DELIVERY,
        "PROSES RETUR": Status.RETURNING,  # [I]
        "SELESAI RETUR": Status.RETURNED,  # [I]
    }
)


def status_for(event_name: str) -> Status | None:
    """The status for an ``eventName`` other than SELESAI ANTAR; None when unknown."""
    return EVENT_STATUS.get(" ".join(event_name.split()).upper())
