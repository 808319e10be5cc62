"""`courier demo`: a whole office day on one machine, on an accelerated clock.

One process, one event loop, one :class:`~core.clock.ScaledClock` shared by everything
(several processes would each start their scaled clock at a different wall instant and
disagree by seconds × speed):

* a simulator for every courier the registry lists (their real wire formats; those that push,
  like J&T, push to our webhook),
* the HTTP service (the same app as ``courier serve``, with /docs and /metrics),
* the worker (the same runner as ``courier work``: book, track, inbox, watch),
* the office's system marking express passports ready at 12:00 WIB, and the applicants, who
  confirm on the tracking API that they hold their passport (most of them, after a few hours),
* a live table of deliveries by state (rich), or, with ``--exit``, nothing but a summary.

Ctrl-C (or SIGTERM) stops the worker gracefully (in-flight work finishes or is released), then
the service and the simulators. Logs are JSON lines: to ``<db>.log`` while the live table owns
the terminal, to stderr when headless.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import random
import shutil
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import structlog
from aiohttp import web
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select

from adapters import registry
from adapters.base import CourierAdapter, CourierDescriptor
from adapters.http import close_shared_session
from core.clock import WIB, ManualClock, ScaledClock, SystemClock
from courier import config, metrics
from courier import logging as courier_logging
from courier.context import AppContext
from courier.db.engine import SessionFactory, make_engine, make_sessions, transaction
from courier.db.migrate import upgrade
from courier.db.models import (
    Application,
    AuditEntry,
    Delivery,
    ExceptionItem,
    Handover,
    StaffUser,
)
from courier.demo import seed as demo_seed
from courier.domain.states import FINAL_DELIVERY_STATES, DeliveryState
from courier.services import handover, watch
from courier.web.app import create_app

log = structlog.get_logger("courier.demo")

DEFAULT_SPEED = 1000.0  # a day in ~86 s: a delivery's three days in about four minutes
DEMO_PEPPER = "demo-only-pepper-not-for-production"
TICK = 0.5  # wall seconds between the demo's own steps (display, applicants, intake)
CONFIRM_RATE = 0.9  # share of applicants who confirm on the tracking page by themselves
CONFIRM_HOURS = (1.0, 30.0)  # clock hours after delivery before they do

# Delivery states that need nothing more from anyone
FINAL = frozenset(s.value for s in FINAL_DELIVERY_STATES)
ATTENTION = DeliveryState.NEEDS_ATTENTION.value
DISPATCH_AFTER = timedelta(hours=2)  # clock time before the dispatcher acts on an item
STATE_ORDER = [s.value for s in DeliveryState]

WorkerRunner = Callable[..., Any]


@dataclass(frozen=True)
class DemoOptions:
    db: Path = Path("demo.sqlite3")
    keep: bool = False
    speed: float = DEFAULT_SPEED
    host: str = "127.0.0.1"
    port: int = 8080
    minutes: float | None = None
    headless: bool = False  # --exit: no live table, a summary, exit code says if all settled
    seed: int = 2026
    count: int = 110


@dataclass
class Progress:
    states: dict[str, int] = field(default_factory=dict)
    exceptions: dict[str, int] = field(default_factory=dict)
    unsettled: int = 0
    total: int = 0

    @property
    def settled(self) -> bool:
        return self.total > 0 and self.unsettled == 0


@dataclass
class Running:
    ctx: AppContext
    clock: ScaledClock
    base_url: str
    sim_urls: dict[str, str]  # per courier code, its simulator
    plan: demo_seed.DemoDay
    seeded: demo_seed.Seeded
    started: datetime
    log_path: Path | None
    confirmed: set[str] = field(default_factory=set)


def free_port(host: str, wanted: int = 0) -> int:
    """``wanted`` when it is free (0: any), else any free port: a busy 8080 must not stop
    `make demo`; the banner prints the URL actually served."""
    for port in dict.fromkeys((wanted, 0)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            chosen: int = s.getsockname()[1]
            return chosen
    raise OSError(f"no free port on {host}")


def fresh_files(db: Path) -> None:
    """Remove a previous demo's database (with its WAL files), POD store and log."""
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), db.with_suffix(".log")):
        path.unlink(missing_ok=True)
    shutil.rmtree(db.with_suffix(".pod"), ignore_errors=True)


