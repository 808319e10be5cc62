"""The contract manager's API (role ``contract_manager`` or ``admin``), scoped to the token's
office: a contract that does not serve it answers 404, exactly like one that does not exist.

``GET  /api/v1/contracts``               the contracts serving the office
``POST /api/v1/contracts``               a new contract (a draft)
``GET  /api/v1/contracts/{id}``          one contract
``PUT  /api/v1/contracts/{id}``          a draft's new terms
``POST /api/v1/contracts/{id}/status``   activate, suspend or end
``GET  /api/v1/scorecards``              scorecards for a period (JSON)
``GET  /api/v1/scorecards.csv``          the same as CSV
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from typing import Any

from aiohttp import web

import schemas
from courier.domain import contracts as terms_rules
from courier.domain.contracts import ContractStatus
from courier.domain.text import csv_cell
from courier.services import contracts, scorecards
from courier.services.errors import invalid
from courier.web.auth import require
from courier.web.body import read_json
from courier.web.dispatch import iso, path_id
from courier.web.errors import json_ok
from courier.web.keys import context_of
from schemas import FieldError

routes = web.RouteTableDef()

ROLE = "contract_manager"
SCORECARD_PARAMETERS = "api/scorecard_parameters"


def contract_json(found: contracts.ContractView) -> dict[str, Any]:
    return {
        "id": found.id,
        "number": found.number,
        "courier": found.courier_code,
        "parties": list(found.parties),
        "offices": list(found.office_codes),
        "valid_from": found.valid_from.isoformat(),
        "valid_to": found.valid_to.isoformat(),
        "regencies": "all" if found.all_regencies else list(found.regency_codes),
        "zones": terms_rules.zones_json(found.zones),
        "declared_value_cap": found.declared_value_cap,
        "insurance_cover": found.insurance_cover,
        "penalty_late": found.penalty_late,
        "penalty_lost": found.penalty_lost,
        "status": found.status,
        "status_reason": found.status_reason,
        "in_force": found.in_force,
        "created_at": iso(found.created_at),
        "updated_at": iso(found.updated_at),
    }


def _figures_json(found: scorecards.Figures) -> dict[str, Any]:
    data = asdict(found)
    data["courier"] = data.pop("courier_code")
    return data


def scorecard_json(card: scorecards.Scorecard) -> dict[str, Any]:
    return {
        "period": card.period,
        "office": card.office_code,
        "first_day": card.first.isoformat(),
        "last_day": card.last.isoformat(),
        "as_of": iso(card.as_of),
        "couriers": [_figures_json(f) for f in card.couriers],
        "contracts": [_figures_json(f) for f in card.contracts],
        "months": [_figures_json(f) for f in card.months],
    }


CSV_COLUMNS = ("level", *scorecards.FIGURE_NAMES)


def scorecard_csv(card: scorecards.Scorecard) -> str:
    """One line per courier, per contract and per courier and month (``level`` says which);
    every cell through csv_cell, so a spreadsheet never runs one as a formula."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for level, rows in (("courier", card.couriers), ("contract", card.contracts)):
        for row in rows:
            writer.writerow([level, *(csv_cell(_cell(getattr(row, n))) for n in CSV_COLUMNS[1:])])
    for row in card.months:
        writer.writerow(["month", *(csv_cell(_cell(getattr(row, n))) for n in CSV_COLUMNS[1:])])
    return out.getvalue()


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _only(request: web.Request, allowed: tuple[str, ...]) -> dict[str, str]:
    unknown = sorted(name for name in request.query if name not in allowed)
    if unknown:
        raise invalid([FieldError(f"url.{n}", "unknown parameter") for n in unknown])
    values = {name: request.query[name] for name in allowed if name in request.query}
    errors = [
        FieldError("url." + e.path.removeprefix("$."), e.message)
        for e in schemas.check(SCORECARD_PARAMETERS, values)
    ]
    if errors:
        raise invalid(errors, "invalid URL parameters")
    return values


@routes.get("/api/v1/contracts")
async def get_contracts(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    _only(request, ())
    found = await contracts.list_contracts(context_of(request), caller)
    return json_ok({"items": [contract_json(c) for c in found]})


@routes.post("/api/v1/contracts")
async def post_contract(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    _only(request, ())
    body = await read_json(request, "api/contract_terms")
    found = await contracts.create(context_of(request), caller, body)
    return json_ok(contract_json(found), status=201)


@routes.get("/api/v1/contracts/{id}")
async def get_contract(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    found = await contracts.contract(context_of(request), caller, path_id(request))
    return json_ok(contract_json(found))


@routes.put("/api/v1/contracts/{id}")
async def put_contract(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    contract_id = path_id(request)
    body = await read_json(request, "api/contract_terms")
    found = await contracts.update_terms(context_of(request), caller, contract_id, body)
    return json_ok(contract_json(found))


@routes.post("/api/v1/contracts/{id}/status")
async def post_contract_status(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    contract_id = path_id(request)
    body = await read_json(request, "api/contract_status")
    reason = body.get("reason")
    found = await contracts.set_status(
        context_of(request),
        caller,
        contract_id,
        ContractStatus(str(body["status"])),
        str(reason) if reason else None,
    )
    return json_ok(contract_json(found))


async def _scorecard(request: web.Request) -> scorecards.Scorecard:
    caller = await require(request, ROLE)
    query = _only(request, ("period", "office"))
    if "period" not in query:
        raise invalid([FieldError("url.period", "is required")])
    return await scorecards.scorecard(
        context_of(request), caller, period=query["period"], office_code=query.get("office")
    )


@routes.get("/api/v1/scorecards")
async def get_scorecards(request: web.Request) -> web.Response:
    return json_ok(scorecard_json(await _scorecard(request)))


@routes.get("/api/v1/scorecards.csv")
async def get_scorecards_csv(request: web.Request) -> web.Response:
    card = await _scorecard(request)
    name = f"scorecard-{card.office_code}-{card.period.replace(':', '-')}.csv"
    return web.Response(
        text=scorecard_csv(card),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
