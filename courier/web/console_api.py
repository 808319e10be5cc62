"""The dispatch console's JSON API (role ``dispatcher`` or ``admin``), scoped to the caller's
office; the console's pages (courier/web/console.py) show the same use cases as HTML.

``GET  /api/v1/board``                    the board: counts, pickup slots, deadlines, items
``GET  /api/v1/deliveries``               find deliveries: filters, search, keyset pages, CSV
``POST /api/v1/exceptions/{id}/resolve``  close an exception item with a note
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterable, Mapping
from datetime import date
from typing import Any

from aiohttp import web

import schemas
from courier.domain.text import csv_cell
from courier.services import board, exception_queue, find
from courier.services.errors import invalid
from courier.web.auth import require
from courier.web.body import read_json
from courier.web.dispatch import destination_json, iso
from courier.web.errors import json_ok
from courier.web.keys import context_of
from schemas import FieldError

routes = web.RouteTableDef()

ROLE = "dispatcher"
PARAMETERS = "api/console_parameters"
FIND_PARAMS = (
    *("state", "courier", "regency", "from", "to", "kind", "q"),
    *("limit", "cursor", "format"),
)
DEFAULT_LIMIT = 50
_INTEGER = re.compile(r"-?[0-9]{1,40}")
_INTEGERS = frozenset({"id", "limit"})
CSV_COLUMNS = (
    "delivery_id",
    "application_no",
    "applicant_name",
    "state",
    "regency_code",
    "regency_name",
    "courier",
    "waybill",
    "collect_by",
    "created_at",
    "open_items",
)


def parse_params(raw: Mapping[str, str], allowed: tuple[str, ...] = ()) -> dict[str, Any]:
    """``raw`` (name → text) as typed values valid against ``schemas/api/console_parameters``;
    else an invalid-fields :class:`ServiceError` naming ``url.<name>`` for each bad one (an
    unknown parameter too: a typo must not silently widen a search)."""
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    for name, text in raw.items():
        if name not in allowed and name != "id":
            errors.append(FieldError(f"url.{name}" if name else "url", "unknown parameter"))
        elif name in _INTEGERS:
            if not _INTEGER.fullmatch(text):
                errors.append(FieldError(f"url.{name}", "must be an integer"))
            else:
                values[name] = int(text)
        else:
            values[name] = text
    for err in schemas.check(PARAMETERS, values):
        errors.append(FieldError("url." + err.path.removeprefix("$."), err.message))
    for name in ("from", "to"):
        if name in values and not any(e.path == f"url.{name}" for e in errors):
            try:
                values[name] = date.fromisoformat(values[name])
            except ValueError:
                errors.append(FieldError(f"url.{name}", "not a day of the calendar"))
    if errors:
        raise invalid(errors, "invalid URL parameters")
    return values


def query_params(request: web.Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    return parse_params({name: request.query[name] for name in request.query}, allowed)


def filters_of(params: Mapping[str, Any]) -> find.Filters:
    return find.Filters(
        state=params.get("state"),
        courier=params.get("courier"),
        regency=params.get("regency"),
        created_from=params.get("from"),
        created_to=params.get("to"),
        kind=params.get("kind"),
        q=params.get("q"),
    )


def board_json(found: board.Board) -> dict[str, Any]:
    return {
        "office": {"code": found.office_code, "name": found.office_name},
        "at": iso(found.at),
        "by_state": [
            {"state": s.state, "text": {"id": s.text.id, "en": s.text.en}, "count": s.count}
            for s in found.by_state
        ],
        "by_courier": [
            {"courier": c.courier, "status": c.status, "count": c.count} for c in found.by_courier
        ],
        "pickup_slots": [
            {"at": s.at.isoformat(), "passed": s.passed, "waiting": s.waiting} for s in found.slots
        ],
        "at_risk": [
            {
                "delivery_id": r.delivery_id,
                "application_no": r.application_no,
                "state": r.state,
                "collect_by": iso(r.collect_by),
                "overdue": r.overdue,
            }
            for r in found.at_risk
        ],
        "exceptions": [
            {
                "kind": k.kind,
                "count": k.count,
                "oldest": iso(k.oldest),
                "next_step": {"id": k.next_step.id, "en": k.next_step.en},
            }
            for k in found.exceptions
        ],
    }


def row_json(row: find.Row) -> dict[str, Any]:
    return {
        "id": row.delivery_id,
        "application_no": row.application_no,
        "applicant_name": row.applicant_name,
        "state": row.state,
        "destination": destination_json(row.destination),
        "courier": row.courier,
        "waybill": row.waybill,
        "collect_by": iso(row.collect_by),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "open_items": list(row.open_kinds),
    }


def csv_line(row: find.Row) -> str:
    """One CSV line, every cell through :func:`csv_cell` (no formula reaches a spreadsheet)."""
    out = io.StringIO()
    cells = (
        row.delivery_id,
        row.application_no,
        row.applicant_name,
        row.state,
        row.destination.regency_code,
        row.destination.regency_name,
        row.courier,
        row.waybill,
        iso(row.collect_by),
        iso(row.created_at),
        " ".join(row.open_kinds),
    )
    csv.writer(out, lineterminator="\r\n").writerow([csv_cell(c) for c in cells])
    return out.getvalue()


async def csv_response(
    request: web.Request, rows: AsyncIterable[find.Row], filename: str
) -> web.StreamResponse:
    """Stream ``rows`` (an async iterator of :class:`find.Row`) as a CSV download."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        }
    )
    # the first page is read before the answer starts: a database that is away is still a 503
    iterator = rows.__aiter__()
    first = await anext(iterator, None)
    await response.prepare(request)
    header = io.StringIO()
    csv.writer(header, lineterminator="\r\n").writerow(CSV_COLUMNS)
    await response.write(("\ufeff" + header.getvalue()).encode("utf-8"))  # BOM: Excel reads UTF-8
    if first is not None:
        await response.write(csv_line(first).encode("utf-8"))
    async for row in iterator:
        await response.write(csv_line(row).encode("utf-8"))
    await response.write_eof()
    return response


