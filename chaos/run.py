"""One chaos run: `courier work` processes and a `courier serve` over a database of their own,
both courier simulators with faults and every real-world variation on, workers SIGKILLed at
random moments and restarted, and (PostgreSQL) every database connection cut for a while.

Time. Every process runs one service clock, a :class:`~core.clock.ScaledClock` with the same
epoch, speed and start (``[clock]`` in the configuration the processes read; the simulators run
in this process on the same clock), so days of parcel lifecycles pass in a minute or two. What
a wall second is worth therefore grows with the speed: the worker's lease and the booking
deadline are configured in wall seconds × speed, as an operator compressing time would. The
outcome never depends on how fast the machine is: a slow machine sees more watchers' items
(a shipment silent past its limit gets one, as it should) and takes longer; the checks hold
either way.

The database outage goes through a :class:`TcpProxy` this run owns (the shared PostgreSQL is
never restarted): every connection of the workers and of serve is aborted and new ones are
refused for ``outage_seconds``, then the proxy listens again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import tomli_w
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench.common import fresh_pg_db
from chaos import checks
from chaos.seed import Applicant, applicants, seed
from core.clock import ScaledClock
from courier.db.engine import SessionFactory, make_engine, make_sessions
from courier.db.migrate import upgrade
from courier.db.models import AuditEntry, Shipment
from simulators import jnt as jnt_sim
from simulators import posind as pos_sim
from simulators.lifecycle import OUTCOME_WEIGHTS, OUTCOMES
from simulators.orders import SimState
from simulators.variations import NAMES
from tests.tcp_proxy import TcpProxy

COURIER = str(Path(sys.executable).parent / "courier")
PEPPER = "chaos-pepper-5f1c9e27b3d84a60-quvwxyz"
#: Monday 07:30 WIB: the first pickup slot (10:00) is the same morning
EPOCH = datetime(2026, 11, 2, 0, 30, tzinfo=UTC)
#: outcomes that settle within about three days of service time (the short run's)
FAST_OUTCOMES = ("delivered_self", "delivered_family", "delivered_other", "fail_once_then_deliver")

#: the issue's mix, per call to every endpoint of both couriers; lost replies are held longer
#: than the client waits (wall seconds: faults exercise the client's real timeouts)
FAULTS = {
    "seed": 14,
    "endpoints": {
        "*": {
            "latency_ms": [1, 25],
            "error_rate": 0.10,
            "timeout_rate": 0.05,
            "rate_limit_rate": 0.03,
            "retry_after": 1,
            "timeout_processed_rate": 0.05,
            "timeout_seconds": 1.0,
        }
    },
}
TRANSPORT = {
    "connect_timeout": 0.5,
    "read_timeout": 0.6,
    "total_timeout": 0.8,
    "max_attempts": 2,
    "backoff_initial": 0.05,
    "backoff_max": 0.2,
    "requests_per_second": 1000,
}
DUPLICATE_PUSHES = 0.05
REORDERED_PUSHES = 0.05


@dataclass(frozen=True)
class Options:
    backend: str = "postgresql"  # or "sqlite" (one worker: SQLite has one writer)
    deliveries: int = 1000
    workers: int = 3
    kills: int = 30
    kill_every: float = 3.0  # mean wall seconds between kills
    outage_seconds: float = 5.0  # PostgreSQL only; 0: none
    speed: float = 3000.0  # service-clock seconds per wall second
    fast_outcomes: bool = False
    pod_link_seconds: float = 3600.0  # service seconds a J&T proof-of-delivery link works
    push_every: float = 0.25  # wall seconds between J&T push batches
    seed: int = 14
    pg_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    timeout: float = 900.0  # wall seconds before giving up on coming to rest
    keep: Path | None = None  # keep configuration and logs here
    progress: Callable[[str], None] | None = None


@dataclass
class Tally:
    kills: int = 0
    restarts: int = 0
    outage_seconds: float = 0.0
    outage_connections_cut: int = 0
    pushes: int = 0
    pushes_duplicated: int = 0
    pushes_reordered: int = 0
    push_failures: int = 0
    started: float = field(default_factory=time.monotonic)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """`courier` subprocesses, each logging into its own file of ``folder``."""

    def __init__(self, folder: Path, config: Path) -> None:
        self.folder = folder
        self.config = config
        self.all: list[subprocess.Popen[bytes]] = []
        self.log_of: dict[int, Path] = {}
        self.n = 0

    def spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        self.n += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
        env["COURIER_CONFIG"] = str(self.config)
        path = self.folder / f"{self.n:03d}-{name}.log"
        with open(path, "wb") as log:
            proc = subprocess.Popen([COURIER, *args], env=env, stdout=log, stderr=subprocess.STDOUT)
        self.all.append(proc)
        self.log_of[proc.pid] = path
        return proc

    def working(self, proc: subprocess.Popen[bytes]) -> bool:
        """The worker has started its loops (a kill before that would only test start-up)."""
        return b"worker.started" in self.log_of[proc.pid].read_bytes()

    def logs(self) -> list[Path]:
        return sorted(self.folder.glob("*.log"))

    async def stop(self, procs: list[subprocess.Popen[bytes]], within: float = 30.0) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + within
        await _until(
            lambda: all(p.poll() is not None for p in procs) or time.monotonic() > deadline
        )
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    def kill_all(self) -> None:
        for proc in self.all:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@contextlib.asynccontextmanager
async def _database(opts: Options, folder: Path) -> AsyncIterator[str]:
    if opts.backend == "sqlite":
        await asyncio.to_thread(_forget_earlier_run, folder)
        url = f"sqlite+aiosqlite:///{folder / 'chaos.db'}"
        await asyncio.to_thread(upgrade, url)
        yield url
    else:
        async with fresh_pg_db(opts.pg_url, "chaos") as url:
            yield url


def _forget_earlier_run(folder: Path) -> None:
    for old in folder.glob("chaos.db*"):  # a kept folder's SQLite file
        old.unlink()


async def _until(done: Callable[[], bool], every: float = 0.2) -> None:
    """Wait (polling) until ``done()``: processes and log files have no event to await."""
    while True:
        if done():
            return
        await asyncio.sleep(every)


async def _simulator(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def _config(
    opts: Options, folder: Path, db_url: str, urls: dict[str, str], clock: ScaledClock
) -> dict[str, Any]:
    couriers = {
        "jnt": {**jnt_sim.adapter_settings(urls["jnt"]), "transport": TRANSPORT},
        "posind": {**pos_sim.adapter_settings(urls["posind"]), "transport": TRANSPORT},
    }
    return {
        "database_url": db_url,
        "log": {"level": "info", "format": "json"},
        # The simulator pushes every unacknowledged scan in one batch: with hundreds of parcels
        # on the move that passes the default 64 KiB, is refused with 413, grows, and J&T's
        # pushes stop for good (found by this run; see the README). Room for the run's batches.
        "http": {"max_body_bytes": 8 * 1024 * 1024},
        "pod_store": str(folder / "pod"),
        "clock": {"epoch": EPOCH.isoformat(), "speed": opts.speed, "started": clock.started},
        "worker": {
            # six wall seconds: a killed worker's work is free again soon, and no call with
            # its retries (a few wall seconds at worst) outlives its lease
            "lease_seconds": math.ceil(6 * opts.speed),
            "poll_seconds": 0.5,  # wall: due work wakes PostgreSQL workers at once (LISTEN)
            "grace_seconds": 5,
            "concurrency_per_courier": 4,
            # a minute of wall time: an outage and a killed worker's lease fit in it
            "booking_deadline_minutes": math.ceil(opts.speed),
        },
        "couriers": couriers,
        "security": {"passport_pepper": PEPPER},
    }


def _outcomes(people: list[Applicant], opts: Options) -> dict[str, dict[str, str]]:
    """The parcel's fate at the courier, per first-attempt reference, drawn with the
    simulators' own weights (only the quick ones for a short run)."""
    rng = random.Random(opts.seed)
    pairs = [
        (o, w) for o, w in zip(OUTCOMES, OUTCOME_WEIGHTS, strict=True)
        if not opts.fast_outcomes or o in FAST_OUTCOMES
    ]  # fmt: skip
    names, weights = zip(*pairs, strict=True)
    forced: dict[str, dict[str, str]] = {"jnt": {}, "posind": {}}
    for p in people:
        forced[p.courier][p.reference] = rng.choices(names, weights=weights)[0]
    return forced


