"""The regions lookup behind the opt-in form's cascading address (province → regency/city →
district → village, with each village's postal code), from the bundled Kemendagri dataset
(courier.domain.regions). No database: the answers change only with a new release, so the web
layer serves them with a validator (ETag) and a day of public caching."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from courier.domain import regions

LEVELS = ("province", "regency", "district", "village")


@dataclass(frozen=True, slots=True)
class Place:
    code: str
    name: str
    postal_code: str | None = None  # villages only


@dataclass(frozen=True, slots=True)
class Places:
    parent: str | None  # None: the provinces
    level: str  # of the items
    items: tuple[Place, ...]


@cache
def dataset_version() -> str:
    """A short digest of the bundled data: the ETag's base (a new dataset, new validators)."""
    raw = resources.files("courier.domain").joinpath("data", "regions.tsv.gz").read_bytes()
    return hashlib.sha256(raw).hexdigest()[:16]


def children(code: str | None) -> Places | None:
    """The provinces (``code`` None), or the places one level under ``code``; None when the
    code is not a province, regency or district of the dataset."""
    if code is None:
        return Places(None, "province", tuple(Place(p.code, p.name) for p in regions.provinces()))
    norm = regions.normalise_code(code)
    if norm is None:
        return None
    if regions.lookup_province(norm) is not None:
        found = [Place(r.code, r.name) for r in regions.regencies_of(norm)]
        return Places(norm, "regency", tuple(found))
    if regions.lookup_regency(norm) is not None:
        found = [Place(d.code, d.name) for d in regions.districts_of(norm)]
        return Places(norm, "district", tuple(found))
    if regions.lookup_district(norm) is not None:
        found = [Place(v.code, v.name, v.postal_code) for v in regions.villages_of(norm)]
        return Places(norm, "village", tuple(found))
    return None
