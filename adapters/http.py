"""The one place where the service talks HTTP to couriers.

Every courier adapter sends through a :class:`CourierTransport`. It owns, per courier:

* **timeouts**: connect, read and total, set explicitly on every request (aiohttp's defaults are
  300 s total and no socket timeouts);
* **retries** (tenacity) for calls that are *safe to repeat* only: tracking, lookups, tokens.
  A create is never repeated here: the service re-sends it with the same reference instead
  (DESIGN §5.1). Backoff is exponential with jitter; a ``Retry-After`` on 429/503 is honoured.
  Every wait goes through ``clock.sleep`` so tests on a ManualClock never wait on the wall;
* the courier account's **rate limit** (requests per second) and optional **daily quota**
  (resets at midnight WIB), asked of a :class:`RateGate` before every attempt. The gate is a
  port: :class:`MemoryGate` (this process only) is the default; the service wires in the
  database's gate (courier/db/limits.py) so every process of a deployment shares one account's
  limits and a restart does not give the day's quota back. A spent quota is a
  :class:`RateLimited` whose ``retry_after`` reaches the next WIB day (nothing is sent);
* a **circuit breaker**: after ``failures_to_open`` consecutive failed attempts (connection
  error, timeout, 5xx) calls fail fast with :class:`CircuitOpen` until ``open_seconds`` of clock
  time have passed; then one probe is let through (half-open) and its result closes or re-opens it.

What the transport decides, and what it leaves to the adapter::

    2xx, 3xx, 4xx (not 429)      returned as HttpReply: the adapter reads the courier's meaning
    429                          RateLimited(retry_after) once attempts are spent
    5xx, timeout, connection     CourierUnavailable once attempts are spent (safe_to_repeat)
    not safe_to_repeat, and the request may have reached the courier:
      5xx (500/502/503/504)      OutcomeUnknown: a 500 can come after the order was written, a
                                 502/503/504 from a gateway that may have forwarded it
      timeout, dropped
      connection, truncated body OutcomeUnknown
    connection refused (nothing
      was sent)                  CourierUnavailable, even for a create
    body over MAX_BODY_BYTES     ResponseInvalid (OutcomeUnknown when not safe_to_repeat): a
                                 courier answer is small; a huge one is never held in memory

Tracing goes to structlog at debug level: courier, operation, method, URL path (never the query),
status and milliseconds. Never bodies or headers: they carry names, phones and signatures.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import structlog
from multidict import CIMultiDict, CIMultiDictProxy
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from adapters.base import (
    CourierError,
    CourierUnavailable,
    OutcomeUnknown,
    RateLimited,
    ResponseInvalid,
    not_built,
)
from core.backoff import exponential_backoff
from core.clock import WIB, Clock

log = structlog.get_logger()

USER_AGENT = "passport-courier/0.1"
#: The most of one courier answer read into memory. Real answers are a few KiB; anything past
#: this is a misbehaving gateway or a wrong URL, not something to buffer.
MAX_BODY_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class TransportPolicy:
    """Per-courier limits. Seconds are clock seconds for waits, wall seconds for timeouts."""

    connect_timeout: float = 5
    read_timeout: float = 15
    total_timeout: float = 20
    max_attempts: int = 4  # for safe_to_repeat calls; a create gets exactly one
    backoff_initial: float = 0.5
    backoff_max: float = 10  # also the longest Retry-After waited for inside one send()
    requests_per_second: float = 10
    daily_quota: int | None = None  # requests per WIB calendar day; None = unlimited
    # Requests are spaced (1 + margin) / rate apart: one that leaves up to ``rate_margin``
    # seconds after its slot (a busy event loop, a new connection) still cannot make the
    # courier count more than ``rate`` in any second.
    rate_margin: float = 0.1
    failures_to_open: int = 5
    open_seconds: float = 30

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        if self.rate_margin < 0:
            raise ValueError("rate_margin may not be negative")
        if self.daily_quota is not None and self.daily_quota < 1:
            raise ValueError("daily_quota must be at least 1 (or unset: unlimited)")
        if self.failures_to_open < 1:
            raise ValueError("failures_to_open must be at least 1")

    @property
    def limits(self) -> RateLimits:
        return RateLimits(
            interval=(1 + self.rate_margin) / self.requests_per_second,
            daily_quota=self.daily_quota,
        )

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> TransportPolicy:
        """Build from a courier settings block; unknown keys are ignored, missing ones default."""
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in settings.items() if k in known})


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    courier: str = ""  # who answered, so json() can name them in ResponseInvalid

    def json(self) -> Any:
        """The body as JSON. A body that is not JSON → ResponseInvalid (the body is not logged)."""
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ResponseInvalid(self.courier or "courier", "body is not JSON", "$") from exc


class CircuitOpen(CourierUnavailable):
    """Refused without calling: the courier failed too often lately."""


# --------------------------------------------------------------------------------------------
# Observation (metrics are plugged in by the service; the default does nothing)


class CallObserver(Protocol):
    def on_call(self, courier: str, operation: str, outcome: str, seconds: float) -> None:
        """One send() finished. outcome: ok | client_error | unavailable | rate_limited |
        unknown | circuit_open. seconds: wall time of the whole send, retries included."""
        ...

    def on_retry(self, courier: str, operation: str) -> None: ...

    def on_circuit(self, courier: str, state: str) -> None:
        """state: open | half_open | closed."""
        ...

    def on_rate_wait(self, courier: str, seconds: float) -> None: ...

    def on_quota(self, courier: str, remaining: int, refused: bool) -> None:
        """The gate answered for a courier with a daily quota: ``remaining`` requests left
        today (after this one); ``refused``: none were left, the call was not sent."""
        ...


class NullObserver:
    def on_call(self, courier: str, operation: str, outcome: str, seconds: float) -> None:
        return None

    def on_retry(self, courier: str, operation: str) -> None:
        return None

    def on_circuit(self, courier: str, state: str) -> None:
        return None

    def on_rate_wait(self, courier: str, seconds: float) -> None:
        return None

    def on_quota(self, courier: str, remaining: int, refused: bool) -> None:
        return None


# --------------------------------------------------------------------------------------------
# One session per event loop


_SESSIONS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
    weakref.WeakKeyDictionary()
)


def shared_session() -> aiohttp.ClientSession:
    """The process's session for the running event loop (created on first use).

    Every timeout field is set (aiohttp would otherwise wait up to 300 s); each transport also
    passes its own courier's timeouts per request. The pool is capped overall and per host so
    one slow courier cannot take every connection.
    """
    loop = asyncio.get_running_loop()
    session = _SESSIONS.get(loop)
    if session is None or session.closed:
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=20, connect=5, sock_connect=5, sock_read=15),
            connector=aiohttp.TCPConnector(limit=100, limit_per_host=20, ttl_dns_cache=300),
            headers={"User-Agent": USER_AGENT},
            trust_env=False,
        )
        _SESSIONS[loop] = session
    return session


async def close_shared_session() -> None:
    """Close this loop's shared session; call it once at shutdown (the composition root)."""
    session = _SESSIONS.pop(asyncio.get_running_loop(), None)
    if session is not None and not session.closed:
        await session.close()