async def run(opts: Options) -> tuple[checks.Outcome, Tally]:
    if opts.backend not in ("postgresql", "sqlite"):
        raise ValueError("backend must be postgresql or sqlite")
    # a worker killed while sending a request leaves the simulator half a request: expected here
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    workers = 1 if opts.backend == "sqlite" else opts.workers
    folder = opts.keep or Path(tempfile.mkdtemp(prefix="courier-chaos-"))
    folder.mkdir(parents=True, exist_ok=True)
    say = opts.progress or (lambda _line: None)
    tally = Tally()
    try:
        async with _database(opts, folder) as db_url:
            outcome = await _run(opts, folder, db_url, workers, tally, say)
    finally:
        if opts.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return outcome, tally


async def _run(
    opts: Options,
    folder: Path,
    db_url: str,
    workers: int,
    tally: Tally,
    say: Callable[[str], None],
) -> checks.Outcome:
    engine = make_engine(db_url)
    sessions = make_sessions(engine)
    people = applicants(opts.deliveries, opts.seed)
    await seed(sessions, people, now=EPOCH, pepper=PEPPER)
    say(f"seeded {len(people)} deliveries on {opts.backend}; logs in {folder}")

    clock = ScaledClock(EPOCH, opts.speed)
    serve_port = _free_port()
    variations = {"seed": f"chaos-{opts.seed}", "rates": dict.fromkeys(NAMES, 1)}
    jnt_app = jnt_sim.create_app(
        clock,
        options={
            "faults": FAULTS,
            "variations": variations,
            "seed": f"chaos-{opts.seed}",
            "pod_link_seconds": opts.pod_link_seconds,
            "push_url": f"http://127.0.0.1:{serve_port}/webhooks/jnt",
        },
    )
    pos_app = pos_sim.create_app(
        clock, options={"faults": FAULTS, "variations": variations, "seed": f"chaos-{opts.seed}"}
    )
    sims: dict[str, SimState] = {
        "jnt": jnt_app[jnt_sim.SIM_KEY].state,
        "posind": pos_app[pos_sim.STATE_KEY].state,
    }
    for courier, forced in _outcomes(people, opts).items():
        sims[courier].forced_outcomes.update(forced)
    runners: list[web.AppRunner] = []
    urls: dict[str, str] = {}
    proxy: TcpProxy | None = None
    procs: Processes | None = None
    try:
        for courier, app in (("jnt", jnt_app), ("posind", pos_app)):
            runner, urls[courier] = await _simulator(app)
            runners.append(runner)
        served_url = db_url
        if opts.backend == "postgresql":
            url = make_url(db_url)
            proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
            served_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(
                hide_password=False
            )
        config = folder / "courier.toml"
        config.write_bytes(tomli_w.dumps(_config(opts, folder, served_url, urls, clock)).encode())
        procs = Processes(folder, config)
        serve = procs.spawn(["serve", "--host", "127.0.0.1", "--port", str(serve_port)], "serve")
        live = [
            procs.spawn(["work", "--worker-id", f"w{i}"], f"worker-w{i}") for i in range(workers)
        ]
        await _up(serve_port, serve)
        say(
            f"serve on :{serve_port}, {workers} worker(s), simulators at {', '.join(urls.values())}"
        )

        stop = asyncio.Event()
        jnt = jnt_app[jnt_sim.SIM_KEY]
        tasks = [
            asyncio.create_task(_push(jnt, opts, tally, stop)),
            asyncio.create_task(_kill(procs, sessions, live, opts, tally, stop)),
        ]
        outage = None
        if proxy is not None and opts.outage_seconds > 0:
            outage = asyncio.create_task(_outage(proxy, sessions, len(people), opts, tally))
        try:
            await _until_rest(sessions, opts, tally, outage, say)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if outage is not None and not outage.done():
                outage.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await outage
            await procs.stop([*live, serve])
        return await checks.verify(sessions, sims, people, procs.logs(), clock.now())
    finally:
        if procs is not None:
            procs.kill_all()
        if proxy is not None:
            await proxy.close()
        for runner in runners:
            await runner.cleanup()
        await engine.dispose()


