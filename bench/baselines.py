"""What this machine can do at best, measured in the same run as our figures:

* ``pgbench -N`` (TPC-B without the branch and teller updates: 3 writes and a read per
  transaction) on a scratch database it initialises itself;
* an aiohttp hello-world (bench/hello.py), driven by the load generator our API figures use;
* pgqueuer draining no-op jobs on a scratch database, at the batch sizes we claim with.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import make_url

from bench.common import admin_url
from bench.load import LoadFigures, Request, drive
from bench.procs import server

_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
_LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)


@dataclass(frozen=True)
class PgbenchSetup:
    clients: int = 8  # the same concurrency as the HTTP load generator's connections
    threads: int = 2  # one per core
    seconds: int = 10
    scale: int = 1  # 100,000 accounts: fits in memory, so the figure is commits, not reads

    @property
    def text(self) -> str:
        return (
            f"pgbench -N -c {self.clients} -j {self.threads} -T {self.seconds}, scale {self.scale}"
        )


def parse_pgbench(output: str) -> dict[str, float]:
    """tps (without the initial connection time) and the mean latency from pgbench's report."""
    tps = _TPS.search(output)
    if tps is None:
        raise ValueError("no tps line in pgbench's output")
    latency = _LATENCY.search(output)
    return {
        "tps": float(tps.group(1)),
        "latency_avg_ms": float(latency.group(1)) if latency else 0.0,
    }


def _libpq(url: str) -> tuple[list[str], dict[str, str]]:
    """pgbench's connection flags and environment for a SQLAlchemy URL."""
    u = make_url(url)
    args = ["-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres"]
    env = {"PGPASSWORD": u.password} if u.password else {}
    return args, env


async def _run(argv: list[str], env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **env},
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {text.strip()[-500:]}")
    return text


async def pgbench(url: str, setup: PgbenchSetup) -> dict[str, Any]:
    """``pgbench -N`` on the (scratch) database of ``url``, which it initialises."""
    exe = shutil.which("pgbench")
    if exe is None:
        raise RuntimeError("pgbench is not installed (Debian: apt-get install postgresql-client)")
    flags, env = _libpq(url)
    db = make_url(url).database or ""
    await _run([exe, *flags, "-i", "-q", "-s", str(setup.scale), db], env)
    out = await _run(
        [
            exe,
            *flags,
            "-N",
            "-c",
            str(setup.clients),
            "-j",
            str(setup.threads),
            "-T",
            str(setup.seconds),
            db,
        ],
        env,
    )
    return {**parse_pgbench(out), "setup": setup.text}


@dataclass(frozen=True)
class HelloFigures:
    load: LoadFigures
    peak_rss_mb: float | None


async def hello_world(*, connections: int, seconds: float) -> HelloFigures:
    with server([sys.executable, "-m", "bench.hello", "--port", "0"]) as hello:
        load = await drive(
            hello.url, lambda _: Request("GET", "/"), connections=connections, seconds=seconds
        )
        rss = hello.peak_rss_mb()
    return HelloFigures(load, rss)


async def pgqueuer_drain(url: str, *, jobs: int, batch: int, seconds: float) -> dict[str, Any]:
    """Enqueue ``jobs`` no-op jobs (not timed), then let one pgqueuer QueueManager on one
    asyncpg connection drain them with ``batch_size=batch``, for at most ``seconds``. The rate
    counts jobs run; the clock stops when ``run`` returns, so acknowledgements buffered at the
    end are flushed inside the measured time."""
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries, QueueManager
    from pgqueuer.models import Job
    from pgqueuer.types import QueueExecutionMode

    conn = await asyncpg.connect(admin_url(url))
    try:
        queries = Queries(AsyncpgDriver(conn))
        await queries.install()
        await queries.enqueue(["noop"] * jobs, [None] * jobs, [0] * jobs)
        qm = QueueManager(queries)
        done = 0

        @qm.entrypoint("noop")
        async def noop(_: Job) -> None:
            nonlocal done
            done += 1

        async def stop_at_deadline() -> None:
            await asyncio.sleep(seconds)
            qm.shutdown.set()

        started = time.perf_counter()
        deadline = asyncio.create_task(stop_at_deadline())
        try:
            await qm.run(
                batch_size=batch,
                mode=QueueExecutionMode.drain,
                dequeue_timeout=timedelta(seconds=1),
            )
        finally:
            deadline.cancel()
        elapsed = time.perf_counter() - started
    finally:
        await conn.close()
    return {
        "jobs": jobs,
        "done": done,
        "batch": batch,
        "seconds": round(elapsed, 3),
        "per_second": round(done / elapsed, 1) if elapsed > 0 else 0.0,
    }
