"""CSV intake: the office's export of registered and ready applications.

Columns (header row required, any order, ``,`` or ``;`` separated, UTF-8 with or without BOM):
``application_no, applicant_name, date_of_birth, phone`` (required) and ``priority_kind,
express, issued_at, passport_no`` (optional). A row with both ``issued_at`` and ``passport_no`` is
a ready passport; an ``issued_at`` without an offset is WIB.

The same rules as the HTTP API apply (:mod:`courier.services.intake`). Every good row is
imported in its own transaction; a bad row writes nothing and is reported by line number and
column (a cell longer than :data:`MAX_CELL` characters too: the row, not the file). Re-importing
the same file changes nothing and writes no audit entries, so an import the database cut short
(:attr:`ImportReport.stopped_at`) is resumed by running it again.
"""

from __future__ import annotations

import contextlib
import csv
import io
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

import schemas
from core.clock import WIB, Clock, to_wib
from courier.db.engine import SessionFactory, transaction
from courier.db.models import Office
from courier.domain import text
from courier.services import intake
from courier.services.errors import ServiceError
from courier.services.staff import office_by_code

REQUIRED = ("application_no", "applicant_name", "date_of_birth", "phone")
OPTIONAL = ("priority_kind", "express", "issued_at", "passport_no")
COLUMNS = REQUIRED + OPTIONAL
APPLICATION_SCHEMA = "api/application_put"
_TRUE = {"1", "true", "yes", "ya", "y"}
_FALSE = {"", "0", "false", "no", "tidak", "n"}
# Longest cell accepted (Python's csv default limit, 128 KiB): a longer one is that row's error.
# The reader itself is allowed any length, so one huge cell never stops the rest of the file.
MAX_CELL = 128 * 1024


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    field: str  # a column name, or "header" / "file"
    message: str  # never the value: it may be personal data

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class CsvRow:
    line: int  # 1-based line in the file where the row starts
    values: dict[str, str]


@dataclass
class ImportReport:
    """Per data row exactly one of created, updated (an existing application changed, or was
    marked ready), unchanged or bad, so ``created + updated + unchanged + bad == rows``;
    ``readied`` counts the rows that marked a passport ready (created or updated ones).
    ``stopped_at``: the line where the database became unavailable; that row and the rest
    were not imported (``not_reached`` rows), and running the same import again resumes."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    readied: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    stopped_at: int | None = None
    stopped_by: str = ""  # the error's type, never its text (it may quote a row)
    not_reached: int = 0

    @property
    def bad_lines(self) -> list[int]:
        return sorted({e.line for e in self.errors})


@contextlib.contextmanager
def _any_cell_length(at_least: int) -> Iterator[None]:
    """csv's field limit is process-wide: lift it while this file is read, then put it back."""
    before = csv.field_size_limit()
    csv.field_size_limit(max(before, at_least))
    try:
        yield
    finally:
        csv.field_size_limit(before)


def read_rows(text: str) -> tuple[list[CsvRow], list[RowError]]:
    """Rows keyed by (lower-cased) column name; header problems stop the whole file."""
    text = text.removeprefix("\ufeff")
    with _any_cell_length(len(text) + 1):
        return _read_rows(text)


def _read_rows(text: str) -> tuple[list[CsvRow], list[RowError]]:
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as err:
        return [], [RowError(1, "header", f"not readable as CSV ({err})")]
    errors = [RowError(1, "header", f"missing column {c}") for c in REQUIRED if c not in header]
    errors += [RowError(1, "header", f"unknown column {c!r}") for c in header if c not in COLUMNS]
    dupes = {c for c in header if header.count(c) > 1}
    errors += [RowError(1, "header", f"column {c} appears twice") for c in sorted(dupes)]
    if errors:
        return [], errors
    rows: list[CsvRow] = []
    line = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as err:  # e.g. a quote never closed: the rest of the file is unreadable
            errors.append(RowError(line, "row", f"not readable as CSV ({err}); stopped here"))
            break
        if any(c.strip() for c in cells):
            long = [h for h, c in zip(header, cells, strict=False) if len(c) > MAX_CELL]
            if len(cells) != len(header):
                errors.append(
                    RowError(line, "row", f"{len(cells)} cells, the header has {len(header)}")
                )
            elif long:
                errors += [RowError(line, h, f"longer than {MAX_CELL} characters") for h in long]
            else:
                values = {h: c.strip() for h, c in zip(header, cells, strict=True)}
                rows.append(CsvRow(line, values))
        line = reader.line_num + 1
    return rows, errors


def _field(path: str) -> str:
    return path.removeprefix("$.")


