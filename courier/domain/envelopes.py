"""What is printed on and about an envelope: its seal number as the office writes it, and the
personal values a printed sheet may show only masked (pure: no I/O)."""

from __future__ import annotations

import re

# a seal number as stored: capitals and digits, the separators people type removed
SEAL = re.compile(r"[A-Z0-9]{4,40}")
_SEPARATORS = re.compile(r"[\s\-_./]+")
ID_TYPES = ("ktp", "sim", "passport", "kk", "other")
SEAL_MESSAGE = (
    "a seal number is 4-40 letters or digits (spaces and dashes are ignored), e.g. SEAL-000123"
)


def normalise_seal(raw: str) -> str | None:
    """``" seal-000 123 "`` → ``"SEAL000123"``: upper-cased, spaces, dashes, dots, slashes and
    underscores removed (a scanner, a label printer and a person write the same seal three
    ways); None when what remains is not 4-40 capital letters or digits."""
    text = _SEPARATORS.sub("", raw.strip()).upper()
    return text if SEAL.fullmatch(text) else None


def mask_name(name: str) -> str:
    """``"Siti Rahayu Wulandari"`` → ``"S*** R***** W********"``: enough for the courier's
    agent to match an envelope to a line, not enough to learn who collects a passport."""
    return " ".join(word[0] + "*" * (len(word) - 1) for word in name.split())


def mask_id_number(raw: str) -> str:
    """An identity document's number with only its last four characters kept (what a counter
    log needs to tell two documents apart): ``3505123456780001`` → ``************0001``."""
    text = re.sub(r"\s+", "", raw)
    keep = 4 if len(text) > 6 else 2
    return "*" * (len(text) - keep) + text[-keep:]
