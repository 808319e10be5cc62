"""Pos Indonesia OAuth2 client credentials (a WSO2 API Manager gateway, couriers.md §2).

``POST /token`` with form ``grant_type=client_credentials`` and HTTP Basic
``consumerKey:consumerSecret`` gives an opaque ``access_token`` and ``expires_in``. The token is
cached, renewed ``margin`` seconds of *clock* time before it expires, and dropped when the
gateway answers 401 so the next call fetches a fresh one. Concurrent callers share one fetch.
The token is a secret: it is never logged.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timedelta

import structlog

from adapters.base import AuthFailed, CourierRejected
from adapters.http import CourierTransport
from adapters.posind.codec import COURIER, parse_token

log = structlog.get_logger()


class TokenSource:
    def __init__(
        self,
        transport: CourierTransport,
        *,
        token_url: str,
        consumer_key: str,
        consumer_secret: str,
        margin_seconds: float = 60.0,
        default_ttl_seconds: float = 3600.0,
    ) -> None:
        self._transport = transport
        self._url = token_url
        # built by hand: aiohttp.BasicAuth is deprecated from aiohttp 3.14 on
        pair = f"{consumer_key}:{consumer_secret}".encode()
        self._basic = "Basic " + base64.b64encode(pair).decode("ascii")
        self._margin = timedelta(seconds=margin_seconds)
        self._default_ttl = default_ttl_seconds
        self._token: str | None = None
        self._renew_at: datetime | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # how many times a token was fetched (for tests and metrics)

    def _fresh(self) -> bool:
        if self._token is None or self._renew_at is None:
            return False
        return self._transport.clock.now() < self._renew_at

    async def token(self) -> str:
        """A token valid for at least ``margin`` more seconds, fetched only when needed."""
        if self._fresh():
            assert self._token is not None
            return self._token
        async with self._lock:
            if not self._fresh():  # another caller may have fetched while we waited
                await self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        """The gateway refused ``token``: forget it (unless a newer one already replaced it)."""
        if self._token == token:
            self._token = None
            self._renew_at = None

    async def _fetch(self) -> None:
        reply = await self._transport.send(
            "token",
            "POST",
            self._url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": self._basic},
            safe_to_repeat=True,
        )
        if reply.status in (400, 401, 403):
            # WSO2 answers invalid_client with 401, a bad grant with 400
            raise AuthFailed(COURIER, f"token refused (HTTP {reply.status}): check consumer key")
        if reply.status >= 300:
            raise CourierRejected(COURIER, f"HTTP {reply.status}", "token endpoint refused")
        token, expires_in = parse_token(reply.json())
        ttl = expires_in if expires_in is not None else self._default_ttl
        # renew ``margin`` early, but never so early that a short-lived token is always stale
        early = min(self._margin, timedelta(seconds=ttl / 2))
        self._token = token
        self._renew_at = self._transport.clock.now() + timedelta(seconds=ttl) - early
        self.fetches += 1
        log.debug("posind.token", expires_in=ttl)
