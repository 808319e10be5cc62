"""Kilat: a made-up third courier, as small as a courier can be, to prove that adding one is
its package plus one registry line (``registry.registered(kilat.DESCRIPTOR)``).

Its wire API (``tests/kilat/server.py``): ``POST /orders {"ref", "to", "service"}`` →
``201 {"awb"}``, ``409`` for a reference it already has, ``422`` for a service it does not
run; ``GET /orders/<ref>`` → ``200 {"awb"}`` or 404.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adapters.base import (
    Booking,
    Capabilities,
    CourierAdapter,
    CourierDescriptor,
    CourierNames,
    CourierRejected,
    NotSupported,
    OutcomeUnknown,
    PushReply,
    ShipmentOrder,
    TrackingEvent,
    TrackOutcome,
)
from adapters.http import CourierTransport

CODE = "kilat"
CAPABILITIES = Capabilities(
    cancel=False, push=False, find=True, track_batch_size=1, dedupes_reference=True
)


class KilatAdapter:
    code = CODE

    def __init__(self, settings: Mapping[str, Any], transport: CourierTransport) -> None:
        self.base_url = str(settings["base_url"]).rstrip("/")
        self.transport = transport

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    async def book(self, order: ShipmentOrder) -> Booking:
        body = {
            "ref": order.reference,
            "to": order.receiver.address.regency_code,
            "service": order.service,
        }
        reply = await self.transport.send(
            "create", "POST", f"{self.base_url}/orders", json_body=body, safe_to_repeat=False
        )
        if reply.status == 409:
            raise OutcomeUnknown(CODE, "reference already used")
        if reply.status != 201:
            raise CourierRejected(CODE, str(reply.status), "order refused")
        return Booking(reference=order.reference, waybill=str(reply.json()["awb"]))

    async def find(self, reference: str) -> Booking | None:
        reply = await self.transport.send(
            "find", "GET", f"{self.base_url}/orders/{reference}", safe_to_repeat=True
        )
        if reply.status == 404:
            return None
        return Booking(reference=reference, waybill=str(reply.json()["awb"]))

    async def cancel(self, booking: Booking, reason: str) -> None:
        raise NotSupported(CODE, "no cancel")

    async def track(self, waybills: Sequence[str]) -> Mapping[str, TrackOutcome]:
        return {w: [] for w in waybills}

    def verify_push(self, headers: Mapping[str, str], body: bytes) -> bool:
        return False

    def parse_push(self, body: bytes) -> list[TrackingEvent]:
        raise NotSupported(CODE, "no push")

    def push_ack(self, accepted: bool) -> PushReply:
        raise NotSupported(CODE, "no push")

    async def close(self) -> None:
        await self.transport.close()


def _adapter(settings: Mapping[str, Any], transport: CourierTransport) -> CourierAdapter:
    return KilatAdapter(settings, transport)


DESCRIPTOR = CourierDescriptor(
    code=CODE,
    names=CourierNames(id="Kilat Kirim", en="Kilat Delivery"),
    settings_schema={
        "type": "object",
        "required": ["base_url"],
        "properties": {"base_url": {"type": "string"}, "transport": {"type": "object"}},
        "additionalProperties": False,
    },
    adapter=_adapter,
    capabilities=CAPABILITIES,
    default_service="KLT",
    simulator="kilat.server",
    simulator_port=8799,
)