def build_settings(
    opts: DemoOptions, *, port: int, epoch: datetime, couriers: dict[str, Any]
) -> config.Settings:
    return config.from_mapping(
        {
            "database_url": f"sqlite+aiosqlite:///{opts.db}",
            "log": {"level": "info", "format": "json"},
            "http": {"host": opts.host, "port": port},
            "security": {"passport_pepper": DEMO_PEPPER},
            "pod_store": str(opts.db.with_suffix(".pod")),
            "clock": {"epoch": epoch.isoformat(), "speed": opts.speed},
            "worker": {
                # leases are clock time: give each ~60 wall seconds whatever the speed
                "lease_seconds": max(120, int(60 * opts.speed)),
                "poll_seconds": 0.2,
                "grace_seconds": 5.0,
            },
            "couriers": couriers,
        },
        source="courier demo",
    )


@contextlib.asynccontextmanager
async def serving(app: web.Application, host: str, port: int) -> AsyncIterator[str]:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def _epoch_for(opts: DemoOptions, ctx_url: str) -> datetime:
    """08:00 WIB of the office day, or — for a kept database — just after its last change."""
    if opts.keep:
        engine = make_engine(ctx_url)
        try:
            async with engine.connect() as conn:
                last = (await conn.execute(select(func.max(AuditEntry.at)))).scalar()
        finally:
            await engine.dispose()
        if isinstance(last, datetime):
            return (last if last.tzinfo else last.replace(tzinfo=UTC)) + timedelta(minutes=1)
    today = SystemClock().now().astimezone(WIB).date()  # the real day: the demo plays today
    return demo_seed.plan_day(demo_seed.demo_day(today), count=1).opens_at


async def read_progress(ctx: AppContext) -> Progress:
    return await read_progress_of(ctx.sessions)


async def read_progress_of(sessions: SessionFactory) -> Progress:
    async with sessions() as session:
        rows = (await session.execute(select(Delivery.state))).all()
        kinds = (
            await session.execute(
                select(ExceptionItem.kind, func.count())
                .where(ExceptionItem.resolved_at.is_(None))
                .group_by(ExceptionItem.kind)
            )
        ).all()
    out = Progress(total=len(rows), exceptions={str(k): int(n) for k, n in kinds})
    for (state,) in rows:
        out.states[state] = out.states.get(state, 0) + 1
        out.unsettled += not (state in FINAL or state == ATTENTION)
    return out


# --------------------------------------------------------------------------------------------
# The people around the service


async def office_intake(run: Running, stopping: asyncio.Event) -> None:
    """The office's system marks each express passport ready when it is printed (12:00 WIB)."""
    if not run.seeded.registered:
        return  # a kept database: its day was seeded (and marked) by an earlier run
    pending = sorted(
        (a for a in run.plan.applicants if a.application_no not in run.seeded.ready),
        key=lambda a: a.ready_at,
    )
    while pending and not stopping.is_set():
        now = run.clock.now()
        while pending and pending[0].ready_at <= now:
            applicant = pending.pop(0)
            await demo_seed.mark_ready(run.ctx.sessions, run.ctx.settings, applicant, now=now)
        await _pause(stopping)


