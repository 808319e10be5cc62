"""`python -m chaos` (`make chaos`): the whole system under faults, kills and a database outage;
prints the figures and exits 1 on any violated invariant."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from chaos.checks import Outcome
from chaos.run import Options, Tally, elapsed, run

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def parse(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(
        prog="python -m chaos",
        description="Run `courier work` processes and a `courier serve` on a database created "
        "for the run (and dropped after) against both courier simulators with faults (10 % "
        "5xx, 5 % timeouts, 3 % 429, 5 % lost replies on every endpoint; 5 % duplicated "
        "and 5 % reordered J&T push batches; proof-of-delivery links that expire) and every "
        "real-world variation on; SIGKILL random workers at random moments (each restarted) "
        "and, on PostgreSQL, cut every database connection for some seconds. Then check: no "
        "duplicate order, no delivery lost, no status regression, no silent shipment past its "
        "limit without an item, every audit and custody record, no personal data in any log.",
    )
    p.add_argument(
        "--backend",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help="postgresql (default; COURIER_BENCH_PG_URL or --pg-url names a server "
        "whose user may create databases) or sqlite (one worker: one writer)",
    )
    p.add_argument(
        "--pg-url",
        default=os.environ.get("COURIER_BENCH_PG_URL", DEFAULT_PG),
        help=f"PostgreSQL server to create the run's database on (default {DEFAULT_PG})",
    )
    p.add_argument(
        "--deliveries", type=int, default=1000, help="deliveries (default 1000; at most 1200)"
    )
    p.add_argument(
        "--workers", type=int, default=3, help="worker processes on PostgreSQL (default 3)"
    )
    p.add_argument("--kills", type=int, default=30, help="at least this many SIGKILLs (default 30)")
    p.add_argument(
        "--kill-every", type=float, default=3.0, help="mean wall seconds between kills (default 3)"
    )
    p.add_argument(
        "--outage-seconds",
        type=float,
        default=5.0,
        help="wall seconds every database connection is cut (PostgreSQL; 0: none)",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=3000.0,
        help="service-clock seconds per wall second (default 3000: a day in ~29 s)",
    )
    p.add_argument(
        "--fast-outcomes",
        action="store_true",
        help="only parcels that are delivered (returns and losses take ~9 days)",
    )
    p.add_argument("--seed", type=int, default=14, help="seed of applicants, outcomes and kills")
    p.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="wall seconds to wait for every delivery to come to rest (default 900)",
    )
    p.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep the configuration and every process's log in this folder",
    )
    a = p.parse_args(argv)
    if not 1 <= a.deliveries <= 1200 or not 1 <= a.workers <= 8 or a.speed <= 0:
        p.error("--deliveries 1..1200, --workers 1..8 and a positive --speed, please")
    return Options(
        backend=a.backend, deliveries=a.deliveries, workers=a.workers, kills=a.kills,
        kill_every=a.kill_every, outage_seconds=a.outage_seconds, speed=a.speed,
        fast_outcomes=a.fast_outcomes, seed=a.seed, pg_url=a.pg_url, timeout=a.timeout,
        keep=a.keep,
    )  # fmt: skip


def table(opts: Options, outcome: Outcome, tally: Tally) -> Table:
    t = Table(title=f"chaos on {opts.backend}", show_header=True)
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("")
    workers = 1 if opts.backend == "sqlite" else opts.workers
    rows: list[tuple[str, object]] = [
        ("worker processes", workers),
        ("wall time", f"{elapsed(tally).total_seconds():.0f} s"),
        ("clock speed", f"{opts.speed:g}×"),
        ("SIGKILLs (each restarted)", tally.kills),
        ("database outage", f"{tally.outage_seconds:.1f} s"),
        ("connections through the proxy before it", tally.outage_connections_cut),
        ("J&T push batches", tally.pushes),
        ("  sent twice / reordered", f"{tally.pushes_duplicated} / {tally.pushes_reordered}"),
        ("  not acknowledged", tally.push_failures),
        *outcome.figures.items(),
    ]
    for name, value in rows:
        t.add_row(name, str(value), "")
    for name, count in outcome.violations.items():
        t.add_row(name, str(count), "ok" if count == 0 else "VIOLATED")
    return t


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM too: the run's processes, proxy and database are removed


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    console = Console(highlight=False, soft_wrap=True, force_terminal=False)
    opts = Options(**{**opts.__dict__, "progress": console.print})
    outcome, tally = asyncio.run(run(opts))
    console.print(table(opts, outcome, tally))
    for name, examples in outcome.examples.items():
        console.print(f"{name}:")
        for line in examples:
            console.print(f"  {line}")
    console.print("all invariants hold" if outcome.ok else "INVARIANTS VIOLATED")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