# --------------------------------------------------------------------------------------------
# Rate limit, quota, circuit


@dataclass(frozen=True)
class RateLimits:
    """One courier account's limits as a gate applies them."""

    interval: float  # seconds between two requests' slots
    daily_quota: int | None  # requests per WIB day; None: unlimited


@dataclass(frozen=True)
class Admission:
    """A gate's answer. ``refused_for`` set: the day's quota is spent, nothing was reserved,
    try again in that many seconds (the next WIB day). Otherwise a slot is reserved: send
    after ``wait`` seconds. ``remaining``: today's quota left after this request (None: no
    quota)."""

    wait: float = 0.0
    refused_for: float | None = None
    remaining: int | None = None


class RateGate(Protocol):
    """Where the courier account's rate and daily quota are kept: asked once per attempt."""

    async def acquire(self, courier: str, limits: RateLimits, now: datetime) -> Admission:
        """Reserve the next slot and count one request against today's quota, atomically for
        every caller sharing this gate; or refuse when today's quota is spent. Raise a
        :class:`~adapters.base.CourierUnavailable` when the gate cannot answer."""
        ...


#: A reserved slot further ahead than this means the clocks of the processes sharing a gate
#: disagree (a test running a worker in the future): the schedule starts again from now.
MAX_QUEUE_SECONDS = 300.0