async def _up(port: int, serve: subprocess.Popen[bytes], within: float = 60.0) -> None:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return True
        except OSError:
            return False

    deadline = time.monotonic() + within
    while not await asyncio.to_thread(ready):
        if serve.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("courier serve did not start (see its log)")
        await asyncio.sleep(0.2)


async def _push(
    jnt: jnt_sim.JntSimulator, opts: Options, tally: Tally, stop: asyncio.Event
) -> None:
    """J&T pushes what is new every ``push_every`` wall seconds; some batches twice, some with
    parcels and scans in reverse order."""
    rng = random.Random(opts.seed + 1)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), opts.push_every)
        duplicate, reorder = rng.random() < DUPLICATE_PUSHES, rng.random() < REORDERED_PUSHES
        result = await jnt_sim.push_now(jnt, duplicate=duplicate, reorder=reorder)
        if result.get("sent"):
            tally.pushes += 1
            tally.pushes_duplicated += duplicate
            tally.pushes_reordered += reorder
            tally.push_failures += not result.get("acked")


async def _kill(
    procs: Processes,
    sessions: SessionFactory,
    live: list[subprocess.Popen[bytes]],
    opts: Options,
    tally: Tally,
    stop: asyncio.Event,
) -> None:
    """SIGKILL a random working worker at a random moment, start a new one in its place, and
    again. The moments are drawn over the run's progress (audited moves: bookings, status
    changes; about eight per delivery), not over wall time, so a slow machine sees its kills
    spread over the same work as a fast one; should the moments not all come (a run with fewer
    moves than expected) the kills still owed come every ``kill_every`` wall seconds. Only a
    worker that has started its loops is killed: start-up takes seconds on a busy machine, and
    killing it then proves nothing."""
    rng = random.Random(opts.seed + 2)
    moments = sorted(rng.uniform(0.3, 6.0) * opts.deliveries for _ in range(opts.kills))
    while not stop.is_set():
        if not moments and tally.kills >= opts.kills:
            return  # every kill owed is done
        await _until(lambda: stop.is_set() or any(procs.working(proc) for proc in live))
        by_progress = bool(moments)
        if by_progress:
            while not stop.is_set():
                if await _audited(sessions) >= moments[0]:
                    break
                await asyncio.sleep(0.3)
            moments.pop(0)
        with contextlib.suppress(TimeoutError):
            delay = rng.uniform(0, 0.5) if by_progress else opts.kill_every * rng.uniform(0.5, 1.5)
            await asyncio.wait_for(stop.wait(), delay)
        working = [i for i, proc in enumerate(live) if procs.working(proc)]
        if stop.is_set() or not working:
            continue
        i = rng.choice(working)
        live[i].send_signal(signal.SIGKILL)
        await asyncio.to_thread(live[i].wait)
        tally.kills += 1
        live[i] = procs.spawn(["work", "--worker-id", f"r{tally.kills}"], f"worker-r{tally.kills}")
        tally.restarts += 1


