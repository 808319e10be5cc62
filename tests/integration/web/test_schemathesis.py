"""schemathesis against the live app on loopback, with every check schemathesis has: no server
errors, no answer the OpenAPI document does not describe, schema-invalid data refused and
schema-valid data accepted (issue 10: the schemas refuse what the server refuses).

The app runs in its own thread and event loop (schemathesis calls it synchronously over real
HTTP), over a migrated SQLite file with the Blitar office, an intake token, a few registered
applications and a J&T adapter for its pushes. Examples per operation are bounded and the run
is derandomized (the same cases every run), so the file stays well under two minutes.

What a schema cannot say, and so what "schema-valid is accepted" leaves out:

* the clock: a date of birth is in the past, a passport's issue time within the last 400 days.
  Positive cases get such values moved into the window (:func:`_dates_in_the_window`);
* stored data: an opt-in proves an identity on file and names a village of its district
  (``requestDelivery`` answers 422 for those, as documented).
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from adapters import registry
from core.clock import ManualClock
from courier import config
from courier.context import AppContext
from courier.db.engine import make_engine, make_sessions, transaction
from courier.services import intake, staff
from courier.web import openapi
from courier.web.app import create_app
from simulators import jnt as jnt_simulator

START = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # Monday 09:00 WIB
OFFICE = {
    "code": "BLT",
    "name": "Kantor Imigrasi Kelas II Non TPI Blitar",
    "home_regency_codes": ["35.05", "35.72"],
    "pickup_slots": ["10:00", "15:00"],
}
MAX_EXAMPLES = 60
ISSUED_IN_WINDOW = "2026-10-20"  # a day well inside the last 400 days before START, any offset
# What a well-formed opt-in may still be refused for: the identity and the regions on file.
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-operation-id": "requestDelivery",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "404", "409", "422", "429"]
                    }
                },
            }
        ]
    }
)


@dataclass
class LiveApp:
    base_url: str
    token: str


async def _seed(ctx: AppContext) -> str:
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        office, _ = await staff.upsert_office(session, OFFICE, now=now, actor="test")
        _, token = await staff.create_token(
            session, office_code="BLT", role="intake", name="schemathesis", now=now, actor="test"
        )
        for no in ("2026110200001", "2026110200002"):
            data, errors = intake.parse_application(
                no,
                {
                    "applicant_name": "Budi Santoso",
                    "date_of_birth": "1980-01-02",
                    "phone": "081234567890",
                },
                today=now.date(),
            )
            assert data is not None, errors
            await intake.upsert_application(
                session, office=office, data=data, now=now, actor="test"
            )
    return token


class _Server:
    """The app in a thread with its own loop; start() returns once it listens."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.live: LiveApp | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as err:  # reported to the test thread
            self.error = err
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._stop())
        self.loop.close()

    async def _start(self) -> None:
        self.engine = make_engine(self.db_url)
        settings_ = config.from_mapping(
            {"database_url": self.db_url, "security": {"passport_pepper": "x" * 24}}
        )
        clock = ManualClock(START)
        # a J&T adapter (pointing nowhere: pushes only need its keys) so /webhooks/jnt verifies
        self.jnt = registry.create(
            "jnt", jnt_simulator.adapter_settings("http://127.0.0.1:9"), clock=clock
        )
        ctx = AppContext(
            settings_, self.engine, make_sessions(self.engine), clock, couriers={"jnt": self.jnt}
        )
        token = await _seed(ctx)
        app = create_app(ctx)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.live = LiveApp(f"http://127.0.0.1:{port}", token)

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.jnt.close()
        await self.engine.dispose()

    def start(self) -> LiveApp:
        self.thread.start()
        self.ready.wait(30)
        if self.error is not None:
            raise self.error
        assert self.live is not None
        return self.live

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


@pytest.fixture(scope="module")
def live_app(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    path = tmp_path_factory.mktemp("schemathesis") / "courier.sqlite3"
    shutil.copyfile(sqlite_template, path)
    server = _Server(f"sqlite+aiosqlite:///{path}")
    live = server.start()
    yield live
    server.stop()


# Built from the same function /openapi.json serves (test_openapi.py checks they are equal);
# loaded eagerly because schemathesis' lazy fixture loader does not support this pytest.
schema = schemathesis.openapi.from_dict(openapi.build_document(), config=CONFIG)


@schema.hook("map_case")
def _dates_in_the_window(_context: Any, case: schemathesis.Case) -> schemathesis.Case:
    """A positive case's dates, moved into the window the clock allows (the schema cannot say
    "not in the future"); a negative case is left as generated."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return case
    born = case.body.get("date_of_birth")
    if isinstance(born, str) and born > START.date().isoformat():
        case.body["date_of_birth"] = "19" + born[2:]
    issued = case.body.get("issued_at")
    if isinstance(issued, str) and len(issued) > 10:
        case.body["issued_at"] = ISSUED_IN_WINDOW + issued[10:]
    return case


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_as_documented(case: schemathesis.Case, live_app: LiveApp) -> None:
    case.call_and_validate(
        base_url=live_app.base_url,
        headers={"Authorization": f"Bearer {live_app.token}"},
    )
