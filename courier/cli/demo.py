"""`courier demo`: the simulators, the service and a worker on one accelerated clock, over a
fresh SQLite file, with a realistic day at the Blitar office."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from rich.console import Console

from courier.demo.run import DEFAULT_SPEED, DemoOptions, run_demo


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run a realistic office day: simulators, service and worker on a fast clock",
        description="Migrate a fresh SQLite file, start the J&T and Pos Indonesia simulators, the "
        "HTTP service and a worker in this one process on one accelerated clock, seed a day "
        "at Kantor Imigrasi Blitar (~110 passports ready, a third for applicants in other "
        "regencies), print the URLs and demo sign-ins, and show deliveries by state live. "
        "Ctrl-C stops everything cleanly.",
    )
    p.add_argument(
        "--db",
        type=Path,
        default=Path("demo.sqlite3"),
        help="SQLite file (default ./demo.sqlite3), recreated each run unless --keep",
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the database of an earlier run and continue it"
    )
    p.add_argument(
        "--speed",
        type=float,
        default=DEFAULT_SPEED,
        help=f"clock seconds per wall second (default {DEFAULT_SPEED:g}: a delivery's "
        "three days in about four minutes)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=8080,
        help="port of the HTTP service (default 8080; 0 picks a free one)",
    )
    p.add_argument("--minutes", type=float, default=None, help="stop after this many wall minutes")
    p.add_argument(
        "--exit",
        action="store_true",
        help="headless: no live table; stop as soon as every delivery is settled "
        "(or --minutes pass), print a summary, exit 0 only if all settled",
    )
    p.add_argument("--seed", type=int, default=2026, help="seed of the day's applicants")
    p.add_argument("--count", type=int, default=110, help="passports ready today (default 110)")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    if args.speed <= 0 or args.count < 1:
        raise SystemExit("error: --speed must be positive and --count at least 1")
    # the composition root hands the worker in: courier/ itself never imports worker/
    from worker.runner import run_worker

    opts = DemoOptions(
        db=args.db,
        keep=args.keep,
        speed=args.speed,
        host=args.host,
        port=args.port,
        minutes=args.minutes,
        headless=args.exit,
        seed=args.seed,
        count=args.count,
    )
    console = Console(highlight=False, soft_wrap=True)
    try:
        return asyncio.run(run_demo(opts, console, run_worker))
    except KeyboardInterrupt:
        console.print("stopped")
        return 130