async def _audited(sessions: SessionFactory) -> int:
    with contextlib.suppress(Exception):  # the database may be cut off just now: ask again
        async with sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(AuditEntry)) or 0)
    return 0


async def _outage(
    proxy: TcpProxy, sessions: SessionFactory, total: int, opts: Options, tally: Tally
) -> None:
    """Once a third of the deliveries are booked (work of every kind is in flight), cut every
    database connection for ``outage_seconds``."""
    while True:
        if await _booked(sessions) >= total / 3:
            break
        await asyncio.sleep(0.5)
    connected = proxy.connections
    began = time.monotonic()
    await proxy.cut()
    try:
        await asyncio.sleep(opts.outage_seconds)
    finally:
        await proxy.resume()
        tally.outage_seconds = time.monotonic() - began
        tally.outage_connections_cut = connected


async def _booked(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(Shipment).where(Shipment.waybill.is_not(None))
            )
            or 0
        )


async def _until_rest(
    sessions: SessionFactory,
    opts: Options,
    tally: Tally,
    outage: asyncio.Task[None] | None,
    say: Callable[[str], None],
) -> None:
    """Until every delivery is at rest, the kills are done and the outage is over."""
    deadline = time.monotonic() + opts.timeout
    last_said = 0.0
    while time.monotonic() < deadline:
        rest, total = await checks.at_rest(sessions)
        done = rest == total and tally.kills >= opts.kills and (outage is None or outage.done())
        now = time.monotonic()
        if done or now - last_said >= 5:
            say(
                f"{now - tally.started:6.0f} s: {rest}/{total} at rest, {tally.kills} kills, "
                f"{tally.pushes} pushes, outage {tally.outage_seconds:.1f} s"
            )
            last_said = now
        if done:
            return
        await asyncio.sleep(1.0)
    say(f"gave up after {opts.timeout:.0f} s: not every delivery came to rest")


def elapsed(tally: Tally) -> timedelta:
    return timedelta(seconds=time.monotonic() - tally.started)
