"""Prometheus metrics: one registry per process, the names operators alert on.

Counters and histograms are updated where things happen (the HTTP middleware, the courier
transport through :class:`PrometheusObserver`, the worker's claim loop). What lives in the
database — deliveries by state, open exception items, inbox/outbox/poll lag — is not counted in
memory (several processes share one database and memory is no source of truth): it is read with
a few cheap aggregate queries when ``/metrics`` is scraped (:func:`refresh_from_db`), at most
once every ``metrics.db_refresh_seconds`` of the service clock (:class:`DbGauges`): a scraper, or
anyone who can reach the endpoint, cannot turn scrapes into database load.

Every metric is named ``courier_…``; the README (Operations) says what each one means and which
alert watches it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import start_http_server as _start_http_server
from sqlalchemy import func, select

from core.clock import Clock
from courier.db.engine import SessionFactory
from courier.db.limits import quota_left
from courier.db.models import (
    OPEN_SHIPMENT_STATUSES,
    Delivery,
    ExceptionItem,
    InboxItem,
    OutboxItem,
    Shipment,
)
from courier.domain.states import DeliveryState

log = structlog.get_logger("courier.metrics")

REGISTRY = CollectorRegistry(auto_describe=True)

# Latency buckets: the API answers in milliseconds; courier calls take up to tens of seconds
# (timeouts and retries included), so their buckets reach further.
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_COURIER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)

HTTP_REQUESTS = Counter(
    "courier_http_requests",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "courier_http_request_duration_seconds",
    "HTTP request handling time, by route template and method",
    ["route", "method"],
    buckets=_HTTP_BUCKETS,
    registry=REGISTRY,
)
COURIER_CALLS = Counter(
    "courier_courier_calls",
    "Calls to a courier's API, by courier, operation and outcome "
    "(ok, client_error, unavailable, rate_limited, unknown, circuit_open)",
    ["courier", "operation", "outcome"],
    registry=REGISTRY,
)
COURIER_LATENCY = Histogram(
    "courier_courier_call_duration_seconds",
    "Wall time of one courier call, retries included, by courier and operation",
    ["courier", "operation"],
    buckets=_COURIER_BUCKETS,
    registry=REGISTRY,
)
COURIER_RETRIES = Counter(
    "courier_courier_retries",
    "Retries of calls that are safe to repeat, by courier and operation",
    ["courier", "operation"],
    registry=REGISTRY,
)
CIRCUIT_STATE = Gauge(
    "courier_circuit_state",
    "Circuit breaker per courier: 0 closed, 1 half-open, 2 open",
    ["courier"],
    registry=REGISTRY,
)
RATE_LIMIT_WAITS = Counter(
    "courier_rate_limit_waits",
    "Times a call waited for the courier's rate limit",
    ["courier"],
    registry=REGISTRY,
)
RATE_LIMIT_WAIT_SECONDS = Counter(
    "courier_rate_limit_wait_seconds",
    "Seconds spent waiting for the courier's rate limit",
    ["courier"],
    registry=REGISTRY,
)
QUOTA_REMAINING = Gauge(
    "courier_quota_remaining",
    "Requests left today (WIB) in the courier account's daily quota, shared by every process "
    "(read from the database at scrape time; a worker's own port shows its last answer)",
    ["courier"],
    registry=REGISTRY,
)
QUOTA_REFUSALS = Counter(
    "courier_quota_refusals",
    "Calls not sent because the courier account's daily quota was spent (they wait for the "
    "next WIB day)",
    ["courier"],
    registry=REGISTRY,
)
CLAIMS = Counter(
    "courier_claims",
    "Rows claimed by workers, by job kind (book, track, inbox, watch…)",
    ["kind"],
    registry=REGISTRY,
)
LEASE_EXPIRIES = Counter(
    "courier_lease_expiries",
    "Claims taken over because another worker's lease had expired, by job kind",
    ["kind"],
    registry=REGISTRY,
)
BOOKING_RECONCILIATIONS = Counter(
    "courier_booking_reconciliations",
    "Bookings whose outcome was settled by reference after an unknown or refused create, by "
    "courier and how (found: the lookup found it; resent: booked on a resend; duplicate: the "
    "courier refused the reused reference, so the order exists and a person records its waybill)",
    ["courier", "how"],
    registry=REGISTRY,
)
DELIVERIES = Gauge(
    "courier_deliveries",
    "Deliveries by state (read from the database at scrape time)",
    ["state"],
    registry=REGISTRY,
)
EXCEPTIONS_OPEN = Gauge(
    "courier_exceptions_open",
    "Open items in the dispatch exceptions queue, by kind (read at scrape time)",
    ["kind"],
    registry=REGISTRY,
)
INBOX_LAG = Gauge(
    "courier_inbox_lag_seconds",
    "Age of the oldest courier push not yet processed (0 when the inbox is empty)",
    registry=REGISTRY,
)
OUTBOX_LAG = Gauge(
    "courier_outbox_lag_seconds",
    "How overdue the oldest unsent notification is (0 when none is due)",
    registry=REGISTRY,
)
POLL_LAG = Gauge(
    "courier_poll_lag_seconds",
    "How overdue the most overdue tracking poll of an open shipment is (0 when none is due)",
    registry=REGISTRY,
)
SCRAPE_ERRORS = Counter(
    "courier_metrics_db_errors",
    "Scrapes whose database read failed (the database gauges then keep their last values)",
    registry=REGISTRY,
)

_CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_LATENCY.labels(route, method).observe(seconds)


def count_claims(kind: str, n: int) -> None:
    if n > 0:
        CLAIMS.labels(kind).inc(n)


def count_lease_expiry(kind: str, n: int = 1) -> None:
    if n > 0:
        LEASE_EXPIRIES.labels(kind).inc(n)


def count_reconciliation(courier: str, how: str) -> None:
    BOOKING_RECONCILIATIONS.labels(courier, how).inc()


class PrometheusObserver:
    """The :class:`adapters.http.CallObserver` that feeds this registry."""

    def on_call(self, courier: str, operation: str, outcome: str, seconds: float) -> None:
        COURIER_CALLS.labels(courier, operation, outcome).inc()
        COURIER_LATENCY.labels(courier, operation).observe(seconds)

    def on_retry(self, courier: str, operation: str) -> None:
        COURIER_RETRIES.labels(courier, operation).inc()

    def on_circuit(self, courier: str, state: str) -> None:
        CIRCUIT_STATE.labels(courier).set(_CIRCUIT_VALUES.get(state, 2))

    def on_rate_wait(self, courier: str, seconds: float) -> None:
        RATE_LIMIT_WAITS.labels(courier).inc()
        RATE_LIMIT_WAIT_SECONDS.labels(courier).inc(max(0.0, seconds))

    def on_quota(self, courier: str, remaining: int, refused: bool) -> None:
        QUOTA_REMAINING.labels(courier).set(remaining)
        if refused:
            QUOTA_REFUSALS.labels(courier).inc()


def _age(now: datetime, oldest: datetime | None) -> float:
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:  # stored as naive UTC on SQLite
        oldest = oldest.replace(tzinfo=UTC)
    return max(0.0, (now - oldest).total_seconds())


def _as_datetime(value: object) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


@dataclass(frozen=True)
class DbFigures:
    deliveries: dict[str, int]
    exceptions: dict[str, int]
    inbox_lag: float
    outbox_lag: float
    poll_lag: float
    quota_remaining: dict[str, int] = field(default_factory=dict)


async def read_db_figures(sessions: SessionFactory, now: datetime) -> DbFigures:
    """The database gauges' values: one GROUP BY per table, each index-backed or small."""
    async with sessions() as session:
        states = (
            await session.execute(select(Delivery.state, func.count()).group_by(Delivery.state))
        ).all()
        exceptions = (
            await session.execute(
                select(ExceptionItem.kind, func.count())
                .where(ExceptionItem.resolved_at.is_(None))
                .group_by(ExceptionItem.kind)
            )
        ).all()
        inbox_oldest = await session.scalar(
            select(func.min(InboxItem.received_at)).where(InboxItem.processed_at.is_(None))
        )
        due = func.coalesce(OutboxItem.next_attempt_at, OutboxItem.created_at)
        outbox_oldest = await session.scalar(
            select(func.min(due)).where(
                OutboxItem.sent_at.is_(None), OutboxItem.failed_at.is_(None), due <= now
            )
        )
        poll_oldest = await session.scalar(
            select(func.min(Shipment.next_poll_at)).where(
                Shipment.status.in_(OPEN_SHIPMENT_STATUSES), Shipment.next_poll_at <= now
            )
        )
        quotas = await quota_left(session, now)
        return DbFigures(
            quota_remaining={q.courier: q.remaining for q in quotas},
            deliveries={str(row[0]): int(row[1]) for row in states},
            exceptions={str(row[0]): int(row[1]) for row in exceptions},
            inbox_lag=_age(now, _as_datetime(inbox_oldest)),
            outbox_lag=_age(now, _as_datetime(outbox_oldest)),
            poll_lag=_age(now, _as_datetime(poll_oldest)),
        )


