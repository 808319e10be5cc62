"""`courier import FILE.csv --office CODE`: the office's CSV of registered and ready applications.

Shows a progress bar (on standard error), imports every good row, and lists every bad row by line
number and column on standard output. Exit status: 0 all rows imported, 1 some rows were bad,
2 the file could not be used at all (unreadable, bad header, unknown office).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from courier.cli.base import settings_from
from courier.config import Settings
from courier.db.engine import make_engine, make_sessions
from courier.services.csv_import import (
    COLUMNS,
    REQUIRED,
    CsvRow,
    ImportReport,
    import_rows,
    read_rows,
)
from courier.services.errors import ServiceError

ACTOR = "cli:import"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "import",
        help="import a CSV of applications and ready passports",
        description="Register applications and mark passports ready from a CSV file (header row; "
        f"columns {', '.join(COLUMNS)}; the first {len(REQUIRED)} are required; issued_at + "
        "passport_no mark a passport ready, issued_at without offset is WIB). Idempotent: "
        "importing the same file again changes nothing. Every bad row is reported by line and "
        "column and nothing of it is written.",
    )
    p.add_argument("file", metavar="FILE.csv", type=Path, help="the CSV file")
    p.add_argument("--office", required=True, help="office code the applications belong to")
    p.set_defaults(func=_import)


async def _run(settings: Settings, office: str, rows: list[CsvRow]) -> ImportReport:
    engine = make_engine(settings.database_url)
    console = Console(stderr=True)
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("rows", total=len(rows))
            return await import_rows(
                make_sessions(engine),
                office_code=office,
                rows=rows,
                pepper=settings.passport_pepper,
                clock=settings.clock(),
                actor=ACTOR,
                on_row=lambda: progress.advance(task),
            )
    finally:
        await engine.dispose()


def _import(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        text = args.file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        print(f"error: cannot read {args.file}: {type(err).__name__}", file=sys.stderr)
        return 2
    rows, errors = read_rows(text)
    if errors and not rows and any(e.field == "header" for e in errors):
        for e in errors:
            print(str(e))
        return 2
    try:
        report = asyncio.run(_run(settings, args.office, rows))
    except ServiceError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2
    # rows the CSV reader could not split (wrong cell count) never reached the import
    unsplit = len({e.line for e in errors})
    report.rows += unsplit
    report.errors = sorted(errors + report.errors, key=lambda e: e.line)
    for e in report.errors:
        print(str(e))
    print(
        f"{report.rows} rows: {report.created} created, {report.updated} updated, "
        f"{report.readied} marked ready, {report.unchanged} unchanged, "
        f"{len(report.bad_lines)} bad"
    )
    return 1 if report.errors else 0
