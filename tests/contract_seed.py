"""Contracts for tests: terms in their JSON form (the API's and the CLI file's), created and
moved through the real use cases."""

from __future__ import annotations

from typing import Any

from courier.context import AppContext
from courier.domain.contracts import ContractStatus
from courier.services import contracts


def terms(
    number: str,
    courier: str = "jnt",
    *,
    valid_from: str = "2026-11-01",
    valid_to: str = "2027-10-31",
    regencies: Any = "all",
    offices: tuple[str, ...] = ("BLT",),
    sla_days: int = 2,
    tariff: int = 9_000,
    cap: int = 1_000_000,
    penalty_late: int = 25_000,
    penalty_lost: int = 1_000_000,
) -> dict[str, Any]:
    return {
        "number": number,
        "courier": courier,
        "parties": ["Kantor Imigrasi Blitar", f"PT {courier.upper()}"],
        "offices": list(offices),
        "valid_from": valid_from,
        "valid_to": valid_to,
        "regencies": regencies,
        "zones": [
            {"name": "Jawa Timur", "regencies": "*", "sla_days": sla_days, "tariff_per_kg": tariff}
        ],
        "declared_value_cap": cap,
        "insurance_cover": 650_000 if cap >= 650_000 else cap,
        "penalty_late": penalty_late,
        "penalty_lost": penalty_lost,
    }


async def contract(
    ctx: AppContext, data: dict[str, Any], status: ContractStatus = ContractStatus.ACTIVE
) -> int:
    caller = await contracts.local_caller(ctx, "BLT", actor="test")
    view = await contracts.create(ctx, caller, data)
    if status is not ContractStatus.DRAFT:
        if status is ContractStatus.ENDED:
            await contracts.set_status(ctx, caller, view.id, ContractStatus.ENDED)
            return view.id
        await contracts.set_status(ctx, caller, view.id, ContractStatus.ACTIVE)
        if status is ContractStatus.SUSPENDED:
            await contracts.set_status(ctx, caller, view.id, ContractStatus.SUSPENDED)
    return view.id


async def move(ctx: AppContext, contract_id: int, status: ContractStatus) -> None:
    caller = await contracts.local_caller(ctx, "BLT", actor="test")
    await contracts.set_status(ctx, caller, contract_id, status)
