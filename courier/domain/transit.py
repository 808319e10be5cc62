"""When a passport is expected at the door, and where the courier shows its own tracking.

Without contract data (service levels arrive with the contracts issue) the estimate is a
per-courier count of working days after booking (Indonesian public holidays skipped,
courier.domain.deadlines): J&T EZ and Pos Kilat Khusus within East Java take one to three
days; we say the later end, so the applicant is not told a day that is then missed.
"""

from __future__ import annotations

from datetime import date, datetime
from urllib.parse import quote

from core.clock import to_wib
from courier.domain.deadlines import add_working_days

TRANSIT_WORKING_DAYS = {"jnt": 3, "posind": 3}
DEFAULT_TRANSIT_WORKING_DAYS = 4

COURIER_NAMES = {"jnt": "J&T Express", "posind": "Pos Indonesia"}

# the couriers' public tracking pages; the waybill is the only thing in the URL
_PUBLIC_TRACKING = {
    "jnt": "https://jet.co.id/track?awb={waybill}",
    "posind": "https://www.posindonesia.co.id/id/tracking/{waybill}",
}


def expected_arrival(courier_code: str, booked_at: datetime) -> date:
    days = TRANSIT_WORKING_DAYS.get(courier_code, DEFAULT_TRANSIT_WORKING_DAYS)
    return add_working_days(to_wib(booked_at).date(), days)


def courier_name(courier_code: str) -> str:
    return COURIER_NAMES.get(courier_code, courier_code)


def public_tracking_url(courier_code: str, waybill: str | None) -> str | None:
    pattern = _PUBLIC_TRACKING.get(courier_code)
    if pattern is None or not waybill:
        return None
    return pattern.format(waybill=quote(waybill, safe=""))
