"""`courier simulate CODE`: run a courier simulator standalone until SIGINT/SIGTERM.

Which couriers can be simulated, on which default port, and which of them push, comes from
their descriptors (adapters/registry.py): a new courier with a simulator needs no edit here."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import signal
import sys
from datetime import datetime
from typing import Any

from aiohttp import web

from adapters import registry
from adapters.base import CourierDescriptor
from core.clock import ScaledClock, SystemClock


def _simulated() -> dict[str, CourierDescriptor]:
    return {d.code: d for d in registry.DESCRIPTORS.values() if d.simulator}


def _ports() -> str:
    return ", ".join(f"{d.code} {d.simulator_port}" for d in _simulated().values())


EPILOG = """\
pointing the service at a simulator:
  Set the courier's base URL in the configuration file to http://HOST:PORT, and its
  credentials to the simulator's (printed when it starts), e.g. for Pos Indonesia:

    [couriers.posind]
    base_url = "http://127.0.0.1:8702"
    consumer_key = "sim-consumer-key"
    consumer_secret = "sim-consumer-secret"
    userid = 1
    memberid = "DUMMY05400A"

  J&T takes one URL per operation (create_url, cancel_url, track_url, find_url), each
  http://HOST:PORT + the real path; the simulator prints the whole block when it starts.
  Any key can also come from the environment, e.g. COURIER_COURIERS__POSIND__BASE_URL.

time:
  --speed runs the simulator's clock faster than the wall (the demo uses ~1000: a day in
  under 90 s); give the service the same clock settings (clock.epoch, clock.speed) so both
  agree. POST /_sim/clock/advance {"seconds": N} jumps ahead.

control API (not part of any courier's API):
  GET /_sim/orders            orders and create attempts per reference
  GET /_sim/clock             the simulator's time
  POST /_sim/clock/advance    {"seconds": N}
  GET|POST|DELETE /_sim/faults   e.g. {"endpoint": "create", "kind": "timeout", "count": 1}
  POST /_sim/outcomes         {"reference": R, "outcome": "returned"}
  GET|DELETE /_sim/traffic    API requests counted per second and per WIB day

faults (--faults or POST /_sim/faults), per endpoint (posind: token, create, track;
jnt: create, cancel, track, find, pod) or "*":
  {"seed": 1, "endpoints": {"*": {"latency_ms": [20, 200], "error_rate": 0.05,
   "rate_limit_rate": 0.02, "retry_after": 2, "timeout_rate": 0.01, "timeout_seconds": 30,
   "malformed_rate": 0.01, "expired_token_rate": 0.01}}}
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="run a courier simulator ("
        + " or ".join(d.name("en") for d in _simulated().values())
        + ") on a local port",
        description="Serve a simulator of a courier's real wire API (the same paths, bodies, "
        "signatures and quirks) with a realistic parcel lifecycle on its own clock, fault "
        "injection and a /_sim/ control API. Runs until Ctrl-C or SIGTERM.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("courier", choices=sorted(_simulated()), help="which courier to simulate")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port (default: {_ports()}; 0 picks a free one and prints it)",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="clock speed: simulated seconds per wall second (default 1)",
    )
    p.add_argument(
        "--epoch", default=None, help="simulated start time, ISO 8601 with offset (default: now)"
    )
    p.add_argument("--seed", default=None, help="lifecycle seed: same seed, same parcel histories")
    p.add_argument(
        "--faults", type=_json_object, default=None, help="fault spec as JSON (see below)"
    )
    p.add_argument(
        "--push-url",
        default=None,
        help="couriers that push only: where to push signed status batches (our /webhooks/CODE)",
    )
    p.add_argument(
        "--push-interval",
        type=float,
        default=None,
        help="couriers that push only: wall seconds between pushes (default: only on "
        "POST /_sim/push)",
    )
    p.set_defaults(func=_run)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.seed is not None:
        options["seed"] = args.seed
    if args.faults is not None:
        options["faults"] = args.faults
    courier = registry.descriptor(args.courier)
    if courier.capabilities.push:
        if args.push_url:
            options["push_url"] = args.push_url
        if args.push_interval:
            options["push_interval"] = args.push_interval
    elif args.push_url or args.push_interval:
        raise ValueError(f"{courier.name('en')} does not push; --push-url is for couriers that do")
    return options


def _run(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        print("error: --speed must be positive", file=sys.stderr)
        return 2
    try:
        epoch = datetime.fromisoformat(args.epoch) if args.epoch else SystemClock().now()
    except ValueError:
        print("error: --epoch must be ISO 8601, e.g. 2026-11-02T08:00:00+07:00", file=sys.stderr)
        return 2
    if epoch.tzinfo is None:
        print("error: --epoch needs a UTC offset, e.g. +07:00", file=sys.stderr)
        return 2
    try:
        options = _options(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    courier = registry.descriptor(args.courier)
    port = courier.simulator_port if args.port is None else args.port
    module = importlib.import_module(courier.simulator)  # lazily: one only
    clock = ScaledClock(epoch, args.speed)
    try:
        app: web.Application = module.create_app(clock, options=options)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(app, module, args.courier, args.host, port, options))


async def _serve(
    app: web.Application,
    module: Any,
    courier: str,
    host: str,
    port: int,
    options: dict[str, Any],
) -> int:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as err:
        await runner.cleanup()
        print(f"error: cannot listen on {host}:{port}: {err.strerror}", file=sys.stderr)
        return 1
    bound = runner.addresses[0][1] if runner.addresses else port
    url = f"http://{host}:{bound}"
    print(f"{registry.name(courier, 'en')} simulator listening on {url}", flush=True)
    settings = getattr(module, "adapter_settings", None)
    if callable(settings):
        print(f"settings for couriers.{courier}:", flush=True)
        print(json.dumps(settings(url, options), indent=2, default=str), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        print("stopping", flush=True)
        await runner.cleanup()
    return 0
