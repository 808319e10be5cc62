"""`make bench` (`python -m bench`): API, claim and booking throughput on SQLite, peak memory.

Everything runs on loopback against local processes, bounded in count (well under two
minutes on two cores). Figures are printed and saved to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.api import bench_api
from bench.booking import bench_booking
from bench.claims import bench_claims
from bench.common import fresh_db, fresh_pg_db
from courier import logging as courier_logging

RESULTS = Path(__file__).with_name("results") / "latest.json"
# optional: the claim benchmark also runs on PostgreSQL (a database created and dropped here)
PG_URL = os.environ.get("COURIER_BENCH_PG_URL", "")


def _rss_mib(who: int) -> float:
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)  # Linux: KiB


async def main(args: argparse.Namespace) -> dict[str, Any]:
    courier_logging.configure("warning", "json")
    out: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "database": "sqlite (WAL, one file)",
    }
    with tempfile.TemporaryDirectory(prefix="courier-bench-") as tmp:
        started = time.perf_counter()
        api_url = await asyncio.to_thread(fresh_db, Path(tmp) / "api.sqlite3")
        out["api"] = await bench_api(api_url, args.registrations, args.ready)
        out["booking_jnt_simulator"] = await bench_booking(api_url)
        claims_url = await asyncio.to_thread(fresh_db, Path(tmp) / "claims.sqlite3")
        out["claims"] = await bench_claims(claims_url, args.claims)
        if PG_URL:
            async with fresh_pg_db(PG_URL) as pg_url:
                out["claims_postgresql"] = await bench_claims(pg_url, args.claims, claimers=4)
        out["total_seconds"] = round(time.perf_counter() - started, 1)
    out["peak_rss_mib"] = {
        "bench_process": _rss_mib(resource.RUSAGE_SELF),
        "service_process": _rss_mib(resource.RUSAGE_CHILDREN),
    }
    return out


def report(r: dict[str, Any]) -> str:
    api = r["api"]
    lines = [
        f"passport-courier bench — {r['when']} — {r['machine']['cpus']} CPUs, "
        f"Python {r['machine']['python']}, {r['database']}"
    ]
    for name in ("put_application", "mark_ready", "opt_in"):
        f = api[name]
        lines.append(
            f"  API {name:<16} {f['per_second']:>8.1f} req/s   p50 {f['p50_ms']:>7.1f} ms   "
            f"p95 {f['p95_ms']:>7.1f} ms   ({f['count']} requests, {f['errors']} errors, "
            f"concurrency {api['concurrency']})"
        )
    c = r["claims"]
    lines.append(
        f"  claims (SQLite)      {c['per_second']:>8.1f} deliveries/s  "
        f"({c['claimed']} in batches of {c['batch']}, 1 claimer)"
    )
    if "claims_postgresql" in r:
        c = r["claims_postgresql"]
        lines.append(
            f"  claims (PostgreSQL)  {c['per_second']:>8.1f} deliveries/s  "
            f"({c['claimed']} in batches of {c['batch']}, {c['claimers']} claimers, "
            "each exactly once)"
        )
    b = r["booking_jnt_simulator"]
    lines.append(
        f"  booking (J&T sim)    {b['per_second']:>8.1f} bookings/s    "
        f"({b['booked']}/{b['queued']} booked, {b['concurrency_per_courier']} in flight)"
    )
    rss = r["peak_rss_mib"]
    lines.append(
        f"  peak RSS             bench {rss['bench_process']} MiB, "
        f"service {rss['service_process']} MiB"
    )
    lines.append(f"  total {r['total_seconds']} s; saved to {RESULTS}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--registrations", type=int, default=400)
    parser.add_argument(
        "--ready",
        type=int,
        default=120,
        help="passports marked ready and opted in (argon2 costs ~0.1 s each)",
    )
    parser.add_argument("--claims", type=int, default=5000)
    result = asyncio.run(main(parser.parse_args()))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(report(result))
    sys.exit(0)