def _applicant_will_confirm(seed: int, application_no: str) -> tuple[bool, timedelta]:
    digest = hashlib.sha256(f"{seed}:{application_no}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    return rng.random() < CONFIRM_RATE, timedelta(hours=rng.uniform(*CONFIRM_HOURS))


async def applicants(run: Running, opts: DemoOptions, stopping: asyncio.Event) -> None:
    """Applicants whose passport the courier delivered confirm possession on the tracking API
    with the number printed in it — most of them, some hours later; the rest never do, and the
    watcher puts them in the exceptions queue."""
    async with aiohttp.ClientSession(base_url=run.base_url) as http:
        while not stopping.is_set():
            async with run.ctx.sessions() as session:
                rows = (
                    await session.execute(
                        select(Application.application_no, Handover.created_at)
                        .join(Delivery, Delivery.application_id == Application.id)
                        .join(Handover, Handover.delivery_id == Delivery.id)
                        .where(
                            Handover.state == "awaiting_confirmation",
                            Delivery.state == DeliveryState.DELIVERED.value,
                        )
                    )
                ).all()
            now = run.clock.now()
            for application_no, opened_at in rows:
                if application_no in run.confirmed:
                    continue
                will, after = _applicant_will_confirm(opts.seed, application_no)
                token = run.seeded.tracking_tokens.get(application_no)
                if not will or token is None or now < opened_at + after:
                    continue
                run.confirmed.add(application_no)
                body = {"passport_no": run.seeded.passports[application_no]}
                async with http.post(f"/api/v1/track/{token}/confirm", json=body) as resp:
                    await resp.read()
                    log.info("demo.applicant_confirmed", status=resp.status)
            await _pause(stopping)


async def dispatcher(run: Running, stopping: asyncio.Event) -> None:
    """The office's dispatcher works the exceptions queue a few clock hours after each item:
    checks the family card (KK) of a relative who received a passport and approves the
    handover; re-ships a returned passport while there is time, else hands it over at the
    counter when the applicant comes (a day later)."""
    async with run.ctx.sessions() as session:
        reviewer, office_id = (
            await session.execute(
                select(StaffUser.id, StaffUser.office_id).where(
                    StaffUser.username == demo_seed.DISPATCHER
                )
            )
        ).one()
    actor = f"staff:{reviewer}"
    while not stopping.is_set():
        now = run.clock.now()
        async with run.ctx.sessions() as session:
            reviews = (
                (
                    await session.execute(
                        select(Handover.id).where(
                            Handover.state == handover.NEEDS_REVIEW,
                            Handover.created_at <= now - DISPATCH_AFTER,
                        )
                    )
                )
                .scalars()
                .all()
            )
            returned = (
                await session.execute(
                    select(Delivery.id, Delivery.state_reason).where(
                        Delivery.state == DeliveryState.RETURNED.value,
                        Delivery.updated_at <= now - DISPATCH_AFTER,
                    )
                )
            ).all()
        for handover_id in reviews:
            async with transaction(run.ctx.sessions) as session:
                await handover.review(
                    session,
                    handover_id,
                    reviewer,
                    True,
                    "family card (KK) shown to the courier matches the applicant's",
                    now=now,
                    office_id=office_id,
                )
            log.info("demo.dispatcher_reviewed", handover_id=handover_id)
        for delivery_id, reason in returned:
            at_counter = reason == watch.AT_COUNTER_REASON
            async with transaction(run.ctx.sessions) as session:
                if at_counter:
                    await watch.collected_at_counter(
                        session, delivery_id, actor, now=now, office_id=office_id
                    )
                else:
                    await watch.reship(session, delivery_id, actor, now=now, office_id=office_id)
            log.info("demo.dispatcher_acted", delivery_id=delivery_id, at_counter=at_counter)
        await _pause(stopping)


async def _pause(stopping: asyncio.Event, seconds: float = TICK) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)


# --------------------------------------------------------------------------------------------
# What the terminal shows


def _clock_line(run: Running) -> str:
    now = run.clock.now().astimezone(WIB)
    day = (now.date() - run.started.astimezone(WIB).date()).days + 1
    return f"{now:%a %d-%m-%Y %H:%M} WIB · day {day} · clock ×{run.clock.speed:g}"


def render(run: Running, progress: Progress) -> Group:
    table = Table(title="Deliveries by state", expand=False)
    table.add_column("state")
    table.add_column("count", justify="right")
    table.add_column("")
    top = max([1, *progress.states.values()])
    for state in STATE_ORDER:
        n = progress.states.get(state, 0)
        style = "green" if state in FINAL else "yellow" if state == ATTENTION else ""
        table.add_row(Text(state, style=style), str(n), "█" * round(24 * n / top))
    items = ", ".join(f"{k} {n}" for k, n in sorted(progress.exceptions.items())) or "none"
    return Group(
        Text(f"{demo_seed.OFFICE_NAME} — {_clock_line(run)}", style="bold"),
        table,
        Text(f"exceptions queue: {items}"),
        Text(
            f"{progress.total - progress.unsettled}/{progress.total} deliveries settled "
            "(final, or waiting for a dispatcher with a reason)",
        ),
        Text(f"API docs {run.base_url}/docs · metrics {run.base_url}/metrics · Ctrl-C stops"),
    )


