from __future__ import annotations

import pytest

from courier.domain.handover import (
    HandoverStep,
    Relation,
    classify_relation,
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
        (Relation.UNKNOWN, False, HandoverStep.EXCEPTION),
    ],
)
def test_handover_policy(relation: Relation, matches: bool, step: HandoverStep) -> None:
    outcome = handover_outcome(relation, matches)
    assert outcome.step is step
    assert outcome.reason


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
