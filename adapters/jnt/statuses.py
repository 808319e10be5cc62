"""J&T status tables as data: a courier code, then the courier's text, gives our Status.

Two tables, because J&T speaks two dialects (couriers.md §1):

* ``LEGACY``: the J&T Express Indonesia tracking API (``history[].status_code`` + ``status``).
  Codes from one integrator's guide [C-3p, low confidence]: 101 manifest, 100 for pickup,
  transit *and* out-for-delivery alike (the text tells them apart), 150 on hold/problem,
  200 delivered, 401 return. The texts below are the wordings this service expects and the
  simulator speaks [I]; production must confirm them under contract.
* ``JMS``: the JMS open platform scan codes used by the push (``scanTypeCode`` + ``desc``),
  from the Malaysia tenant's FAQ [C-3p]; J&T Indonesia's own table must be confirmed too.

Lookup: the rows for the code, in order; the first whose text fragment occurs in the courier's
text (case-insensitive; an empty fragment matches any text) wins. An unknown code, or a known
code whose text fits no row (a "problem" scan that is not a failed delivery), gives ``None``:
the event is stored raw and a person maps it. Nothing is ever guessed (DESIGN §6).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.status import Status


@dataclass(frozen=True, slots=True)
class Row:
    code: str
    text: str  # lower-case fragment of the courier's text; "" = any text
    status: Status


LEGACY: tuple[Row, ...] = (
    Row("101", "", Status.BOOKED),  # "Manifes"
    Row("100", "pick up", Status.PICKED_UP),
    Row("100", "pickup", Status.PICKED_UP),
    # before "akan dikirimkan ke": the hand-off to the last mile names the receiver's address
    Row("100", "akan dikirim ke alamat penerima", Status.OUT_FOR_DELIVERY),
    Row("100", "sedang diantar", Status.OUT_FOR_DELIVERY),
    Row("100", "akan dikirimkan ke", Status.IN_TRANSIT),
    Row("100", "telah sampai di", Status.IN_TRANSIT),
    Row("150", "gagal dikirim", Status.DELIVERY_FAILED),
    Row("150", "hilang", Status.LOST),
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
    # 110 "abnormal parcel" covers hub problems too: only a failed delivery maps
    Row("110", "gagal", Status.DELIVERY_FAILED),
    Row("110", "tidak di tempat", Status.DELIVERY_FAILED),
    Row("110", "alamat tidak jelas", Status.DELIVERY_FAILED),
    Row("172", "", Status.RETURNING),
    Row("173", "", Status.RETURNED),
    *(Row(code, "hilang", Status.LOST) for code in _LOST_CODES),
    *(Row(code, "lost", Status.LOST) for code in _LOST_CODES),
)


def lookup(table: tuple[Row, ...], code: str, text: str) -> Status | None:
    code, folded = code.strip(), text.casefold()
    for row in table:
        if row.code == code and row.text in folded:
            return row.status
    return None


def legacy_status(code: str, text: str) -> Status | None:
    return lookup(LEGACY, code, text)


def jms_status(code: str, text: str) -> Status | None:
    return lookup(JMS, code, text)
