"""`courier demo`: the simulators, the service and a worker on one clock that waits for the
work, over a fresh SQLite file in its own folder, with a realistic day at the Blitar office."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from rich.console import Console

from courier.demo.run import DEMO_DIR, DemoOptions, FolderNotOurs, run_demo


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run a realistic office day: simulators, service and worker on a simulated clock",
        description="Migrate a fresh SQLite file, start the J&T and Pos Indonesia simulators, the "
        "HTTP service and a worker in this one process on one simulated clock that waits for "
        "the work (it stands still while anything is due and jumps to the next due event when "
        "all is idle), seed a day at Kantor Imigrasi Blitar (~110 passports ready, a third "
        "for applicants in other regencies), print the URLs and demo sign-ins, and show "
        "deliveries by state live. Everything is written into one folder (./demo). Ctrl-C "
        "stops everything cleanly.",
    )
    p.add_argument(
        "--dir",
        type=Path,
        default=DEMO_DIR,
        dest="folder",
        help="the demo's folder (default ./demo): database, log and proof-of-delivery files; "
        "recreated each run unless --keep; a folder not made by the demo is refused",
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the database of an earlier run and continue it"
    )
    p.add_argument(
        "--speed",
        type=float,
        default=None,
        help="at most this many clock seconds per wall second, to watch the day unfold "
        "(default: no cap, the clock moves as fast as the work allows)",
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
    if (args.speed is not None and args.speed <= 0) or args.count < 1:
        raise SystemExit("error: --speed must be positive and --count at least 1")
    # the composition root hands the worker in: courier/ itself never imports worker/
    from worker.runner import run_worker

    opts = DemoOptions(
        folder=args.folder,
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
    except FolderNotOurs as err:
        console.print(f"error: {err}")
        return 2
    except KeyboardInterrupt:
        console.print("stopped")
        return 130
