"""The ways real courier answers differ from a tidy simulator, switchable and seeded (issue 9).

Tried against couriers as they really answer, the service met texts and shapes the simulators
never produced. Each variation here reproduces one of them; a rate says how often it applies
(0 never, 1 always), decided per parcel (or per answer) by a digest of ``(seed, name, key)``, so
the same parcel varies the same way on every poll and every run with the same seed:

``text_after_bracket``
    J&T's delivered text carries more after the name: ``Received by【NAME】(YBS)``, a thank-you,
    a dash and the relation.
``relation_in_note``
    J&T's legacy history gives the relation in ``note`` (YBS, Keluarga, Orang Serumah, Tetangga,
    Satpam…) and not in the status text; spellings vary.
``reason_texts``
    Problem scans with other wordings than "Paket gagal dikirim: …": "Penerima tidak di rumah",
    "Rumah kosong", "Alamat tidak ditemukan" (J&T legacy ``150``, JMS ``110``, Pos Antar Ulang).
``return_without_final_scan``
    A returned parcel never gets its final scan: it stays "returning" for good.
``no_lookup``
    The account has no order lookup: J&T's ``getOrders`` answers HTTP 404 (the route is missing).
``pos_alt_answer``
    Pos AddPostingDoc answers with ``respcode``/``respmsg`` instead of ``responseCode``/
    ``responseDesc``.
``duplicate_scans``
    The same scan twice: listed twice in a poll answer, re-sent in the next push batch, and a
    push batch delivered twice.

Set at start (``options["variations"]``) or through ``/_sim/variations``::

    {"seed": "run-7", "rates": {"text_after_bracket": 1, "pos_alt_answer": 0.5}}
    {"all": 1}                    # every variation on
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from simulators.lifecycle import Step, StepKind

TEXT_AFTER_BRACKET = "text_after_bracket"
RELATION_IN_NOTE = "relation_in_note"
REASON_TEXTS = "reason_texts"
RETURN_WITHOUT_FINAL_SCAN = "return_without_final_scan"
NO_LOOKUP = "no_lookup"
POS_ALT_ANSWER = "pos_alt_answer"
DUPLICATE_SCANS = "duplicate_scans"
NAMES = (
    TEXT_AFTER_BRACKET,
    RELATION_IN_NOTE,
    REASON_TEXTS,
    RETURN_WITHOUT_FINAL_SCAN,
    NO_LOOKUP,
    POS_ALT_ANSWER,
    DUPLICATE_SCANS,
)

# Failed-attempt wordings as couriers' drivers type them (issue 9's captures and common usage).
REASON_WORDINGS: tuple[str, ...] = (
    "Penerima tidak di rumah",
    "Rumah kosong",
    "Alamat tidak ditemukan",
    "tidak di rumah",
    "Penerima tidak dapat dihubungi",
)

# How a relation may be spelled in a J&T note or a Pos KETERANGAN, by the plan's relation.
RELATION_SPELLINGS: Mapping[str, tuple[str, ...]] = {
    "YBS": ("YBS", "Ybs", "Yang Bersangkutan"),
    "ISTRI": ("Keluarga", "Istri", "ISTRI"),
    "SUAMI": ("Keluarga", "Suami"),
    "ORANG TUA": ("Keluarga", "Orang Tua", "Ortu"),
    "ANAK": ("Keluarga", "Anak"),
    "Orang Serumah": ("Orang Serumah", "ORANG SERUMAH", "Serumah"),
    "TETANGGA": ("Tetangga", "TETANGGA"),
    "SATPAM": ("Satpam", "Security"),
    "RT SETEMPAT": ("RT Setempat", "Pak RT"),
}

# Delivered texts with something after the bracket; {name} and {relation} are filled in.
BRACKET_TEMPLATES: tuple[str, ...] = (
    "Received by【{name}】({relation})",
    "Paket telah diterima oleh【{name}】({relation}) Terima kasih telah menggunakan J&T Express",
    "Received by【{name}】 - {relation} - POD tersedia",
    "Paket telah diterima oleh【{name}】，{relation}。",
)
# The same without the relation (it is in the note instead).
BRACKET_TEMPLATES_NO_RELATION: tuple[str, ...] = (
    "Received by【{name}】",
    "Paket telah diterima oleh【{name}】 Terima kasih telah menggunakan J&T Express",
    "Received by【{name}】 - POD tersedia",
)

T = TypeVar("T")


def _unit(text: str) -> float:
    """A stable number in [0, 1) from ``text`` (same on every run and every process)."""
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class Variations:
    rates: dict[str, float] = field(default_factory=dict)
    seed: str = "variations"

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> Variations:
        made = cls()
        if spec:
            made.configure(spec)
        return made

    def configure(self, spec: Mapping[str, Any]) -> None:
        """Merge ``spec`` ({"seed", "rates", "all"}) into the current settings."""
        unknown = set(spec) - {"seed", "rates", "all"}
        if unknown:
            raise ValueError(f"unknown variation key(s): {', '.join(sorted(unknown))}")
        rates: dict[str, float] = {}
        if "all" in spec:
            rates.update(dict.fromkeys(NAMES, _rate("all", spec["all"])))
        given = spec.get("rates") or {}
        if not isinstance(given, Mapping):
            raise ValueError("rates must be an object")
        for name, value in given.items():
            if name not in NAMES:
                raise ValueError(f"unknown variation {name!r}; one of {', '.join(NAMES)}")
            rates[str(name)] = _rate(str(name), value)
        if "seed" in spec:
            self.seed = str(spec["seed"])
        self.rates.update(rates)

    def clear(self) -> None:
        self.rates.clear()

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "rates": {n: self.rates.get(n, 0.0) for n in NAMES}}

    def applies(self, name: str, key: str) -> bool:
        """Does variation ``name`` apply to ``key`` (a waybill, a reference, a scan)?"""
        rate = self.rates.get(name, 0.0)
        if rate <= 0.0:
            return False
        return rate >= 1.0 or _unit(f"{self.seed}|{name}|{key}") < rate

    def pick(self, name: str, key: str, options: Sequence[T]) -> T:
        """One of ``options``, the same for the same ``key`` every time."""
        return options[int(_unit(f"{self.seed}|{name}|{key}|pick") * len(options))]

    # ------------------------------------------------------------------------------ wordings

    def relation_word(self, key: str, relation: str) -> str:
        """The relation as a courier may spell it (only when relations are varied)."""
        spellings = RELATION_SPELLINGS.get(relation)
        if not spellings or not self.applies(RELATION_IN_NOTE, key):
            return relation
        return self.pick(RELATION_IN_NOTE, key, spellings)

    def reason(self, key: str, planned: str) -> str:
        """A failed attempt's reason, in one of the wordings drivers use (when varied)."""
        if not self.applies(REASON_TEXTS, key):
            return planned
        return self.pick(REASON_TEXTS, key, REASON_WORDINGS)

    def shape_plan(self, reference: str, steps: list[Step]) -> list[Step]:
        """The plan as the courier will show it: a return may never get its final scan."""
        if (
            steps
            and steps[-1].kind is StepKind.RETURNED
            and self.applies(RETURN_WITHOUT_FINAL_SCAN, reference)
        ):
            return steps[:-1]
        return steps


def _rate(name: str, value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number between 0 and 1") from None
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1")
    return number
