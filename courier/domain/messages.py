"""What applicants are told, as data: every message in Bahasa Indonesia first and English
second, in three cuts (an e-mail subject and body, a WhatsApp text, one SMS), plus when it may
be sent.

* **urgent** messages go out at any hour; the others wait out the quiet hours
  (``notify.quiet_hours``, WIB): nobody needs "your parcel was booked" at 23:00.
* **essential** messages go out even after the applicant followed the opt-out link: they ask for
  something without which the passport could be lost (collect it by a date, confirm receipt) or
  they guard the account (the link itself, an address change).
* **SMS**: one GSM-7 message of at most 160 characters, both languages when they fit, else the
  Indonesian one alone (:func:`sms_text`); ``tests/unit/domain/test_messages.py`` renders every
  kind with the longest facts and checks it.

Pure: dates arrive as ISO strings in the facts and are written in WIB with babel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from babel.dates import format_date

from core.clock import WIB
from courier.domain.exception_kinds import Text

SMS_LIMIT = 160
SEPARATOR = " / "

# GSM 03.38: the basic set costs one unit, the extension table two (escape + character)
_GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ\u00a7¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = "^{}\\[~]|€\f"


def gsm7_length(text: str) -> int | None:
    """Septets ``text`` takes in GSM-7, or None when a character is outside it (the message
    would go as UCS-2, 70 characters per SMS)."""
    total = 0
    for char in text:
        if char in _GSM7_BASIC:
            total += 1
        elif char in _GSM7_EXTENSION:
            total += 2
        else:
            return None
    return total


@dataclass(frozen=True, slots=True)
class Template:
    urgent: bool
    essential: bool
    subject: Text
    body: Text  # e-mail and WhatsApp
    sms: Text  # short; both must fit one SMS together with ``sms_tail``
    sms_tail: str = ""  # after both languages, once (a link)


T = Template

TEMPLATES: dict[str, Template] = {
    "applicant_opted_in": T(
        urgent=True,
        essential=True,
        subject=Text("Pengiriman paspor terdaftar", "Passport delivery registered"),
        body=Text(
            "Pendaftaran pengiriman paspor Anda sudah diterima. Lacak paspor Anda di tautan "
            "ini: {link}\nJangan bagikan tautan ini kepada orang lain.",
            "Your passport delivery is registered. Follow your passport at this link: {link}\n"
            "Do not share this link.",
        ),
        sms=Text("Kirim paspor terdaftar. Lacak:", "Registered. Track:"),
        sms_tail="{link}",
    ),
    "applicant_address_changed": T(
        urgent=True,
        essential=True,
        subject=Text("Alamat pengiriman paspor diubah", "Passport delivery address changed"),
        body=Text(
            "Alamat pengiriman paspor Anda baru saja diubah. Tautan lama tetap berlaku; ini "
            "tautan terbaru: {link}\nBukan Anda yang mengubah? Segera hubungi kantor "
            "{office_phone}.",
            "The delivery address of your passport was just changed. Your old link still "
            "works; this is the newest one: {link}\nNot you? Call the office at once: "
            "{office_phone}.",
        ),
        sms=Text("Alamat kirim paspor diubah. Bukan Anda? Hubungi kantor.", "Address changed."),
        sms_tail="{link}",
    ),
    "applicant_booked": T(
        urgent=False,
        essential=False,
        subject=Text("Paspor diserahkan ke kurir", "Passport handed to the courier"),
        body=Text(
            "Paspor Anda akan dikirim oleh {courier} dengan nomor resi {waybill}. Perkiraan "
            "tiba {day_id}.",
            "Your passport will be delivered by {courier}, waybill {waybill}. Expected {day_en}.",
        ),
        sms=Text("Paspor dikirim {courier} resi {waybill}, tiba {short_id}.", "Shipped."),
    ),
    "applicant_out_for_delivery": T(
        urgent=True,
        essential=False,
        subject=Text("Paspor diantar hari ini", "Passport out for delivery today"),
        body=Text(
            "Kurir {courier} mengantar paspor Anda hari ini. Siapkan KTP asli. Yang boleh "
            "menerima: Anda sendiri, keluarga dalam satu KK, atau pemegang surat kuasa.",
            "{courier} delivers your passport today. Have your original ID card ready. It may "
            "be received by you, a family member on the same KK, or the holder of a surat "
            "kuasa (power of attorney).",
        ),
        sms=Text("Paspor diantar hari ini, siapkan KTP asli.", "Out for delivery: have your ID."),
    ),
    "applicant_delivery_failed": T(
        urgent=False,
        essential=True,
        subject=Text("Paspor belum dapat diantar", "Passport delivery attempt failed"),
        body=Text(
            "Kurir {courier} belum berhasil mengantar paspor Anda dan akan mencoba lagi. "
            "Pastikan ada yang dapat menerima, atau hubungi kantor {office_phone}.",
            "{courier} could not deliver your passport and will try again. Make sure someone "
            "can receive it, or call the office at {office_phone}.",
        ),
        sms=Text("Paspor gagal diantar, kurir coba lagi.", "Delivery failed, courier retries."),
    ),
    "applicant_returned": T(
        urgent=False,
        essential=True,
        subject=Text("Paspor kembali ke kantor", "Passport back at the office"),
        body=Text(
            "Paspor Anda dikembalikan kurir ke kantor. Ambil di loket dengan KTP asli sebelum "
            "{day_id}, atau hubungi kantor {office_phone} untuk dikirim ulang.",
            "The courier returned your passport to the office. Collect it at the counter with "
            "your original ID before {day_en}, or call the office at {office_phone} to send it "
            "again.",
        ),
        sms=Text("Paspor kembali ke kantor, ambil s.d. {short_id}.", "Back at office."),
    ),
    "applicant_collect_at_counter": T(
        urgent=False,
        essential=True,
        subject=Text("Ambil paspor di loket", "Collect your passport at the counter"),
        body=Text(
            "Paspor Anda menunggu di loket kantor. Ambil dengan KTP asli sebelum {day_id}.",
            "Your passport waits at the office counter. Collect it with your original ID "
            "before {day_en}.",
        ),
        sms=Text("Ambil paspor di loket s.d. {short_id}.", "Collect at counter."),
    ),
    "applicant_deadline": T(
        urgent=False,
        essential=True,
        subject=Text("Batas waktu paspor: sisa {days} hari", "Passport deadline: {days} days left"),
        body=Text(
            "Sisa {days} hari sebelum batas pengambilan paspor ({day_id}). Lihat tautan "
            "pelacakan Anda atau hubungi kantor {office_phone}.",
            "{days} days left before your passport's collect-by date ({day_en}). See your "
            "tracking link or call the office at {office_phone}.",
        ),
        sms=Text("Sisa {days} hari ambil paspor (s.d. {short_id}).", "{days} days left."),
    ),
    "applicant_confirm_request": T(
        urgent=False,
        essential=True,
        subject=Text("Konfirmasi penerimaan paspor", "Please confirm you received the passport"),
        body=Text(
            "Kurir mencatat paspor Anda sudah diterima. Konfirmasi di tautan pelacakan dengan "
            "nomor paspor. Belum menerima? Laporkan di sana.",
            "The courier says your passport was delivered. Confirm on your tracking page with "
            "the passport number. Not received? Report it there.",
        ),
        sms=Text("Paspor terkirim, konfirmasi di tautan lacak.", "Delivered: please confirm."),
    ),
    "applicant_confirm_reminder": T(
        urgent=False,
        essential=True,
        subject=Text("Pengingat: konfirmasi penerimaan paspor", "Reminder: confirm receipt"),
        body=Text(
            "Kami belum menerima konfirmasi Anda. Konfirmasi di tautan pelacakan, atau laporkan "
            "jika paspor belum Anda terima.",
            "We have not had your confirmation yet. Confirm on your tracking page, or report a "
            "problem if you did not receive the passport.",
        ),
        sms=Text("Pengingat: konfirmasi terima paspor.", "Reminder: please confirm receipt."),
    ),
    "applicant_passport_lost": T(
        urgent=True,
        essential=True,
        subject=Text("Paspor dilaporkan hilang", "Passport reported lost"),
        body=Text(
            "Kurir {courier} melaporkan paspor Anda hilang dalam pengiriman. Mohon maaf. "
            "Hubungi kantor {office_phone} untuk langkah penggantian; tautan pelacakan Anda "
            "tetap menunjukkan riwayatnya.",
            "{courier} reported your passport lost in delivery. We are sorry. Call the office "
            "at {office_phone} about a replacement; your tracking link keeps its history.",
        ),
        sms=Text("Paspor dilaporkan hilang. Hubungi kantor {office_phone}.", "Passport lost."),
    ),
    "applicant_handover_verified": T(
        urgent=False,
        essential=False,
        subject=Text("Serah terima paspor selesai", "Passport handover verified"),
        body=Text(
            "Serah terima paspor Anda sudah terverifikasi. Terima kasih! Beri nilai layanan "
            "kami di tautan pelacakan.",
            "Your passport handover is verified. Thank you! Please rate our service on your "
            "tracking page.",
        ),
        sms=Text("Serah terima paspor selesai. Terima kasih!", "Handover verified. Thank you!"),
    ),
}

# Staff kinds: the same facts are items in the exceptions queue, which is where staff work
STAFF_KINDS = frozenset({"staff_deadline_warning"})

EMAIL_FOOTER = Text(
    "Kantor: {office_name}, {office_phone}.\nTidak ingin menerima pesan yang tidak penting? "
    "{optout}",
    "Office: {office_name}, {office_phone}.\nDo not want messages that are not essential? {optout}",
)


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str  # e-mail: both languages and the footer
    chat: str  # WhatsApp: both languages, no footer
    sms: str


def _dates(facts: Mapping[str, Any]) -> dict[str, str]:
    raw = facts.get("date")
    if not raw:
        return {"day_id": "-", "day_en": "-", "short_id": "-"}
    day = date.fromisoformat(str(raw)[:10])
    return {
        "day_id": format_date(day, "EEEE, d MMMM y", locale="id"),
        "day_en": format_date(day, "EEEE, d MMMM y", locale="en"),
        "short_id": format_date(day, "d MMM", locale="id"),
    }


def _values(facts: Mapping[str, Any]) -> dict[str, str]:
    values = {
        "link": str(facts.get("link") or "").strip(),
        "courier": str(facts.get("courier") or "kurir"),
        "waybill": str(facts.get("waybill") or "-"),
        "days": str(facts.get("days", "")),
        "office_name": str(facts.get("office_name") or ""),
        "office_phone": str(facts.get("office_phone") or "-"),
        "optout": str(facts.get("optout") or ""),
    }
    values.update(_dates(facts))
    return values


def sms_text(template: Template, values: Mapping[str, str], limit: int = SMS_LIMIT) -> str:
    """Both languages when they fit one GSM-7 SMS, else the Indonesian text alone."""
    tail = template.sms_tail.format_map(values)
    first = template.sms.id.format_map(values)
    both = first + SEPARATOR + template.sms.en.format_map(values)
    for text in (both, first):
        full = f"{text} {tail}" if tail else text
        size = gsm7_length(full)
        if size is not None and size <= limit:
            return full
    return f"{first} {tail}".strip()


def render(kind: str, facts: Mapping[str, Any]) -> Rendered:
    """The message ``kind`` with ``facts`` (KeyError for a kind that has no template)."""
    template = TEMPLATES[kind]
    values = _values(facts)
    body_id = template.body.id.format_map(values)
    body_en = template.body.en.format_map(values)
    chat = f"{body_id}\n\n{body_en}"
    footer = ""
    if values["optout"]:
        footer = (
            "\n\n-- \n"
            + EMAIL_FOOTER.id.format_map(values)
            + "\n"
            + EMAIL_FOOTER.en.format_map(values)
        )
    return Rendered(
        subject=template.subject.id.format_map(values)
        + SEPARATOR
        + template.subject.en.format_map(values),
        body=chat + footer,
        chat=chat,
        sms=sms_text(template, values),
    )


def quiet_until(now: datetime, start: time, end: time) -> datetime | None:
    """When the quiet hours around ``now`` end (UTC), or None outside them. ``start`` and
    ``end`` are WIB wall times; the window may wrap midnight (21:00–07:00)."""
    local = now.astimezone(WIB)
    at = local.time()
    wraps = start > end
    inside = (at >= start or at < end) if wraps else (start <= at < end)
    if not inside:
        return None
    end_day = local.date()
    if wraps and at >= start:
        end_day += timedelta(days=1)
    return datetime.combine(end_day, end, tzinfo=WIB).astimezone(now.tzinfo)