def apply_db_figures(figures: DbFigures) -> None:
    """Set the database gauges at once (no await in between: a scrape never sees half)."""
    # every known state is reported, 0 included, so a state that empties drops to 0
    for state in DeliveryState:
        DELIVERIES.labels(state.value).set(figures.deliveries.get(state.value, 0))
    for name, n in figures.deliveries.items():
        DELIVERIES.labels(name).set(n)
    EXCEPTIONS_OPEN.clear()
    for kind, n in figures.exceptions.items():
        EXCEPTIONS_OPEN.labels(kind).set(n)
    INBOX_LAG.set(figures.inbox_lag)
    OUTBOX_LAG.set(figures.outbox_lag)
    POLL_LAG.set(figures.poll_lag)
    for courier, remaining in figures.quota_remaining.items():
        QUOTA_REMAINING.labels(courier).set(remaining)


async def refresh_from_db(sessions: SessionFactory, clock: Clock) -> bool:
    """Read the database gauges; False (and the gauges untouched) when the database fails."""
    try:
        figures = await read_db_figures(sessions, clock.now())
    except Exception as err:  # a scrape answers even when the database is down (/readyz says)
        SCRAPE_ERRORS.inc()
        log.warning("metrics_db_read_failed", exc_type=type(err).__name__)
        return False
    apply_db_figures(figures)
    return True


