"""`courier demo`: a whole office day on one machine, on a clock that waits for the system.

One process, one event loop, one :class:`~core.clock.WaitingClock` shared by everything. The
demo drives it (:func:`_drive`): while any work is due — a delivery to book, a shipment to poll
or reconcile, a courier push to apply, a claim in flight — the clock stands still (creeping only
to a wait that ends within moments, such as a retry's pause); when everything is idle it jumps to
the next due event (a courier's next scan, a retry, a passport printed at 12:00, an applicant
confirming). So the day settles in the same clock time on any machine, busy or quiet, and
simulated time never outruns the work. ``--speed N`` caps the pace for watching (at most N clock
seconds per wall second); by default there is no cap. Everything runs in it:

* a simulator for every courier the registry lists (their real wire formats; those that push,
  like J&T, push to our webhook),
* the HTTP service (the same app as ``courier serve``, with /docs and /metrics),
* the worker (the same runner as ``courier work``: book, track, inbox, watch),
* the office's system marking express passports ready at 12:00 WIB, and the applicants, who
  confirm on the tracking API that they hold their passport (most of them, after a few hours),
* a live table of deliveries by state (rich), or, with ``--exit``, nothing but a summary.

Ctrl-C (or SIGTERM) stops the worker gracefully (in-flight work finishes or is released), then
the service and the simulators. Logs are JSON lines: to ``demo.log`` in the demo's folder while
the live table owns the terminal, to stderr when headless.

Files: everything goes into one folder (``./demo`` by default) holding a marker file; a fresh run
deletes only the files it names there (database, WAL, log, proof-of-delivery store), and refuses
a folder it did not make.
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
from collections.abc import AsyncIterator, Awaitable, Callable
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
from sqlalchemy import func, or_, select

from adapters import registry
from adapters.base import CourierAdapter, CourierDescriptor
from adapters.http import close_shared_session
from core.clock import WIB, ManualClock, SystemClock, WaitingClock
from core.status import Status
from courier import config, metrics
from courier import logging as courier_logging
from courier.cli.contracts import scorecard_table
from courier.context import AppContext
from courier.db.engine import (
    POOL_SIZE,
    SessionFactory,
    make_engine,
    make_sessions,
    pool_size_for,
    transaction,
)
from courier.db.migrate import upgrade
from courier.db.models import (
    OPEN_SHIPMENT_STATUSES,
    Application,
    AuditEntry,
    Delivery,
    ExceptionItem,
    Handover,
    InboxItem,
    Shipment,
    StaffUser,
)
from courier.demo import mailbox as mailbox_
from courier.demo import seed as demo_seed
from courier.domain.contracts import ContractStatus
from courier.domain.exception_kinds import ExceptionKind
from courier.domain.states import FINAL_DELIVERY_STATES, DeliveryState
from courier.services import contracts, handover, scorecards, watch
from courier.web.app import create_app
from simulators.orders import SimState

log = structlog.get_logger("courier.demo")

DEMO_PEPPER = "demo-only-pepper-not-for-production"
# /metrics is closed unless a token is set; the demo opens it with this one, printed in the banner
DEMO_METRICS_TOKEN = "demo-only-metrics-token-not-for-production"
TICK = 0.01  # wall seconds the driver yields between looks (the loops run meanwhile)
DISPLAY_EVERY = 0.25  # wall seconds between redraws of the live table
# The longest jump of an idle clock: the watch rules (deadlines, stuck shipments, unconfirmed
# handovers) count in hours and are not events anyone announces, so they are looked at least
# this often (clock time).
MAX_JUMP = timedelta(hours=1)
# While work is in flight, the clock may still move to a wait that ends this soon (a retry's
# pause, a rate limit, a loop's short idle poll): in-flight work may be waiting on the clock.
CREEP = timedelta(seconds=5)
# Work seen due this long (wall) without anyone taking it is not waited for any longer: the
# clock steps on by STALL_STEP, logged. A guard against a row no loop will ever claim; never
# reached while the worker keeps up.
STALL_WALL = 15.0
STALL_STEP = timedelta(minutes=1)
# Shipments the worker polls or reconciles (worker/track.py TRACKED, plus booking), and the
# inbox's attempt limit (worker/inbox.py MAX_ATTEMPTS): courier/ never imports worker/.
TRACKED_OR_BOOKING = OPEN_SHIPMENT_STATUSES
INBOX_MAX_ATTEMPTS = 16
DEMO_DIR = Path("demo")
MARKER = ".courier-demo"  # in the demo's folder: "made by courier demo, its files may go"
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
    folder: Path = DEMO_DIR
    keep: bool = False
    speed: float | None = None  # at most this many clock seconds per wall second; None: no cap
    host: str = "127.0.0.1"
    port: int = 8080
    minutes: float | None = None
    headless: bool = False  # --exit: no live table, a summary, exit code says if all settled
    seed: int = 2026
    count: int = 110

    @property
    def db(self) -> Path:
        return self.folder / "demo.sqlite3"

    @property
    def log(self) -> Path:
        return self.folder / "demo.log"

    @property
    def pod(self) -> Path:
        return self.folder / "pod"


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
    clock: WaitingClock
    base_url: str
    sim_urls: dict[str, str]  # per courier code, its simulator
    plan: demo_seed.DemoDay
    seeded: demo_seed.Seeded
    started: datetime
    log_path: Path | None
    speed: float | None = None
    sim_states: list[SimState] = field(default_factory=list)
    pushers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    confirmed: set[str] = field(default_factory=set)
    pending_ready: list[demo_seed.Applicant] = field(default_factory=list)
    reviewer: tuple[int, int] | None = None  # the dispatcher's user id and office id
    addendum_active: bool = False
    waited: int = 0  # deliveries that had a no_contract item
    busy_since: float | None = None  # wall time work was first seen due without the clock moving
    mailbox: mailbox_.Mailbox | None = None  # the SMTP sink the applicants' e-mails reach


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


class FolderNotOurs(Exception):
    """The demo's folder exists, holds files, and was not made by `courier demo`."""


