"""The outbox loop: messages to applicants, by e-mail and through SMS/WhatsApp gateways.

Each cycle claims a bounded batch of due outbox rows under a lease (courier/db/queue.py: the
same claim as bookings, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers share the
outbox), and for each: :func:`notices.prepare` (closed, put back for the quiet hours, or what to
send on which channel), one send per channel, :func:`notices.record_sent` per channel that went
out, :func:`notices.finish` (sent, retried later with the one backoff policy, or given up with
an exception item). A deployment with no channel configured runs no sender: the rows wait and
``courier_outbox_lag_seconds`` shows it.
"""

from __future__ import annotations

import asyncio

import aiohttp
import structlog

from courier.channels import ChannelError, email, gateway
from courier.context import AppContext
from courier.db import queue
from courier.services import notices
from courier.services.notices import Outgoing, Prepared
from worker.loop import poll_interval, run_periodic

log = structlog.get_logger()


async def _send_one(
    ctx: AppContext, http: aiohttp.ClientSession, prepared: Prepared, out: Outgoing
) -> None:
    rendered = prepared.rendered
    assert rendered is not None
    settings = ctx.settings.notify
    if out.medium == "email":
        assert settings.email is not None
        await email.send(
            settings.email,
            to=out.to,
            subject=rendered.subject,
            body=rendered.body,
            key=out.key,
        )
        return
    gw = next(g for g in settings.gateways if g.name == out.channel)
    text = rendered.sms if out.medium == "sms" else rendered.chat
    await gateway.send(http, gw, to=out.to, text=text, reference=out.key, kind=prepared.kind)


async def _deliver(
    ctx: AppContext, http: aiohttp.ClientSession, worker_id: str, outbox_id: int
) -> None:
    prepared = await notices.prepare(ctx, outbox_id, owner=worker_id)
    if prepared is None or prepared.rendered is None:
        return
    failures: dict[str, str] = {}
    for out in prepared.outgoing:
        try:
            await _send_one(ctx, http, prepared, out)
        except ChannelError as err:
            failures[out.channel] = str(err)
            continue
        await notices.record_sent(ctx, outbox_id, out.channel, out.key)
    outcome = await notices.finish(ctx, outbox_id, owner=worker_id, failures=failures)
    log.info("notify.done", outbox_id=outbox_id, kind=prepared.kind, outcome=outcome)


async def cycle(ctx: AppContext, worker_id: str, http: aiohttp.ClientSession) -> int:
    """One cycle with the caller's HTTP session; the number of rows worked on."""
    if not ctx.settings.notify.channels:
        return 0
    claimed = await queue.claim_outbox(
        ctx.sessions,
        owner=worker_id,
        now=ctx.clock.now(),
        lease_seconds=ctx.settings.lease_seconds,
        limit=ctx.settings.notify.batch,
    )
    done = 0
    try:
        for outbox_id in claimed:
            await _deliver(ctx, http, worker_id, outbox_id)
            done += 1
    finally:
        await queue.release_outbox(ctx.sessions, claimed, owner=worker_id)
    return done


async def once(ctx: AppContext, worker_id: str) -> int:
    async with aiohttp.ClientSession() as http:
        return await cycle(ctx, worker_id, http)


async def run(ctx: AppContext, worker_id: str, stopping: asyncio.Event) -> None:
    if not ctx.settings.notify.channels:
        log.warning("notify.no_channels", hint="configure [notify.email] or [notify.gateways]")
    async with aiohttp.ClientSession() as http:

        async def _cycle(c: AppContext, w: str) -> int:
            return await cycle(c, w, http)

        await run_periodic(
            "outbox",
            _cycle,
            ctx=ctx,
            worker_id=worker_id,
            stopping=stopping,
            interval=poll_interval(ctx),
        )
