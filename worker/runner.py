"""The worker process: one supervised task per loop, signals, graceful drain.

Loops are modules with ``run(ctx, worker_id, stopping)`` and ``once(ctx, worker_id)``:
``worker.book`` (this package's booking loop) and, when installed, ``worker.track``,
``worker.inbox`` and ``worker.watch``. A loop's ``run`` must return soon after ``stopping`` is
set, having finished (or handed back) what it holds.

Shutdown::

    SIGTERM/SIGINT   stop claiming (``stopping`` set); in-flight work finishes within
                     worker.grace_seconds, else its tasks are cancelled; then the leases this
                     worker still holds on work not yet sent to a courier are released so others
                     take over at once (a shipment in ``booking`` keeps its lease: its courier
                     call may have been cut off mid-flight, so it is left to expire and be
                     reconciled by reference, never sent afresh); exit 0
    second signal    exit at once (128 + signal): leases then simply expire

A loop that raises is never fatal: a database outage (PostgreSQL restarting) is logged and the
loop restarted after a capped exponential backoff; anything else is logged with its traceback
and restarted the same way. Work is in the database, under leases: waiting loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import secrets
import signal
import socket
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import structlog

from courier.context import AppContext
from courier.db import queue
from worker.backoff import Backoff, is_db_outage

log = structlog.get_logger()

ALL_LOOPS = ("book", "track", "inbox", "watch", "outbox")


def default_worker_id() -> str:
    """host:pid:random. The random part matters: in a container every worker is PID 1 on a
    host name that may come back after a restart, and a restarted worker must not pass for
    the dead one (its leases, its compare-and-set writes)."""
    suffix = secrets.token_hex(4)
    head = f"{socket.gethostname()}:{os.getpid()}"[: 64 - len(suffix) - 1]
    return f"{head}:{suffix}"


def load_loops(names: Sequence[str]) -> dict[str, ModuleType]:
    """The loop modules that exist. An unknown name is an error; a known loop whose module is
    not installed yet is skipped with a warning."""
    loops: dict[str, ModuleType] = {}
    for name in names:
        if name not in ALL_LOOPS:
            raise ValueError(f"unknown loop {name!r}; one of {', '.join(ALL_LOOPS)}")
        module_name = f"worker.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            log.warning("worker.loop_missing", loop=name)
            continue
        loops[name] = module
    return loops


async def _supervise(
    name: str, module: ModuleType, ctx: AppContext, worker_id: str, stopping: asyncio.Event
) -> None:
    backoff = Backoff(clock=ctx.clock)
    while not stopping.is_set():
        try:
            await module.run(ctx, worker_id, stopping)
            if stopping.is_set():
                return
            log.warning("worker.loop_returned", loop=name)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if is_db_outage(err):
                log.warning("worker.db_unavailable", loop=name, exc_type=type(err).__name__)
            else:
                log.exception("worker.loop_failed", loop=name, exc_type=type(err).__name__)
        await backoff.wait(stopping)


async def run_once(ctx: AppContext, *, worker_id: str, loops: Sequence[str] = ALL_LOOPS) -> int:
    """One pass of each loop (``courier work --once``); returns the total work done."""
    total = 0
    try:
        for name, module in load_loops(loops).items():
            done = int(await module.once(ctx, worker_id))
            log.info("worker.once", loop=name, count=done)
            total += done
    finally:
        await _release(ctx, worker_id)
    return total


async def _release(ctx: AppContext, worker_id: str) -> None:
    try:
        released = await queue.release_all(ctx.sessions, owner=worker_id)
    except Exception as err:
        log.warning("worker.release_failed", exc_type=type(err).__name__)
        return
    if released:
        log.info("worker.released", count=released)


async def run_worker(
    ctx: AppContext,
    *,
    worker_id: str,
    loops: Sequence[str] = ALL_LOOPS,
    stop_after: float | None = None,
    stopping: asyncio.Event | None = None,
) -> int:
    """Run the loops until SIGTERM/SIGINT (or ``stop_after`` wall seconds, or ``stopping`` set
    by the caller). Returns the exit code: 0 after a graceful stop."""
    modules = load_loops(loops)
    stopping = stopping or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            log.warning("worker.exit_now", signal=signal.Signals(signum).name)
            os._exit(128 + signum)
        log.info(
            "worker.stopping",
            signal=signal.Signals(signum).name,
            grace_seconds=ctx.settings.grace_seconds,
        )
        stopping.set()

    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)

    log.info("worker.started", worker=worker_id, loops=",".join(modules))
    tasks = [
        asyncio.create_task(_supervise(name, module, ctx, worker_id, stopping), name=name)
        for name, module in modules.items()
    ]
    timer: asyncio.TimerHandle | None = None
    if stop_after is not None:
        timer = loop.call_later(stop_after, stopping.set)
    try:
        await _wait_stopping(stopping, tasks)
        done, pending = await asyncio.wait(tasks, timeout=ctx.settings.grace_seconds)
        if pending:
            log.warning("worker.grace_exceeded", count=len(pending))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            _log_task_error(task)
    finally:
        if timer is not None:
            timer.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _release(ctx, worker_id)
        for sig in installed:
            loop.remove_signal_handler(sig)
    log.info("worker.stopped", worker=worker_id)
    return 0


async def _wait_stopping(stopping: asyncio.Event, tasks: list[asyncio.Task[Any]]) -> None:
    """Until ``stopping`` is set (supervised loops do not end on their own)."""
    waiter = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    stopping.set()


def _log_task_error(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    err = task.exception()
    if err is not None:
        log.error(
            "worker.loop_crashed", loop=task.get_name(), exc_type=type(err).__name__, exc_info=err
        )
