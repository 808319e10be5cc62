"""What the figures were measured on: CPUs, their model, memory, Python and PostgreSQL."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def cpu_model(cpuinfo: str) -> str:
    """The first ``model name`` in a /proc/cpuinfo text ("" when there is none)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return ""


def memory_mb(meminfo: str) -> float | None:
    """``MemTotal`` of a /proc/meminfo text in MB (10⁶ bytes)."""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) * 1024 / 1e6)
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def describe(postgres_version: str) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(_read("/proc/cpuinfo")) or platform.processor(),
        "memory_mb": memory_mb(_read("/proc/meminfo")),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgres": postgres_version,
    }
