"""Indonesia's administrative regions and postal codes: look-ups and address validation.

The data is Kepmendagri 300.2.2-2138/2025 (38 provinces, 514 regencies/cities, 7,285 districts,
83,762 villages) with one postal code per village, shipped as ``data/regions.tsv.gz`` (source and
licence in ``data/README.md``). It is read once, on first use (~0.3 s).

Codes are Kemendagri's dotted codes: province ``"35"``, regency/city ``"35.73"``, district
(kecamatan) ``"35.73.02"``, village (kelurahan/desa) ``"35.73.02.1001"``. Undotted digits
(``"3573"``) are accepted and normalised by :func:`normalise_code`. Province and regency names are
upper case as Kemendagri writes them (``"KOTA MALANG"``); district and village names as the source.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from schemas import FieldError

_LEVEL_BY_DIGITS = {2: 1, 4: 2, 6: 3, 10: 4}
_LEVELS = ("province", "regency", "district", "village")
_POSTAL = re.compile(r"[0-9]{5}")


@dataclass(frozen=True, slots=True)
class Province:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class Regency:
    code: str
    name: str
    province: Province


@dataclass(frozen=True, slots=True)
class District:
    code: str
    name: str
    regency_code: str


@dataclass(frozen=True, slots=True)
class Village:
    code: str
    name: str
    district_code: str
    postal_code: str


@dataclass(frozen=True, slots=True)
class _Index:
    provinces: dict[str, Province]
    regencies: dict[str, Regency]
    districts: dict[str, District]
    villages: dict[str, Village]
    children: dict[str, list[str]]  # parent code -> child codes, in code order


@cache
def _index() -> _Index:
    raw = resources.files("courier.domain").joinpath("data", "regions.tsv.gz").read_bytes()
    lines = gzip.decompress(raw).decode("utf-8").splitlines()
    idx = _Index({}, {}, {}, {}, {})
    # rows are sorted by code, so every parent is seen before its children
    for line in lines[1:]:
        code, name, postal = line.split("\t")
        parent = code.rpartition(".")[0]
        if parent:
            idx.children.setdefault(parent, []).append(code)
        if len(code) == 2:
            idx.provinces[code] = Province(code, name)
        elif len(code) == 5:
            idx.regencies[code] = Regency(code, name, idx.provinces[parent])
        elif len(code) == 8:
            idx.districts[code] = District(code, name, parent)
        else:
            idx.villages[code] = Village(code, name, parent, postal)
    return idx


def normalise_code(raw: str) -> str | None:
    """``"3573"`` or ``"35.73"`` → ``"35.73"``; None when it is not a region code's shape."""
    digits = raw.strip().replace(".", "")
    if not digits.isascii() or not digits.isdigit() or len(digits) not in _LEVEL_BY_DIGITS:
        return None
    parts = [digits[0:2], digits[2:4], digits[4:6], digits[6:10]]
    return ".".join(p for p in parts if p)


def _norm(code: str) -> str:
    return normalise_code(code) or code


def lookup_province(code: str) -> Province | None:
    return _index().provinces.get(_norm(code))


def lookup_regency(code: str) -> Regency | None:
    return _index().regencies.get(_norm(code))


def lookup_district(code: str) -> District | None:
    return _index().districts.get(_norm(code))


def lookup_village(code: str) -> Village | None:
    return _index().villages.get(_norm(code))


def provinces() -> list[Province]:
    return list(_index().provinces.values())


def regencies_of(province_code: str) -> list[Regency]:
    idx = _index()
    return [idx.regencies[c] for c in idx.children.get(_norm(province_code), [])]


def districts_of(regency_code: str) -> list[District]:
    idx = _index()
    return [idx.districts[c] for c in idx.children.get(_norm(regency_code), [])]


def villages_of(district_code: str) -> list[Village]:
    idx = _index()
    return [idx.villages[c] for c in idx.children.get(_norm(district_code), [])]


def postal_codes_of(code: str) -> frozenset[str]:
    """Every postal code used by the villages under a district, regency or province code."""
    idx = _index()
    found: set[str] = set()
    pending = [_norm(code)]
    while pending:
        current = pending.pop()
        village = idx.villages.get(current)
        if village is not None:
            found.add(village.postal_code)
        pending.extend(idx.children.get(current, ()))
    return frozenset(found)


def validate_address(
    *,
    province_code: str,
    regency_code: str,
    district_code: str,
    village_code: str,
    postal_code: str,
    prefix: str = "$.address",
) -> list[FieldError]:
    """Every inconsistency in an address's region codes and postal code, one error per field.

    Checked:

    * each code is a known code of its level (province, regency/city, district, village);
    * each known code lies under the one given above it (regency in province, district in
      regency, village in district) — so one wrong level gives one error, at that level;
    * the postal code is five digits and is a postal code of the village's **district**
      (the village's own code first, but postal zones do not follow village lines and the data
      records one code per village, so any code used in the same district is accepted). When the
      village is unknown, the nearest known level (district, then regency) bounds it instead.

    Paths are ``{prefix}.province_code`` … ``{prefix}.postal_code``. Messages name codes, never
    street lines or names.
    """
    errors: list[FieldError] = []
    idx = _index()

    def known(field: str, level: str, raw: str, table: Mapping[str, object]) -> str | None:
        code = normalise_code(raw)
        if code is None or code.count(".") != _LEVELS.index(level):
            errors.append(FieldError(f"{prefix}.{field}", f"{level} code has the wrong shape"))
            return None
        if code not in table:
            errors.append(FieldError(f"{prefix}.{field}", f"{level} {code} does not exist"))
            return None
        return code

    prov = known("province_code", "province", province_code, idx.provinces)
    reg = known("regency_code", "regency", regency_code, idx.regencies)
    dist = known("district_code", "district", district_code, idx.districts)
    vill = known("village_code", "village", village_code, idx.villages)

    for child, parent, field, child_level, parent_level in (
        (reg, prov, "regency_code", "regency", "province"),
        (dist, reg, "district_code", "district", "regency"),
        (vill, dist, "village_code", "village", "district"),
    ):
        if child and parent and child.rpartition(".")[0] != parent:
            errors.append(
                FieldError(
                    f"{prefix}.{field}", f"{child_level} {child} is not in {parent_level} {parent}"
                )
            )

    postal = postal_code.strip()
    if not _POSTAL.fullmatch(postal):
        errors.append(FieldError(f"{prefix}.postal_code", "postal code must be 5 digits"))
        return errors
    village = idx.villages.get(vill) if vill else None
    if village is not None:
        area, allowed = f"district {village.district_code}", postal_codes_of(village.district_code)
    elif dist:
        area, allowed = f"district {dist}", postal_codes_of(dist)
    elif reg:
        area, allowed = f"regency {reg}", postal_codes_of(reg)
    else:
        return errors
    if postal not in allowed:
        hint = f" (village {village.code}: {village.postal_code})" if village else ""
        errors.append(
            FieldError(f"{prefix}.postal_code", f"postal code {postal} is not used in {area}{hint}")
        )
    return errors
