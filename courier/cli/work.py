"""`courier work`: the worker process (booking, tracking, inbox, watchers)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import structlog

from adapters import registry
from adapters.http import close_shared_session
from courier.cli.base import (
    build_context,
    require_lease_covers_calls,
    require_schema,
    require_secrets,
    settings_from,
)
from courier.config import Settings
from courier.metrics import serve_standalone

log = structlog.get_logger()

LOOPS = ("book", "track", "inbox", "watch", "outbox")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "work",
        help="run the worker: book, track, process pushes, watch deadlines, send messages",
        description="Claim work from the database and carry it out until SIGTERM/SIGINT. Any "
        "number of workers may run against PostgreSQL; one is enough on SQLite. SIGTERM stops "
        "claiming, lets in-flight courier calls finish within worker.grace_seconds, releases "
        "every lease and exits 0; a second signal exits at once.",
    )
    p.add_argument(
        "--loops",
        default=",".join(LOOPS),
        help=f"comma-separated loops to run (default: {','.join(LOOPS)})",
    )
    p.add_argument(
        "--worker-id",
        default=None,
        help="lease owner name (default HOST:PID); must be unique among live workers",
    )
    p.add_argument("--once", action="store_true", help="run one pass of each loop, then exit")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve this worker's Prometheus metrics (courier calls, retries, circuit state, "
        "claims) on 127.0.0.1:PORT/metrics",
    )
    p.set_defaults(func=_work)


async def _main(settings: Settings, loops: list[str], worker_id: str, once: bool) -> int:
    # imported here: courier/ never imports worker/ except through the composition root
    from worker.runner import run_once, run_worker

    ctx = build_context(settings, worker=True)
    try:
        if once:
            done = await run_once(ctx, worker_id=worker_id, loops=loops)
            print(f"done: {done}")
            return 0
        return await run_worker(ctx, worker_id=worker_id, loops=loops)
    finally:
        for adapter in ctx.couriers.values():
            await adapter.close()
        await close_shared_session()
        await ctx.engine.dispose()


def _work(args: argparse.Namespace) -> int:
    from worker.runner import default_worker_id

    settings = settings_from(args)
    require_secrets(settings)
    require_lease_covers_calls(settings)
    loops = [name.strip() for name in args.loops.split(",") if name.strip()]
    unknown = sorted(set(loops) - set(LOOPS))
    if unknown:
        print(
            f"error: unknown loop(s) {', '.join(unknown)}; one of {', '.join(LOOPS)}",
            file=sys.stderr,
        )
        return 2
    try:
        for code, courier_settings in settings.couriers.items():
            registry.validate(code, courier_settings)
    except ValueError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    require_schema(settings)
    worker_id = args.worker_id or default_worker_id()
    if args.metrics_port is not None:
        serve_standalone(args.metrics_port)
    return asyncio.run(_main(settings, loops, worker_id, args.once))
