"""``POST /webhooks/{courier}``: courier pushes, verified over the raw bytes, stored, answered.

The order matters (docs/design.md §7.3):

1. read the raw body (the app refuses a declared oversized body before reading; aiohttp stops an
   undeclared one at ``client_max_size``);
2. verify the courier's signature over exactly those bytes (re-serialised JSON would break it):
   a forged or altered push gets 401 in the one error shape and **nothing is stored**;
3. parse it with the courier's parser (schema and shape): a push we cannot read (bad UTF-8, bad
   JSON, JSON nested too deep to parse) gets the courier's own refusal, so the courier sends it
   again, and nothing is stored;
4. store one inbox row keyed by the sha256 of the body (a re-sent push is a no-op);
5. answer at once with the courier's exact ACK bytes. The inbox loop (worker/inbox.py) applies it.

Unknown couriers, and couriers that do not push, are 404: nothing to reach there.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from adapters.base import CourierAdapter, CourierError, PushReply
from courier import logging as courier_logging
from courier.services import pushes
from courier.web.errors import ApiError, not_found
from courier.web.keys import context_of
from schemas import FieldError

routes = web.RouteTableDef()
log = structlog.get_logger()


def _reply(reply: PushReply) -> web.Response:
    # set the header as given: aiohttp's content_type= refuses a value with parameters
    return web.Response(
        status=reply.status, body=reply.body, headers={"Content-Type": reply.content_type}
    )


def _verified(adapter: CourierAdapter, request: web.Request, raw: bytes) -> bool:
    """The courier's own check. A header that carried raw bytes which are not UTF-8 reaches us
    as text with lone surrogates (aiohttp's reading): whatever the adapter cannot encode or
    read is no signature, a 401 like any other, never a 500."""
    try:
        return adapter.verify_push(request.headers, raw)
    except (UnicodeError, ValueError):
        return False


@routes.post("/webhooks/{courier}")
async def receive(request: web.Request) -> web.Response:
    ctx = context_of(request)
    code = request.match_info["courier"]
    adapter = ctx.couriers.get(code)
    if adapter is None or not adapter.capabilities.push:
        raise not_found("no push receiver for this courier")
    raw = await request.read()  # HTTPRequestEntityTooLarge → 413 in the error shape
    if not _verified(adapter, request, raw):
        log.warning("webhook.rejected", courier=code, bytes=len(raw))
        raise ApiError(
            401,
            "invalid_signature",
            "the push signature does not match its body",
            [FieldError("$", "signature check failed")],
        )
    try:
        events = adapter.parse_push(raw)
        raw.decode("utf-8")  # stored as text: a body that is not UTF-8 is refused here
    except (CourierError, ValueError, RecursionError) as err:
        # ValueError covers UnicodeDecodeError and a parser's own JSON errors; RecursionError is
        # what json.loads raises on a (signed, so the courier's own) body nested too deeply
        log.warning("webhook.unparseable", courier=code, error=type(err).__name__)
        return _reply(adapter.push_ack(False))
    stored = await pushes.store_push(ctx, courier_code=code, raw=raw)
    # said on the request's own log line (courier/web/app.py): one line per push
    courier_logging.bind(
        courier=code, inbox_id=stored.inbox_id, duplicate=stored.duplicate, events=len(events)
    )
    return _reply(adapter.push_ack(True))
