"""`courier demo --exit` as a user runs it: a subprocess at its default settings but for a
smaller day (40 passports instead of 110: the same code paths, a third of the suite's time; the
clock waits for the work and jumps when it is idle: no speed to tune), over a fresh SQLite file
in its own folder. Every delivery ends final or waiting for a dispatcher (invariant 3), nothing is
written outside ./demo, and nothing the applicants gave — names, phones, passport numbers,
streets — appears in its output or its logs (invariant 4)."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from courier.demo.seed import ADDENDUM_REGENCIES, plan_day

COUNT = 40


def _pii(day: datetime) -> list[str]:
    values: list[str] = []
    for a in plan_day(day.date(), count=COUNT).applicants:
        # a one-word name shorter than five letters ("Sri") may be part of an ordinary word
        if " " in a.name or len(a.name) >= 5:
            values.append(a.name)
        digits = a.phone.replace("-", "")
        values += [a.phone, digits, "+62" + digits[1:], "62" + digits[1:], a.passport_no]
        if a.address is not None:
            values.append(a.address["street"])
    return values


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_settles_every_delivery_and_logs_no_pii(tmp_path: Path) -> None:
    (tmp_path / "demo.log").write_text("a file of the user's, not the demo's")
    proc = subprocess.run(
        # the defaults of `make demo` but the day's size, headless; --minutes bounds a broken run
        [
            *(sys.executable, "-m", "courier.cli", "demo", "--exit", "--port", "0"),
            *("--minutes", "9", "--count", str(COUNT)),
        ],
        capture_output=True,
        text=True,
        timeout=590,
        cwd=tmp_path,
    )
    out, logs = proc.stdout, proc.stderr
    assert proc.returncode == 0, out[-3000:] + logs[-3000:]
    assert "every delivery settled" in out
    # only its own folder, and the user's file beside it untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "demo.log"]
    assert (tmp_path / "demo.log").read_text() == "a file of the user's, not the demo's"
    assert (tmp_path / "demo" / "demo.sqlite3").exists()
    # the clock never stepped on past work nobody took (the driver's guard stayed unused)
    assert "demo.clock_stall" not in logs
    summary = out[out.index("summary at") :]
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^  ([a-z_]+) +(\d+)$", summary, re.M)}
    assert counts.get("handed_over", 0) > 0, summary
    moving = {"requested", "queued", "shipping"} & set(counts)
    assert not moving, summary
    assert re.search(r"create calls per reference: max 1\b", summary), summary  # invariant 1

    # the applicants of that day (the banner says which day the demo played)
    banner = re.search(r"(\d{2})-(\d{2})-(\d{4}) \d{2}:\d{2} WIB", out)
    assert banner is not None, out[:500]
    day = datetime.strptime(banner.group(0)[:10], "%d-%m-%Y")
    # a contract lapse: the passports of the regencies the addendum adds, ready before it is
    # signed, waited for a contract and then booked by themselves
    lapse = re.search(r"contract lapse: (\d+) passport", summary)
    assert lapse is not None, summary
    waiting = [
        a
        for a in plan_day(day.date(), count=COUNT).applicants
        if a.opts_in and not a.express and a.regency_code in ADDENDUM_REGENCIES
    ]
    assert (int(lapse.group(1)) > 0) is bool(waiting), summary
    assert "scorecard BLT" in summary, summary
    # the addendum's column, when its regencies had passports to carry
    assert ("JNT/BLT/2026-A1" in summary) is bool(waiting), summary
    assert logs.count("\n") > 100  # it did log: JSON lines of every request and job step
    leaks = [value for value in _pii(day) if value in logs or value in out]
    assert leaks == []