def next_wib_day(now: datetime) -> float:
    """Seconds from ``now`` to the next midnight WIB (at least 1)."""
    local = now.astimezone(WIB)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), WIB)
    return max(1.0, (midnight - local).total_seconds())


def wib_day(now: datetime) -> date:
    return now.astimezone(WIB).date()


class MemoryGate:
    """This process's limits only (the default; tests, the simulators' own clients). Same
    arithmetic as the database's gate: each request reserves the slot ``interval`` after the
    previous one (never earlier than now), so requests leave evenly spaced, in order."""

    def __init__(self) -> None:
        self._next_slot: dict[str, float] = {}
        self._used: dict[str, tuple[date, int]] = {}

    async def acquire(self, courier: str, limits: RateLimits, now: datetime) -> Admission:
        today = wib_day(now)
        remaining: int | None = None
        if limits.daily_quota is not None:
            day, used = self._used.get(courier, (today, 0))
            used = used if day == today else 0
            if used >= limits.daily_quota:
                return Admission(refused_for=next_wib_day(now), remaining=0)
            self._used[courier] = (today, used + 1)
            remaining = limits.daily_quota - used - 1
        t = now.timestamp()
        slot = self._next_slot.get(courier, t)
        if slot < t or slot > t + MAX_QUEUE_SECONDS:
            slot = t
        self._next_slot[courier] = slot + limits.interval
        return Admission(wait=slot - t, remaining=remaining)


class _Circuit:
    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

    def __init__(self, courier: str, policy: TransportPolicy, clock: Clock, obs: CallObserver):
        self.courier = courier
        self.policy = policy
        self.clock = clock
        self.obs = obs
        self.state = self.CLOSED
        self.failures = 0
        self.opened_at: datetime | None = None
        self.probing = False

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.obs.on_circuit(self.courier, state)
            log.info("courier.circuit", courier=self.courier, state=state)

    def admit(self) -> bool | None:
        """May an attempt go now? None: no. True: yes, as the half-open probe. False: yes."""
        if self.state == self.OPEN:
            assert self.opened_at is not None
            since = (self.clock.now() - self.opened_at).total_seconds()
            if since < self.policy.open_seconds:
                return None
            self._set(self.HALF_OPEN)
        if self.state == self.HALF_OPEN:
            if self.probing:
                return None
            self.probing = True
            return True
        return False

    def succeeded(self) -> None:
        self.probing = False
        self.failures = 0
        self._set(self.CLOSED)

    def failed(self) -> None:
        self.probing = False
        self.failures += 1
        if self.state == self.HALF_OPEN or self.failures >= self.policy.failures_to_open:
            self.opened_at = self.clock.now()
            self._set(self.OPEN)

    def released(self) -> None:
        """The probe's attempt is over; after a verdict this changes nothing."""
        self.probing = False


# --------------------------------------------------------------------------------------------
# The transport


class _Failed(Exception):
    """One attempt's failure: the error to raise if it is the last, and whether to try again."""

    def __init__(self, error: CourierError, *, retryable: bool, wait: float | None = None):
        super().__init__(str(error))
        self.error = error
        self.retryable = retryable
        self.wait = wait  # the server's Retry-After, when it gave one


def parse_retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


# Connection failures where nothing reached the courier: safe to call "unavailable" even for
# a create. Everything else after the connection is up may have delivered the request.
_BEFORE_SENDING: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
)


