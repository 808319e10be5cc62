"""CourierTransport against a scripted aiohttp server on loopback; waits run on a ManualClock."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from adapters.base import CourierUnavailable, OutcomeUnknown, RateLimited, ResponseInvalid
from adapters.http import (
    MAX_BODY_BYTES,
    CircuitOpen,
    CourierTransport,
    HttpReply,
    MemoryGate,
    TransportPolicy,
    backoff,
    basic_auth,
    close_shared_session,
    parse_retry_after,
    shared_session,
)
from core.backoff import exponential_backoff
from core.clock import ManualClock


@dataclass
class Script:
    """Answers in turn (the last repeats); counts hits; remembers what arrived."""

    answers: list[int | str] = field(default_factory=lambda: [200])
    hits: int = 0
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        self.bodies.append(await request.read())
        self.headers.append(dict(request.headers))
        answer = self.answers[min(self.hits - 1, len(self.answers) - 1)]
        if answer == "hang":  # hold past the client's read timeout
            await asyncio.wait_for(self.release.wait(), timeout=5)
            return web.Response(text="late")
        if answer == "drop":  # close the connection with no answer at all
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if isinstance(answer, str) and answer.startswith("429:"):
            return web.Response(status=429, headers={"Retry-After": answer[4:]})
        if isinstance(answer, str) and answer.startswith("503:"):
            return web.Response(status=503, headers={"Retry-After": answer[4:]})
        assert isinstance(answer, int)
        return web.json_response({"hit": self.hits}, status=answer)


@dataclass
class Observed:
    calls: list[tuple[str, str]] = field(default_factory=list)
    retries: int = 0
    circuit: list[str] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    quota: list[tuple[int, bool]] = field(default_factory=list)

    def on_call(self, courier: str, operation: str, outcome: str, seconds: float) -> None:
        self.calls.append((operation, outcome))

    def on_retry(self, courier: str, operation: str) -> None:
        self.retries += 1

    def on_circuit(self, courier: str, state: str) -> None:
        self.circuit.append(state)

    def on_rate_wait(self, courier: str, seconds: float) -> None:
        self.waits.append(seconds)

    def on_quota(self, courier: str, remaining: int, refused: bool) -> None:
        self.quota.append((remaining, refused))


@dataclass
class Rig:
    script: Script
    url: str
    clock: ManualClock
    session: aiohttp.ClientSession
    observed: Observed

    def transport(self, **policy: float | int | None) -> CourierTransport:
        defaults: dict[str, float | int | None] = {"backoff_initial": 0.1, "backoff_max": 5}
        return CourierTransport(
            "test",
            clock=self.clock,
            policy=TransportPolicy(**{**defaults, **policy}),  # type: ignore[arg-type]
            session=self.session,
            observer=self.observed,
        )


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    script = Script()
    app = web.Application()
    app.router.add_route("*", "/api/{tail:.*}", script.handle)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        yield Rig(
            script, str(server.make_url("/api/thing?secret=1")), ManualClock(), session, Observed()
        )
        script.release.set()


async def test_success_returns_the_reply_and_posts_the_form(rig: Rig) -> None:
    reply = await rig.transport().send(
        "op", "POST", rig.url, data={"data_param": '{"a":"Jl. A/B é"}'}, safe_to_repeat=False
    )
    assert reply.status == 200 and reply.json() == {"hit": 1}
    assert reply.headers["content-type"].startswith("application/json")
    assert rig.script.bodies[0].startswith(b"data_param=")
    assert rig.observed.calls == [("op", "ok")]


async def test_json_body_is_utf8_without_escapes(rig: Rig) -> None:
    await rig.transport().send(
        "op", "POST", rig.url, json_body={"n": "Sālim/1"}, safe_to_repeat=True
    )
    assert rig.script.bodies[0] == '{"n":"Sālim/1"}'.encode()
    assert rig.script.headers[0]["Content-Type"] == "application/json"


async def test_5xx_is_retried_with_backoff_on_the_clock_when_safe(rig: Rig) -> None:
    rig.script.answers = [500, 502, 200]
    before = rig.clock.now()
    reply = await rig.transport().send("track", "GET", rig.url, safe_to_repeat=True)
    assert reply.status == 200 and rig.script.hits == 3
    assert rig.observed.retries == 2
    assert rig.clock.now() > before  # waited on the clock, not the wall


async def test_5xx_after_all_attempts_is_unavailable(rig: Rig) -> None:
    rig.script.answers = [500]
    with pytest.raises(CourierUnavailable, match="HTTP 500"):
        await rig.transport(max_attempts=3).send("track", "GET", rig.url, safe_to_repeat=True)
    assert rig.script.hits == 3
    assert rig.observed.calls == [("track", "unavailable")]


async def test_unsafe_call_is_never_repeated(rig: Rig) -> None:
    rig.script.answers = [503, 200]
    with pytest.raises(OutcomeUnknown):
        await rig.transport().send("create", "POST", rig.url, safe_to_repeat=False)
    assert rig.script.hits == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_on_an_unsafe_call_is_outcome_unknown(rig: Rig, status: int) -> None:
    # the request reached a server: the order may exist behind any 5xx, never "nothing happened"
    rig.script.answers = [status]
    with pytest.raises(OutcomeUnknown) as caught:
        await rig.transport().send("create", "POST", rig.url, safe_to_repeat=False)
    assert not isinstance(caught.value, CourierUnavailable)
    assert rig.script.hits == 1
    assert rig.observed.calls == [("create", "unknown")]


async def test_5xx_on_a_safe_call_stays_unavailable(rig: Rig) -> None:
    rig.script.answers = [500]
    with pytest.raises(CourierUnavailable):
        await rig.transport(max_attempts=2).send("track", "GET", rig.url, safe_to_repeat=True)
    assert rig.script.hits == 2


async def test_connection_refused_on_an_unsafe_call_is_unavailable(rig: Rig) -> None:
    with socket.socket() as s:  # a port nobody listens on: nothing can have been sent
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(CourierUnavailable) as caught:
        await rig.transport().send(
            "create", "POST", f"http://127.0.0.1:{port}/api/x", safe_to_repeat=False
        )
    assert not isinstance(caught.value, OutcomeUnknown)


async def _raw_server(answer: bytes) -> tuple[asyncio.Server, str]:
    """A server that reads the request, writes ``answer`` verbatim and closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head, _, rest = answer.partition(b"\r\n")
        writer.write(head + b"\r\nConnection: close\r\n" + rest)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/api/create"


