"""What makes two courier events one scan (issue 9, Deliver 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.status import Status
from courier.domain.scans import normalised_place, scan_key

AT = datetime(2026, 11, 3, 3, 12, 5, tzinfo=UTC)
WIB = timezone(timedelta(hours=7))


def test_push_and_poll_words_of_one_scan_give_one_key() -> None:
    push = scan_key(7, Status.PICKED_UP, AT, "BLITAR", raw_code="10", raw_text="Pickup scan")
    poll = scan_key(
        7,
        Status.PICKED_UP,
        AT.astimezone(WIB).replace(microsecond=400),  # the same instant, in WIB, sub-second
        "  blitar ",
        raw_code="100",
        raw_text="Paket telah di pick up oleh Sprinter J&T",
    )
    assert push == poll


@pytest.mark.parametrize(
    ("shipment", "status", "at", "place"),
    [
        (8, Status.PICKED_UP, AT, "Blitar"),  # another shipment (waybill)
        (7, Status.IN_TRANSIT, AT, "Blitar"),  # another status
        (7, Status.PICKED_UP, AT + timedelta(seconds=1), "Blitar"),  # another second
        (7, Status.PICKED_UP, AT, "Kediri"),  # another place
    ],
)
def test_any_other_status_time_place_or_shipment_is_another_scan(
    shipment: int, status: Status, at: datetime, place: str
) -> None:
    assert scan_key(7, Status.PICKED_UP, AT, "Blitar") != scan_key(shipment, status, at, place)


def test_unmapped_codes_are_told_apart_by_their_raw_words() -> None:
    a = scan_key(7, None, AT, "", raw_code="777", raw_text="Puri Terima")
    b = scan_key(7, None, AT, "", raw_code="778", raw_text="Puri Terima")
    assert a != b
    assert a == scan_key(7, None, AT, "", raw_code="777", raw_text="Puri Terima")


def test_a_naive_time_is_refused_and_places_fold() -> None:
    with pytest.raises(ValueError, match="aware"):
        scan_key(7, Status.BOOKED, AT.replace(tzinfo=None), "")
    assert normalised_place("  KDR \t Hub ") == "kdr hub"
