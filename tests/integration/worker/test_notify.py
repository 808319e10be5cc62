"""Messages to applicants end to end, on both backends: the outbox loop sends through a real SMTP
server (aiosmtpd) and a local HTTP gateway that checks the HMAC signature of every request.
Retries follow the one backoff policy and give up with an exception item; a channel that went
out is never sent again; quiet hours hold non-urgent messages; the opt-out link stops the
non-essential ones; events write their message in their own transaction."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
import worker_seed as seed
from aiohttp import web
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from tracking_kit import booked_shipment, event

from core.clock import WIB, ManualClock
from core.status import Status
from courier import config, metrics
from courier.context import AppContext
from courier.db.engine import SessionFactory, transaction
from courier.db.models import Delivery, ExceptionItem, NotificationSend, OutboxItem
from courier.domain.messages import gsm7_length
from courier.services import notices, tracking
from worker import outbox as outbox_loop

SECRET = "gateway-shared-secret-0123456789"
EMAIL = "pemohon@example.id"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SmtpSink:
    messages: list[Message] = field(default_factory=list)
    fail_next: int = 0  # answer this many DATA commands with 451 (try again later)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.fail_next > 0:
            self.fail_next -= 1
            return "451 4.3.0 try again later"
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    port = _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@dataclass
class Gateway:
    received: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    bad_signatures: int = 0
    fail_next: int = 0  # answer this many valid requests with 503


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[Gateway, str]]:
    state = Gateway()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Signature", ""), expected):
            state.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        if state.fail_next > 0:
            state.fail_next -= 1
            return web.json_response({"error": "busy"}, status=503)
        state.received.append(json.loads(body))
        state.keys.append(request.headers["Idempotency-Key"])
        return web.json_response({"status": "queued"})

    app = web.Application()
    app.router.add_post("/send", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield state, f"http://127.0.0.1:{port}/send"
    finally:
        await runner.cleanup()


def _settings(smtp_port: int, gateway_url: str, **notify: Any) -> config.Settings:
    return config.from_mapping(
        {
            "http": {"public_url": "https://kirim.example"},
            "notify": {
                "max_attempts": 3,
                "retry_first_seconds": 60,
                "retry_cap_seconds": 600,
                "email": {
                    "host": "127.0.0.1",
                    "port": smtp_port,
                    "sender": "kirim@imigrasi.example",
                    "starttls": False,
                },
                "gateways": {
                    "sms": {
                        "url": gateway_url,
                        "secret": SECRET,
                        "template": {"msisdn": "{to}", "message": "{text}", "ref": "{reference}"},
                    }
                },
                **notify,
            },
        }
    )


@pytest.fixture
async def world(
    engine: AsyncEngine,
    sessions: SessionFactory,
    smtp: tuple[SmtpSink, int],
    gateway: tuple[Gateway, str],
) -> AsyncIterator[tuple[AppContext, SmtpSink, Gateway, int]]:
    sink, port = smtp
    gw, url = gateway
    office_id = await seed.office(sessions)
    [delivery_id] = await seed.deliveries(sessions, office_id, 1)
    async with transaction(sessions) as session:
        delivery = await session.get_one(Delivery, delivery_id)
        delivery.address = {**delivery.address, "email": EMAIL}
    clock = ManualClock(seed.T0)  # Monday 08:00 WIB: outside the quiet hours
    yield AppContext(_settings(port, url), engine, sessions, clock, {}), sink, gw, delivery_id


async def _queue(
    ctx: AppContext, kind: str, delivery_id: int, key: str, **facts: Any
) -> int | None:
    async with transaction(ctx.sessions) as session:
        delivery = await session.get_one(Delivery, delivery_id)
        return await notices.queue(
            session, kind, delivery, now=ctx.clock.now(), key=key, facts=facts
        )


async def _row(ctx: AppContext, outbox_id: int) -> OutboxItem:
    async with ctx.sessions() as session:
        return await session.get_one(OutboxItem, outbox_id)


async def _sends(ctx: AppContext) -> list[NotificationSend]:
    async with ctx.sessions() as session:
        return list(await session.scalars(select(NotificationSend).order_by(NotificationSend.id)))


async def test_a_message_goes_out_once_by_email_and_by_the_signed_gateway(world: Any) -> None:
    ctx, sink, gw, delivery_id = world
    facts = {"courier": "J&T Express", "waybill": "JX1234567890", "date": "2026-11-05"}
    outbox_id = await _queue(ctx, "applicant_booked", delivery_id, "7", **facts)
    assert outbox_id is not None
    assert await _queue(ctx, "applicant_booked", delivery_id, "7", **facts) is None  # same event

    assert await outbox_loop.once(ctx, "w1") == 1
    assert await outbox_loop.once(ctx, "w1") == 0  # nothing left, nothing sent again

    [mail] = sink.messages
    assert mail["To"] == EMAIL
    assert mail["Subject"] == "Paspor diserahkan ke kurir / Passport handed to the courier"
    body = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    # Bahasa Indonesia first, English second, the expected day written out in both
    assert body.index("Perkiraan tiba Kamis, 5 November 2026") < body.index(
        "Expected Thursday, 5 November 2026"
    )
    assert "https://kirim.example/n/stop/" in body  # the opt-out link
    [sms] = gw.received
    assert gw.bad_signatures == 0
    assert sms["msisdn"] == "+6281234000001"
    assert "JX1234567890" in sms["message"] and " / " in sms["message"]
    assert (gsm7_length(sms["message"]) or 999) <= 160
    assert gw.keys == [f"booked:{delivery_id}:7:sms"]
    row = await _row(ctx, outbox_id)
    assert row.sent_at == ctx.clock.now() and row.attempts == 0
    assert sorted(s.channel for s in await _sends(ctx)) == ["email", "sms"]


async def test_a_failing_channel_is_retried_with_backoff_then_given_up_visibly(
    world: Any,
) -> None:
    ctx, sink, gw, delivery_id = world
    clock: ManualClock = ctx.clock
    gw.fail_next = 10**6  # the gateway never accepts
    outbox_id = await _queue(ctx, "applicant_delivery_failed", delivery_id, "1", courier="J&T")
    assert outbox_id is not None

    assert await outbox_loop.once(ctx, "w1") == 1
    row = await _row(ctx, outbox_id)
    assert row.attempts == 1 and row.sent_at is None and row.failed_at is None
    assert row.error == "sms: gateway sms: HTTP 503"
    assert row.next_attempt_at is not None
    first_wait = row.next_attempt_at - clock.now()
    assert timedelta(seconds=60) <= first_wait <= timedelta(seconds=75)
    assert await outbox_loop.once(ctx, "w1") == 0  # not due: no hot loop
    assert len(sink.messages) == 1  # the e-mail went out on the first try

    # waiting for a retry is not lag; a due row that no one sends is
    assert (await metrics.read_db_figures(ctx.sessions, clock.now())).outbox_lag == 0
    clock.set(row.next_attempt_at + timedelta(seconds=30))
    assert (await metrics.read_db_figures(ctx.sessions, clock.now())).outbox_lag == 30
    assert await outbox_loop.once(ctx, "w1") == 1
    row = await _row(ctx, outbox_id)
    assert row.attempts == 2 and row.next_attempt_at is not None
    # doubled (one policy: core/backoff), and the e-mail is not sent a second time
    assert row.next_attempt_at - clock.now() >= timedelta(seconds=120)
    assert len(sink.messages) == 1

    clock.set(row.next_attempt_at)
    assert await outbox_loop.once(ctx, "w1") == 1
    row = await _row(ctx, outbox_id)
    assert row.attempts == 3 and row.failed_at == clock.now() and row.sent_at is None
    clock.advance(timedelta(days=1))
    assert await outbox_loop.once(ctx, "w1") == 0  # given up: never claimed again
    assert (await metrics.read_db_figures(ctx.sessions, clock.now())).outbox_lag == 0
    async with ctx.sessions() as session:
        [item] = list(
            await session.scalars(
                select(ExceptionItem).where(ExceptionItem.kind == "notify_failed")
            )
        )
    assert item.delivery_id == delivery_id and "3 tries" in item.detail
    assert "+62" not in item.detail and EMAIL not in item.detail
    assert gw.received == [] and gw.bad_signatures == 0


async def test_a_refused_email_is_retried_and_sent_once(world: Any) -> None:
    ctx, sink, gw, delivery_id = world
    sink.fail_next = 1
    outbox_id = await _queue(ctx, "applicant_confirm_request", delivery_id, "1")
    assert outbox_id is not None
    assert await outbox_loop.once(ctx, "w1") == 1
    row = await _row(ctx, outbox_id)
    assert row.attempts == 1 and row.error is not None and row.error.startswith("email: smtp")
    assert len(gw.received) == 1  # the SMS went out on the first try
    assert row.next_attempt_at is not None
    ctx.clock.set(row.next_attempt_at)
    assert await outbox_loop.once(ctx, "w1") == 1
    assert len(sink.messages) == 1 and len(gw.received) == 1  # each channel exactly once
    assert (await _row(ctx, outbox_id)).sent_at is not None


async def test_quiet_hours_hold_what_can_wait_and_the_link_is_dropped_once_sent(
    world: Any,
) -> None:
    ctx, sink, gw, delivery_id = world
    clock: ManualClock = ctx.clock
    night = seed.T0.astimezone(WIB).replace(hour=22).astimezone(seed.T0.tzinfo)
    clock.set(night)
    link = "https://kirim.example/t/" + "A" * 43
    booked = await _queue(ctx, "applicant_booked", delivery_id, "1", courier="J&T")
    opted = await _queue(ctx, "applicant_opted_in", delivery_id, "1", link=link)
    assert booked is not None and opted is not None

    assert await outbox_loop.once(ctx, "w1") == 2
    assert [m["Subject"] for m in sink.messages] == [
        "Pengiriman paspor terdaftar / Passport delivery registered"
    ]
    assert link in gw.received[0]["message"]
    held = await _row(ctx, booked)
    assert held.sent_at is None and held.attempts == 0  # waiting is not a failure
    assert held.next_attempt_at is not None
    assert held.next_attempt_at.astimezone(WIB).hour == 7
    assert held.next_attempt_at.astimezone(WIB).date() == night.astimezone(WIB).date() + timedelta(
        days=1
    )
    sent = await _row(ctx, opted)
    assert sent.payload["link"] == "[removed]"  # a credential is not kept once delivered

    clock.set(held.next_attempt_at)
    assert await outbox_loop.once(ctx, "w1") == 1
    assert len(sink.messages) == 2 and len(gw.received) == 2


async def test_the_opt_out_link_stops_what_is_not_essential(world: Any) -> None:
    ctx, sink, gw, delivery_id = world
    token = notices.optout_token(ctx.settings, delivery_id)
    assert await notices.opt_out(ctx, token + "0") is None  # guessed or altered: not ours
    assert await notices.opt_out(ctx, f"{delivery_id + 1}.{token.split('.')[1]}") is None
    view = await notices.opt_out(ctx, token)
    assert view is not None and not view.already
    assert (await notices.opt_out(ctx, token)).already  # type: ignore[union-attr]

    handed = await _queue(ctx, "applicant_handover_verified", delivery_id, "1")
    deadline = await _queue(
        ctx, "applicant_deadline", delivery_id, "D-3", days=3, date="2026-12-01"
    )
    assert handed is not None and deadline is not None
    assert await outbox_loop.once(ctx, "w1") == 2
    assert [m["Subject"] for m in sink.messages] == [
        "Batas waktu paspor: sisa 3 hari / Passport deadline: 3 days left"
    ]
    assert len(gw.received) == 1
    closed = await _row(ctx, handed)
    assert closed.sent_at is not None and closed.error == "opted out"


async def test_two_senders_share_the_outbox_without_sending_twice(world: Any) -> None:
    ctx, sink, gw, delivery_id = world
    for i in range(8):
        await _queue(ctx, "applicant_out_for_delivery", delivery_id, str(i), courier="J&T")
    done = await asyncio.gather(outbox_loop.once(ctx, "w1"), outbox_loop.once(ctx, "w2"))
    assert sum(done) == 8
    assert sorted(gw.keys) == sorted(set(gw.keys)) and len(gw.keys) == 8
    assert len(sink.messages) == 8


async def test_courier_events_write_their_message_in_the_same_transaction(world: Any) -> None:
    ctx, sink, gw, delivery_id = world
    shipment_id = await booked_shipment(ctx.sessions, delivery_id)
    out = event(Status.OUT_FOR_DELIVERY, seed.T0 + timedelta(hours=1))
    for _ in range(2):  # the same scan twice (a poll repeating it): one message
        async with transaction(ctx.sessions) as session:
            shipment = await tracking.lock_shipment(session, shipment_id)
            assert shipment is not None
            await tracking.apply_events(
                session, shipment, [out], source="poll", now=out.occurred_at
            )
    async with ctx.sessions() as session:
        kinds = list(await session.scalars(select(OutboxItem.kind)))
    assert kinds == ["applicant_out_for_delivery"]
    ctx.clock.set(out.occurred_at)
    assert await outbox_loop.once(ctx, "w1") == 1
    assert (
        sink.messages[0]["Subject"] == "Paspor diantar hari ini / Passport out for delivery today"
    )
    assert "siapkan KTP asli" in gw.received[0]["message"]


def test_gateway_settings_are_checked_with_clear_errors() -> None:
    bad = {
        "notify": {
            "gateways": {
                "wa": {
                    "url": "http://provider.example/send",
                    "secret": SECRET,
                    "template": {"to": "{to}"},
                }
            },
            "quiet_hours": ["21:00", "21:00"],
        }
    }
    with pytest.raises(config.ConfigError) as err:
        config.from_mapping(bad)
    text = str(err.value)
    assert "$.notify.gateways.wa.url: must be https://" in text
    assert "$.notify.gateways.wa.template: no string value uses {text}" in text
    assert "$.notify.quiet_hours: start and end are equal" in text
    with pytest.raises(config.ConfigError, match="secret"):
        config.from_mapping(
            {
                "notify": {
                    "gateways": {"wa": {"url": "https://x", "secret": "short", "template": {}}}
                }
            }
        )
