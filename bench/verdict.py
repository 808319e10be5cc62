"""Each figure beside its baseline: the ratio, the issue's target, and whether it is met.

Pure: rows in, a rich table or plain data out. The measuring lives elsewhere (bench/__main__.py);
a row only compares what it is given, so the arithmetic is testable without a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table


@dataclass(frozen=True)
class Target:
    """What issue 14 asks of a figure on 2 cores. Any combination may be set; all must hold.

    ``min_ratio``: ours ÷ baseline at least this; ``max_value``: ours at most this (memory);
    ``max_p99_ms``: the 99th percentile latency at most this."""

    min_ratio: float | None = None
    max_value: float | None = None
    max_p99_ms: float | None = None

    def text(self, unit: str = "") -> str:
        parts = []
        if self.min_ratio is not None:
            parts.append(
                f"≥ {self.min_ratio:.1f}×" if self.min_ratio >= 1 else f"≥ {self.min_ratio:.0%}"
            )
        if self.max_value is not None:
            parts.append(f"≤ {self.max_value:g} {unit}".rstrip())
        if self.max_p99_ms is not None:
            parts.append(f"p99 ≤ {self.max_p99_ms:g} ms")
        return ", ".join(parts) or "—"


NO_TARGET = Target()


def ratio(ours: float, baseline: float | None) -> float | None:
    if baseline is None or baseline <= 0:
        return None
    return ours / baseline


def met(target: Target, ours: float, baseline: float | None, p99_ms: float | None) -> bool | None:
    """True or False against ``target``; None when there is nothing to judge (no target), and
    False when a part of the target cannot be checked (no baseline or no latency measured)."""
    if target == NO_TARGET:
        return None
    if target.min_ratio is not None:
        r = ratio(ours, baseline)
        if r is None or r < target.min_ratio:
            return False
    if target.max_value is not None and ours > target.max_value:
        return False
    return not (target.max_p99_ms is not None and (p99_ms is None or p99_ms > target.max_p99_ms))


@dataclass(frozen=True)
class Row:
    figure: str
    ours: float
    unit: str
    baseline_label: str = ""
    baseline: float | None = None
    target: Target = NO_TARGET
    p99_ms: float | None = None  # of our figure, where latency is part of it
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return ratio(self.ours, self.baseline)

    @property
    def met(self) -> bool | None:
        return met(self.target, self.ours, self.baseline, self.p99_ms)

    def as_dict(self) -> dict[str, Any]:
        r = self.ratio
        return {
            "figure": self.figure,
            "ours": round(self.ours, 2),
            "unit": self.unit,
            "p99_ms": None if self.p99_ms is None else round(self.p99_ms, 2),
            "baseline_label": self.baseline_label,
            "baseline": None if self.baseline is None else round(self.baseline, 2),
            "ratio": None if r is None else round(r, 4),
            "target": self.target.text(self.unit),
            "met": self.met,
            "note": self.note,
        }


def _amount(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def _ours(row: Row) -> str:
    text = f"{_amount(row.ours)} {row.unit}"
    if row.p99_ms is not None:
        text += f", p99 {row.p99_ms:.0f} ms"
    return text


def _ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}×" if value >= 1 else f"{value:.1%}"


def _met(value: bool | None) -> str:
    return {True: "yes", False: "NO", None: "—"}[value]


def cells(row: Row) -> tuple[str, str, str, str, str, str]:
    """One row as the table prints it (also what the README's Markdown table is made of)."""
    baseline = "—"
    if row.baseline is not None:
        baseline = f"{_amount(row.baseline)} ({row.baseline_label})"
    return (
        row.figure,
        _ours(row),
        baseline,
        _ratio(row.ratio),
        row.target.text(row.unit),
        _met(row.met),
    )


HEADERS = ("figure", "ours", "baseline", "ratio", "target", "met")


def table(rows: Sequence[Row], title: str = "") -> Table:
    t = Table(title=title or None, show_lines=False)
    for h in HEADERS:
        t.add_column(h, justify="right" if h in ("ours", "ratio") else "left")
    for row in rows:
        t.add_row(*cells(row))
    return t


def markdown(rows: Sequence[Row]) -> str:
    """The same table in Markdown, for the README."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(lines)
