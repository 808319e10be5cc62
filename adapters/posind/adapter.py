"""Pos Indonesia adapter: book with AddPostingDoc, track with getTrackAndTrace (couriers.md §2).

What Pos does not have, this adapter does not fake:

- **no cancel**: no endpoint was found. :meth:`cancel` raises NotSupported; cancelling a Pos
  shipment is a phone call or a counter visit, recorded by staff.
- **no push**: poll. :meth:`verify_push` refuses everything, :meth:`parse_push` raises.
- **no lookup by orderid**: :meth:`find` raises NotSupported and ``capabilities.find`` is False.
- **no documented duplicate check**: a reused orderid seems to be answered "102" (read here as
  OutcomeUnknown), but that is our inference, not a documented fact, so
  ``capabilities.dedupes_reference`` is False. A create whose answer was lost is therefore never
  sent again: the shipment stays in ``booking`` and the delivery goes to needs-attention at once,
  for staff to look the orderid up on Pos's own portal. Our simulator offers no lookup either, so
  tests see what production will.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog

from adapters.base import (
    AuthFailed,
    Booking,
    Capabilities,
    CourierError,
    CourierRejected,
    NotSupported,
    NotUnderstood,
    OutcomeUnknown,
    PushReply,
    ResponseInvalid,
    ShipmentOrder,
    TrackingEvent,
    TrackOutcome,
)
from adapters.http import CourierTransport, HttpReply
from adapters.posind import codec
from adapters.posind.auth import TokenSource
from adapters.posind.codec import COURIER

log = structlog.get_logger()

PRODUCTION_URL = "https://api.posindonesia.co.id:8245"
SANDBOX_URL = "https://sandbox.posindonesia.co.id:8245"
TOKEN_PATH = "/token"
POSTING_PATH = "/webhook/1.0/AddPostingDoc"
SANDBOX_POSTING_PATH = "/webhookpos/1.0.1/AddPostingDoc"
TRACK_PATH = "/utilitas/1.0.1/getTrackAndTrace"


class PosIndonesiaAdapter:
    code = "posind"

    def __init__(self, settings: Mapping[str, Any], transport: CourierTransport) -> None:
        base = str(settings["base_url"]).rstrip("/")
        self._transport = transport
        self._userid = int(settings["userid"])
        self._memberid = str(settings["memberid"])
        self._default_service = str(settings.get("service", ""))
        self._itemtypeid = int(settings.get("itemtypeid", 1))
        self._posting_url = base + str(settings.get("posting_path", POSTING_PATH))
        self._track_url = base + str(settings.get("track_path", TRACK_PATH))
        self.tokens = TokenSource(
            transport,
            token_url=base + str(settings.get("token_path", TOKEN_PATH)),
            consumer_key=str(settings["consumer_key"]),
            consumer_secret=str(settings["consumer_secret"]),
            margin_seconds=float(settings.get("token_refresh_margin_seconds", 60)),
            default_ttl_seconds=float(settings.get("token_default_ttl_seconds", 3600)),
        )

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            cancel=False, push=False, find=False, track_batch_size=1, dedupes_reference=False
        )

    # ---------------------------------------------------------------------------------- calls

    async def _call(
        self, operation: str, url: str, body: Mapping[str, Any], *, safe_to_repeat: bool
    ) -> HttpReply:
        """POST JSON with the Bearer token; on 401 drop the token and try once more.

        Re-sending after a 401 is safe even for a create: the gateway refused it before the
        backend saw it.
        """
        for attempt in (1, 2):
            token = await self.tokens.token()
            reply = await self._transport.send(
                operation,
                "POST",
                url,
                json_body=body,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                safe_to_repeat=safe_to_repeat,
            )
            if reply.status != 401:
                return reply
            self.tokens.invalidate(token)
            log.info("posind.token_refused", operation=operation, attempt=attempt)
        raise AuthFailed(COURIER, f"{operation}: Bearer token refused twice")

    async def book(self, order: ShipmentOrder) -> Booking:
        if not order.service and self._default_service:
            order = replace(order, service=self._default_service)
        body = codec.build_posting(
            order, userid=self._userid, memberid=self._memberid, itemtypeid=self._itemtypeid
        )
        reply = await self._call("create", self._posting_url, body, safe_to_repeat=False)
        if reply.status >= 400:
            raise CourierRejected(COURIER, f"HTTP {reply.status}", "AddPostingDoc refused")
        try:
            booking = codec.parse_posting(reply.json(), order.reference)
        except codec.AnswerNotUnderstood as err:
            # JSON in a shape we do not know: the posting may exist; a person checks the portal
            raise NotUnderstood(COURIER, order.reference, err.path, err.raw) from err
        except ResponseInvalid as err:
            # a 2xx we cannot read may still mean the posting exists: do not call it failed
            raise OutcomeUnknown(COURIER, f"create answer unreadable ({err.message})") from err
        log.info("posind.booked", reference=order.reference, waybill=booking.waybill)
        return booking

    async def find(self, reference: str) -> Booking | None:
        raise NotSupported(
            COURIER,
            "Pos Indonesia has no lookup by orderid; read the barcode from Pos's portal "
            "and record it by hand",
        )

    async def cancel(self, booking: Booking, reason: str) -> None:
        raise NotSupported(
            COURIER,
            "Pos Indonesia has no cancel API; ask the Pos office to hold the item and record "
            "the cancellation by hand",
        )

    async def track(self, waybills: Sequence[str]) -> Mapping[str, TrackOutcome]:
        """One barcode per call, in order; one waybill's failure does not hide the others'."""
        out: dict[str, TrackOutcome] = {}
        for waybill in waybills:
            try:
                out[waybill] = await self._track_one(waybill)
            except CourierError as err:
                out[waybill] = err
        return out

    async def _track_one(self, waybill: str) -> list[TrackingEvent]:
        reply = await self._call(
            "track", self._track_url, {"barcode": waybill}, safe_to_repeat=True
        )
        if reply.status >= 400:
            raise CourierRejected(COURIER, f"HTTP {reply.status}", "getTrackAndTrace refused")
        return codec.parse_track(reply.json(), waybill)

    # ---------------------------------------------------------------------------------- push

    def verify_push(self, headers: Mapping[str, str], body: bytes) -> bool:
        return False  # Pos pushes nothing: anything claiming to be a Pos push is refused

    def parse_push(self, body: bytes) -> list[TrackingEvent]:
        raise NotSupported(COURIER, "Pos Indonesia does not push; it is polled")

    def push_ack(self, accepted: bool) -> PushReply:
        raise NotSupported(COURIER, "Pos Indonesia does not push; there is nothing to acknowledge")

    async def close(self) -> None:
        await self._transport.close()
