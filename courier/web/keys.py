"""Where the aiohttp application keeps the process's :class:`~courier.context.AppContext`."""

from __future__ import annotations

from aiohttp import web

from courier.context import AppContext

CONTEXT: web.AppKey[AppContext] = web.AppKey("courier_context", AppContext)


def context_of(request: web.Request) -> AppContext:
    return request.app[CONTEXT]