async def test_truncated_2xx_body_on_an_unsafe_call_is_outcome_unknown(rig: Rig) -> None:
    # 200 with Content-Length 100, then the connection drops after 10 bytes
    server, url = await _raw_server(
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"awb":"J'
    )
    async with server:
        with pytest.raises(OutcomeUnknown):
            await rig.transport().send("create", "POST", url, safe_to_repeat=False)
        with pytest.raises(CourierUnavailable):
            await rig.transport(max_attempts=1).send("track", "POST", url, safe_to_repeat=True)


async def test_oversized_body_is_refused_without_buffering_it(rig: Rig) -> None:
    big = b"x" * (MAX_BODY_BYTES + 1)
    for framing in (  # declared up front, and streamed without a length
        b"Content-Length: %d\r\n\r\n" % len(big) + big,
        b"Transfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (big[: 1 << 20], big[1 << 20 :]))
        + b"0\r\n\r\n",
    ):
        server, url = await _raw_server(b"HTTP/1.1 200 OK\r\n" + framing)
        async with server:
            with pytest.raises(ResponseInvalid, match="larger than"):
                await rig.transport().send("track", "POST", url, safe_to_repeat=True)
            with pytest.raises(OutcomeUnknown, match="larger than"):
                await rig.transport().send("create", "POST", url, safe_to_repeat=False)


async def test_4xx_is_returned_for_the_adapter_to_read(rig: Rig) -> None:
    rig.script.answers = [404, 200]
    reply = await rig.transport().send("track", "GET", rig.url, safe_to_repeat=True)
    assert reply.status == 404 and rig.script.hits == 1
    assert rig.observed.calls == [("track", "client_error")]


async def test_429_waits_retry_after_then_succeeds(rig: Rig) -> None:
    rig.script.answers = ["429:3", 200]
    before = rig.clock.now()
    reply = await rig.transport().send("track", "GET", rig.url, safe_to_repeat=True)
    assert reply.status == 200
    assert rig.clock.now() - before == timedelta(seconds=3)


async def test_503_retry_after_is_honoured_too(rig: Rig) -> None:
    rig.script.answers = ["503:2", 200]
    before = rig.clock.now()
    await rig.transport().send("track", "GET", rig.url, safe_to_repeat=True)
    assert rig.clock.now() - before == timedelta(seconds=2)


