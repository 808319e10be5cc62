"""`make bench` (`python -m bench`): each of our figures beside its baseline, measured in the same
run on the same machine, on PostgreSQL.

Baselines: ``pgbench -N``, an aiohttp hello-world driven by our own load generator, pgqueuer
draining no-op jobs. Ours: claim + complete with a no-op courier, booking with an instant
courier, intake and push ingestion through one `courier serve`, peak memory per process, and
courier calls per booking against each faulty courier with every variation on
(bench/reconcile.py). Every
database is created here and dropped after. Prints a table, saves bench/results/latest.json and
a dated copy. Bounded: 2½ minutes on 2 cores under a load average of 13 (each drain and
load has a fixed duration or deadline; setup is the rest).

PostgreSQL is required: COURIER_BENCH_PG_URL (default
postgresql+asyncpg://postgres@127.0.0.1:5432/test) names a server and a database to connect to
first; the user must be allowed to create databases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy.engine import make_url

from bench import api, baselines, booking, machine, reconcile, scorecard
from bench.common import admin_url, fresh_pg_db, scratch_pg_db
from bench.verdict import Row, Target, markdown, table
from courier.config import Settings

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
RESULTS = Path(__file__).with_name("results")
BATCHES = (10, 100)


@dataclass(frozen=True)
class Plan:
    connections: int
    seconds: float  # each HTTP load
    jobs: int  # queued per drain, pgqueuer's and ours alike
    drain_seconds: float  # the most any one drain may take
    pgbench: baselines.PgbenchSetup
    scorecard_shipments: int = 1_000_000  # 0: skip the scorecard (its seeding takes minutes)


class Unreachable(RuntimeError):
    pass


def shown(url: str) -> str:
    """The URL as it may be printed: the password masked."""
    return make_url(url).render_as_string(hide_password=True)


async def server_version(url: str) -> str:
    import asyncpg

    try:
        conn = await asyncpg.connect(admin_url(url), timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as err:
        raise Unreachable(f"{type(err).__name__}: {err}") from err
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def _in_worker(pool: ProcessPoolExecutor, url: str, concurrency: int, seconds: float) -> Any:
    return await asyncio.get_running_loop().run_in_executor(
        pool, booking.drain, url, concurrency, seconds
    )


async def measure(pg_url: str, plan: Plan, say: Console) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pgq: dict[int, Any] = {}
    ours: dict[int, Any] = {}
    spawn = multiprocessing.get_context("spawn")
    async with AsyncExitStack() as stack:
        pool = stack.enter_context(ProcessPoolExecutor(1, mp_context=spawn))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="courier-bench-")))

        say.print(f"baseline: {plan.pgbench.text}")
        async with scratch_pg_db(pg_url, "pgbench") as url:
            out["pgbench"] = await baselines.pgbench(url, plan.pgbench)

        say.print(f"baseline: aiohttp hello-world, {plan.connections} connections")
        hello = await baselines.hello_world(connections=plan.connections, seconds=plan.seconds)
        out["hello_world"] = {**hello.load.as_dict(), "peak_rss_mb": hello.peak_rss_mb}

        say.print("ours: intake and push through one `courier serve`")
        async with fresh_pg_db(pg_url, "serve") as url:
            served = await api.bench_serve(
                url, tmp, connections=plan.connections, seconds=plan.seconds
            )
        out["serve"] = api.as_dict(served)

        for batch in BATCHES:
            say.print(f"baseline: pgqueuer draining {plan.jobs} no-op jobs, batch {batch}")
            async with scratch_pg_db(pg_url, "pgqueuer") as url:
                pgq[batch] = await baselines.pgqueuer_drain(
                    url, jobs=plan.jobs, batch=batch, seconds=plan.drain_seconds
                )
            say.print(f"ours: claim + complete {plan.jobs} deliveries, batch {batch}")
            async with fresh_pg_db(pg_url, "claims") as url:
                await booking.seed_queue(url, plan.jobs)
                ours[batch] = await _in_worker(pool, url, batch, plan.drain_seconds)

        default = Settings(raw={}).concurrency_per_courier
        say.print(f"ours: booking with an instant courier, {default} in flight (the default)")
        async with fresh_pg_db(pg_url, "booking") as url:
            await booking.seed_queue(url, plan.jobs)
            out["booking_instant"] = await _in_worker(pool, url, default, plan.drain_seconds)

        out["reconcile"] = {}
        for code in reconcile.COURIERS:
            say.print(f"ours: booking by {code}, every variation on, 20% create faults")
            async with fresh_pg_db(pg_url, f"reconcile_{code}") as url:
                out["reconcile"][code] = await reconcile.measure(url, courier=code, quiet=True)

        if plan.scorecard_shipments:
            say.print(f"ours: a month's scorecard over {plan.scorecard_shipments:,} shipments")
            async with fresh_pg_db(pg_url, "scorecard") as url:
                out["scorecard"] = await scorecard.measure(url, plan.scorecard_shipments)
    out["pgqueuer"] = {str(b): f for b, f in pgq.items()}
    out["claim_complete"] = {str(b): f for b, f in ours.items()}
    return out


def _by_courier(reconciled: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The faulty-courier figures by courier; a saved run from before both couriers were
    measured holds one J&T figure."""
    if not reconciled:
        return {}
    if "calls_per_booking" in reconciled:
        return {"jnt": reconciled}
    return dict(reconciled)


