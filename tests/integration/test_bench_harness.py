"""The bench harness's own parts, without a benchmark: ratios and targets, the table, the pgbench
report parser, the machine description, and the load generator against a real hello-world on
loopback. No figure is asserted: only that what is measured is counted and judged correctly."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from rich.console import Console

from bench import hello, machine, reconcile, scorecard
from bench.__main__ import rows
from bench.baselines import parse_pgbench
from bench.common import fresh_pg_db
from bench.load import Request, drive, percentile, summarise
from bench.procs import server
from bench.verdict import NO_TARGET, Row, Target, markdown, met, table
from courier.db.migrate import upgrade


def test_a_ratio_target_is_met_at_or_above_the_ratio() -> None:
    target = Target(min_ratio=0.5)
    assert met(target, 50, 100, None) is True
    assert met(target, 49.9, 100, None) is False
    assert met(target, 50, None, None) is False  # no baseline: cannot be shown to be met
    assert met(target, 50, 0, None) is False
    assert met(NO_TARGET, 1, 100, None) is None


def test_a_latency_bound_must_hold_beside_the_ratio() -> None:
    target = Target(min_ratio=0.5, max_p99_ms=50)
    assert met(target, 80, 100, 50.0) is True
    assert met(target, 80, 100, 50.1) is False
    assert met(target, 80, 100, None) is False  # latency not measured
    assert met(target, 40, 100, 10.0) is False


def test_an_upper_bound_needs_no_baseline() -> None:
    target = Target(max_value=150)
    assert met(target, 150, None, None) is True
    assert met(target, 151, 40, None) is False
    assert target.text("MB") == "≤ 150 MB"
    assert Target(min_ratio=1.0).text() == "≥ 1.0×"
    assert Target(min_ratio=0.4, max_p99_ms=50).text() == "≥ 40%, p99 ≤ 50 ms"


def _measured(tps: float = 1000.0) -> dict[str, object]:
    return {
        "pgbench": {"tps": tps},
        "hello_world": {"per_second": 4000.0, "peak_rss_mb": 40.0},
        "serve": {
            "intake": {"per_second": 300.0, "p99_ms": 30.0},
            "push": {"per_second": 600.0, "p99_ms": 60.0},
            "peak_rss_mb": 100.0,
        },
        "pgqueuer": {"10": {"per_second": 200.0}, "100": {"per_second": 400.0}},
        "claim_complete": {"10": {"per_second": 250.0}, "100": {"per_second": 100.0}},
        "booking_instant": {"per_second": 200.0, "concurrency_per_courier": 4, "peak_rss_mb": 160},
    }


def test_each_figure_is_judged_against_its_own_baseline_and_target() -> None:
    by_figure = {(r.figure, r.baseline_label): r for r in rows(_measured())}
    batch10 = by_figure["claim + complete, no-op courier, batch 10", "pgqueuer, batch 10"]
    assert (batch10.ratio, batch10.met) == (1.25, True)
    batch100 = by_figure["claim + complete, no-op courier, batch 100", "pgqueuer, batch 100"]
    assert (batch100.ratio, batch100.met) == (0.25, False)
    booking = by_figure["booking, instant courier, 4 in flight", "pgbench -N ÷ 2"]
    assert (booking.baseline, booking.ratio, booking.met) == (500.0, 0.4, True)
    intake = by_figure["intake PUT /applications, 1 serve", "pgbench -N"]
    assert (intake.ratio, intake.met) == (0.3, True)
    beside_hello = by_figure["intake PUT /applications, 1 serve", "hello-world"]
    assert (beside_hello.ratio, beside_hello.met) == (0.075, None)
    push = by_figure["push POST /webhooks/jnt, 1 serve", "pgbench -N"]
    assert (push.ratio, push.met) == (0.6, False)  # fast enough, but p99 60 ms > 50 ms
    assert by_figure["peak memory, serve process", "hello-world process"].met is True
    assert by_figure["peak memory, work process", "hello-world process"].met is False


def test_the_table_shows_every_row_with_its_verdict() -> None:
    table_rows = [
        Row("push", 600, "req/s", "pgbench -N", 1000, Target(min_ratio=0.5), p99_ms=12.3),
        Row("memory", 96.4, "MB", "", None, Target(max_value=150)),
    ]
    console = Console(record=True, width=200)
    console.print(table(table_rows, title="bench"))
    text = console.export_text()
    assert "600 req/s, p99 12 ms" in text
    assert "1,000 (pgbench -N)" in text
    assert "60.0%" in text
    assert "≤ 150 MB" in text
    lines = markdown(table_rows).splitlines()
    assert len(lines) == 4
    assert lines[2] == "| push | 600 req/s, p99 12 ms | 1,000 (pgbench -N) | 60.0% | ≥ 50% | yes |"
    assert lines[3].endswith("| — | — | ≤ 150 MB | yes |")
    assert rows(_measured())[0].as_dict()["met"] is True


PGBENCH_OUTPUT = """\
pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: <builtin: simple update>
scaling factor: 1
number of clients: 8
number of threads: 2
duration: 10 s
number of transactions actually processed: 72700
latency average = 1.100 ms
initial connection time = 12.345 ms
tps = 7270.123456 (without initial connection time)
"""


def test_pgbench_report_gives_tps_and_latency() -> None:
    assert parse_pgbench(PGBENCH_OUTPUT) == {"tps": 7270.123456, "latency_avg_ms": 1.1}
    with pytest.raises(ValueError):
        parse_pgbench("pgbench: error: connection refused\n")


def test_machine_description_reads_proc_texts() -> None:
    assert machine.cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n") == "AMD EPYC 7B13"
    assert machine.cpu_model("") == ""
    assert machine.memory_mb("MemTotal:       24684000 kB\nMemFree: 1 kB\n") == 25276
    assert machine.memory_mb("") is None


def test_percentiles_are_nearest_rank_and_failures_are_not_throughput() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) == 0.0
    figures = summarise([0.001, 0.002, 0.003, 0.004], errors=1, seconds=2.0, connections=2)
    assert (figures.requests, figures.errors, figures.per_second) == (3, 1, 1.5)
    assert figures.p50_ms == pytest.approx(2.0)


@pytest.fixture
async def hello_url() -> AsyncIterator[str]:
    runner = web.AppRunner(hello.create_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


async def test_load_generator_counts_every_answer_from_a_real_server(hello_url: str) -> None:
    seen: list[int] = []

    def request_for(n: int) -> Request:
        seen.append(n)
        return Request("PUT", f"/applications/{n}", b"{}", {"Content-Type": "application/json"})

    figures = await drive(hello_url, request_for, connections=2, seconds=1.0, warmup=0.1)
    assert figures.requests > 0
    assert figures.errors == 0
    assert figures.connections == 2
    assert 0 < figures.p50_ms <= figures.p99_ms
    # every request got its own sequence number (warm-up included, not counted)
    assert sorted(seen) == list(range(len(seen)))
    assert len(seen) >= figures.requests


async def test_load_generator_counts_refusals_as_errors() -> None:
    async def refuse(_: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        figures = await drive(
            f"http://{host}:{port}", lambda _: Request("GET", "/"), connections=1, seconds=0.3
        )
    finally:
        await runner.cleanup()
    assert figures.requests == 0
    assert figures.errors > 0


def test_a_server_process_is_found_on_its_port_and_measured() -> None:
    with server([sys.executable, "-m", "bench.hello", "--port", "0"]) as s:
        assert s.url.startswith("http://127.0.0.1:")
        rss = s.peak_rss_mb()
        assert rss is not None and rss > 0
        pid = s.process.pid
    assert s.process.poll() is not None, f"process {pid} still running after the block"


@pytest.mark.parametrize("courier", ["jnt", "posind"])
async def test_the_faulty_courier_figure_counts_calls_at_the_simulator(
    tmp_path: Path, courier: str
) -> None:
    # the bench figure's own run, small and on a SQLite file, for each courier with every
    # variation on: what it reports is what the simulator counted, and every booking ended
    url = f"sqlite+aiosqlite:///{tmp_path / 'reconcile.sqlite3'}"
    await asyncio.to_thread(upgrade, url)
    figures = await reconcile.measure(url, deliveries=30, courier=courier)
    assert figures["courier"] == courier and figures["deliveries"] == 30
    assert figures["calls"]["create"] >= 30  # each delivery at least once
    assert figures["calls_per_booking"] == sum(figures["calls"].values()) / 30
    assert figures["duplicate_orders"] == 0
    assert figures["in_booking_without_item"] == 0
    assert figures["booked"] + sum(figures["to_person"].values()) == 30
    faulty = {**_measured(), "reconcile": {courier: figures}}
    [row] = [r for r in rows(faulty) if r.figure.startswith("courier calls per booking")]
    assert courier in row.figure
    assert row.ours == figures["calls_per_booking"] and row.met is (row.ours <= 3)


async def test_the_scorecard_figure_times_a_month_of_a_written_history() -> None:
    # small: the history's shape and the timing, not the 1,000,000-shipment figure; the
    # history is written by PostgreSQL (COPY), so without it this fails, never skips
    pg_url = os.environ.get("COURIER_TEST_PG_URL")
    if not pg_url:
        pytest.fail("the scorecard figure needs PostgreSQL: set COURIER_TEST_PG_URL")
    async with fresh_pg_db(pg_url, "scorecard_test") as url:
        figures = await scorecard.measure(url, 2_400)
    assert figures["shipments"] == 2_400 and figures["couriers"] == 2
    assert 0 < figures["month_shipments"] < 2_400  # one month of the year's history
    assert figures["seconds_median"] > 0
    card = {**_measured(), "scorecard": figures}
    [row] = [r for r in rows(card) if r.figure.startswith("monthly scorecard")]
    assert row.ours == figures["seconds_median"] and row.met is (row.ours <= 2)
