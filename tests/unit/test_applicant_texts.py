"""Every text an applicant reads exists in Bahasa Indonesia and in English: each delivery state
and shipment status on the tracking page, the page's notices, the report and rating choices,
and the expected day written out with babel."""

from __future__ import annotations

from datetime import UTC, date, datetime

from core.status import Status
from courier.domain import transit
from courier.domain.states import DeliveryState
from courier.services import feedback
from courier.web import pages, tracking


def _both(text: dict[str, str]) -> None:
    assert text["id"].strip() and text["en"].strip() and text["id"] != text["en"], text


def test_every_state_and_status_has_both_languages() -> None:
    for state in DeliveryState:
        meaning, next_step = tracking.STATE_TEXT[state.value]
        _both(meaning)
        _both(next_step)
    for status in Status:
        _both(tracking.STATUS_TEXT[status.value])
    for text in (tracking.UNKNOWN_EVENT, tracking.FAILED_NEXT, tracking.REVIEW_NEXT):
        _both(text)


def test_every_page_notice_and_choice_has_both_languages() -> None:
    for text in (*pages.FLASHES.values(), pages.BAD_FORMAT):
        _both(text)
    for problem in feedback.Problem:
        label = feedback.PROBLEM_TEXT[problem]
        _both({"id": label.id, "en": label.en})
    assert sorted(feedback.SCORE_TEXT) == [1, 2, 3, 4]  # the IKM scale
    for label in feedback.SCORE_TEXT.values():
        _both({"id": label.id, "en": label.en})


def test_the_expected_day_is_written_out_in_both_languages() -> None:
    assert pages.day_text(date(2026, 12, 3)) == {
        "id": "Kamis, 3 Desember 2026",
        "en": "Thursday, 3 December 2026",
    }


def test_the_transit_estimate_counts_working_days_from_the_wib_day() -> None:
    # booked Friday 27 November 2026 at 18:00 WIB (11:00 UTC): three working days on
    booked = datetime(2026, 11, 27, 11, 0, tzinfo=UTC)
    assert transit.expected_arrival("jnt", booked) == date(2026, 12, 2)
    assert transit.public_tracking_url("jnt", "JX 1/2") == "https://jet.co.id/track?awb=JX%201%2F2"
    assert transit.public_tracking_url("unknown", "X") is None