async def test_429_to_the_end_is_rate_limited_withparse_retry_after(rig: Rig) -> None:
    rig.script.answers = ["429:1"]
    with pytest.raises(RateLimited) as limited:
        await rig.transport(max_attempts=2).send("track", "GET", rig.url, safe_to_repeat=True)
    assert limited.value.retry_after == 1 and rig.script.hits == 2


async def test_a_long_retry_after_is_left_to_the_caller(rig: Rig) -> None:
    rig.script.answers = ["429:600", 200]
    with pytest.raises(RateLimited) as limited:
        await rig.transport(backoff_max=10).send("track", "GET", rig.url, safe_to_repeat=True)
    assert limited.value.retry_after == 600 and rig.script.hits == 1


async def test_timeout_safe_is_unavailable_unsafe_is_unknown(rig: Rig) -> None:
    rig.script.answers = ["hang"]
    fast = {"read_timeout": 0.2, "total_timeout": 1.0}
    with pytest.raises(CourierUnavailable, match="timeout"):
        await rig.transport(max_attempts=2, **fast).send("t", "GET", rig.url, safe_to_repeat=True)
    assert rig.script.hits == 2
    with pytest.raises(OutcomeUnknown):
        await rig.transport(**fast).send("create", "POST", rig.url, safe_to_repeat=False)
    assert rig.script.hits == 3


async def test_dropped_connection_on_unsafe_call_is_unknown(rig: Rig) -> None:
    rig.script.answers = ["drop"]
    with pytest.raises(OutcomeUnknown):
        await rig.transport().send("create", "POST", rig.url, safe_to_repeat=False)


async def test_refused_connection_is_unavailable_even_for_a_create(rig: Rig) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CourierUnavailable, match="cannot connect") as err:
        await rig.transport().send(
            "create", "POST", f"http://127.0.0.1:{port}/x", safe_to_repeat=False
        )
    assert not isinstance(err.value, OutcomeUnknown)


async def test_circuit_opens_fails_fast_and_half_opens_on_the_clock(rig: Rig) -> None:
    rig.script.answers = [500]
    transport = rig.transport(max_attempts=1, failures_to_open=3, open_seconds=30)
    for _ in range(3):
        with pytest.raises(CourierUnavailable):
            await transport.send("t", "GET", rig.url, safe_to_repeat=True)
    assert transport.circuit_state == "open" and rig.script.hits == 3
    with pytest.raises(CircuitOpen):
        await transport.send("t", "GET", rig.url, safe_to_repeat=True)
    assert rig.script.hits == 3  # not called
    rig.clock.advance(timedelta(seconds=30))
    with pytest.raises(CourierUnavailable):  # the probe fails: open again
        await transport.send("t", "GET", rig.url, safe_to_repeat=True)
    assert transport.circuit_state == "open" and rig.script.hits == 4
    rig.clock.advance(timedelta(seconds=30))
    rig.script.answers = [200]
    await transport.send("t", "GET", rig.url, safe_to_repeat=True)
    assert transport.circuit_state == "closed"
    assert rig.observed.circuit == ["open", "half_open", "open", "half_open", "closed"]


async def test_half_open_lets_a_single_probe_through(rig: Rig) -> None:
    rig.script.answers = [500, "hang"]
    transport = rig.transport(
        max_attempts=1, failures_to_open=1, open_seconds=5, read_timeout=0.3, total_timeout=1
    )
    with pytest.raises(CourierUnavailable):
        await transport.send("t", "GET", rig.url, safe_to_repeat=True)
    rig.clock.advance(timedelta(seconds=5))
    probe = asyncio.create_task(transport.send("t", "GET", rig.url, safe_to_repeat=True))
    deadline = asyncio.get_running_loop().time() + 5
    while rig.script.hits < 2:  # poll until the probe has reached the server
        assert asyncio.get_running_loop().time() < deadline, "probe never arrived"
        await asyncio.sleep(0.01)
    with pytest.raises(CircuitOpen):
        await transport.send("t", "GET", rig.url, safe_to_repeat=True)
    rig.script.release.set()
    await probe
    assert transport.circuit_state == "closed"


async def test_rate_limit_spaces_requests_on_the_clock(rig: Rig) -> None:
    transport = rig.transport(requests_per_second=2, rate_margin=0)
    before = rig.clock.now()
    for _ in range(6):
        await transport.send("t", "GET", rig.url, safe_to_repeat=True)
    # the first at once, then one every half second: never a burst past the rate
    assert rig.clock.now() - before == timedelta(seconds=2.5)
    assert rig.observed.waits == [0.5] * 5


