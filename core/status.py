"""The one shipment-status vocabulary; each courier's raw codes are kept beside it."""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """Shipment status: the one vocabulary (DESIGN §6). Raw courier codes are kept beside it."""

    BOOKING = "booking"  # ours only: intent committed, courier not yet confirmed
    BOOKING_FAILED = "booking_failed"  # ours only: the courier refused the order for good
    BOOKED = "booked"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERY_FAILED = "delivery_failed"
    DELIVERED = "delivered"
    RETURNING = "returning"
    RETURNED = "returned"
    CANCELLED = "cancelled"
    LOST = "lost"
