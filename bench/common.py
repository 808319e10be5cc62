"""What the benchmarks share: a migrated SQLite file, settings, latency figures."""

from __future__ import annotations

import asyncio
import statistics
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from courier import config
from courier.db.migrate import upgrade

PEPPER = "bench-pepper-0123456789abcdef"


def fresh_db(path: Path) -> str:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    return url


def settings_for(url: str, **extra: Any) -> config.Settings:
    return config.from_mapping(
        {
            "database_url": url,
            "log": {"level": "warning", "format": "json"},
            "security": {"passport_pepper": PEPPER, "optin_max_failures": 100},
            **extra,
        },
        source="bench",
    )


@dataclass(frozen=True)
class Figures:
    count: int
    seconds: float
    p50_ms: float
    p95_ms: float
    errors: int

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.per_second, 1),
            "p50_ms": round(self.p50_ms, 1),
            "p95_ms": round(self.p95_ms, 1),
            "errors": self.errors,
        }


def figures(latencies: list[float], seconds: float, errors: int = 0) -> Figures:
    if not latencies:
        return Figures(0, seconds, 0.0, 0.0, errors)
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return Figures(len(latencies), seconds, statistics.median(ordered) * 1000, p95 * 1000, errors)


@asynccontextmanager
async def fresh_pg_db(server_url: str) -> AsyncIterator[str]:
    """A new, migrated database on the PostgreSQL server of ``server_url``, dropped after."""
    import asyncpg

    name = f"courier_bench_{uuid.uuid4().hex[:10]}"
    admin = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
