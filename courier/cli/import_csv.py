"""`courier import FILE.csv --office CODE`: the office's CSV of registered and ready applications.

Shows a progress bar on standard error when it is a terminal (log lines are then printed above
the bar, never through it; without a terminal there is no bar, only log lines), imports every good
row, and lists every bad row by line number and column on standard output. Exit status: 0 all
rows imported, 1 some rows were bad, 2 the file could not be used at all (unreadable, bad header,
unknown office, database not migrated), 3 the database became unavailable: the rows before the
line named were imported, and running the same command again resumes (imported rows come back
unchanged, none is duplicated).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.exc import SQLAlchemyError

from courier import logging
from courier.cli.base import require_schema, settings_from
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
        "column and nothing of it is written. The format, with a sample file, is in the README "
        "(examples/deliveries.csv). Exit 0 all imported, 1 some rows bad, 2 file or office "
        "unusable, 3 the database became unavailable (re-run to resume).",
    )
    p.add_argument("file", metavar="FILE.csv", type=Path, help="the CSV file")
    p.add_argument("--office", required=True, help="office code the applications belong to")
    p.set_defaults(func=_import)


async def _run(
    settings: Settings, office: str, rows: list[CsvRow], console: Console | None = None
) -> ImportReport:
    engine = make_engine(settings.database_url)
    console = console or Console(stderr=True)
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    # no terminal, no bar: a bar redrawn into a file or pipe only garbles the log lines
    bar = Progress(*columns, console=console, transient=True, disable=not console.is_terminal)
    try:
        with bar as progress:
            if console.is_terminal:
                # while the bar is live, sys.stderr is rich's proxy: log lines written through
                # it are printed above the bar instead of through it
                logging.configure(settings.log_level, settings.log_format, stream=sys.stderr)
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
        if console.is_terminal:
            logging.configure(settings.log_level, settings.log_format, stream=sys.stderr)
        await engine.dispose()


def _import(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    require_schema(settings)
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
    except (SQLAlchemyError, OSError) as err:  # gone before the first row: nothing imported
        print(
            f"error: the database is unavailable ({type(err).__name__}): nothing imported; "
            "run the same command again when it is back",
            file=sys.stderr,
        )
        return 3
    # rows the CSV reader could not use (wrong cell count, a cell too long) never reached the
    # import: each is one bad row
    report.rows += len({e.line for e in errors if e.field != "header"})
    report.errors = sorted(errors + report.errors, key=lambda e: e.line)
    for e in report.errors:
        print(str(e))
    print(summary(report))
    if report.stopped_at is not None:
        print(
            f"error: the database became unavailable ({report.stopped_by}) at line "
            f"{report.stopped_at}: it and the {report.not_reached - 1} rows after it were not "
            "imported; run the same command again to resume (rows already imported come back "
            "unchanged)",
            file=sys.stderr,
        )
        return 3
    return 1 if report.errors else 0


def summary(report: ImportReport) -> str:
    """One line; created + updated + unchanged + bad = rows (+ not reached, when stopped)."""
    line = (
        f"{report.rows} rows: {report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(report.bad_lines)} bad; "
        f"{report.readied} marked ready"
    )
    if report.stopped_at is not None:
        line += f"; {report.not_reached} not reached (stopped at line {report.stopped_at})"
    return line