def rows(m: dict[str, Any]) -> list[Row]:
    """The table: each of our figures beside its baseline and issue 14's target."""
    tps = float(m["pgbench"]["tps"])
    hello = m["hello_world"]
    serve = m["serve"]
    out: list[Row] = []
    for batch in BATCHES:
        ours, theirs = m["claim_complete"][str(batch)], m["pgqueuer"][str(batch)]
        out.append(
            Row(
                f"claim + complete, no-op courier, batch {batch}",
                ours["per_second"],
                "jobs/s",
                f"pgqueuer, batch {batch}",
                theirs["per_second"],
                Target(min_ratio=1.0),
            )
        )
    b = m["booking_instant"]
    out.append(
        Row(
            f"booking, instant courier, {b['concurrency_per_courier']} in flight",
            b["per_second"],
            "bookings/s",
            "pgbench -N ÷ 2",
            tps / 2,
            Target(min_ratio=0.40),
        )
    )
    for code, faulty in _by_courier(m.get("reconcile")).items():
        out.append(
            Row(
                f"courier calls per booking, {code}: every variation, 20% create faults",
                faulty["calls_per_booking"],
                "calls",
                target=Target(max_value=3),
                note=f"{faulty['deliveries']} bookings, {faulty['duplicate_orders']} duplicate "
                f"orders, {faulty['in_booking_without_item']} in booking without an item",
            )
        )
    card = m.get("scorecard")
    if card is not None:
        out.append(
            Row(
                f"monthly scorecard, all couriers, {card['shipments']:,} shipments",
                card["seconds_median"],
                "s",
                target=Target(max_value=2),
                note=f"{card['month_shipments']:,} that month at one office; median of 5",
            )
        )
    intake, pushed = serve["intake"], serve["push"]
    out.append(
        Row(
            "intake PUT /applications, 1 serve",
            intake["per_second"],
            "req/s",
            "pgbench -N",
            tps,
            Target(min_ratio=0.25),
            p99_ms=intake["p99_ms"],
        )
    )
    out.append(
        Row(
            "intake PUT /applications, 1 serve",
            intake["per_second"],
            "req/s",
            "hello-world",
            hello["per_second"],
            p99_ms=intake["p99_ms"],
        )
    )
    out.append(
        Row(
            "push POST /webhooks/jnt, 1 serve",
            pushed["per_second"],
            "req/s",
            "pgbench -N",
            tps,
            Target(min_ratio=0.50, max_p99_ms=50),
            p99_ms=pushed["p99_ms"],
        )
    )
    hello_rss = hello.get("peak_rss_mb")
    for who, rss in (("serve", serve.get("peak_rss_mb")), ("work", b.get("peak_rss_mb"))):
        if rss is not None:
            out.append(
                Row(
                    f"peak memory, {who} process",
                    rss,
                    "MB",
                    "hello-world process",
                    hello_rss,
                    Target(max_value=150),
                    note="during this run, not at 10,000 active shipments",
                )
            )
    return out


