"""What the benchmarks share: a migrated SQLite file, settings, latency figures."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    return Figures(
        len(latencies), seconds, statistics.median(ordered) * 1000, p95 * 1000, errors
    )
