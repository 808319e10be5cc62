"""The one HTTP load generator every request-rate figure uses, ours and the hello-world baseline.

``connections`` clients, each on its own keep-alive connection, send requests back to back for
``seconds`` (closed loop: a client sends its next request when the previous answer is read), so
the figure is what the server sustains at that concurrency, not what an open-loop arrival rate
would queue up. Each request is built from its sequence number, so a benchmark can make every
request distinct (a new application number, a new push body) without sharing state.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


RequestFor = Callable[[int], Request]


@dataclass(frozen=True)
class LoadFigures:
    requests: int
    errors: int  # answered ≥ 400, or no answer at all
    seconds: float
    p50_ms: float
    p99_ms: float
    connections: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.per_second, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "connections": self.connections,
        }


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q ≤ 1) of ``values``; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(q * len(ordered))))
    return ordered[rank - 1]


def summarise(
    latencies: Sequence[float], errors: int, seconds: float, connections: int
) -> LoadFigures:
    """Latencies in seconds in, figures in milliseconds out. Failed requests count as errors,
    not as throughput, but their latency is kept: a slow refusal is still slow."""
    return LoadFigures(
        requests=len(latencies) - errors,
        errors=errors,
        seconds=seconds,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        connections=connections,
    )


async def drive(
    base_url: str,
    request_for: RequestFor,
    *,
    connections: int,
    seconds: float,
    warmup: float = 0.5,
) -> LoadFigures:
    """Send requests to ``base_url`` from ``connections`` clients for ``seconds`` after a short
    ``warmup`` (connections opened, the server's first-request costs paid) that is not counted."""
    numbers = itertools.count()
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as http:

        async def one() -> tuple[float, bool]:
            r = request_for(next(numbers))
            started = time.perf_counter()
            try:
                async with http.request(r.method, r.path, data=r.body, headers=r.headers) as resp:
                    await resp.read()
                    failed = resp.status >= 400
            except (aiohttp.ClientError, TimeoutError):
                failed = True
            return time.perf_counter() - started, failed

        async def client(until: float, record: bool) -> None:
            nonlocal errors
            while time.perf_counter() < until:
                took, failed = await one()
                if record:
                    latencies.append(took)
                    errors += failed

        if warmup > 0:
            until = time.perf_counter() + warmup
            await asyncio.gather(*(client(until, False) for _ in range(connections)))
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(*(client(until, True) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return summarise(latencies, errors, elapsed, connections)