def prepare_folder(opts: DemoOptions) -> None:
    """Make the demo's folder (with its marker), or, for a fresh run in one it made before,
    delete the files it writes there — and nothing else, wherever the demo is run from."""
    folder = opts.folder
    if folder.exists() and not (folder / MARKER).exists() and any(folder.iterdir()):
        raise FolderNotOurs(
            f"{folder} exists and was not made by `courier demo`: name another with --dir"
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("made by `courier demo`; its files here may be replaced\n")
    if opts.keep:
        return
    db = opts.db
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), opts.log):
        path.unlink(missing_ok=True)
    shutil.rmtree(opts.pod, ignore_errors=True)


def build_settings(
    opts: DemoOptions,
    *,
    port: int,
    epoch: datetime,
    couriers: dict[str, Any],
    smtp_port: int | None = None,
) -> config.Settings:
    notify: dict[str, Any] = {}
    if smtp_port is not None:
        notify = {
            "email": {
                "host": opts.host,
                "port": smtp_port,
                "sender": "kirim-paspor@imigrasi-blitar.demo.invalid",
                "starttls": False,
            },
            # the demo's day runs through the night in minutes: send at any hour
            "quiet_hours": ["00:00", "00:01"],
        }
    return config.from_mapping(
        {
            "database_url": f"sqlite+aiosqlite:///{opts.db}",
            "log": {"level": "info", "format": "json"},
            "http": {"host": opts.host, "port": port},
            "security": {"passport_pepper": DEMO_PEPPER},
            "metrics": {"bearer_token": DEMO_METRICS_TOKEN},
            # the demo's clock jumps hours at a time: console sessions count in its time
            "console": {"idle_minutes": 1440, "absolute_hours": 168},
            "pod_store": str(opts.pod),
            "clock": {"epoch": epoch.isoformat()},
            "worker": {
                # clock time, which stands still while a claim is in flight: any lease will do
                "lease_seconds": 600,
                "poll_seconds": 0.2,
                "grace_seconds": 5.0,
            },
            "couriers": couriers,
            "notify": notify,
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
# The people around the service: each a step the driver takes at the current clock time,
# returning when it next has something to do (None: nothing more)


async def office_intake(run: Running) -> datetime | None:
    """The office's system marks each express passport ready when it is printed (12:00 WIB)."""
    now = run.clock.now()
    while run.pending_ready and run.pending_ready[0].ready_at <= now:
        applicant = run.pending_ready.pop(0)
        await demo_seed.mark_ready(run.ctx.sessions, run.ctx.settings, applicant, now=now)
    return run.pending_ready[0].ready_at if run.pending_ready else None


def _applicant_will_confirm(seed: int, application_no: str) -> tuple[bool, timedelta]:
    digest = hashlib.sha256(f"{seed}:{application_no}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    return rng.random() < CONFIRM_RATE, timedelta(hours=rng.uniform(*CONFIRM_HOURS))


async def applicants(
    run: Running, opts: DemoOptions, http: aiohttp.ClientSession
) -> datetime | None:
    """Applicants whose passport the courier delivered confirm possession on the tracking API
    with the number printed in it — most of them, some hours later; the rest never do, and the
    watcher puts them in the exceptions queue."""
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
    later: list[datetime] = []
    for application_no, opened_at in rows:
        if application_no in run.confirmed:
            continue
        will, after = _applicant_will_confirm(opts.seed, application_no)
        token = run.seeded.tracking_tokens.get(application_no)
        if not will or token is None:
            continue
        if now < opened_at + after:
            later.append(opened_at + after)
            continue
        run.confirmed.add(application_no)
        body = {"passport_no": run.seeded.passports[application_no]}
        async with http.post(f"/api/v1/track/{token}/confirm", json=body) as resp:
            await resp.read()
            log.info("demo.applicant_confirmed", status=resp.status)
    return min(later, default=None)


async def contract_manager(run: Running) -> datetime | None:
    """The contract manager activates J&T's addendum mid-morning: the passports that waited for
    a contract book by themselves (activation wakes them)."""
    if run.addendum_active:
        return None
    day = run.started.astimezone(WIB).date()
    due = datetime.combine(day, demo_seed.ADDENDUM_AT, tzinfo=WIB).astimezone(UTC)
    if run.clock.now() < due:
        return due
    caller = await contracts.local_caller(run.ctx, demo_seed.OFFICE_CODE, actor="demo:kontrak.blt")
    found = await contracts.contract_by_number(run.ctx, caller, demo_seed.ADDENDUM)
    if found.status == "draft":
        await contracts.set_status(
            run.ctx, caller, found.id, ContractStatus.ACTIVE, "addendum signed"
        )
    run.addendum_active = True
    return None


async def dispatcher(run: Running) -> datetime | None:
    """The office's dispatcher works the exceptions queue a few clock hours after each item:
    checks the family card (KK) of a relative who received a passport and approves the
    handover; re-ships a returned passport while there is time, else hands it over at the
    counter when the applicant comes (a day later)."""
    if run.reviewer is None:
        async with run.ctx.sessions() as session:
            found = (
                await session.execute(
                    select(StaffUser.id, StaffUser.office_id).where(
                        StaffUser.username == demo_seed.DISPATCHER
                    )
                )
            ).one()
        run.reviewer = (int(found[0]), int(found[1]))
    reviewer, office_id = run.reviewer
    actor = f"staff:{reviewer}"
    now = run.clock.now()
    async with run.ctx.sessions() as session:
        reviews = (
            await session.execute(
                select(Handover.id, Handover.created_at).where(
                    Handover.state == handover.NEEDS_REVIEW
                )
            )
        ).all()
        returned = (
            await session.execute(
                select(Delivery.id, Delivery.state_reason, Delivery.updated_at).where(
                    Delivery.state == DeliveryState.RETURNED.value
                )
            )
        ).all()
    later: list[datetime] = []
    for handover_id, created_at in reviews:
        if now < created_at + DISPATCH_AFTER:
            later.append(created_at + DISPATCH_AFTER)
            continue
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
    for delivery_id, reason, updated_at in returned:
        if now < updated_at + DISPATCH_AFTER:
            later.append(updated_at + DISPATCH_AFTER)
            continue
        at_counter = reason == watch.AT_COUNTER_REASON
        async with transaction(run.ctx.sessions) as session:
            if at_counter:
                await watch.collected_at_counter(
                    session, delivery_id, actor, now=now, office_id=office_id
                )
            else:
                await watch.reship(session, delivery_id, actor, now=now, office_id=office_id)
        log.info("demo.dispatcher_acted", delivery_id=delivery_id, at_counter=at_counter)
    return min(later, default=None)


async def _pause(stopping: asyncio.Event, seconds: float = TICK) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)


# --------------------------------------------------------------------------------------------
# The waiting clock's driver: is any work due, and when is the next thing due


async def work_in_hand(sessions: SessionFactory, now: datetime) -> dict[str, int]:
    """Rows due now that the worker has not finished: deliveries to book, bookings to
    reconcile, shipments to poll, courier pushes to apply, and claims in flight."""
    d, s, i = Delivery, Shipment, InboxItem

    def count(model: Any, *where: Any) -> Any:
        return select(func.count()).select_from(model).where(*where).scalar_subquery()

    query = select(
        count(
            d,
            d.state == DeliveryState.QUEUED.value,
            or_(d.next_attempt_at.is_(None), d.next_attempt_at <= now),
        ),
        count(d, d.lease_owner.is_not(None), d.lease_until > now),
        count(
            s,
            s.status.in_(TRACKED_OR_BOOKING),
            s.next_poll_at.is_not(None),
            s.next_poll_at <= now,
            or_(s.waybill.is_not(None), s.status == Status.BOOKING.value),
        ),
        count(s, s.lease_owner.is_not(None), s.lease_until > now),
        count(
            i,
            i.processed_at.is_(None),
            i.attempts < INBOX_MAX_ATTEMPTS,
            or_(i.next_attempt_at.is_(None), i.next_attempt_at <= now),
        ),
    )
    async with sessions() as session:
        counts = (await session.execute(query)).one()
    names = ("to_book", "deliveries_claimed", "shipments_due", "shipments_claimed", "pushes")
    return {name: int(c or 0) for name, c in zip(names, counts, strict=True)}


async def _activity(sessions: SessionFactory) -> int:
    """The newest audit entry's id: it changes whenever anyone changed anything."""
    async with sessions() as session:
        return int(await session.scalar(select(func.max(AuditEntry.id))) or 0)


async def next_due(sessions: SessionFactory, now: datetime) -> datetime | None:
    """The earliest time after ``now`` at which the database says work falls due."""
    d, s, i = Delivery, Shipment, InboxItem
    async with sessions() as session:
        times = [
            await session.scalar(
                select(func.min(d.next_attempt_at)).where(
                    d.state == DeliveryState.QUEUED.value, d.next_attempt_at > now
                )
            ),
            await session.scalar(
                select(func.min(s.next_poll_at)).where(
                    s.status.in_(TRACKED_OR_BOOKING), s.next_poll_at > now
                )
            ),
            await session.scalar(
                select(func.min(i.next_attempt_at)).where(
                    i.processed_at.is_(None),
                    i.attempts < INBOX_MAX_ATTEMPTS,
                    i.next_attempt_at > now,
                )
            ),
        ]
    found = [_aware(t) for t in times if isinstance(t, datetime)]
    return min(found, default=None)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def next_scan(states: list[SimState], now: datetime) -> datetime | None:
    """When a simulated courier next scans a parcel (its next step after ``now``)."""
    upcoming = [
        step.at
        for state in states
        for order in state.orders.values()
        if order.cancelled_at is None
        for step in order.steps
        if step.at > now
    ]
    return min(upcoming, default=None)


# --------------------------------------------------------------------------------------------
# What the terminal shows


def _clock_line(run: Running) -> str:
    now = run.clock.now().astimezone(WIB)
    day = (now.date() - run.started.astimezone(WIB).date()).days + 1
    pace = "as fast as the work allows" if run.speed is None else f"at most ×{run.speed:g}"
    return f"{now:%a %d-%m-%Y %H:%M} WIB · day {day} · clock {pace}"


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
        Text(f"API docs {run.base_url}/docs · Ctrl-C stops"),
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
        f"  contracts: {lapsed} {demo_seed.POS_CONTRACT} lapsed yesterday; {routed} "
        f"{demo_seed.JNT_CONTRACT} in force from today, but not for Kabupaten Kediri and Kota "
        f"Surabaya: its addendum {demo_seed.ADDENDUM} is activated at "
        f"{demo_seed.ADDENDUM_AT:%H:%M} WIB, and until then their passports wait (no_contract)"
    )
    out.print(
        f"  service      {run.base_url}  (API docs {run.base_url}/docs, {run.base_url}/readyz)"
    )
    out.print(
        f"  metrics      curl -H 'Authorization: Bearer {DEMO_METRICS_TOKEN}' "
        f"{run.base_url}/metrics"
    )
    out.print(
        "  simulators   "
        + "   ".join(f"{registry.name(c)} {url}/_sim/orders" for c, url in run.sim_urls.items())
    )
    out.print(f"  console      {run.base_url}/  (sign in with a username and password below)")
    out.print("  demo sign-ins:")
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
    out.print(
        f"  contract lapse: {run.waited} passport(s) waited for a contract until "
        f"{demo_seed.ADDENDUM_AT:%H:%M} WIB (no_contract items, closed when they booked)"
    )
    verdict = (
        "every delivery settled"
        if progress.settled
        else (f"{progress.unsettled} of {progress.total} deliveries still moving")
    )
    out.print(f"  {verdict}")
    box = run.mailbox
    if box is None or box.port is None:
        out.print("  messages: no SMTP sink (install the dev extras: pip install -e '.[dev]')")
        return
    out.print(f"  messages to applicants (SMTP sink on port {box.port}): {box.received}")
    for subject, n in box.subjects.most_common():
        out.print(f"    {n:>4} × {subject}")


# --------------------------------------------------------------------------------------------
# The whole thing


async def _waited_for_contract(sessions: SessionFactory) -> int:
    async with sessions() as session:
        found = await session.scalar(
            select(func.count(func.distinct(ExceptionItem.delivery_id))).where(
                ExceptionItem.kind == ExceptionKind.NO_CONTRACT.value
            )
        )
    return int(found or 0)


async def print_scorecard(run: Running, out: Console) -> None:
    """The scorecard of the simulated day's month, as `courier report` prints it."""
    day = run.started.astimezone(WIB).date()
    caller = await contracts.local_caller(run.ctx, demo_seed.OFFICE_CODE, actor="demo")
    card = await scorecards.scorecard(run.ctx, caller, period=f"{day:%Y-%m}")
    columns = [(f.contract_number or f.courier_code, f) for f in card.contracts]
    title = f"scorecard {card.office_code} {card.period} (courier report --period {card.period})"
    out.print(scorecard_table(title, columns or [(f.courier_code, f) for f in card.couriers]))


def _log_stream(opts: DemoOptions) -> tuple[TextIO, Path | None]:
    if opts.headless:
        return sys.stderr, None
    return opts.log.open("a", encoding="utf-8"), opts.log


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
    """A courier that pushes pushes to our webhook when the driver says (before the clock moves
    on: a push due is work due), with seeded lifecycles and POD links; one that does not is
    polled and needs nothing."""
    if not courier.capabilities.push:
        return {}
    return {
        "push_url": f"{base_url}/webhooks/{courier.code}",
        "push_interval": None,
        "seed": f"demo{opts.seed}",
        "pod_link_seconds": 3600.0,  # an hour of clock time, as at a real courier
    }


def _simulator_parts(module: Any, app: web.Application) -> tuple[SimState | None, Any]:
    """The simulator's order book (whose next scan is a due event) and, for a courier that
    pushes, a coroutine function sending every scan not yet pushed."""
    state: SimState | None = None
    for value in app.values():
        found = getattr(value, "state", None)
        if isinstance(found, SimState):
            state = found
            pusher = getattr(module, "push_now", None)
            return state, (lambda v=value, p=pusher: p(v)) if pusher is not None else None
    return state, None


async def run_demo(opts: DemoOptions, out: Console, run_worker: WorkerRunner) -> int:
    """Run until Ctrl-C, ``--minutes``, or (headless) every delivery is settled. Returns the exit
    code: headless, 0 only when every delivery is final or waiting for a dispatcher."""
    prepare_folder(opts)
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
    mail = contextlib.ExitStack()
    mailbox = mail.enter_context(mailbox_.running(opts.host, free_port(opts.host)))
    settings = build_settings(
        opts, port=port, epoch=epoch, couriers=couriers, smtp_port=mailbox.port
    )
    # one process serves and works: the worker's pool plus serve's
    engine = make_engine(
        settings.database_url, pool_size=pool_size_for(settings, worker=True) + POOL_SIZE
    )
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
        clock = WaitingClock(epoch)
        observer = metrics.PrometheusObserver()
        for code_, spec in couriers.items():
            adapters[code_] = registry.create(code_, spec, clock=clock, observer=observer)
        ctx = AppContext(settings, engine, sessions, clock, couriers=adapters)
        app = create_app(ctx)
        async with contextlib.AsyncExitStack() as servers:
            run = Running(
                ctx, clock, base_url, sim_urls, plan, seeded, clock.now(), log_path, opts.speed
            )
            run.mailbox = mailbox
            for code_, module in sim_modules.items():
                sim_app = module.create_app(clock, options=sim_options[code_] or None)
                state, pusher = _simulator_parts(module, sim_app)
                if state is not None:
                    run.sim_states.append(state)
                if pusher is not None:
                    run.pushers.append(pusher)
                await servers.enter_async_context(serving(sim_app, opts.host, sim_ports[code_]))
            await servers.enter_async_context(serving(app, opts.host, port))
            if seeded.registered:  # a kept database: its day was seeded (and marked) before
                run.pending_ready = sorted(
                    (a for a in plan.applicants if a.application_no not in seeded.ready),
                    key=lambda a: a.ready_at,
                )
            banner(run, out)
            code = await _drive(run, opts, out, run_worker, stopping)
    finally:
        for adapter in adapters.values():
            await adapter.close()
        await close_shared_session()  # the adapters' one session for this event loop
        await engine.dispose()
        mail.close()
        if stream is not sys.stderr:
            stream.close()
    return code


async def _step_clock(
    run: Running, opts: DemoOptions, http: aiohttp.ClientSession, wall: float
) -> bool:
    """One look at the system, then move the clock as far as it may go. True when it moved."""
    clock = run.clock
    for push in run.pushers:  # scans already made are work due: hand them over first
        await push()
    now = clock.now()
    sleeper = clock.next_wake()
    in_hand = await work_in_hand(run.ctx.sessions, now)
    if any(in_hand.values()):
        run.busy_since = run.busy_since or wall
        if wall - run.busy_since >= STALL_WALL:
            # due work nobody takes (a row no loop will claim): step on rather than hang
            log.warning("demo.clock_stall", wall_seconds=round(wall - run.busy_since, 1), **in_hand)
            run.busy_since = None
            clock.advance_to(now + STALL_STEP)
            return True
        # work is due or in flight: stand still, except for a wait that ends within moments
        # (the in-flight work may be that wait: a retry's pause, a rate limit, a short poll)
        if sleeper is not None and sleeper <= now + CREEP:
            clock.advance_to(sleeper)
            return True
        return False
    run.busy_since = None
    # idle: the people around the service act on what is due for them now (which may make
    # work: look again next tick), then the clock jumps to the next due event. The loops' own
    # idle waits are not events (they are polls; the jump wakes them all).
    marker = await _activity(run.ctx.sessions)
    events = [
        await office_intake(run),
        await contract_manager(run),
        await applicants(run, opts, http),
        await dispatcher(run),
    ]
    if await _activity(run.ctx.sessions) != marker:
        return False
    events += [await next_due(run.ctx.sessions, now), next_scan(run.sim_states, now)]
    target = min([e for e in events if e is not None and e > now] + [now + MAX_JUMP])
    clock.advance_to(target)
    return True


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
    loop = asyncio.get_running_loop()
    deadline = None if opts.minutes is None else loop.time() + (opts.minutes * 60)
    progress = await read_progress(run.ctx)
    live = (
        None
        if opts.headless
        else Live(render(run, progress), console=out, refresh_per_second=4, transient=False)
    )
    shown = loop.time()
    try:
        if live is not None:
            live.start()
        async with aiohttp.ClientSession(base_url=run.base_url) as http:
            while not stopping.is_set() and not worker.done():
                if deadline is not None and loop.time() >= deadline:
                    break
                before = run.clock.now()
                await _step_clock(run, opts, http, loop.time())
                if run.clock.now().astimezone(WIB).date() != before.astimezone(WIB).date():
                    log.info("demo.new_day", clock=run.clock.now().isoformat())
                if run.speed is not None:
                    # --speed: at most that many clock seconds per wall second
                    jumped = (run.clock.now() - before).total_seconds()
                    await _pause(stopping, jumped / run.speed)
                if loop.time() - shown >= DISPLAY_EVERY:
                    progress = await read_progress(run.ctx)
                    shown = loop.time()
                    if live is not None:
                        live.update(render(run, progress))
                    if opts.headless and progress.settled:
                        break
                # let the worker's loops run: they wake on the clock and on the wall
                await _pause(stopping)
    finally:
        stopping.set()
        if live is not None:
            live.stop()
        await asyncio.gather(worker, return_exceptions=True)
    progress = await read_progress(run.ctx)
    routed_sim = run.sim_urls.get(demo_seed.OFFICE["courier"], "")
    run.waited = await _waited_for_contract(run.ctx.sessions)
    summary(run, progress, await _sim_orders(routed_sim) if routed_sim else {}, out)
    await print_scorecard(run, out)
    if opts.headless:
        return 0 if progress.settled else 1
    return 0
