"""Who received the passport, and what happens next (DESIGN §2.7).

Couriers write the receiver's relation to the addressee as free text ("YBS", "ISTRI",
"SATPAM", sometimes a name). :func:`classify_relation` turns it into a :class:`Relation`;
:func:`handover_outcome` applies the office's policy:

* the applicant in person → wait for the applicant to confirm on the tracking page;
* a family member (same family card, KK) or a holder of a power of attorney (surat kuasa) →
  a dispatcher reviews the proof;
* a relation we do not recognise → a dispatcher reviews it too (never silently "not the
  applicant");
* anyone else (a guard, a neighbour, the office) → an exception: it should not happen.

The relation vocabulary is data (:data:`VOCABULARY`: self/YBS, family/Keluarga, household/Orang
Serumah, neighbour/Tetangga, security guard/Satpam, office/Kantor, proxy, other), each entry with
its policy category. A relation that says "self" only counts when the receiver's name matches
the applicant's (:func:`receiver_matches`); an unknown relation with a matching name counts as
self.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass


class Relation(enum.StrEnum):
    SELF = "self"
    FAMILY = "family"
    PROXY = "proxy"  # holder of a surat kuasa: reviewed like family
    OTHER = "other"
    UNKNOWN = "unknown"


class HandoverStep(enum.StrEnum):
    AWAITING_APPLICANT_CONFIRMATION = "awaiting_applicant_confirmation"
    NEEDS_REVIEW = "needs_review"
    EXCEPTION = "exception"


@dataclass(frozen=True, slots=True)
class HandoverNext:
    step: HandoverStep
    reason: str  # English, for staff; no names


@dataclass(frozen=True, slots=True)
class RelationTerm:
    """One entry of the relation vocabulary: what couriers write, what it means, what the
    office's policy makes of it (:class:`Relation`), in Bahasa Indonesia and English."""

    key: str
    relation: Relation
    bahasa: str
    english: str
    words: tuple[str, ...]  # as couriers write them, normalised (upper case, no punctuation)


# The vocabulary as data, in the order it is checked: a word of an earlier entry wins, so
# "TETANGGA YBS" is a neighbour and "ANAK YBS" family. Phrases match on word boundaries.
VOCABULARY: tuple[RelationTerm, ...] = (
    RelationTerm(
        "neighbour",
        Relation.OTHER,
        "Tetangga",
        "neighbour",
        ("TETANGGA", "NEIGHBOR", "NEIGHBOUR", "RT", "RW", "PAK RT", "KETUA RT", "RT SETEMPAT"),
    ),
    RelationTerm(
        "security_guard",
        Relation.OTHER,
        "Satpam",
        "security guard",
        ("SATPAM", "SECURITY", "SEKURITI", "PENJAGA", "GUARD"),
    ),
    RelationTerm(
        "office",
        Relation.OTHER,
        "Kantor",
        "workplace or office staff",
        (
            "KANTOR",
            "RESEPSIONIS",
            "RECEPTIONIST",
            "KARYAWAN",
            "PEGAWAI",
            "STAF",
            "STAFF",
            "OB",
            "REKAN",
            "REKAN KERJA",
            "COLLEAGUE",
        ),
    ),
    RelationTerm(
        "other",
        Relation.OTHER,
        "Lainnya",
        "someone else",
        (
            "TEMAN",
            "FRIEND",
            "ART",
            "PEMBANTU",
            "ASISTEN RUMAH TANGGA",
            "SOPIR",
            "SUPIR",
            "TUKANG",
            "KOS",
            "KOST",
            "PEMILIK KOS",
            "IBU KOS",
            "BAPAK KOS",
            "TOKO",
            "WARUNG",
            "LAINNYA",
            "LAIN LAIN",
        ),
    ),
    RelationTerm(
        "proxy",
        Relation.PROXY,
        "Penerima kuasa",
        "holder of a power of attorney",
        ("KUASA", "SURAT KUASA", "PENERIMA KUASA", "WAKIL", "PROXY"),
    ),
    RelationTerm(
        "household",
        Relation.FAMILY,
        "Orang serumah",
        "someone in the same household",
        ("ORANG SERUMAH", "SERUMAH", "SATU RUMAH", "HOUSEHOLD"),
    ),
    RelationTerm(
        "family",
        Relation.FAMILY,
        "Keluarga",
        "family member",
        (
            "ISTRI",
            "ISTERI",
            "SUAMI",
            "ANAK",
            "ORANG TUA",
            "ORTU",
            "AYAH",
            "AYAHANDA",
            "IBUNDA",
            "BUNDA",
            "MAMA",
            "MAMAH",
            "MAMI",
            "PAPA",
            "PAPAH",
            "PAPI",
            "KAKAK",
            "ADIK",
            "ADEK",
            "KELUARGA",
            "MERTUA",
            "MENANTU",
            "NENEK",
            "KAKEK",
            "CUCU",
            "PAMAN",
            "BIBI",
            "TANTE",
            "KEPONAKAN",
            "SEPUPU",
            "IPAR",
            "SATU KK",
            "FAMILY",
            "WIFE",
            "HUSBAND",
            "SON",
            "DAUGHTER",
            "PARENT",
            "MOTHER",
            "FATHER",
            "SIBLING",
        ),
    ),
    RelationTerm(
        "self",
        Relation.SELF,
        "Yang bersangkutan (YBS)",
        "the addressee in person",
        (
            "YBS",
            "Y B S",
            "YANG BERSANGKUTAN",
            "ORANG YANG BERSANGKUTAN",
            "SENDIRI",
            "DIRI SENDIRI",
            "PENERIMA LANGSUNG",
            "PEMILIK",
            "ADDRESSEE",
            "SELF",
            "RECIPIENT",
            "CONSIGNEE",
        ),
    ),
)
UNKNOWN_TERM = RelationTerm("unknown", Relation.UNKNOWN, "Tidak dikenali", "not recognised", ())
_BY_KEY = {term.key: term for term in VOCABULARY}

