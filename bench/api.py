"""Intake and push ingestion over real HTTP: one `courier serve` process (the command an operator
runs, logging at ``info`` as in production, to the null device) driven by the same load
generator as the hello-world baseline (bench/load.py).

* intake: ``PUT /api/v1/applications/{no}``, every request a new application (an insert, the
  office's token checked on each);
* push: ``POST /webhooks/jnt``, every request a new signed J&T push batch with one parcel and one
  scan (signature verified, parsed, stored in the inbox, acknowledged).
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w

from adapters.jnt import push as jnt_push
from adapters.jnt.codec import wall_time
from bench.common import PEPPER
from bench.load import LoadFigures, Request, RequestFor, drive
from bench.procs import Server, server
from courier.db.engine import make_engine, make_sessions, transaction
from courier.demo import seed as demo_seed
from courier.services import staff
from simulators import jnt as jnt_simulator

# J&T credentials for the push receiver's signature check; the order endpoints are never called
JNT = jnt_simulator.adapter_settings("http://127.0.0.1:9")


@dataclass(frozen=True)
class ServeFigures:
    intake: LoadFigures
    push: LoadFigures
    peak_rss_mb: float | None


def write_config(folder: Path, database_url: str) -> Path:
    path = folder / "courier.toml"
    config = {
        "database_url": database_url,
        "log": {"level": "info", "format": "json"},
        "security": {"passport_pepper": PEPPER},
        "couriers": {"jnt": JNT},
    }
    path.write_bytes(tomli_w.dumps(config).encode())
    return path


async def intake_token(database_url: str) -> str:
    """The demo office and an intake token for it, as `courier staff` would make them."""
    engine = make_engine(database_url)
    try:
        now = datetime.now(UTC)
        async with transaction(make_sessions(engine)) as session:
            await staff.upsert_office(session, demo_seed.OFFICE, now=now, actor="bench")
            _, token = await staff.create_token(
                session,
                office_code=demo_seed.OFFICE_CODE,
                role="intake",
                name="bench",
                now=now,
                actor="bench",
            )
        return token
    finally:
        await engine.dispose()


def intake_requests(token: str, seed: int = 7) -> RequestFor:
    """A new application per sequence number; names and phones from a fixed pool of people."""
    rng = random.Random(seed)
    people = [
        {
            "applicant_name": demo_seed.random_name(rng),
            "date_of_birth": f"19{rng.randint(60, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
            "phone": demo_seed.random_phone(rng),
        }
        for _ in range(500)
    ]
    bodies = [json.dumps(p).encode() for p in people]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def request_for(n: int) -> Request:
        return Request("PUT", f"/api/v1/applications/2026{n:09d}", bodies[n % len(bodies)], headers)

    return request_for


def push_requests(now: datetime) -> RequestFor:
    """A new signed push per sequence number: one parcel, one pickup scan."""
    scan_time = wall_time(now)

    def request_for(n: int) -> Request:
        item = {
            "billCode": f"JB{n:010d}",
            "txlogisticId": f"KB-BLT-{n:08d}",
            "details": [
                {
                    "scanTime": scan_time,
                    "scanTypeCode": "100",
                    "scanTypeName": "Pick up",
                    "desc": "Paket telah di pick up oleh kurir",
                    "scanNetworkName": "BLITAR",
                    "scanNetworkCity": "KOTA BLITAR",
                    "scanNetworkProvince": "JAWA TIMUR",
                }
            ],
        }
        headers, body = jnt_push.build(
            [item], api_account=JNT["api_account"], private_key=JNT["private_key"], now=now
        )
        return Request("POST", "/webhooks/jnt", body, headers)

    return request_for


def check_push_shape(request_for: RequestFor) -> None:
    """Fail before measuring if our pushes would be refused (a benchmark of 400s is no figure)."""
    r = request_for(0)
    assert r.body is not None
    if not jnt_push.verify(
        r.headers, r.body, api_account=JNT["api_account"], private_key=JNT["private_key"]
    ):
        raise RuntimeError("bench push is not signed the way the receiver checks")
    jnt_push.parse(r.body)  # raises ResponseInvalid naming the path


@contextmanager
def courier_serve(config: Path) -> Iterator[Server]:
    courier = Path(sys.executable).with_name("courier")
    with server([str(courier), "--config", str(config), "serve", "--port", "0"]) as s:
        yield s


async def bench_serve(
    database_url: str, folder: Path, *, connections: int, seconds: float
) -> ServeFigures:
    token = await intake_token(database_url)
    pushes = push_requests(datetime.now(UTC))
    check_push_shape(pushes)
    config = write_config(folder, database_url)
    with courier_serve(config) as serve:
        intake = await drive(
            serve.url, intake_requests(token), connections=connections, seconds=seconds
        )
        pushed = await drive(serve.url, pushes, connections=connections, seconds=seconds)
        rss = serve.peak_rss_mb()
    return ServeFigures(intake, pushed, rss)


def as_dict(f: ServeFigures) -> dict[str, Any]:
    return {"intake": f.intake.as_dict(), "push": f.push.as_dict(), "peak_rss_mb": f.peak_rss_mb}
