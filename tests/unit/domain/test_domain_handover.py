from __future__ import annotations

import pytest

from courier.domain.handover import (
    UNKNOWN_TERM,
    VOCABULARY,
    HandoverStep,
    Relation,
    classify_relation,
    describe_relation,
    handover_outcome,
    receiver_matches,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("YBS", Relation.SELF),
        ("ybs", Relation.SELF),
        ("Y.B.S.", Relation.SELF),
        ("Yang Bersangkutan", Relation.SELF),
        ("SENDIRI", Relation.SELF),
        ("ybs sendiri", Relation.SELF),
        ("ISTRI", Relation.FAMILY),
        ("Istri YBS", Relation.FAMILY),
        ("SUAMI", Relation.FAMILY),
        ("ANAK", Relation.FAMILY),
        ("anak ybs", Relation.FAMILY),
        ("ORANG TUA", Relation.FAMILY),
        ("Orang Serumah", Relation.FAMILY),
        ("KELUARGA", Relation.FAMILY),
        ("IBU", Relation.FAMILY),
        ("Ibu YBS", Relation.FAMILY),
        ("Ibu Kandung", Relation.FAMILY),
        ("SURAT KUASA", Relation.PROXY),
        ("Penerima kuasa", Relation.PROXY),
        ("SATPAM", Relation.OTHER),
        ("TETANGGA", Relation.OTHER),
        ("Tetangga YBS", Relation.OTHER),
        ("Ibu Kos", Relation.OTHER),
        ("Pemilik kos", Relation.OTHER),
        ("SECURITY", Relation.OTHER),
        ("", Relation.UNKNOWN),
        ("-", Relation.UNKNOWN),
        ("SITI AMINAH", Relation.UNKNOWN),
        ("Ibu Siti", Relation.UNKNOWN),  # a title before a name, not the mother
        ("BPK. AHMAD", Relation.UNKNOWN),
    ],
)
def test_classify_relation(text: str, expected: Relation) -> None:
    assert classify_relation(text) is expected


@pytest.mark.parametrize(
    ("relation", "matches", "step"),
    [
        (Relation.SELF, True, HandoverStep.AWAITING_APPLICANT_CONFIRMATION),
        (Relation.UNKNOWN, True, HandoverStep.AWAITING_APPLICANT_CONFIRMATION),
        (Relation.SELF, False, HandoverStep.NEEDS_REVIEW),
        (Relation.FAMILY, False, HandoverStep.NEEDS_REVIEW),
        (Relation.FAMILY, True, HandoverStep.NEEDS_REVIEW),
        (Relation.PROXY, False, HandoverStep.NEEDS_REVIEW),
        (Relation.OTHER, False, HandoverStep.EXCEPTION),
        (Relation.OTHER, True, HandoverStep.EXCEPTION),
        # an unrecognised relation is reviewed by a person, never taken as "not the applicant"
        (Relation.UNKNOWN, False, HandoverStep.NEEDS_REVIEW),
    ],
)
def test_handover_policy(relation: Relation, matches: bool, step: HandoverStep) -> None:
    outcome = handover_outcome(relation, matches)
    assert outcome.step is step
    assert outcome.reason


@pytest.mark.parametrize(
    ("text", "key", "step"),
    [
        # as couriers wrote them in notes and KETERANGAN fields (issue 9)
        ("YBS", "self", HandoverStep.NEEDS_REVIEW),
        ("Keluarga", "family", HandoverStep.NEEDS_REVIEW),
        ("Orang Serumah", "household", HandoverStep.NEEDS_REVIEW),
        ("ORANG SERUMAH", "household", HandoverStep.NEEDS_REVIEW),
        ("Serumah", "household", HandoverStep.NEEDS_REVIEW),
        ("Tetangga", "neighbour", HandoverStep.EXCEPTION),
        ("RT Setempat", "neighbour", HandoverStep.EXCEPTION),
        ("Satpam", "security_guard", HandoverStep.EXCEPTION),
        ("Security", "security_guard", HandoverStep.EXCEPTION),
        ("Kantor", "office", HandoverStep.EXCEPTION),
        ("Resepsionis", "office", HandoverStep.EXCEPTION),
        ("Surat Kuasa", "proxy", HandoverStep.NEEDS_REVIEW),
        ("Pembantu", "other", HandoverStep.EXCEPTION),
        ("Sepupu jauh", "family", HandoverStep.NEEDS_REVIEW),
        ("Terima kasih telah menggunakan J&T Express", "unknown", HandoverStep.NEEDS_REVIEW),
        ("Pacar", "unknown", HandoverStep.NEEDS_REVIEW),
    ],
)
def test_vocabulary_entries_and_what_the_policy_makes_of_them(
    text: str, key: str, step: HandoverStep
) -> None:
    term = describe_relation(text)
    assert term.key == key
    assert classify_relation(text) is term.relation
    # a receiver whose name is not the applicant's: only the relation decides
    assert handover_outcome(term.relation, False).step is step


def test_vocabulary_is_complete_data() -> None:
    keys = [term.key for term in VOCABULARY]
    assert len(keys) == len(set(keys))
    for wanted in ("self", "family", "household", "neighbour", "security_guard", "office"):
        assert wanted in keys
    assert {term.relation for term in VOCABULARY} == set(Relation) - {Relation.UNKNOWN}
    for term in (*VOCABULARY, UNKNOWN_TERM):
        assert term.bahasa and term.english
        for word in term.words:  # every word is written as it is compared
            assert word == " ".join(word.split()).upper()
            assert describe_relation(word).relation is term.relation


def test_policy_reasons_name_the_document_to_check() -> None:
    assert "KK" in handover_outcome(Relation.FAMILY, False).reason
    assert "surat kuasa" in handover_outcome(Relation.PROXY, False).reason


@pytest.mark.parametrize(
    ("receiver", "applicant"),
    [
        ("Ahmad Fauzi", "AHMAD FAUZI"),
        ("  ahmad   fauzi ", "AHMAD FAUZI"),
        ("BPK. AHMAD FAUZI", "AHMAD FAUZI"),
        ("Bpk Ahmad Fauzi", "Ahmad Fauzi, S.Kom"),
        ("IBU SITI AMINAH", "SITI AMINAH"),
        ("Ny. Siti Aminah", "SITI AMINAH"),
        ("H. Ahmad Fauzi", "AHMAD FAUZI"),
        ("NURHAYATI", "NUR HAYATI"),
        ("M. FAUZI", "MUHAMMAD FAUZI"),
        ("AHMAD FAUZI", "MUHAMMAD AHMAD FAUZI"),
        ("SUPARMAN", "SUPARMAN"),
        ("Siti Aminah", "SITI AMÍNAH"),
    ],
)
def test_receiver_matches(receiver: str, applicant: str) -> None:
    assert receiver_matches(receiver, applicant)


@pytest.mark.parametrize(
    ("receiver", "applicant"),
    [
        ("AHMAD", "AHMAD FAUZI"),  # one shared given name is not enough
        ("SITI AMINAH", "AHMAD FAUZI"),
        ("FAUZI AHMAD", "AHMAD FAUZI"),  # order matters
        ("", "AHMAD FAUZI"),
        ("A", "AHMAD"),
        ("BUDI SANTOSO", "BUDI SANTOSA"),
    ],
)
def test_receiver_does_not_match(receiver: str, applicant: str) -> None:
    assert not receiver_matches(receiver, applicant)
