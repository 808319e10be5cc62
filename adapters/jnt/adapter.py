"""The J&T Express Indonesia adapter: build → transport.send → parse, nothing more.

Wire details live in :mod:`adapters.jnt.codec` and :mod:`adapters.jnt.push`. ``find`` uses the
JMS-style ``/api/order/getOrders`` lookup by ``orderid``: the legacy Indonesian API documents
none, so production must confirm this endpoint (or an equivalent) under the contract. It is its
own setting (``lookup``), independent of the push credentials; an account whose lookup route
answers HTTP 404/405 (the route itself is missing, not "no such order") has no lookup: the
adapter says so from then on (``capabilities.find`` False) and booking reconciles by resending
the same orderid, which J&T refuses as a duplicate when the order exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from adapters.base import (
    AuthFailed,
    Booking,
    Capabilities,
    CourierError,
    NotSupported,
    NotUnderstood,
    OutcomeUnknown,
    PushReply,
    ResponseInvalid,
    ShipmentOrder,
    TrackingEvent,
    TrackOutcome,
    not_built,
)
from adapters.http import CourierTransport, HttpReply, basic_auth
from adapters.jnt import codec, push

log = structlog.get_logger()


class JntAdapter:
    code = "jnt"

    def __init__(self, settings: Mapping[str, Any], transport: CourierTransport) -> None:
        self.config = codec.JntConfig.from_settings(settings)
        self.urls = {
            k: str(settings.get(f"{k}_url") or "") for k in ("create", "cancel", "track", "find")
        }
        self.transport = transport
        # set when the lookup route answered 404/405: a fact about the account, not an outage
        self.lookup_missing = False

    @property
    def capabilities(self) -> Capabilities:
        # push only when the JMS account is configured (J&T switches it on per contract)
        jms = bool(self.config.api_account and self.config.private_key)
        has_push = jms
        has_find = (
            self.config.lookup and jms and bool(self.urls["find"]) and not self.lookup_missing
        )
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
        try:
            form = codec.build_create(order, self.config, self.transport.clock.now())
        except CourierError:
            raise
        except Exception as exc:  # signing or encoding failed: nothing was sent
            raise not_built(self.code, "create", exc) from exc
        reply = await self.transport.send(
            "create", "POST", self.urls["create"], data=form.form(), safe_to_repeat=False
        )
        if 200 <= reply.status < 300:
            # a 2xx we cannot read may still have created the order: reconcile, never rebook
            try:
                body = reply.json()
            except ResponseInvalid as exc:  # not JSON at all: a cut answer, like a lost reply
                raise OutcomeUnknown(self.code, f"create: unreadable answer ({exc.path})") from exc
            try:
                return codec.parse_create(body, order.reference)
            except ResponseInvalid as exc:  # JSON, neither success nor a known error
                raise NotUnderstood(self.code, order.reference, exc.path, body) from exc
        return codec.parse_create(self._json(reply, "create"), order.reference)

    async def find(self, reference: str) -> Booking | None:
        if not self.capabilities.find:
            raise NotSupported(self.code, "no order lookup on this account")
        request = codec.build_find(reference, self.config, self.transport.clock.now())
        reply = await self.transport.send(
            "find",
            "POST",
            self.urls["find"],
            data=request.form,
            headers=request.headers,
            safe_to_repeat=True,
        )
        if reply.status in (404, 405):
            # the route itself is missing (an unknown order is an answer inside HTTP 200)
            if not self.lookup_missing:
                log.warning("jnt.lookup_missing", status=reply.status)
            self.lookup_missing = True
            raise NotSupported(self.code, f"find: the lookup route answered HTTP {reply.status}")
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
