"""Phone numbers to E.164, the one form stored and sent to couriers (``+6281234567890``)."""

from __future__ import annotations

import phonenumbers


def to_e164(raw: str, region: str = "ID") -> str:
    """Normalise ``raw`` (``0812-3456-7890``, ``+62 812 3456 7890``, ``6281234567890``…).

    ``region`` is where a number without a country code is dialled from. Raises ``ValueError``
    when ``raw`` is not a valid number; the message never repeats the number (it is PII).
    """
    text = raw.strip()
    if not text:
        raise ValueError("phone number is empty")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("phone number could not be read: use digits, e.g. 0812…") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError(
            "phone number is not a valid number (wrong length or unknown prefix for its country)"
        )
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def is_mobile(e164: str) -> bool:
    """True for a mobile (or mobile-or-fixed) number: couriers call and message these."""
    number = phonenumbers.parse(e164, None)
    kind = phonenumbers.number_type(number)
    types = phonenumbers.PhoneNumberType
    return kind in (types.MOBILE, types.FIXED_LINE_OR_MOBILE)
