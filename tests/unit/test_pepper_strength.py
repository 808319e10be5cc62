"""The passport pepper must be long and varied (issue 10: a pepper of 16 × "a" passed):
`serve`/`work` refuse a weak one at startup and `check-config` reports it, naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from courier import config
from courier.cli import main
from courier.cli.base import require_secrets

STRONG = (
    "519faf265c8a5bdbc7ba8a4fa5f50882",  # secrets.token_hex(16)
    "mtxvsX2odwQMy019HUQlonVFqWAX5Q69vNlGF4kYKUs",  # secrets.token_urlsafe(32)
)
WEAK = {
    "a" * 16: "16 characters",
    "a" * 32: "too repetitive",
    "ab" * 20: "too repetitive",
    "serve-test-pepper-0123456789": "28 characters",
    "aaaaaaaaaaaaaaaaaaaaaaaabcdefghijk": "too repetitive",  # 11 distinct, but mostly one
}


def test_strength_needs_length_and_variety() -> None:
    for pepper in STRONG:
        assert config.pepper_problem(pepper) is None, pepper
    for pepper, why in WEAK.items():
        problem = config.pepper_problem(pepper)
        assert problem is not None and why in problem, pepper


@pytest.mark.parametrize("pepper", list(WEAK))
def test_startup_refuses_a_weak_pepper_naming_the_setting(
    pepper: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        require_secrets(config.from_mapping({"security": {"passport_pepper": pepper}}))
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "security.passport_pepper" in err and "COURIER_SECURITY__PASSPORT_PEPPER" in err
    assert pepper not in err  # the secret itself is never echoed


def test_check_config_reports_a_weak_pepper(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "courier.toml"
    path.write_text(f'[security]\npassport_pepper = "{"a" * 32}"\n')
    assert main(["--config", str(path), "check-config"]) == 2
    err = capsys.readouterr().err
    assert "security.passport_pepper" in err and "too repetitive" in err
    path.write_text(f'[security]\npassport_pepper = "{STRONG[1]}"\n')
    assert main(["--config", str(path), "check-config"]) == 0
