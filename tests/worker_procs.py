"""Subprocesses for the chaos tests: a courier simulator (`courier simulate`) and workers
(`courier work`), each a real process that can be SIGKILLed, plus polling with a deadline."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import tomli_w

from simulators import jnt as jnt_sim

COURIER = str(Path(sys.executable).parent / "courier")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    env.update(extra or {})
    return env


class Procs:
    """Every process a test starts; whatever is still running at the end is killed."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.started: list[subprocess.Popen[bytes]] = []
        self.n = 0

    def spawn(self, args: list[str], env: Mapping[str, str], name: str) -> subprocess.Popen[bytes]:
        self.n += 1
        log = open(self.tmp / f"{self.n:02d}-{name}.log", "wb")  # noqa: SIM115 (closed by Popen)
        proc = subprocess.Popen(args, env=_env(env), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.started.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.tmp.glob("*.log"))
        )

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@contextmanager
def processes(tmp: Path) -> Iterator[Procs]:
    procs = Procs(tmp)
    try:
        yield procs
    finally:
        procs.close()


class Simulator:
    def __init__(
        self,
        procs: Procs,
        faults: Mapping[str, Any] | None = None,
        *,
        epoch: datetime | None = None,
    ) -> None:
        """``epoch``: the simulator's clock starts there (default: now)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [COURIER, "simulate", "jnt", "--host", "127.0.0.1", "--port", str(self.port)]
        if faults:
            args += ["--faults", json.dumps(faults)]
        if epoch is not None:
            args += ["--epoch", epoch.isoformat()]
        self.proc = procs.spawn(args, {}, "simulator")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def traffic(self) -> dict[str, Any]:
        """API requests the simulator received, per second and per WIB day of its clock."""
        result: dict[str, Any] = self.call("GET", "/_sim/traffic")
        return result

    def orders(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "/_sim/orders")
        return result

    async def ready(self) -> None:
        def up() -> bool:
            try:
                self.call("GET", "/_sim/clock")
                return True
            except OSError:
                assert self.proc.poll() is None, "simulator exited"
                return False

        await wait_for(lambda: asyncio.to_thread(up), "simulator up", within=20)


def write_config(
    tmp: Path,
    db_url: str,
    sim_url: str,
    *,
    transport: Mapping[str, Any] | None = None,
    clock: Mapping[str, Any] | None = None,
    **worker: Any,
) -> Path:
    """``transport``: more of the J&T transport policy (rate, daily quota…); ``clock``: the
    service clock's settings (epoch, started, speed)."""
    jnt = jnt_sim.adapter_settings(sim_url)
    jnt["transport"] = {
        "connect_timeout": 2,
        "read_timeout": 30,
        "total_timeout": 40,
        **(transport or {}),
    }
    config = {
        "database_url": db_url,
        "log": {"level": "info", "format": "json"},
        "worker": {
            "lease_seconds": 200,
            "poll_seconds": 0.1,
            "grace_seconds": 10,
            "concurrency_per_courier": 2,
            **worker,
        },
        "couriers": {"jnt": jnt},
        "security": {"passport_pepper": "chaos-test-pepper-0123456789-abcdefgh"},
    }
    if clock:
        config["clock"] = dict(clock)
    path = tmp / f"courier-{len(list(tmp.glob('courier-*.toml')))}.toml"
    path.write_bytes(tomli_w.dumps(config).encode())
    return path


def start_worker(
    procs: Procs,
    config: Path,
    worker_id: str,
    *,
    crash_at: str | None = None,
    clock_ahead: timedelta | None = None,
) -> subprocess.Popen[bytes]:
    """``clock_ahead``: the worker runs that far in the future, so leases left by a killed
    worker have expired (driving the clock instead of waiting out a lease)."""
    env = {"COURIER_CONFIG": str(config)}
    if crash_at:
        env["COURIER_TEST_CRASH_AT"] = crash_at
    if clock_ahead is not None:
        env["COURIER_CLOCK__EPOCH"] = (datetime.now(UTC) + clock_ahead).isoformat()
    return procs.spawn(
        [COURIER, "work", "--loops", "book", "--worker-id", worker_id], env, f"worker-{worker_id}"
    )


async def wait_for(
    condition: Callable[[], Awaitable[bool]], what: str, *, within: float = 30.0
) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``within`` wall seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            if await condition():
                return
        except AssertionError:
            raise
        except Exception:  # the database may be restarting: just look again
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_exit(proc: subprocess.Popen[bytes], within: float = 30.0) -> int:
    async def done() -> bool:
        return proc.poll() is not None

    await wait_for(done, f"process {proc.pid} to exit", within=within)
    return int(proc.returncode)


def terminate(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
