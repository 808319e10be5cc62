"""The J&T Express Indonesia adapter: build → transport.send → parse, nothing more.

Wire details live in :mod:`adapters.jnt.codec` and :mod:`adapters.jnt.push`. ``find`` uses the
JMS-style ``/api/order/getOrders`` lookup by ``orderid``: the legacy Indonesian API documents
none, so production must confirm this endpoint (or an equivalent) under the contract.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from adapters.base import (
    AuthFailed,
    Booking,
    Capabilities,
    CourierError,
    OutcomeUnknown,
    PushReply,
    ResponseInvalid,
    ShipmentOrder,
    TrackingEvent,
    TrackOutcome,
)
from adapters.http import CourierTransport, HttpReply, basic_auth
from adapters.jnt import codec, push


class JntAdapter:
    code = "jnt"

    def __init__(self, settings: Mapping[str, Any], transport: CourierTransport) -> None:
        self.config = codec.JntConfig.from_settings(settings)
        self.urls = {k: str(settings[f"{k}_url"]) for k in ("create", "cancel", "track", "find")}
        self.transport = transport

    @property
    def capabilities(self) -> Capabilities:
        # push only when the JMS account is configured (J&T switches it on per contract)
        has_push = bool(self.config.api_account and self.config.private_key)
        has_find = bool(self.config.api_account and self.config.private_key)
        # dedupes: the legacy create answers a reused orderid with "Orderid tidak boleh sama"
        return Capabilities(
            cancel=True, push=has_push, find=has_find, track_batch_size=1, dedupes_reference=True
        )

    def _json(self, reply: HttpReply, operation: str) -> Any:
        if reply.status in (401, 403):
            raise AuthFailed(self.code, f"{operation}: HTTP {reply.status}")
        if not 200 <= reply.status < 300:
            raise ResponseInvalid(self.code, f"{operation}: unexpected HTTP {reply.status}", "$")
        return reply.json()

    async def book(self, order: ShipmentOrder) -> Booking:
        form = codec.build_create(order, self.config, self.transport.clock.now())
        reply = await self.transport.send(
            "create", "POST", self.urls["create"], data=form.form(), safe_to_repeat=False
        )
        if 200 <= reply.status < 300:
            try:
                return codec.parse_create(reply.json(), order.reference)
            except ResponseInvalid as exc:
                # a 2xx we cannot read may still have created the order: reconcile, never rebook
                raise OutcomeUnknown(self.code, f"create: unreadable answer ({exc.path})") from exc
        return codec.parse_create(self._json(reply, "create"), order.reference)

    async def find(self, reference: str) -> Booking | None:
        request = codec.build_find(reference, self.config, self.transport.clock.now())
        reply = await self.transport.send(
            "find",
            "POST",
            self.urls["find"],
            data=request.form,
            headers=request.headers,
            safe_to_repeat=True,
        )
        return codec.parse_find(self._json(reply, "find"), reference)

    async def cancel(self, booking: Booking, reason: str) -> None:
        form = codec.build_cancel(booking.reference, reason, self.config)
        # repeating a cancel is harmless: "already cancelled" reads as done
        reply = await self.transport.send(
            "cancel", "POST", self.urls["cancel"], data=form.form(), safe_to_repeat=True
        )
        codec.parse_cancel(self._json(reply, "cancel"), booking.reference)

    async def _track_one(self, waybill: str) -> TrackOutcome:
        request = codec.build_track(waybill, self.config)
        try:
            reply = await self.transport.send(
                "track",
                "POST",
                self.urls["track"],
                json_body=request.body,
                headers=basic_auth(request.user, request.password),
                safe_to_repeat=True,
            )
            return codec.parse_track(self._json(reply, "track"), waybill)
        except CourierError as exc:
            return exc

    async def track(self, waybills: Sequence[str]) -> Mapping[str, TrackOutcome]:
        """One call per AWB (the legacy API takes one); the transport paces them."""
        distinct = codec.split_batch(waybills)
        outcomes = await asyncio.gather(*(self._track_one(w) for w in distinct))
        return dict(zip(distinct, outcomes, strict=True))

    def verify_push(self, headers: Mapping[str, str], body: bytes) -> bool:
        return push.verify(
            headers, body, api_account=self.config.api_account, private_key=self.config.private_key
        )

    def parse_push(self, body: bytes) -> list[TrackingEvent]:
        return push.parse(body)

    def push_ack(self, accepted: bool) -> PushReply:
        return push.ack(accepted)

    async def close(self) -> None:
        await self.transport.close()