def parse_row(
    row: CsvRow, *, now: datetime
) -> tuple[intake.ApplicationData | None, intake.ReadyData | None, list[RowError]]:
    v = {key: unicodedata.normalize("NFC", value) for key, value in row.values.items()}
    refused = [
        RowError(row.line, key, why)
        for key, value in v.items()
        if (why := text.problem(value)) is not None
    ]
    if refused:  # the one text rule of the API (courier.domain.text), by column
        return None, None, refused
    errors = [
        RowError(row.line, _field(e.path), e.message)
        for e in intake.check_application_no(v["application_no"], "application_no")
    ]
    express_text = v.get("express", "").lower()
    raw = {
        "applicant_name": v["applicant_name"],
        "date_of_birth": v["date_of_birth"],
        "phone": v["phone"],
        "priority_kind": v.get("priority_kind", "").lower() or None,
        "express": express_text in _TRUE,
    }
    if express_text not in _TRUE | _FALSE:
        errors.append(RowError(row.line, "express", "use 1/0, true/false or ya/tidak"))
    data, field_errors = intake.parse_application(
        v["application_no"], raw, today=to_wib(now).date()
    )
    # the API's schema too, so a row is held to exactly what PUT /api/v1/applications takes
    shaped = {k: x for k, x in raw.items() if not (k == "priority_kind" and x is None)}
    field_errors += schemas.check(APPLICATION_SCHEMA, shaped)
    named: set[str] = set()
    for e in field_errors:
        if _field(e.path) not in named:
            named.add(_field(e.path))
            errors.append(RowError(row.line, _field(e.path), e.message))
    ready: intake.ReadyData | None = None
    issued, number = v.get("issued_at", ""), v.get("passport_no", "")
    if issued or number:
        if not issued:
            errors.append(RowError(row.line, "issued_at", "required when passport_no is given"))
        elif not number:
            errors.append(RowError(row.line, "passport_no", "required when issued_at is given"))
        else:
            ready, ready_errors = intake.parse_ready(
                {"issued_at": _with_wib(issued), "passport_no": number}, now=now
            )
            errors += [RowError(row.line, _field(e.path), e.message) for e in ready_errors]
    if errors:
        return None, None, errors
    return data, ready, []


def _with_wib(text: str) -> str:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return text  # parse_ready reports it
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=WIB)).isoformat()


async def import_rows(
    sessions: SessionFactory,
    *,
    office_code: str,
    rows: Iterable[CsvRow],
    pepper: str,
    clock: Clock,
    actor: str,
    on_row: Callable[[], None] | None = None,
) -> ImportReport:
    """Import every good row (one transaction each); raises ServiceError for an unknown office.
    When the database becomes unavailable the import stops at that row and says so in the
    report (``stopped_at``) instead of raising: what came before is committed, and running the
    same rows again resumes (imported rows come back unchanged)."""
    async with sessions() as session:
        office = await office_by_code(session, office_code)
    report = ImportReport()
    seen: dict[str, int] = {}
    pending = list(rows)
    for index, row in enumerate(pending):
        report.rows += 1
        now = clock.now()
        data, ready, errors = parse_row(row, now=now)
        first = seen.setdefault(row.values["application_no"], row.line)
        if first != row.line:
            errors.append(RowError(row.line, "application_no", f"also on line {first}"))
        if errors or data is None:
            report.errors.extend(errors)
        else:
            try:
                await _import_one(sessions, office.id, data, ready, pepper, now, actor, report)
            except ServiceError as err:
                report.errors.append(RowError(row.line, "row", err.message))
            except (SQLAlchemyError, OSError) as err:
                # the database is gone (or refuses us): stop here, say where, lose nothing
                report.rows -= 1
                report.stopped_at = row.line
                report.stopped_by = type(err).__name__
                report.not_reached = len(pending) - index
                return report
        if on_row is not None:
            on_row()
    return report


async def _import_one(
    sessions: SessionFactory,
    office_id: int,
    data: intake.ApplicationData,
    ready: intake.ReadyData | None,
    pepper: str,
    now: datetime,
    actor: str,
    report: ImportReport,
) -> None:
    passport_hash = None
    if ready is not None:
        passport_hash = await intake.passport_hash_for(
            sessions,
            office_id=office_id,
            application_no=data.application_no,
            passport_no=ready.passport_no,
            pepper=pepper,
        )
    async with transaction(sessions) as session:
        office = await session.get_one(Office, office_id)
        _, outcome = await intake.upsert_application(
            session, office=office, data=data, now=now, actor=actor
        )
        ready_outcome = "unchanged"
        if ready is not None and passport_hash is not None:
            _, ready_outcome = await intake.mark_ready(
                session,
                office=office,
                application_no=data.application_no,
                ready=ready,
                passport_hash=passport_hash,
                now=now,
                actor=actor,
            )
    if ready_outcome != "unchanged":
        report.readied += 1
    if outcome == "created":
        report.created += 1
    elif outcome == "updated" or ready_outcome != "unchanged":
        report.updated += 1
    else:
        report.unchanged += 1
