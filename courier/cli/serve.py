"""`courier serve`: the HTTP API (and, as later work adds them, pages and webhooks).

Refuses to start on a database whose schema is not at the migrations' head (run `courier
migrate` first). Any number of `serve` processes may run against one PostgreSQL: nothing in
process memory is a source of truth. SIGTERM/SIGINT stop accepting connections and let requests
in flight finish (aiohttp's shutdown timeout) before exiting 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from dataclasses import replace

import structlog
from aiohttp import web

from adapters import registry
from adapters.http import close_shared_session
from courier.cli.base import build_context, require_schema, require_secrets, settings_from
from courier.config import Settings
from courier.db.migrate import current_revision, head_revision
from courier.web.app import create_app

log = structlog.get_logger("courier.serve")
SHUTDOWN_TIMEOUT = 10.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the HTTP API",
        description="Serve the JSON API (intake, opt-in, …), /healthz and /readyz. The database "
        "must be migrated (`courier migrate`). Stops gracefully on SIGTERM or SIGINT.",
    )
    p.add_argument("--host", help="address to bind (default: http.host, 127.0.0.1)")
    p.add_argument(
        "--port", type=int, help="port to bind; 0 picks a free one (default: http.port, 8080)"
    )
    p.set_defaults(func=_serve)


async def serve(settings: Settings, host: str, port: int) -> int:
    # tracking links are built from the address really served unless http.public_url says more
    ctx = build_context(replace(settings, http_host=host, http_port=port))
    try:
        current = await current_revision(ctx.engine)
        if current != head_revision():
            print(
                f"error: database schema is at {current or 'nothing'}, not {head_revision()}: "
                "run `courier migrate` first",
                file=sys.stderr,
            )
            return 1
        runner = web.AppRunner(create_app(ctx), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        for bound in runner.addresses:
            print(f"listening on http://{bound[0]}:{bound[1]}", flush=True)
        if port == 0 and runner.addresses:
            ctx.settings = replace(ctx.settings, http_port=runner.addresses[0][1])
        log.info("serve_started", count=len(runner.addresses))
        await stop.wait()
        log.info("serve_stopping")
        await runner.cleanup()
        return 0
    finally:
        for adapter in ctx.couriers.values():
            await adapter.close()
        await close_shared_session()
        await ctx.engine.dispose()


def _serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    require_secrets(settings)
    try:
        for code, courier_settings in settings.couriers.items():
            registry.validate(code, courier_settings)
    except ValueError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    require_schema(settings)
    host = args.host or settings.http_host
    port = settings.http_port if args.port is None else args.port
    return asyncio.run(serve(settings, host, port))
