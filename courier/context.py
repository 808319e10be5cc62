"""What every use case that runs in a process needs (HTTP handlers, worker loops, the demo),
built once by the composition root (courier/cli)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.base import CourierAdapter
from core.clock import Clock
from courier.config import Settings
from courier.db.engine import SessionFactory


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    clock: Clock
    couriers: Mapping[str, CourierAdapter] = field(default_factory=dict)