class DbGauges:
    """The database gauges of one service, read at most once per ``max_age`` of its clock.

    Scrapes in between answer the last values; concurrent scrapes share one read (the lock).
    A failed read counts as a read too: a database in trouble is not asked again at once."""

    def __init__(self, sessions: SessionFactory, clock: Clock, max_age: timedelta) -> None:
        self._sessions = sessions
        self._clock = clock
        self._max_age = max_age
        self._read_at: datetime | None = None
        self._lock = asyncio.Lock()

    def _fresh(self, now: datetime) -> bool:
        return self._read_at is not None and timedelta(0) <= now - self._read_at < self._max_age

    async def refresh(self) -> bool:
        """True when this call read the database (successfully)."""
        if self._fresh(self._clock.now()):
            return False
        async with self._lock:
            now = self._clock.now()
            if self._fresh(now):
                return False  # another scrape read them while this one waited
            self._read_at = now
            return await refresh_from_db(self._sessions, self._clock)


def exposition() -> bytes:
    """The registry in Prometheus text format."""
    return bytes(generate_latest(REGISTRY))


def serve_standalone(port: int, host: str = "127.0.0.1") -> None:
    """Expose this process's registry on its own port (for a `courier work` process, which has
    no HTTP app). Database gauges are the HTTP service's job and are not read here."""
    _start_http_server(port, addr=host, registry=REGISTRY)