def banner(run: Running, out: Console) -> None:
    s = run.seeded
    out.print(f"[bold]courier demo[/bold] — {demo_seed.OFFICE_NAME} (BLT), {_clock_line(run)}")
    out.print(
        f"  {s.registered} passports for today, {s.opted_in} opted into home delivery "
        f"({sum(a.express for a in run.plan.applicants)} express: ready at 12:00 WIB)"
    )
    routed = registry.name(demo_seed.OFFICE["courier"])
    lapsed = ", ".join(registry.name(c) for c in run.sim_urls if c != demo_seed.OFFICE["courier"])
    out.print(
        f"  routing: {routed} (contract in force); {lapsed} contract lapsed, not routed "
        "— contracts come with a later issue: recorded as the office's courier routing"
    )
    out.print(
        f"  service      {run.base_url}  (API docs {run.base_url}/docs, "
        f"metrics {run.base_url}/metrics, {run.base_url}/readyz)"
    )
    out.print(
        "  simulators   "
        + "   ".join(f"{registry.name(c)} {url}/_sim/orders" for c, url in run.sim_urls.items())
    )
    out.print("  demo sign-ins (staff pages come with a later issue; API tokens work now):")
    for username, role, password in demo_seed.STAFF:
        token = s.api_tokens.get(role, "")
        out.print(f"    {role:<17} {username:<14} password {password:<20} token {token}")
    sample = next(iter(s.tracking_tokens.values()), None)
    if sample:
        out.print(f"  an applicant's tracking API: {run.base_url}/api/v1/track/{sample}")
    if run.log_path is not None:
        out.print(f"  logs (JSON lines): {run.log_path}")


def summary(run: Running, progress: Progress, orders: dict[str, Any], out: Console) -> None:
    out.print(f"[bold]summary[/bold] at {_clock_line(run)}")
    for state in STATE_ORDER:
        if progress.states.get(state):
            out.print(f"  {state:<20} {progress.states[state]:>4}")
    for kind, n in sorted(progress.exceptions.items()):
        out.print(f"  open exception: {kind:<20} {n:>4}")
    counts = orders.get("create_counts", {})
    out.print(
        f"  {registry.name(demo_seed.OFFICE['courier'])} orders: "
        f"{len(orders.get('orders', []))} · create calls per reference: "
        f"max {max(counts.values(), default=0)}"
    )
    verdict = (
        "every delivery settled"
        if progress.settled
        else (f"{progress.unsettled} of {progress.total} deliveries still moving")
    )
    out.print(f"  {verdict}")


# --------------------------------------------------------------------------------------------
# The whole thing


def _log_stream(opts: DemoOptions) -> tuple[TextIO, Path | None]:
    if opts.headless:
        return sys.stderr, None
    path = opts.db.with_suffix(".log")
    return path.open("a", encoding="utf-8"), path


async def _sim_orders(url: str) -> dict[str, Any]:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{url}/_sim/orders") as resp:
            data: dict[str, Any] = await resp.json()
            return data
    except (aiohttp.ClientError, TimeoutError):
        return {}


def _simulator_options(
    courier: CourierDescriptor, base_url: str, opts: DemoOptions
) -> dict[str, Any]:
    """A courier that pushes pushes to our webhook every tick, with seeded lifecycles and POD
    links; one that does not is polled and needs nothing."""
    if not courier.capabilities.push:
        return {}
    return {
        "push_url": f"{base_url}/webhooks/{courier.code}",
        "push_interval": TICK,
        "seed": f"demo{opts.seed}",
        # a POD link lasts hours at a real courier; at this speed hours are seconds, so give
        # the worker about a wall minute to fetch it
        "pod_link_seconds": max(3600.0, 60 * opts.speed),
    }


