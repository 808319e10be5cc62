"""What every request handler (and the worker) needs, built once by the composition root."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.base import CourierAdapter
from adapters.clock import Clock
from courier.config import Settings
from courier.db.engine import SessionFactory


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    clock: Clock
    couriers: Mapping[str, CourierAdapter] = field(default_factory=dict)


CONTEXT: web.AppKey[AppContext] = web.AppKey("courier_context", AppContext)


def context_of(request: web.Request) -> AppContext:
    return request.app[CONTEXT]
