"""J&T status tables as data: a courier code, then the courier's text, gives our Status.

Two tables, because J&T speaks two dialects (couriers.md §1):

* ``LEGACY``: the J&T Express Indonesia tracking API (``history[].status_code`` + ``status``).
  Codes from one integrator's guide [C-3p, low confidence]: 101 manifest, 100 for pickup,
  transit *and* out-for-delivery alike (the text tells them apart), 150 on hold/problem,
  200 delivered, 401 return. The texts below are the wordings this service expects and the
  simulator speaks [I]; production must confirm them under contract.
* ``JMS``: the JMS open platform scan codes used by the push (``scanTypeCode`` + ``desc``),
  from the Malaysia tenant's FAQ [C-3p]; J&T Indonesia's own table must be confirmed too.

Lookup is by code first: the rows for the code, in order; the first whose text fragment occurs in
the courier's text as whole words (case-insensitive; an empty fragment matches any text) wins.
The text only refines a code: a problem code (legacy ``150``, JMS ``110``) is a problem scan
whatever its words, and the words decide which (:data:`PROBLEM_WORDS`): lost, held, or else a
failed delivery attempt ("tidak di rumah", "rumah kosong", "alamat tidak ditemukan", anything).
"Held" (stopped at the courier: held, damaged, customs) fits none of our statuses, so it gives
``None`` like an unknown code: the event is stored raw and a person reads it. An unknown code,
or a known code whose text fits no row, gives ``None`` too. Nothing is ever guessed (DESIGN §6).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from core.status import Status


@dataclass(frozen=True, slots=True)
class Row:
    code: str
    text: str  # lower-case words of the courier's text; "" = any text
    status: Status | None  # None: known, but for a person to read (a held parcel)


# What a problem scan's words say, checked in this order; no match = a failed attempt.
LOST_WORDS = ("hilang", "lost", "missing")
HELD_WORDS = ("ditahan", "tertahan", "on hold", "hold", "rusak", "damaged", "bea cukai", "customs")


PROBLEM_CODES = frozenset({"150", "110"})  # legacy and JMS: a problem scan whatever its words


def _problem_rows(code: str) -> tuple[Row, ...]:
    return (
        *(Row(code, word, Status.LOST) for word in LOST_WORDS),
        *(Row(code, word, None) for word in HELD_WORDS),
        Row(code, "", Status.DELIVERY_FAILED),
    )


LEGACY: tuple[Row, ...] = (
    Row("101", "", Status.BOOKED),  # "Manifes"
    Row("100", "pick up", Status.PICKED_UP),
    Row("100", "pickup", Status.PICKED_UP),
    # before "akan dikirimkan ke": the hand-off to the last mile names the receiver's address
    Row("100", "akan dikirim ke alamat penerima", Status.OUT_FOR_DELIVERY),
    Row("100", "sedang diantar", Status.OUT_FOR_DELIVERY),
    Row("100", "akan dikirimkan ke", Status.IN_TRANSIT),
    Row("100", "telah sampai di", Status.IN_TRANSIT),
    *_problem_rows("150"),
    Row("200", "", Status.DELIVERED),
    Row("401", "retur telah diterima", Status.RETURNED),
    Row("401", "", Status.RETURNING),
)

_LOST_CODES = ("300", "301", "302", "303", "304", "305", "306")  # damaged/lost/disposed/…

JMS: tuple[Row, ...] = (
    Row("10", "", Status.PICKED_UP),
    Row("20", "", Status.IN_TRANSIT),
    Row("30", "", Status.IN_TRANSIT),
    Row("94", "", Status.OUT_FOR_DELIVERY),
    Row("100", "", Status.DELIVERED),
    *_problem_rows("110"),  # "abnormal parcel": at the door or at a hub, the words tell
    Row("172", "", Status.RETURNING),
    Row("173", "", Status.RETURNED),
    *(Row(code, "hilang", Status.LOST) for code in _LOST_CODES),
    *(Row(code, "lost", Status.LOST) for code in _LOST_CODES),
)


@cache
def _words(fragment: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(fragment)}(?!\w)")


def lookup(table: tuple[Row, ...], code: str, *texts: str) -> Status | None:
    """The status for ``code``, refined by ``texts`` (the scan's text, note, problem fields)."""
    code = code.strip()
    folded = " ".join(" ".join(texts).casefold().split())
    for row in table:
        if row.code == code and (not row.text or _words(row.text).search(folded)):
            return row.status
    return None


def legacy_status(code: str, text: str, note: str = "") -> Status | None:
    return lookup(LEGACY, code, text, note)


def jms_status(code: str, *texts: str) -> Status | None:
    return lookup(JMS, code, *texts)
