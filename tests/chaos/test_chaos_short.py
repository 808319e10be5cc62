"""`make chaos`, short (issue 14): 120 deliveries and 10 SIGKILLs in all, half on each database
(sized to keep `make test` under 10 minutes on 2 cores; `make chaos` runs 1,000): on each, 60
deliveries through real `courier work` and `courier serve` processes against both faulty
simulators with every variation on, five SIGKILLs of working workers (each restarted),
and on PostgreSQL a database outage through the run's own proxy. Every invariant `make chaos`
checks must hold.

SQLite runs ONE worker process: SQLite has a single writer, and one worker is what the
service supports on it (`courier work --help`); PostgreSQL runs two. Only parcels that are
delivered are drawn (returns and losses take ~9 days of service time; the full `make chaos`
draws them). The service clock runs 6,000× (the full run: 3,000×). How long it takes depends on
the machine; what it checks does not.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chaos.run import Options, run

pytestmark = pytest.mark.slow

KILLS = 5  # per database: ten in all
DELIVERIES = 60  # per database
PG_URL = os.environ.get("COURIER_BENCH_PG_URL") or os.environ.get("COURIER_TEST_PG_URL")


@pytest.mark.timeout(900)  # a hang guard only: a busy machine is slow, not wrong
@pytest.mark.parametrize(
    "backend",
    [
        "sqlite",
        pytest.param("postgresql", marks=[pytest.mark.pg]),
    ],
)
async def test_short_chaos_run_keeps_every_invariant(backend: str, tmp_path: Path) -> None:
    if backend == "postgresql" and not PG_URL:  # a failure, never a skip (as every PG test)
        pytest.fail("PostgreSQL requested without COURIER_TEST_PG_URL")
    lines: list[str] = []
    opts = Options(
        backend=backend,
        deliveries=DELIVERIES,
        workers=2,
        kills=KILLS,
        kill_every=2.0,
        outage_seconds=3.0,
        speed=6000.0,
        fast_outcomes=True,
        pg_url=PG_URL or "",
        timeout=600.0,
        keep=tmp_path,
        progress=lines.append,
    )
    outcome, tally = await run(opts)
    report = "\n".join([*lines, *(f"{k}: {v}" for k, v in outcome.examples.items())])
    assert outcome.figures["deliveries"] == DELIVERIES
    assert tally.kills >= KILLS, report
    if backend == "postgresql":
        assert tally.outage_seconds >= 3.0, report
        assert tally.outage_connections_cut > 0, "nothing went through the proxy"
    assert tally.pushes > 0, report
    assert outcome.violations == dict.fromkeys(outcome.violations, 0), report
