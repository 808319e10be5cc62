"""A harness for tracking, push and watch tests: both courier simulators and our own HTTP app on
loopback, one ManualClock for all of them, a worker context, and helpers to seed rows and drive
the clock from one due poll to the next (never a wall-clock wait)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import worker_seed as seed
from aiohttp.test_utils import BaseTestServer, TestServer
from aiohttp.web import Application as WebApp
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import registry
from adapters.base import TrackingEvent
from adapters.http import close_shared_session
from core.clock import ManualClock
from core.status import Status
from courier.config import Settings
from courier.context import AppContext
from courier.db.engine import SessionFactory, transaction
from courier.db.models import (
    OPEN_SHIPMENT_STATUSES,
    Application,
    Delivery,
    ExceptionItem,
    Shipment,
    StaffUser,
)
from courier.domain.references import client_reference
from courier.services.intake import hash_passport_no
from courier.web.app import create_app
from simulators import jnt as jnt_sim
from simulators import posind as pos_sim
from worker import book, track

PEPPER = "test-pepper"
PASSPORT_NO = "X1234567"
TRANSPORT = {"backoff_initial": 0.01, "backoff_max": 0.05, "max_attempts": 2}


@dataclass
class Kit:
    clock: ManualClock
    ctx: AppContext
    sessions: SessionFactory
    http: aiohttp.ClientSession
    jnt: BaseTestServer
    posind: BaseTestServer
    web: BaseTestServer
    pod_store: Path
    jnt_app: WebApp
    pos_app: WebApp

    @property
    def jnt_sim(self) -> jnt_sim.JntSimulator:
        return self.jnt_app[jnt_sim.SIM_KEY]

    def url(self, path: str) -> str:
        return str(self.web.make_url(path))

    def force_outcome(self, courier: str, reference: str, outcome: str) -> None:
        state = self.jnt_sim.state if courier == "jnt" else self.pos_app[pos_sim.STATE_KEY].state
        state.forced_outcomes[reference] = outcome


def token(office_id: int, i: int) -> str:
    """The tracking token worker_seed hashed for application ``i`` (``t<office>:<i>``)."""
    return f"t{office_id}:{i}"


@asynccontextmanager
async def make_kit(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path, *, jnt_push: bool = False
) -> AsyncIterator[Kit]:
    clock = ManualClock(seed.T0)
    couriers: dict[str, Any] = {}
    pod_store = tmp_path / "pod"
    ctx = AppContext(Settings(raw={}), engine, sessions, clock, couriers)
    async with aiohttp.ClientSession() as http, TestServer(create_app(ctx)) as ours:
        jnt_options = {"push_url": str(ours.make_url("/webhooks/jnt"))}
        jnt_app = jnt_sim.create_app(clock, options=jnt_options)
        pos_app = pos_sim.create_app(clock)
        async with TestServer(jnt_app) as jnt, TestServer(pos_app) as posind:
            jnt_settings = jnt_sim.adapter_settings(str(jnt.make_url("/")), jnt_options)
            if not jnt_push:  # no JMS account: J&T is polled like Pos
                jnt_settings.pop("api_account")
                jnt_settings.pop("private_key")
            jnt_settings["transport"] = TRANSPORT
            pos_settings = pos_sim.adapter_settings(str(posind.make_url("")))
            pos_settings["transport"] = TRANSPORT
            ctx.settings = Settings(
                raw={},
                passport_pepper=PEPPER,
                pod_store=str(pod_store),
                poll_seconds=0.01,
                couriers={"jnt": jnt_settings, "posind": pos_settings},
            )
            couriers["jnt"] = registry.create("jnt", jnt_settings, clock=clock, session=http)
            couriers["posind"] = registry.create("posind", pos_settings, clock=clock, session=http)
            try:
                yield Kit(
                    clock, ctx, sessions, http, jnt, posind, ours, pod_store, jnt_app, pos_app
                )
            finally:
                await close_shared_session()  # POD fetches use the process's shared session


async def seed_delivery(
    kit: Kit,
    *,
    courier: str = "jnt",
    outcome: str | None = None,
    i: int = 1,
    collect_in_days: int = 30,
    office_id: int | None = None,
) -> tuple[int, int]:
    """One queued delivery (application ``i``) whose passport hash is known, at an office using
    ``courier`` (created unless ``office_id`` is given); ``outcome`` forces the simulated
    parcel's script for its first attempt. Returns (office id, delivery id)."""
    code = office_code(courier)
    if office_id is None:
        office_id = await seed.office(kit.sessions, courier=courier, code=code)
    [delivery_id] = await seed.deliveries(
        kit.sessions, office_id, 1, start=i, collect_in_days=collect_in_days
    )
    async with transaction(kit.sessions) as session:
        delivery = await session.get(Delivery, delivery_id)
        assert delivery is not None
        await session.execute(
            update(Application)
            .where(Application.id == delivery.application_id)
            .values(passport_no_hash=hash_passport_no(PEPPER, PASSPORT_NO))
        )
    if outcome is not None:
        kit.force_outcome(courier, reference(code, i, 1), outcome)
    return office_id, delivery_id