async def run_demo(opts: DemoOptions, out: Console, run_worker: WorkerRunner) -> int:
    """Run until Ctrl-C, ``--minutes``, or (headless) every delivery is settled. Returns the exit
    code: headless, 0 only when every delivery is final or waiting for a dispatcher."""
    if not opts.keep:
        fresh_files(opts.db)
    opts.db.parent.mkdir(parents=True, exist_ok=True)
    stream, log_path = _log_stream(opts)
    courier_logging.configure("info", "json", stream=stream)
    url = f"sqlite+aiosqlite:///{opts.db}"
    await asyncio.to_thread(upgrade, url)
    epoch = await _epoch_for(opts, url)
    port = free_port(opts.host, opts.port)
    base_url = f"http://{opts.host}:{port}"
    # every courier the registry lists that has a simulator, each on its own free port
    simulated = [d for d in registry.DESCRIPTORS.values() if d.simulator]
    sim_ports = {d.code: free_port(opts.host) for d in simulated}
    sim_urls = {code: f"http://{opts.host}:{p}" for code, p in sim_ports.items()}
    sim_options = {d.code: _simulator_options(d, base_url, opts) for d in simulated}
    sim_modules = {d.code: importlib.import_module(d.simulator) for d in simulated}
    couriers = {
        code: module.adapter_settings(sim_urls[code], sim_options[code])
        for code, module in sim_modules.items()
    }
    settings = build_settings(opts, port=port, epoch=epoch, couriers=couriers)
    engine = make_engine(settings.database_url)
    sessions = make_sessions(engine)
    adapters: dict[str, CourierAdapter] = {}
    stopping = asyncio.Event()
    code = 0
    try:
        plan = demo_seed.plan_day(epoch.astimezone(WIB).date(), seed=opts.seed, count=opts.count)
        seeded = demo_seed.Seeded()
        if not opts.keep or (await read_progress_of(sessions)).total == 0:
            out.print(f"seeding {opts.count} passports at {demo_seed.OFFICE_NAME}…")
            # seeding takes seconds of hashing: on a still clock, so the day starts at 08:00
            seeding = AppContext(settings, engine, sessions, ManualClock(epoch))
            seeded = await demo_seed.seed(seeding, plan)
        clock = ScaledClock(epoch, opts.speed)
        observer = metrics.PrometheusObserver()
        for code_, spec in couriers.items():
            adapters[code_] = registry.create(code_, spec, clock=clock, observer=observer)
        ctx = AppContext(settings, engine, sessions, clock, couriers=adapters)
        app = create_app(ctx)
        async with contextlib.AsyncExitStack() as servers:
            for code_, module in sim_modules.items():
                sim_app = module.create_app(clock, options=sim_options[code_] or None)
                await servers.enter_async_context(serving(sim_app, opts.host, sim_ports[code_]))
            await servers.enter_async_context(serving(app, opts.host, port))
            run = Running(ctx, clock, base_url, sim_urls, plan, seeded, clock.now(), log_path)
            banner(run, out)
            code = await _drive(run, opts, out, run_worker, stopping)
    finally:
        for adapter in adapters.values():
            await adapter.close()
        await close_shared_session()  # the adapters' one session for this event loop
        await engine.dispose()
        if stream is not sys.stderr:
            stream.close()
    return code


async def _drive(
    run: Running,
    opts: DemoOptions,
    out: Console,
    run_worker: WorkerRunner,
    stopping: asyncio.Event,
) -> int:
    worker = asyncio.create_task(
        run_worker(run.ctx, worker_id="demo-worker", stopping=stopping), name="worker"
    )
    helpers = [
        asyncio.create_task(office_intake(run, stopping), name="intake"),
        asyncio.create_task(applicants(run, opts, stopping), name="applicants"),
        asyncio.create_task(dispatcher(run, stopping), name="dispatcher"),
    ]
    deadline = (
        None if opts.minutes is None else asyncio.get_running_loop().time() + (opts.minutes * 60)
    )
    progress = await read_progress(run.ctx)
    live = (
        None
        if opts.headless
        else Live(render(run, progress), console=out, refresh_per_second=4, transient=False)
    )
    try:
        if live is not None:
            live.start()
        while not stopping.is_set() and not worker.done():
            progress = await read_progress(run.ctx)
            if live is not None:
                live.update(render(run, progress))
            if opts.headless and progress.settled:
                break
            if deadline is not None and asyncio.get_running_loop().time() >= deadline:
                break
            await _pause(stopping)
    finally:
        stopping.set()
        if live is not None:
            live.stop()
        await asyncio.gather(*helpers, return_exceptions=True)
        await asyncio.gather(worker, return_exceptions=True)
    progress = await read_progress(run.ctx)
    routed_sim = run.sim_urls.get(demo_seed.OFFICE["courier"], "")
    summary(run, progress, await _sim_orders(routed_sim) if routed_sim else {}, out)
    if opts.headless:
        return 0 if progress.settled else 1
    return 0