async def test_the_rate_margin_spaces_requests_further(rig: Rig) -> None:
    transport = rig.transport(requests_per_second=4, rate_margin=0.2)
    before = rig.clock.now()
    for _ in range(3):
        await transport.send("t", "GET", rig.url, safe_to_repeat=True)
    assert rig.clock.now() - before == timedelta(seconds=0.6)  # 1.2 s / 4 apart


async def test_transports_sharing_a_gate_share_the_rate_and_the_quota(rig: Rig) -> None:
    gate = MemoryGate()
    policy = TransportPolicy(requests_per_second=1, rate_margin=0, daily_quota=3)
    two = [
        CourierTransport("test", clock=rig.clock, policy=policy, session=rig.session, gate=gate)
        for _ in range(2)
    ]
    before = rig.clock.now()
    await asyncio.gather(*(t.send("t", "GET", rig.url, safe_to_repeat=True) for t in two))
    assert rig.clock.now() - before == timedelta(seconds=1)  # one waited for the other's slot
    await two[0].send("t", "GET", rig.url, safe_to_repeat=True)
    with pytest.raises(RateLimited, match="daily quota"):
        await two[1].send("t", "GET", rig.url, safe_to_repeat=True)
    assert rig.script.hits == 3


async def test_daily_quota_resets_at_wib_midnight(rig: Rig) -> None:
    rig.clock.set(datetime(2026, 11, 2, 16, 0, tzinfo=UTC))  # 23:00 WIB
    transport = rig.transport(daily_quota=2)
    for _ in range(2):
        await transport.send("t", "GET", rig.url, safe_to_repeat=True)
    with pytest.raises(RateLimited) as limited:
        await transport.send("t", "GET", rig.url, safe_to_repeat=True)
    assert limited.value.retry_after == pytest.approx(3600, abs=1)
    assert rig.script.hits == 2
    assert rig.observed.quota == [(1, False), (0, False), (0, True)]
    assert rig.observed.calls[-1] == ("t", "rate_limited")
    rig.clock.advance(timedelta(hours=1))
    await transport.send("t", "GET", rig.url, safe_to_repeat=True)
    assert rig.script.hits == 3


async def test_tracing_logs_path_and_status_never_query_or_body(rig: Rig) -> None:
    with capture_logs() as logs:
        await rig.transport().send(
            "op",
            "POST",
            rig.url,
            data={"receiver_name": "Budi"},
            headers=basic_auth("u", "p"),
            safe_to_repeat=False,
        )
    traces = [entry for entry in logs if entry["event"] == "courier.http"]
    assert traces and traces[0]["path"] == "/api/thing" and traces[0]["status"] == 200
    text = repr(logs)
    assert "secret" not in text and "Budi" not in text and "Basic" not in text


async def test_basic_auth_header_and_aiohttp_basic_auth_agree(rig: Rig) -> None:
    await rig.transport().send(
        "t", "GET", rig.url, headers=basic_auth("co", "pw:1"), safe_to_repeat=True
    )
    assert rig.script.headers[0]["Authorization"] == "Basic Y286cHc6MQ=="


def test_reply_json_raises_response_invalid_naming_the_courier() -> None:
    with pytest.raises(ResponseInvalid, match="jnt"):
        HttpReply(200, {}, b"<html>", "jnt").json()


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    assert parse_retry_after({"Retry-After": "7"}, now) == 7
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after({"Retry-After": later}, now) == 90
    assert parse_retry_after({"Retry-After": "soon"}, now) is None
    assert parse_retry_after({}, now) is None


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = TransportPolicy(backoff_initial=0.5, backoff_max=3)
    waits = [backoff(policy, n) for n in range(1, 6)]
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 1.5
    assert waits[-1] == 3


def test_one_exponential_backoff_policy() -> None:
    assert [exponential_backoff(n, initial=30, cap=3600) for n in range(9)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]
    assert exponential_backoff(10_000, initial=1, cap=5) == 5  # no overflow far out
    assert exponential_backoff(-1, initial=2, cap=5) == 2
    jittered = {exponential_backoff(2, initial=1, cap=100, jitter=0.5) for _ in range(50)}
    assert all(4 <= w <= 4.5 for w in jittered) and len(jittered) > 1


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        TransportPolicy(max_attempts=0)
    policy = TransportPolicy.from_settings({"max_attempts": 2, "unrelated": 1})
    assert policy.max_attempts == 2


async def test_shared_session_is_one_per_loop_and_closes() -> None:
    first = shared_session()
    assert shared_session() is first
    await close_shared_session()
    assert first.closed
    second = shared_session()
    assert second is not first
    await close_shared_session()
