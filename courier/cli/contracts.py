"""`courier contract` (add, activate, suspend, end, list) and `courier report` (scorecards as a
terminal table). The terms file is TOML or JSON in the API's form (schemas/api/contract_terms.json);
whoever runs these holds the database's credentials and acts as the office's administrator
(``cli`` in the audit log).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from rich.console import Console
from rich.table import Table

import schemas
from courier.cli.base import require_schema, settings_from
from courier.config import Settings
from courier.context import AppContext
from courier.db.engine import make_engine, make_sessions
from courier.domain.contracts import ContractStatus
from courier.services import contracts, scorecards
from courier.services.errors import ServiceError

T = TypeVar("T")
Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(sub: Sub) -> None:
    contract = sub.add_parser(
        "contract",
        help="courier contracts: add, activate, suspend, end, list",
        description="Courier contracts of an office; every change is audited.",
    )
    actions = contract.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="register a contract (a draft) from a TOML/JSON file")
    add.add_argument("file", type=Path, help="the terms, as schemas/api/contract_terms.json")
    add.add_argument("--office", required=True, help="the office acting, e.g. BLT")
    add.set_defaults(func=_add)
    for name in ("activate", "suspend", "end"):
        p = actions.add_parser(name, help=f"{name} a contract")
        p.add_argument("number", help="the contract's number")
        p.add_argument("--office", required=True, help="the office acting, e.g. BLT")
        p.add_argument("--reason", help="why (kept in the audit log)")
        p.set_defaults(func=_move, target=name)
    lst = actions.add_parser("list", help="list the office's contracts")
    lst.add_argument("--office", required=True)
    lst.set_defaults(func=_list)

    report = sub.add_parser(
        "report",
        help="courier scorecards for a period as a table",
        description="Scorecards per courier and per contract, and month by month.",
    )
    report.add_argument("--period", required=True, help="2026-10, 2026Q4 or contract:<number>")
    report.add_argument("--office", required=True, help="the office, e.g. BLT")
    report.set_defaults(func=_report)


_TARGETS = {
    "activate": ContractStatus.ACTIVE,
    "suspend": ContractStatus.SUSPENDED,
    "end": ContractStatus.ENDED,
}


def _run(settings: Settings, work: Callable[[AppContext], Awaitable[T]]) -> T:
    require_schema(settings)

    async def main() -> T:
        engine = make_engine(settings.database_url)
        ctx = AppContext(
            settings=settings, engine=engine, sessions=make_sessions(engine), clock=settings.clock()
        )
        try:
            return await work(ctx)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _fail(err: ServiceError) -> int:
    print(f"error: {err.message}", file=sys.stderr)
    for detail in err.details:
        print(f"  {detail.path}: {detail.message}", file=sys.stderr)
    return 1


def read_terms(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data: dict[str, Any] = (
        tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    )
    for key in ("valid_from", "valid_to"):  # TOML reads a bare date as a date
        if key in data:
            data[key] = str(data[key])
    return data


def _add(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        data = read_terms(args.file)
    except (OSError, ValueError) as err:
        print(f"error: cannot read {args.file}: {err}", file=sys.stderr)
        return 2
    errors = schemas.check("api/contract_terms", data)
    if errors:
        for e in errors:
            print(f"  {e.path}: {e.message}", file=sys.stderr)
        return 1

    async def work(ctx: AppContext) -> contracts.ContractView:
        caller = await contracts.local_caller(ctx, args.office)
        return await contracts.create(ctx, caller, data)

    try:
        found = _run(settings, work)
    except ServiceError as err:
        return _fail(err)
    print(f"contract {found.number} registered as a draft (id {found.id})")
    return 0


def _move(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    target = _TARGETS[args.target]

    async def work(ctx: AppContext) -> contracts.ContractView:
        caller = await contracts.local_caller(ctx, args.office)
        found = await contracts.contract_by_number(ctx, caller, args.number)
        return await contracts.set_status(ctx, caller, found.id, target, args.reason)

    try:
        found = _run(settings, work)
    except ServiceError as err:
        return _fail(err)
    print(f"contract {found.number}: {found.status}")
    return 0


def _list(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    async def work(ctx: AppContext) -> list[contracts.ContractView]:
        return await contracts.list_contracts(ctx, await contracts.local_caller(ctx, args.office))

    try:
        found = _run(settings, work)
    except ServiceError as err:
        return _fail(err)
    table = Table(title=f"Kontrak kurir / courier contracts — {args.office}")
    for column in ("number", "courier", "status", "in force", "from", "to", "regencies"):
        table.add_column(column)
    for c in found:
        regencies = "all" if c.all_regencies else ", ".join(c.regency_codes)
        table.add_row(
            c.number,
            c.courier_code,
            c.status,
            "yes" if c.in_force else "no",
            c.valid_from.isoformat(),
            c.valid_to.isoformat(),
            regencies,
        )
    Console().print(table)
    return 0


def _num(value: Any, percent: bool = False) -> str:
    if value is None:
        return "—"
    if percent:
        return f"{100 * float(value):.1f}%"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


ROWS: tuple[tuple[str, str, bool], ...] = (
    ("shipments", "shipments", False),
    ("delivered", "delivered", False),
    ("on time (SLA)", "on_time_rate", True),
    ("late", "late", False),
    ("pickup latency, median h", "pickup_latency_median_hours", False),
    ("transit median h", "transit_median_hours", False),
    ("transit p90 h", "transit_p90_hours", False),
    ("first-attempt success", "first_attempt_success_rate", True),
    ("failed attempts / delivery", "failed_attempts_per_delivery", False),
    ("returns", "returns", False),
    ("losses", "losses", False),
    ("unmapped codes", "unmapped_codes", False),
    ("missing proof of delivery", "missing_pod", False),
    ("cost per delivered (Rp)", "cost_per_delivered", False),
    ("penalty exposure (Rp)", "penalty_exposure", False),
    ("satisfaction (1-4)", "satisfaction_mean", False),
    ("ratings", "satisfaction_count", False),
)


def scorecard_table(title: str, columns: list[tuple[str, scorecards.Figures]]) -> Table:
    """Figures as rows, couriers or contracts side by side as columns."""
    table = Table(title=title)
    table.add_column("")
    for name, _ in columns:
        table.add_column(name, justify="right")
    for label, field, percent in ROWS:
        table.add_row(label, *(_num(getattr(f, field), percent) for _, f in columns))
    return table


def _report(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    async def work(ctx: AppContext) -> scorecards.Scorecard:
        caller = await contracts.local_caller(ctx, args.office)
        return await scorecards.scorecard(ctx, caller, period=args.period, office_code=args.office)

    try:
        card = _run(settings, work)
    except ServiceError as err:
        return _fail(err)
    console = Console()
    head = f"{card.office_code} {card.period} ({card.first.isoformat()} – {card.last.isoformat()})"
    console.print(
        scorecard_table(f"Kurir / couriers — {head}", [(f.courier_code, f) for f in card.couriers])
    )
    if card.contracts:
        console.print(
            scorecard_table(
                f"Kontrak / contracts — {head}",
                [(f.contract_number or "?", f) for f in card.contracts],
            )
        )
    if len({f.month for f in card.months}) > 1:
        console.print(
            scorecard_table(
                f"Per bulan / month by month — {head}",
                [(f"{f.courier_code} {f.month}", f) for f in card.months],
            )
        )
    if not card.couriers:
        console.print("no shipments booked in this period / tidak ada pengiriman pada periode ini")
    return 0