# Titles that are also kin words: family only when they stand alone ("IBU", "IBU YBS"), a name
# when followed by one ("IBU SITI")
_TITLE_KIN = ("IBU", "BU", "BAPAK", "BPK", "PAK", "SAUDARA", "SAUDARI", "SDR", "SDRI")
_QUALIFIERS = frozenset({"YBS", "KANDUNG", "DARI", "NYA", "PENERIMA", "DARI YBS"})
_EMPTY = frozenset({"0", "NA", "N A", "TIDAK ADA", "NONE"})


def _words(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^A-Za-z0-9]+", " ", folded).upper().split())


def _has(words: str, phrases: tuple[str, ...]) -> bool:
    padded = f" {words} "
    return any(f" {p} " in padded for p in phrases)


def describe_relation(text: str) -> RelationTerm:
    """The vocabulary entry for a courier's relation text; :data:`UNKNOWN_TERM` when none fits
    (a bare name, an empty field, a word not in the vocabulary)."""
    words = _words(text)
    if not words or words in _EMPTY:
        return UNKNOWN_TERM
    for term in VOCABULARY:
        if term.key == "self":
            tokens = words.split()
            if tokens[0] in _TITLE_KIN and all(t in _QUALIFIERS for t in tokens[1:]):
                return _BY_KEY["family"]
        if _has(words, term.words):
            return term
    return UNKNOWN_TERM


def classify_relation(text: str) -> Relation:
    """Free relation text → policy category. Qualified kin ("ANAK YBS", "ISTRI DARI YBS") and the
    household are family; a landlord ("IBU KOS"), a guard or a neighbour is other; a bare name
    is unknown."""
    return describe_relation(text).relation


def handover_outcome(relation: Relation, receiver_matches_applicant: bool) -> HandoverNext:
    """The office's policy, from the relation and whether the receiver's name is the applicant's."""
    step = HandoverStep
    if relation in (Relation.SELF, Relation.UNKNOWN) and receiver_matches_applicant:
        return HandoverNext(
            step.AWAITING_APPLICANT_CONFIRMATION,
            "received by the applicant in person; waiting for the applicant's confirmation",
        )
    if relation is Relation.SELF:
        return HandoverNext(
            step.NEEDS_REVIEW,
            "courier recorded the addressee but the receiver's name differs from the applicant's",
        )
    if relation is Relation.FAMILY:
        return HandoverNext(
            step.NEEDS_REVIEW, "received by a family member: check the family card (KK)"
        )
    if relation is Relation.PROXY:
        return HandoverNext(
            step.NEEDS_REVIEW, "received by a proxy: check the power of attorney (surat kuasa)"
        )
    if relation is Relation.OTHER:
        return HandoverNext(
            step.EXCEPTION, "received by someone who is neither the applicant nor family"
        )
    # an unrecognised relation may well be family written in words we lack: a person decides,
    # it is never taken to mean "not the applicant"
    return HandoverNext(
        step.NEEDS_REVIEW,
        "relation not recognised and the receiver's name is not the applicant's: read the "
        "proof of delivery and ask the applicant who received it",
    )


# Honorifics and titles dropped from the front of a name; degrees after a comma are dropped too
_TITLES = frozenset(
    {
        "BPK",
        "BAPAK",
        "PAK",
        "BP",
        "IBU",
        "BU",
        "SDR",
        "SDRI",
        "SAUDARA",
        "SAUDARI",
        "TN",
        "TUAN",
        "NY",
        "NYONYA",
        "NN",
        "NONA",
        "MR",
        "MRS",
        "MS",
        "MISS",
        "HJ",
        "HAJI",
        "HAJJAH",
        "H",
        "DR",
        "DRS",
        "DRA",
        "IR",
        "PROF",
        "KH",
        "USTADZ",
        "UST",
        "MAS",
        "MBAK",
        "MBA",
    }
)


def _name_tokens(name: str) -> list[str]:
    head = name.split(",", 1)[0]  # "AHMAD FAUZI, S.KOM" → "AHMAD FAUZI"
    tokens = _words(head).split()
    while len(tokens) > 1 and tokens[0] in _TITLES:
        tokens.pop(0)
    return tokens


def receiver_matches(receiver_name: str, applicant_name: str) -> bool:
    """True when the receiver's name is the applicant's, ignoring case, spacing, punctuation,
    titles ("BPK.", "IBU", "H.") and degrees after a comma.

    Also accepted: the receiver's words in order within the applicant's, where a single letter
    stands for a word with that initial ("M. FAUZI" for "MUHAMMAD FAUZI"), provided at least two
    full words match, or one does and nothing of the applicant's name is left out. One shared
    given name alone ("AHMAD" for "AHMAD FAUZI") is not a match.
    """
    receiver, applicant = _name_tokens(receiver_name), _name_tokens(applicant_name)
    if not receiver or not applicant:
        return False
    if "".join(receiver) == "".join(applicant):  # "NUR HAYATI" == "NURHAYATI"
        return True
    full_matches, i = 0, 0
    for token in receiver:
        while i < len(applicant) and not _token_fits(token, applicant[i]):
            i += 1
        if i == len(applicant):
            return False
        full_matches += len(token) > 1
        i += 1
    return full_matches >= 2 or (full_matches >= 1 and len(receiver) == len(applicant))


def _token_fits(token: str, word: str) -> bool:
    return token == word or (len(token) == 1 and word.startswith(token))
