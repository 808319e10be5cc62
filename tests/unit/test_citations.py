"""Every citation of the design documents resolves to a heading in ``docs/``.

Code, schemas and tests cite the reasoning instead of repeating it, so a citation that leads
nowhere (a renumbered section, a document that lives outside the repo) is a broken promise to the
reader. The grammar (docs/design.md explains it to people):

* ``<document> §<section>``: the document is ``docs/design.md``, ``docs/couriers.md`` or
  ``docs/decisions.md``, also written without ``docs/``; the old short forms ``DESIGN`` and
  ``DESIGN.md`` mean docs/design.md. A section is a number with an optional capital letter and
  dotted sub-numbers (``5``, ``5.7``, ``1A``). More sections may follow, each with its own
  sign: ``docs/design.md §5.2, §6.1`` or ``… §2.4 and §5.1``.
* ``§<n> step <m>`` means section ``n.m`` (``DESIGN §2 step 5`` is docs/design.md §2.5).
* ``invariant N`` / ``invariants N and M`` / ``invariants N, M and K`` mean docs/design.md §5.N.
* ``RFC <n> §<section>`` (also ISO, PEP) cites an outside standard and is not checked.
* Inside a document of ``docs/``, a bare ``§<section>`` cites that same document.
* Any other ``§`` (one naming no document, or a document outside the repo such as
  ``reference/couriers.md``) is an error.

A section resolves when the document has a Markdown heading numbered exactly so
(``## 5. Invariants``, ``### 5.1 One courier order per attempt``, ``### 1A. …``).

This file itself is not scanned: its examples are broken on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

SCANNED_DIRS = ("schemas", "core", "adapters", "simulators", "courier", "worker", "tests", "bench")
SCANNED_FILES = ("README.md", "pyproject.toml")
SCANNED_SUFFIXES = frozenset({".py", ".json", ".toml", ".md"})

# The name a citation uses → the file under docs/ it means.
DOCUMENTS: Mapping[str, str] = {
    "docs/design.md": "design.md",
    "design.md": "design.md",
    "DESIGN.md": "design.md",
    "DESIGN": "design.md",
    "docs/couriers.md": "couriers.md",
    "couriers.md": "couriers.md",
    "docs/decisions.md": "decisions.md",
    "decisions.md": "decisions.md",
}

_SECTION = r"\d+[A-Z]?(?:\.\d+)*"
_DOC_NAMES = "|".join(re.escape(n) for n in sorted(DOCUMENTS, key=len, reverse=True))
# A document name stands alone: "reference/couriers.md" or "my-design.md" is not ours.
_DOC_CITATION = re.compile(
    rf"(?<![\w/.\-])`?(?P<doc>{_DOC_NAMES})`?(?![\w/\-])(?:'s)?\s*"
    rf"§\s*(?P<first>{_SECTION})(?:\s+steps?\s+(?P<step>\d+))?"
    rf"(?P<more>(?:\s*(?:,|and|or|&)\s*§\s*{_SECTION})*)"
)
_MORE_SECTION = re.compile(rf"§\s*({_SECTION})")
_INVARIANT = re.compile(r"\b[Ii]nvariants?\s+(?P<numbers>\d+(?:\s*(?:,|and|or|&)\s*\d+)*)\b")
_EXTERNAL = re.compile(rf"\b(?:RFC|ISO|PEP)\s?\d+(?:[-:]\d+)*\s*§\s*{_SECTION}")
_BARE = re.compile(rf"§\s*(?P<section>{_SECTION})?")
_HEADING = re.compile(rf"^#{{1,6}}\s+(?P<section>{_SECTION})\.?(?:\s|$)")
_FENCE = re.compile(r"^\s*(```|~~~)")

# The invariants are design.md §5's numbered sub-sections.
INVARIANTS = ("design.md", "5")


@dataclass(frozen=True, slots=True)
class Citation:
    document: str  # file name under docs/
    section: str  # "5.1", "1A"
    text: str  # as written, for the report


def citations_in(line: str, home: str | None = None) -> tuple[list[Citation], list[str]]:
    """The citations on one line, and the problems no heading can fix (a ``§`` that names no
    document of ours). ``home`` is the document the line belongs to, when it is one of docs/:
    its bare ``§`` cite itself."""
    found: list[Citation] = []
    covered: list[tuple[int, int]] = []
    for m in _DOC_CITATION.finditer(line):
        document = DOCUMENTS[m["doc"]]
        first = f"{m['first']}.{m['step']}" if m["step"] else m["first"]
        found.append(Citation(document, first, m.group(0).strip()))
        found.extend(
            Citation(document, s, m.group(0).strip()) for s in _MORE_SECTION.findall(m["more"])
        )
        covered.append(m.span())
    for m in _INVARIANT.finditer(line):
        document, parent = INVARIANTS
        for number in re.findall(r"\d+", m["numbers"]):
            found.append(Citation(document, f"{parent}.{number}", m.group(0)))
    covered.extend(m.span() for m in _EXTERNAL.finditer(line))
    problems: list[str] = []
    for m in _BARE.finditer(line):
        if any(a <= m.start() < b for a, b in covered):
            continue
        if home is not None and m["section"]:
            found.append(Citation(home, m["section"], m.group(0)))
        else:
            problems.append(f"'{_around(line, m.start())}': § names no document in docs/")
    return found, problems


def _around(line: str, i: int) -> str:
    return line[max(0, i - 30) : i + 12].strip()


def sections_of(markdown: str) -> list[str]:
    """The numbered headings of a Markdown document, in order (fenced code skipped)."""
    numbered: list[str] = []
    fenced = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced and (m := _HEADING.match(line)):
            numbered.append(m["section"])
    return numbered


def load_sections(docs: Path = DOCS) -> dict[str, frozenset[str]]:
    names = set(DOCUMENTS.values())
    return {n: frozenset(sections_of((docs / n).read_text(encoding="utf-8"))) for n in names}


def scanned_files(root: Path = ROOT) -> list[Path]:
    files = [root / name for name in SCANNED_FILES if (root / name).is_file()]
    for folder in (*SCANNED_DIRS, "docs"):
        base = root / folder
        if base.is_dir():
            files.extend(
                p
                for p in base.rglob("*")
                if p.suffix in SCANNED_SUFFIXES and p.is_file() and "__pycache__" not in p.parts
            )
    me = Path(__file__).resolve()
    return sorted(p for p in files if p.resolve() != me)


def check(
    files: Iterable[Path], sections: Mapping[str, frozenset[str]], root: Path = ROOT
) -> tuple[int, list[str]]:
    """How many citations were read, and one ``file:line: …`` per problem."""
    count = 0
    problems: list[str] = []
    for path in files:
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        text = path.read_text(encoding="utf-8", errors="replace")
        home = path.name if path.parent.name == "docs" and path.name in sections else None
        for number, line in enumerate(text.splitlines(), start=1):
            if "§" not in line and "nvariant" not in line:
                continue
            found, orphans = citations_in(line, home)
            count += len(found)
            problems.extend(f"{shown}:{number}: {p}" for p in orphans)
            problems.extend(
                f"{shown}:{number}: '{c.text}': docs/{c.document} has no heading §{c.section}"
                for c in found
                if c.section not in sections.get(c.document, frozenset())
            )
    return count, problems


# --------------------------------------------------------------------------------------------


def test_every_citation_in_the_repo_resolves_to_a_heading() -> None:
    count, problems = check(scanned_files(), load_sections())
    assert not problems, "citations that lead nowhere:\n" + "\n".join(problems)
    # the code cites the documents some seventy times; far fewer means the scan went blind
    assert count >= 50, f"only {count} citations found: is the scan still reading the code?"


@pytest.mark.parametrize("document", sorted(set(DOCUMENTS.values())))
def test_each_section_number_is_used_once_per_document(document: str) -> None:
    numbered = sections_of((DOCS / document).read_text(encoding="utf-8"))
    assert numbered, f"docs/{document} has no numbered headings"
    twice = sorted({s for s in numbered if numbered.count(s) > 1})
    assert not twice, f"docs/{document} numbers these sections twice: {twice}"


def test_each_invariant_is_a_heading_of_design_section_5() -> None:
    sections = load_sections()["design.md"]
    assert {"5", "5.1", "5.2", "5.3", "5.4", "5.5"} <= sections


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("shapes as in couriers.md §1A (names replaced)", [("couriers.md", "1A")]),
        ("(DESIGN §6). Raw codes", [("design.md", "6")]),
        ("see DESIGN.md §3", [("design.md", "3")]),
        ("WIB, no offset (couriers.md §5.7)", [("couriers.md", "5.7")]),
        ("`docs/decisions.md` §4", [("decisions.md", "4")]),
        ("order (docs/design.md §5.2, §6.1)", [("design.md", "5.2"), ("design.md", "6.1")]),
        ("the manifest (DESIGN §2 step 5): office", [("design.md", "2.5")]),
        ("exactly once (invariant 1).", [("design.md", "5.1")]),
        ("Invariant 4: the flows", [("design.md", "5.4")]),
        ("ends booked (invariants 1 and 3)", [("design.md", "5.1"), ("design.md", "5.3")]),
        (
            "invariants 1, 2 and 5",
            [("design.md", "5.1"), ("design.md", "5.2"), ("design.md", "5.5")],
        ),
        ("an HTTP-date (RFC 9110 §10.2.3)", []),
        ("the invariants hold; nothing cited", []),
    ],
)
def test_the_grammar_reads_every_accepted_form(line: str, expected: list[tuple[str, str]]) -> None:
    found, problems = citations_in(line)
    assert [(c.document, c.section) for c in found] == expected
    assert problems == []


@pytest.mark.parametrize(
    "line",
    [
        "The order matters (reliability-anchors §3):",
        "see reference/couriers.md §2",
        "as §5 says",
        "my-design.md §1",
    ],
)
def test_a_section_sign_without_a_document_of_ours_is_refused(line: str) -> None:
    _found, problems = citations_in(line)
    assert len(problems) == 1 and "names no document" in problems[0]


def test_a_broken_citation_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "design.md").write_text("# Design\n\n## 5. Invariants\n\n### 5.1 One order\n")
    (docs / "couriers.md").write_text("## 1. J&T\n\n```\n## 9. inside a fence\n```\n")
    (docs / "decisions.md").write_text("## 1. A decision\n")
    source = tmp_path / "worker" / "loop.py"
    source.parent.mkdir()
    source.write_text(
        '"""Booking (invariant 1), see DESIGN §5.\n'
        "Status only forward (invariant 2); couriers.md §9 is fenced; §4 alone.\n"
        '"""\n'
    )

    count, problems = check([source], load_sections(docs), root=tmp_path)

    assert count == 4
    assert problems == [
        "worker/loop.py:2: '2); couriers.md §9 is fenced; §4 alone.': § names no document in docs/",
        "worker/loop.py:2: 'couriers.md §9': docs/couriers.md has no heading §9",
        "worker/loop.py:2: 'invariant 2': docs/design.md has no heading §5.2",
    ]