def save(result: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    stamp = result["when"].replace(":", "").replace("+0000", "Z")
    dated = folder / f"{stamp}.json"
    latest = folder / "latest.json"
    dated.write_text(text, encoding="utf-8")
    latest.write_text(text, encoding="utf-8")
    return latest, dated


async def run(plan: Plan, pg_url: str, say: Console) -> tuple[dict[str, Any], list[Row]]:
    version = await server_version(pg_url)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    described = machine.describe(version)
    say.print(
        f"passport-courier bench, {when}: {described['cpus']} CPUs ({described['cpu_model']}), "
        f"load average {described['load_average'][0]}, PostgreSQL {version}"
    )
    started = time.perf_counter()
    measured = await measure(pg_url, plan, say)
    table_rows = rows(measured)
    result = {
        "when": when,
        "machine": described,
        "plan": {
            "connections": plan.connections,
            "http_seconds": plan.seconds,
            "jobs_per_drain": plan.jobs,
            "drain_seconds_max": plan.drain_seconds,
            "pgbench": plan.pgbench.text,
        },
        "measured": measured,
        "rows": [r.as_dict() for r in table_rows],
        "markdown": markdown(table_rows),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    return result, table_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--connections", type=int, default=8, help="HTTP clients (default 8)")
    parser.add_argument("--seconds", type=float, default=8.0, help="each HTTP load (default 8)")
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per drain (default 5000)")
    parser.add_argument("--drain-seconds", type=float, default=10.0, help="most per drain")
    parser.add_argument("--pgbench-clients", type=int, default=8)
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    parser.add_argument(
        "--scorecard-shipments",
        type=int,
        default=1_000_000,
        help="shipments behind the monthly scorecard (default 1,000,000; 0 skips it)",
    )
    args = parser.parse_args(argv)
    pg_url = os.environ.get("COURIER_BENCH_PG_URL") or DEFAULT_PG_URL
    plan = Plan(
        connections=args.connections,
        seconds=args.seconds,
        jobs=args.jobs,
        drain_seconds=args.drain_seconds,
        pgbench=baselines.PgbenchSetup(clients=args.pgbench_clients, seconds=args.pgbench_seconds),
        scorecard_shipments=args.scorecard_shipments,
    )
    say = Console(stderr=True, highlight=False)
    try:
        result, table_rows = asyncio.run(run(plan, pg_url, say))
    except Unreachable as err:
        print(
            f"make bench needs PostgreSQL and could not reach {shown(pg_url)!r} ({err}).\n"
            "Point it at a server whose user may create databases, e.g.\n"
            "  COURIER_BENCH_PG_URL=postgresql+asyncpg://USER:PASSWORD@HOST:5432/postgres "
            "make bench",
            file=sys.stderr,
        )
        return 2
    latest, dated = save(result, RESULTS)
    out = Console(highlight=False, width=160)
    out.print(table(table_rows, title=f"passport-courier bench — {result['when']}"))
    m = result["machine"]
    out.print(
        f"{m['cpus']} CPUs ({m['cpu_model']}), {m['memory_mb']} MB, Python {m['python']}, "
        f"PostgreSQL {m['postgres']}; load average at start {m['load_average']}.\n"
        f"Baselines: {result['plan']['pgbench']}; hello-world and our HTTP figures with the same "
        f"load generator, {plan.connections} connections × {plan.seconds:g} s; pgqueuer and our "
        f"drains {plan.jobs} jobs each, at most {plan.drain_seconds:g} s.\n"
        f"Total {result['total_seconds']} s. Saved to {latest} and {dated.name}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