def office_code(courier: str) -> str:
    return f"O{courier[:3].upper()}"


def reference(office_code: str, i: int, attempt: int) -> str:
    return client_reference(office_code, f"2026{i:08d}", attempt)


async def open_shipments(kit: Kit) -> list[Shipment]:
    async with kit.sessions() as session:
        rows = await session.scalars(
            select(Shipment)
            .where(Shipment.status.in_(OPEN_SHIPMENT_STATUSES))
            .order_by(Shipment.id)
        )
        return list(rows)


async def drive(
    kit: Kit,
    done: Callable[[], Awaitable[bool]],
    *,
    max_cycles: int = 400,
    each: Callable[[], Awaitable[Any]] | None = None,
) -> int:
    """Run booking and tracking cycles, moving the clock to the next due poll each time, until
    ``done()``; returns the number of cycles. Fails when it never gets there."""
    for cycle in range(max_cycles):
        await book.once(kit.ctx, "w1")
        await track.once(kit.ctx, "w1")
        if each is not None:
            await each()
        if await done():
            return cycle
        due = [s.next_poll_at for s in await open_shipments(kit) if s.next_poll_at is not None]
        target = min(due) if due else kit.clock.now() + timedelta(hours=1)
        kit.clock.set(max(target, kit.clock.now() + timedelta(minutes=1)))
    raise AssertionError("the flow did not reach its goal")


async def delivery_state(kit: Kit, delivery_id: int) -> str:
    async with kit.sessions() as session:
        delivery = await session.get(Delivery, delivery_id)
        assert delivery is not None
        return delivery.state


def state_is(kit: Kit, delivery_id: int, *states: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await delivery_state(kit, delivery_id) in states

    return check


async def exceptions(kit: Kit, kind: str | None = None) -> list[ExceptionItem]:
    async with kit.sessions() as session:
        query = select(ExceptionItem).order_by(ExceptionItem.id)
        if kind is not None:
            query = query.where(ExceptionItem.kind == kind)
        return list(await session.scalars(query))


async def booked_shipment(
    sessions: SessionFactory,
    delivery_id: int,
    *,
    waybill: str = "JO0000000001",
    courier: str = "jnt",
    at: datetime = seed.T0,
    status: Status = Status.BOOKED,
) -> int:
    """A shipment row as booking leaves it (for tests that feed events by hand)."""
    async with transaction(sessions) as session:
        delivery = await session.get(Delivery, delivery_id)
        assert delivery is not None
        delivery.state = "shipping"
        shipment = Shipment(
            delivery_id=delivery_id,
            attempt_no=1,
            courier_code=courier,
            client_reference=f"REF{delivery_id:08d}",
            waybill=waybill,
            status=status.value,
            claim_count=1,
            reconcile_count=0,
            booked_at=at,
            next_poll_at=at,
            created_at=at,
            updated_at=at,
        )
        session.add(shipment)
        await session.flush()
        return shipment.id


def event(
    status: Status | None,
    at: datetime,
    *,
    waybill: str = "JO0000000001",
    code: str = "",
    text: str = "",
    **extra: Any,
) -> TrackingEvent:
    raw_code = code or (status.value if status is not None else "999")
    return TrackingEvent(
        waybill=waybill,
        occurred_at=at,
        raw_code=raw_code,
        raw_text=text or raw_code,
        status=status,
        **extra,
    )


async def staff(sessions: SessionFactory, office_id: int, username: str = "dispatcher") -> int:
    """A dispatcher of the office (the reviewer of a handover is a staff user)."""
    async with transaction(sessions) as session:
        user = StaffUser(
            office_id=office_id,
            username=username,
            password_hash="x",
            role="dispatcher",
            created_at=seed.T0,
        )
        session.add(user)
        await session.flush()
        return user.id


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
