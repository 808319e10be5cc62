"""Who may have a passport delivered home (DESIGN §2.2).

Delivery exists for applicants who would otherwise travel back to the office just to collect:
the destination regency must lie outside the office's home regencies. Inside the home area only
the office's priority cases qualify (the "Sambang" programmes: elderly, disabled, sick).
Every answer carries a plain message in Bahasa Indonesia and in English for the applicant.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

PRIORITY_KINDS: frozenset[str] = frozenset({"elderly", "disabled", "sick"})

_PRIORITY_ID = {"elderly": "lansia", "disabled": "penyandang disabilitas", "sick": "sakit"}
_PRIORITY_EN = {"elderly": "elderly", "disabled": "with a disability", "sick": "sick"}


@dataclass(frozen=True, slots=True)
class Eligibility:
    ok: bool
    code: str  # stable, for the API and tests: outside_home_area | priority_case | home_area
    message_id: str
    message_en: str


def check_eligibility(
    *,
    home_regency_codes: Collection[str],
    destination_regency_code: str,
    priority_kind: str | None,
) -> Eligibility:
    """Decide from the destination regency (e.g. ``"35.73"``) and the applicant's priority kind.

    Raises ``ValueError`` for a priority kind outside :data:`PRIORITY_KINDS`: that is bad data
    from intake, not an applicant's mistake.
    """
    if priority_kind is not None and priority_kind not in PRIORITY_KINDS:
        raise ValueError(f"unknown priority kind {priority_kind!r}")
    if destination_regency_code not in home_regency_codes:
        return Eligibility(
            ok=True,
            code="outside_home_area",
            message_id=(
                "Alamat tujuan berada di luar wilayah kerja kantor imigrasi. "
                "Paspor Anda dapat dikirim ke alamat ini."
            ),
            message_en=(
                "The delivery address is outside the immigration office's home area. "
                "Your passport can be delivered to this address."
            ),
        )
    if priority_kind is not None:
        return Eligibility(
            ok=True,
            code="priority_case",
            message_id=(
                f"Anda terdaftar sebagai pemohon prioritas ({_PRIORITY_ID[priority_kind]}). "
                "Paspor Anda dapat dikirim ke rumah walaupun alamat berada di wilayah kantor."
            ),
            message_en=(
                f"You are registered as a priority applicant ({_PRIORITY_EN[priority_kind]}). "
                "Your passport can be delivered home even though the address is in the "
                "office's home area."
            ),
        )
    return Eligibility(
        ok=False,
        code="home_area",
        message_id=(
            "Alamat tujuan berada di kota/kabupaten yang sama dengan kantor imigrasi, "
            "sehingga paspor tidak dikirim. Layanan antar hanya untuk pemohon yang tinggal di "
            "luar wilayah ini, atau pemohon prioritas (lansia, penyandang disabilitas, sakit). "
            "Silakan ambil paspor di loket kantor imigrasi paling lambat 30 hari setelah "
            "paspor terbit; bila lewat, paspor dibatalkan."
        ),
        message_en=(
            "The delivery address is in the same city/regency as the immigration office, so "
            "the passport is not delivered. Delivery is only for applicants who live outside "
            "this area, or priority applicants (elderly, disabled, sick). Please collect your "
            "passport at the office's counter within 30 days of issue; after that it is "
            "cancelled."
        ),
    )