class CourierTransport:
    def __init__(
        self,
        courier: str,
        *,
        clock: Clock,
        policy: TransportPolicy = TransportPolicy(),
        session: aiohttp.ClientSession | None = None,
        observer: CallObserver | None = None,
        gate: RateGate | None = None,
    ) -> None:
        self.courier = courier
        self.clock = clock
        self.policy = policy
        self._session = session
        self._observer: CallObserver = observer or NullObserver()
        self._gate: RateGate = gate if gate is not None else MemoryGate()
        self._limits = policy.limits
        self._circuit = _Circuit(courier, policy, clock, self._observer)
        self._timeout = aiohttp.ClientTimeout(
            total=policy.total_timeout,
            connect=policy.connect_timeout,
            sock_connect=policy.connect_timeout,
            sock_read=policy.read_timeout,
        )

    @property
    def circuit_state(self) -> str:
        return self._circuit.state

    @property
    def session(self) -> aiohttp.ClientSession:
        return self._session if self._session is not None else shared_session()

    async def close(self) -> None:
        """Nothing to release: the session belongs to whoever made it (see close_shared_session)."""
        return None

    async def send(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        data: Mapping[str, str] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: aiohttp.BasicAuth | None = None,
        safe_to_repeat: bool,
    ) -> HttpReply:
        """One logical call, retried per policy when ``safe_to_repeat``. See the module doc."""
        started = time.perf_counter()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.max_attempts if safe_to_repeat else 1),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, _Failed) and e.retryable),
            sleep=self.clock.sleep,
            reraise=True,
            before_sleep=lambda _state: self._observer.on_retry(self.courier, operation),
        )
        body: bytes | None = None
        send_headers = dict(headers or {})
        if auth is not None:  # as a header: the session never sees a BasicAuth object
            send_headers["Authorization"] = auth.encode()
        if json_body is not None:
            # our own encoding: UTF-8 as is, no slash escaping, the same bytes every attempt
            try:
                body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
            except (TypeError, ValueError) as exc:  # a lone surrogate, a value JSON cannot hold
                raise not_built(self.courier, operation, exc) from exc
            send_headers.setdefault("Content-Type", "application/json")
        try:
            reply: HttpReply = await retrying(
                self._attempt,
                operation,
                method,
                url,
                data=data,
                body=body,
                headers=send_headers,
                safe_to_repeat=safe_to_repeat,
            )
        except _Failed as failed:
            self._observer.on_call(
                self.courier, operation, _outcome(failed.error), time.perf_counter() - started
            )
            raise failed.error from failed.__cause__
        outcome = "ok" if reply.status < 400 else "client_error"
        self._observer.on_call(self.courier, operation, outcome, time.perf_counter() - started)
        return reply

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Failed) and exc.wait is not None:
            return exc.wait
        return backoff(self.policy, state.attempt_number)

    async def _attempt(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        data: Mapping[str, str] | None,
        body: bytes | None,
        headers: Mapping[str, str],
        safe_to_repeat: bool,
    ) -> HttpReply:
        probe = self._circuit.admit()
        if probe is None:
            raise _Failed(CircuitOpen(self.courier, "circuit open"), retryable=False)
        try:
            return await self._admitted(operation, method, url, data, body, headers, safe_to_repeat)
        finally:
            if probe:  # a probe that ended without a verdict (cancelled) frees the slot
                self._circuit.released()

    async def _admitted(
        self,
        operation: str,
        method: str,
        url: str,
        data: Mapping[str, str] | None,
        body: bytes | None,
        headers: Mapping[str, str],
        safe_to_repeat: bool,
    ) -> HttpReply:
        await self._admit(operation)

        path = urlsplit(url).path
        started = time.perf_counter()
        trace = {"courier": self.courier, "operation": operation, "method": method, "path": path}
        try:
            async with self.session.request(
                method,
                url,
                data=dict(data) if data is not None else body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                raw = await _read_capped(resp)
                reply = HttpReply(
                    resp.status, CIMultiDictProxy(CIMultiDict(resp.headers)), raw, self.courier
                )
        except _TooLarge as exc:
            # the courier answered (it is up), but not with anything we will hold in memory
            self._circuit.succeeded()
            log.debug("courier.http", **trace, error="too_large", ms=_ms(started))
            message = f"{operation}: answer larger than {MAX_BODY_BYTES} bytes"
            if not safe_to_repeat:
                raise _Failed(OutcomeUnknown(self.courier, message), retryable=False) from exc
            raise _Failed(ResponseInvalid(self.courier, message), retryable=False) from exc
        except _BEFORE_SENDING as exc:
            self._circuit.failed()
            log.debug("courier.http", **trace, error="connect", ms=_ms(started))
            error = CourierUnavailable(self.courier, f"{operation}: cannot connect")
            raise _Failed(error, retryable=True) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            self._circuit.failed()
            kind = "timeout" if isinstance(exc, TimeoutError) else "connection lost"
            log.debug("courier.http", **trace, error=kind, ms=_ms(started))
            if not safe_to_repeat:
                unknown = OutcomeUnknown(self.courier, f"{operation}: {kind} after sending")
                raise _Failed(unknown, retryable=False) from exc
            error = CourierUnavailable(self.courier, f"{operation}: {kind}")
            raise _Failed(error, retryable=True) from exc

        log.debug("courier.http", **trace, status=reply.status, ms=_ms(started))
        return self._judge(operation, reply, safe_to_repeat)

    async def _admit(self, operation: str) -> None:
        """Wait for this attempt's slot, or refuse it when the day's quota is spent."""
        try:
            admission = await self._gate.acquire(self.courier, self._limits, self.clock.now())
        except CourierError as err:  # nothing was sent: the caller may try again later
            raise _Failed(err, retryable=False) from err
        if admission.remaining is not None:
            refused = admission.refused_for is not None
            self._observer.on_quota(self.courier, admission.remaining, refused)
        if admission.refused_for is not None:
            # not an error and not a hot loop: the caller schedules the retry for the next day
            log.warning(
                "courier.quota_exhausted",
                courier=self.courier,
                operation=operation,
                daily_quota=self._limits.daily_quota,
                resets_in_seconds=round(admission.refused_for),
            )
            spent = RateLimited(
                self.courier, "daily quota used up", retry_after=admission.refused_for
            )
            raise _Failed(spent, retryable=False)
        if admission.wait > 0:
            self._observer.on_rate_wait(self.courier, admission.wait)
            await self.clock.sleep(admission.wait)

    def _judge(self, operation: str, reply: HttpReply, safe_to_repeat: bool) -> HttpReply:
        status = reply.status
        if status >= 500:
            self._circuit.failed()
            if not safe_to_repeat:
                # the request reached a server: the order may exist behind any 5xx
                unknown = OutcomeUnknown(self.courier, f"{operation}: HTTP {status} after sending")
                raise _Failed(unknown, retryable=False)
            wait = parse_retry_after(reply.headers, self.clock.now()) if status == 503 else None
            error = CourierUnavailable(self.courier, f"{operation}: HTTP {status}")
            raise _Failed(error, retryable=self._waitable(wait), wait=wait)
        self._circuit.succeeded()  # any non-5xx answer proves the courier is up
        if status == 429:
            wait = parse_retry_after(reply.headers, self.clock.now())
            retry_after = wait if wait is not None else self.policy.backoff_initial
            limited = RateLimited(self.courier, f"{operation}: HTTP 429", retry_after=retry_after)
            raise _Failed(limited, retryable=self._waitable(wait), wait=wait)
        return reply

    def _waitable(self, wait: float | None) -> bool:
        # a Retry-After longer than we would back off is the worker's to schedule, not ours
        return wait is None or wait <= self.policy.backoff_max


def backoff(policy: TransportPolicy, attempt: int) -> float:
    """Wait after failed attempt ``attempt`` (1-based): initial·2ⁿ⁻¹ plus up to ``initial`` of
    jitter, capped at ``backoff_max`` (the one policy, core/backoff.py)."""
    return exponential_backoff(
        attempt - 1,
        initial=policy.backoff_initial,
        cap=policy.backoff_max,
        jitter=policy.backoff_initial,
    )


class _TooLarge(Exception):
    """The answer's body passed MAX_BODY_BYTES."""


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    """The body, read in chunks and given up on past MAX_BODY_BYTES. A body cut short (fewer
    bytes than Content-Length, a broken chunked encoding) raises ``aiohttp.ClientPayloadError``
    like any dropped connection: the caller treats it as "may have been processed"."""
    declared = resp.content_length
    size = 0
    chunks: list[bytes] = []
    if declared is None or declared <= MAX_BODY_BYTES:
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                break
            chunks.append(chunk)
    if (declared is not None and declared > MAX_BODY_BYTES) or size > MAX_BODY_BYTES:
        resp.close()  # drop the connection: the rest of that body must not reach the next call
        raise _TooLarge
    return b"".join(chunks)


def basic_auth(user: str, password: str) -> dict[str, str]:
    """An ``Authorization: Basic`` header (RFC 7617, UTF-8). Prefer it to ``aiohttp.BasicAuth``,
    which aiohttp 3.14 deprecates; ``send(auth=...)`` still accepts one."""
    if ":" in user:
        raise ValueError("a Basic auth user may not contain ':'")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _outcome(error: CourierError) -> str:
    if isinstance(error, CircuitOpen):
        return "circuit_open"
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, OutcomeUnknown):
        return "unknown"
    return "unavailable"
