"""The small pure vocabulary every layer shares: the one clock (and WIB), the normalised shipment
Status, the one backoff policy. No I/O, no knowledge of couriers or of our database."""

from __future__ import annotations
