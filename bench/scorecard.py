"""The monthly scorecard of every courier at one office, timed over a large shipment history
(issue 12: ≤ 2 s at 1,000,000 shipments on PostgreSQL).

The history is written by the server itself (``generate_series``), not row by row: ``shipments``
shipments over the twelve months of 2026 at one office (the worst case for a month: every
shipment of the table is the office's), two couriers with a contract each, and per shipment its
tracking events (picked up, in transit, delivered; a failed attempt, a return or a loss for some;
an unmapped code for a few), a proof for most delivered ones and a rating for a third of them.
The figure is the median wall time of ``scorecards.scorecard`` for October, after one warm-up.

``python -m bench.scorecard --shipments 200000`` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench.common import admin_url, fresh_pg_db, settings_for
from core.clock import ManualClock
from courier.context import AppContext
from courier.db.engine import make_engine, make_sessions
from courier.services import contracts, scorecards

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
NOW = datetime(2027, 1, 15, 3, 0, tzinfo=UTC)
RUNS = 5

_SEED = [
    """INSERT INTO offices (id, code, name, home_regency_codes, pickup_slots, collect_days,
       courier_code, sender, created_at, courier_preference)
       VALUES (1, 'BLT', 'Kantor Imigrasi Blitar', '["35.72"]', '["10:00"]', 30, 'jnt', '{}',
               now(), '[]')""",
    """INSERT INTO contracts (id, number, courier_code, parties, valid_from, valid_to,
       all_regencies, regency_codes, zones, declared_value_cap, insurance_cover, penalty_late,
       penalty_lost, status, created_by, created_at, updated_at)
       SELECT c, CASE c WHEN 1 THEN 'JNT-2026' ELSE 'POS-2026' END,
              CASE c WHEN 1 THEN 'jnt' ELSE 'posind' END, '[]', '2026-01-01', '2026-12-31', true,
              '[]', '[{"name": "all", "regencies": "*", "sla_days": 2, "tariff_per_kg": 9000}]',
              1000000, 650000, 25000, 1000000, 'active', 'bench', now(), now()
       FROM generate_series(1, 2) c""",
    "INSERT INTO contract_offices (contract_id, office_id) VALUES (1, 1), (2, 1)",
    """INSERT INTO applications (id, office_id, application_no, applicant_name, date_of_birth,
       phone, express, state, created_at, updated_at)
       SELECT g, 1, 'A' || g, 'Pemohon', '1990-01-01', '+6281200000000', false, 'ready', now(),
              now()
       FROM generate_series(1, $1) g""",
    """INSERT INTO deliveries (id, application_id, office_id, address, destination_regency_code,
       consent_at, consent_version, tracking_token_hash, state, priority, claim_count,
       created_at, updated_at)
       SELECT g, g, 1, '{}', '35.73', now(), 'v1', md5(g::text), 'shipping', 0, 0, now(), now()
       FROM generate_series(1, $1) g""",
    # booked across 2026 in id order, as rows are written (between 08:00 and 16:00 WIB);
    # status by g % 20: 16 delivered,
    # 1 in transit, 1 returned, 1 lost, 1 delivered after a failed attempt
    """INSERT INTO shipments (id, delivery_id, attempt_no, courier_code, contract_id, sla_days,
       client_reference, status, claim_count, reconcile_count, create_may_exist, cost,
       booked_at, created_at, updated_at)
       SELECT g, g, 1, CASE g % 2 WHEN 0 THEN 'jnt' ELSE 'posind' END, 1 + g % 2, 2,
              'R' || g,
              CASE g % 20 WHEN 17 THEN 'in_transit' WHEN 18 THEN 'returned'
                          WHEN 19 THEN 'lost' ELSE 'delivered' END,
              1, 0, true, 9000,
              timestamptz '2026-01-01 01:00+00' + ((g - 1) * 365 / $1) * interval '1 day'
                + (g % 8) * interval '1 hour'
       , now(), now()
       FROM generate_series(1, $1) g""",
    """INSERT INTO tracking_events (shipment_id, source, raw_code, raw_text, status, occurred_at,
       received_at, location, applied, raw, other_raws, dedupe_key)
       SELECT s.id, 'poll', e.code, e.code, e.status, s.booked_at + e.after, s.booked_at + e.after,
              '', e.status IS NOT NULL, '{}', '[]', s.id || ':' || e.n
       FROM shipments s
       CROSS JOIN LATERAL (VALUES
           (1, 'picked_up', 'picked_up', interval '3 hours', true),
           (2, 'in_transit', 'in_transit', interval '20 hours', true),
           (3, 'delivery_failed', 'delivery_failed', interval '40 hours', s.id % 20 IN (16, 18)),
           (4, 'delivered', 'delivered', interval '1 hour' * (30 + s.id % 90),
               s.status = 'delivered'),
           (5, 'X99', NULL, interval '21 hours', s.id % 97 = 0)
       ) AS e(n, code, status, after, wanted)
       WHERE e.wanted""",
    """INSERT INTO proofs (shipment_id, receiver_name, relation, relation_kind, occurred_at,
       artefacts, created_at)
       SELECT id, 'Pemohon', 'YBS', 'self', booked_at, '[]', now() FROM shipments
       WHERE status = 'delivered' AND id % 50 <> 0""",
    """INSERT INTO ratings (delivery_id, score, created_at)
       SELECT id, 1 + id % 4, now() FROM shipments WHERE status = 'delivered' AND id % 3 = 0""",
    "ANALYZE",
]


async def seed(url: str, shipments: int) -> float:
    """Write the history; the seconds it took."""
    started = time.perf_counter()
    conn = await asyncpg.connect(admin_url(url))
    try:
        for sql in _SEED:
            if "$1" in sql:
                await conn.execute(sql, shipments)
            else:
                await conn.execute(sql)
    finally:
        await conn.close()
    return time.perf_counter() - started


async def time_month(url: str, period: str = "2026-10") -> dict[str, Any]:
    engine = make_engine(url)
    ctx = AppContext(settings_for(url), engine, make_sessions(engine), ManualClock(NOW))
    try:
        caller = await contracts.local_caller(ctx, "BLT", actor="bench")
        card = await scorecards.scorecard(ctx, caller, period=period)  # warm-up, calendar
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            card = await scorecards.scorecard(ctx, caller, period=period)
            times.append(time.perf_counter() - started)
    finally:
        await engine.dispose()
    return {
        "seconds_median": statistics.median(times),
        "seconds_max": max(times),
        "month_shipments": sum(f.shipments for f in card.couriers),
        "couriers": len(card.couriers),
    }


async def measure(url: str, shipments: int) -> dict[str, Any]:
    seeded = await seed(url, shipments)
    return {"shipments": shipments, "seed_seconds": seeded, **(await time_month(url))}


async def _main(server_url: str, shipments: int) -> dict[str, Any]:
    async with fresh_pg_db(server_url, "scorecard") as url:
        return await measure(url, shipments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shipments", type=int, default=1_000_000)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args()
    print(asyncio.run(_main(args.pg_url, args.shipments)))


if __name__ == "__main__":
    main()
