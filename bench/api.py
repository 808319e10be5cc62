"""Intake + opt-in over real HTTP: `courier serve`'s app in a child process on loopback, an
aiohttp client with bounded concurrency in this one."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from bench.common import Figures, figures, settings_for
from core.clock import SystemClock
from courier import logging as courier_logging
from courier.context import AppContext
from courier.db.engine import make_engine, make_sessions, transaction
from courier.demo import seed as demo_seed
from courier.services import staff
from courier.web.app import create_app

CONCURRENCY = 8
DESTINATIONS = ("35.73", "35.04", "35.71", "35.07")  # outside Blitar: every opt-in is eligible


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serve(url: str, port: int) -> None:
    """The child process: the service's app until SIGTERM."""

    async def main() -> None:
        courier_logging.configure("warning", "json")
        engine = make_engine(url)
        ctx = AppContext(settings_for(url), engine, make_sessions(engine), SystemClock())
        runner = web.AppRunner(create_app(ctx), handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()
        await engine.dispose()

    asyncio.run(main())


async def seed_office(url: str) -> str:
    engine = make_engine(url)
    try:
        now = datetime.now(UTC)
        async with transaction(make_sessions(engine)) as session:
            await staff.upsert_office(session, demo_seed.OFFICE, now=now, actor="bench")
            _, token = await staff.create_token(
                session, office_code="BLT", role="intake", name="bench", now=now, actor="bench"
            )
        return token
    finally:
        await engine.dispose()


async def _run(
    calls: list[Callable[[], Awaitable[int]]], concurrency: int = CONCURRENCY
) -> Figures:
    latencies: list[float] = []
    errors = 0
    queue = list(reversed(calls))

    async def worker() -> None:
        nonlocal errors
        while queue:
            call = queue.pop()
            started = time.perf_counter()
            status = await call()
            latencies.append(time.perf_counter() - started)
            errors += status >= 400

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return figures(latencies, time.perf_counter() - started, errors)


def _applicants(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        out.append(
            {
                "application_no": f"2026110{i:06d}",
                "applicant_name": demo_seed.random_name(rng),
                "date_of_birth": f"19{rng.randint(60, 99)}-0{rng.randint(1, 9)}-1{i % 10}",
                "phone": demo_seed.random_phone(rng),
                "passport_no": f"X{rng.randrange(10**6, 10**7):07d}",
                "address": demo_seed.random_address(rng, rng.choice(DESTINATIONS)),
            }
        )
    return out


async def bench_api(url: str, registrations: int, ready: int) -> dict[str, Any]:
    """PUT ``registrations`` applications; mark ``ready`` of them ready and opt them in."""
    token = await seed_office(url)
    port = _free_port()
    proc = multiprocessing.get_context("spawn").Process(target=_serve, args=(url, port))
    proc.start()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}"}
    people = _applicants(registrations)
    try:
        async with aiohttp.ClientSession(base_url=base) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with http.get("/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the service did not start")
                await asyncio.sleep(0.1)

            def put(p: dict[str, Any]) -> Callable[[], Awaitable[int]]:
                body = {k: p[k] for k in ("applicant_name", "date_of_birth", "phone")}

                async def call() -> int:
                    path = f"/api/v1/applications/{p['application_no']}"
                    async with http.put(path, json=body, headers=auth) as resp:
                        await resp.read()
                        return resp.status

                return call

            def mark(p: dict[str, Any]) -> Callable[[], Awaitable[int]]:
                body = {"issued_at": datetime.now(UTC).isoformat(), "passport_no": p["passport_no"]}

                async def call() -> int:
                    path = f"/api/v1/applications/{p['application_no']}/ready"
                    async with http.post(path, json=body, headers=auth) as resp:
                        await resp.read()
                        return resp.status

                return call

            def opt_in(p: dict[str, Any]) -> Callable[[], Awaitable[int]]:
                body = {
                    "application_no": p["application_no"],
                    "office_code": "BLT",
                    "date_of_birth": p["date_of_birth"],
                    "phone": p["phone"],
                    "address": p["address"],
                    "consent": True,
                }

                async def call() -> int:
                    async with http.post("/api/v1/delivery-requests", json=body) as resp:
                        await resp.read()
                        return resp.status

                return call

            register = await _run([put(p) for p in people])
            readied = await _run([mark(p) for p in people[:ready]])
            opted = await _run([opt_in(p) for p in people[:ready]])
    finally:
        proc.terminate()
        proc.join(10)
    return {
        "put_application": register.as_dict(),
        "mark_ready": readied.as_dict(),
        "opt_in": opted.as_dict(),
        "concurrency": CONCURRENCY,
        "note": "mark_ready hashes the passport number with argon2id (~0.1 s of CPU) by design",
    }
