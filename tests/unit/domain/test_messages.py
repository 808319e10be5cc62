"""Every applicant message in both languages, one SMS each, quiet hours in WIB."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from courier.domain import messages
from courier.domain.messages import TEMPLATES, gsm7_length, quiet_until, render

# the longest facts a message can carry: a 43-character token behind a 40-character public URL,
# a 40-character waybill (the column's width), a two-digit day count
LONGEST = {
    "link": "https://kirim.imigrasi-blitar.example.id/t/" + "A" * 43,
    "courier": "Pos Indonesia",
    "waybill": "P" * 40,
    "date": "2026-12-30",
    "days": 10,
    "office_name": "Kantor Imigrasi Kelas II Non TPI Blitar",
    "office_phone": "0342-801344",
    "optout": "https://kirim.imigrasi-blitar.example.id/n/stop/123.abcdef",
}
SHORT = {**LONGEST, "link": "https://kirim.example/t/" + "A" * 43, "waybill": "JX1234567890"}


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
def test_every_message_has_both_languages_and_fits_one_sms(kind: str) -> None:
    template = TEMPLATES[kind]
    for text in (template.subject, template.body, template.sms):
        assert text.id.strip() and text.en.strip() and text.id != text.en
    rendered = render(kind, LONGEST)
    body_id, body_en = rendered.chat.split("\n\n", 1)
    assert body_id == template.body.id.format_map(messages._values(LONGEST))
    assert body_en == template.body.en.format_map(messages._values(LONGEST))
    assert messages.SEPARATOR in rendered.subject
    size = gsm7_length(rendered.sms)
    assert size is not None, rendered.sms  # no character outside GSM-7 (UCS-2 halves the SMS)
    assert size <= 160, (size, rendered.sms)
    assert "{" not in rendered.body + rendered.sms  # every placeholder filled
    # with ordinary facts both languages fit the one SMS
    short = render(kind, SHORT).sms
    assert messages.SEPARATOR in short and (gsm7_length(short) or 999) <= 160, short


def test_dates_are_written_in_indonesian_and_english() -> None:
    rendered = render("applicant_returned", {"date": "2026-12-03", "office_phone": "0342"})
    assert "Kamis, 3 Desember 2026" in rendered.body
    assert "Thursday, 3 December 2026" in rendered.body
    assert "3 Des" in rendered.sms


def test_the_link_reaches_every_cut_and_the_opt_out_only_the_email() -> None:
    rendered = render("applicant_opted_in", LONGEST)
    assert LONGEST["link"] in rendered.sms
    assert LONGEST["link"] in rendered.chat
    assert LONGEST["optout"] in rendered.body and LONGEST["optout"] not in rendered.chat


def test_gsm7_counts_extension_characters_twice_and_refuses_others() -> None:
    assert gsm7_length("abc") == 3
    assert gsm7_length("[x]") == 5
    assert gsm7_length("naïve – ok") is None


@pytest.mark.parametrize(
    ("utc", "until"),
    [
        (datetime(2026, 12, 2, 14, 30, tzinfo=UTC), datetime(2026, 12, 3, 0, 0, tzinfo=UTC)),
        (datetime(2026, 12, 2, 23, 0, tzinfo=UTC), datetime(2026, 12, 3, 0, 0, tzinfo=UTC)),
        (datetime(2026, 12, 2, 13, 59, tzinfo=UTC), None),  # 20:59 WIB
        (datetime(2026, 12, 3, 0, 0, tzinfo=UTC), None),  # 07:00 WIB
    ],
)
def test_quiet_hours_are_wib_and_wrap_midnight(utc: datetime, until: datetime | None) -> None:
    assert quiet_until(utc, time(21, 0), time(7, 0)) == until