# --------------------------------------------------------------------------------------------
# Routes


@routes.get("/api/v1/board")
async def get_board(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    query_params(request, ())
    return json_ok(board_json(await board.board(context_of(request), caller)))


@routes.get("/api/v1/deliveries")
async def get_deliveries(request: web.Request) -> web.StreamResponse:
    caller = await require(request, ROLE)
    params = query_params(request, FIND_PARAMS)
    ctx = context_of(request)
    if params.get("format") == "csv":
        if "cursor" in params or "limit" in params:
            raise invalid([FieldError("url.format", "a CSV export takes no cursor or limit")])
        return await csv_response(
            request, find.export(ctx, caller, filters_of(params)), "deliveries.csv"
        )
    page = await find.find(
        ctx,
        caller,
        filters_of(params),
        limit=params.get("limit", DEFAULT_LIMIT),
        cursor=params.get("cursor"),
    )
    return json_ok({"items": [row_json(r) for r in page.rows], "next_cursor": page.next_cursor})


@routes.post("/api/v1/exceptions/{id}/resolve")
async def post_resolve(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    item_id: int = parse_params({"id": request.match_info["id"]})["id"]
    query_params(request, ())
    body = await read_json(request, "api/exception_resolve", free_text=("$.note",))
    done = await exception_queue.resolve(
        context_of(request), caller, item_id, note=str(body["note"]).strip()
    )
    return json_ok(
        {
            "id": done.id,
            "kind": done.kind,
            "delivery_id": done.delivery_id,
            "resolved_at": iso(done.resolved_at),
            "resolved_by": done.resolved_by,
            "resolution": done.resolution,
        }
    )
