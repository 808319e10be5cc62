"""A first deployment, tried from the README (issue 10): the example configuration passes its own
check, check-config reports what `serve`/`work` and `office sync` would refuse, the office's
sender block is checked against the courier's limits, every command on an unmigrated database
says "run `courier migrate`" without creating a file, global options go anywhere, and a
password needs a terminal or --password-stdin. In-process, through ``courier.cli.main``."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select

from courier.cli import main
from courier.db.engine import make_engine, make_sessions
from courier.db.models import Office

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "courier.example.toml"
PEPPER = "Yq3-zt0QpLk8WmR2vX7nJc5Hs9Dg4Fb6"

SENDER_FLAGS = [
    "--sender-contact",
    "Seksi Dokumen Perjalanan",
    "--sender-phone",
    "0342-801344",
    "--sender-street",
    "Jl. Sudanco Supriyadi No. 40",
    "--sender-regency-code",
    "35.72",
    "--sender-district-code",
    "35.72.03",
    "--sender-postcode",
    "66133",
]
OFFICE_ADD = [
    "office",
    "add",
    "--code",
    "BLT",
    "--name",
    "Kantor Imigrasi Kelas II Non TPI Blitar",  # 39 characters: J&T takes 30
    "--home-regency",
    "35.72",
]


@pytest.fixture
def pepper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURIER_SECURITY__PASSPORT_PEPPER", PEPPER)


def _example_with(tmp_path: Path, old: str, new: str) -> str:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "courier.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return str(path)


def test_the_example_configuration_passes_check_config(
    pepper: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "--config", str(EXAMPLE)]) == 0
    assert "configuration valid" in capsys.readouterr().out


def test_check_config_refuses_the_placeholder_pepper_like_serve_does(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COURIER_SECURITY__PASSPORT_PEPPER", raising=False)
    assert main(["--config", str(EXAMPLE), "check-config"]) == 2
    assert "security.passport_pepper is the built-in placeholder" in capsys.readouterr().err


def test_check_config_refuses_an_office_without_courier_settings_or_a_fitting_sender(
    pepper: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no_jnt = _example_with(tmp_path, "[couriers.jnt]", "[couriers.unused_jnt]")
    # an unknown courier code is refused by the schema; so route the office to posind instead
    routed = _example_with(tmp_path, 'courier = "jnt"', 'courier = "posind"')
    assert main(["check-config", "--config", routed]) == 2
    assert (
        "$.offices[0].courier: posind has no settings: add a [couriers.posind] section"
        in capsys.readouterr().err
    )
    del no_jnt
    no_contact = _example_with(
        tmp_path, 'contact = "Seksi Dokumen Perjalanan"\n', 'phone_note = "x"\n'
    )
    assert main(["check-config", "--config", no_contact]) == 2  # unknown key: the schema says
    assert "$.offices[0].sender" in capsys.readouterr().err
    no_contact = _example_with(tmp_path, 'contact = "Seksi Dokumen Perjalanan"\n', "")
    assert main(["check-config", "--config", no_contact]) == 2
    err = capsys.readouterr().err
    assert "$.offices[0].name: J&T Express shipper_name: 39 characters, at most 30" in err
    no_sender = tmp_path / "no_sender.toml"
    text = EXAMPLE.read_text(encoding="utf-8")
    no_sender.write_text(text[: text.index("[offices.sender]")], encoding="utf-8")
    assert main(["check-config", "--config", str(no_sender)]) == 2
    assert "$.offices[0].sender: required" in capsys.readouterr().err


def test_office_add_takes_the_sender_block_and_checks_it_against_jnt(
    db_url: str, tmp_path: Path, pepper: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'database_url = "{db_url}"\n', encoding="utf-8")
    # no sender block: refused, nothing written
    assert main([*OFFICE_ADD, "--config", str(cfg)]) == 1
    assert "office BLT: $.sender: required" in capsys.readouterr().err
    # no contact: the 39-character office name would be the shipper name
    flags = SENDER_FLAGS[2:]
    assert main([*OFFICE_ADD, *flags, "--config", str(cfg)]) == 1
    assert "$.name: J&T Express shipper_name: 39 characters, at most 30" in (
        capsys.readouterr().err
    )
    long_phone = [*SENDER_FLAGS]
    long_phone[3] = "+62 342 801 3449"
    assert main([*OFFICE_ADD, *long_phone, "--config", str(cfg)]) == 1
    assert "$.sender.phone: J&T Express shipper_phone: 16 characters, at most 15" in (
        capsys.readouterr().err
    )
    assert _offices(db_url) == []
    assert main([*OFFICE_ADD, *SENDER_FLAGS, "--config", str(cfg)]) == 0
    assert "office BLT: created" in capsys.readouterr().out
    [(code, sender)] = _offices(db_url)
    assert code == "BLT" and sender["contact"] == "Seksi Dokumen Perjalanan"
    assert sender["postal_code"] == "66133"


def test_office_sync_refuses_an_office_jnt_would_refuse_and_writes_nothing(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'database_url = "sqlite+aiosqlite:///courier.sqlite3"', f'database_url = "{db_url}"'
    )
    second = '\n[[offices]]\ncode = "MLG"\nname = "Kanim Malang"\nhome_regency_codes = ["35.73"]\n'
    cfg = tmp_path / "c.toml"
    cfg.write_text(text + second, encoding="utf-8")
    assert main(["office", "sync", "--config", str(cfg)]) == 1
    assert "office MLG: $.sender: required" in capsys.readouterr().err
    assert _offices(db_url) == []  # BLT, though fine, was not written either
    cfg.write_text(text, encoding="utf-8")
    assert main(["office", "sync", "--config", str(cfg)]) == 0
    assert [code for code, _ in _offices(db_url)] == ["BLT"]


def _offices(db_url: str) -> list[tuple[str, dict[str, str]]]:
    import asyncio

    async def read() -> list[tuple[str, dict[str, str]]]:
        engine = make_engine(db_url)
        try:
            async with make_sessions(engine)() as session:
                rows = (await session.execute(select(Office.code, Office.sender))).all()
                return [(str(c), dict(s)) for c, s in rows]
        finally:
            await engine.dispose()

    return asyncio.run(read())


@pytest.mark.parametrize(
    "command",
    [
        ["office", "list"],
        ["office", "sync"],
        ["user", "list"],
        ["token", "list"],
        ["work", "--once"],
        ["import", "rows.csv", "--office", "BLT"],
        ["serve", "--port", "0"],
    ],
)
def test_an_unmigrated_database_says_run_migrate_and_creates_no_file(
    command: list[str],
    tmp_path: Path,
    pepper: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rows.csv").write_text("application_no\n", encoding="utf-8")
    text = EXAMPLE.read_text(encoding="utf-8")
    (tmp_path / "courier.toml").write_text(text, encoding="utf-8")
    with pytest.raises(SystemExit) as stopped:
        main(command)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "run `courier migrate`" in err and "Traceback" not in err
    assert not (tmp_path / "courier.sqlite3").exists()

    # a file that exists but holds no schema (sqlite3 made it): the same advice
    sqlite3.connect(tmp_path / "courier.sqlite3").close()
    with pytest.raises(SystemExit) as again:
        main(command)
    assert again.value.code == 2
    assert "the database has no schema yet: run `courier migrate`" in capsys.readouterr().err


def test_global_options_go_before_or_after_the_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pepper: None
) -> None:
    assert main(["--config", str(EXAMPLE), "check-config"]) == 0
    assert main(["check-config", "--config", str(EXAMPLE)]) == 0
    missing = str(tmp_path / "nowhere.toml")
    with pytest.raises(SystemExit) as stopped:
        main(["office", "list", "--config", missing])  # the subcommand's --config is used
    assert stopped.value.code == 2
    assert "nowhere.toml" in capsys.readouterr().err
    # given at both places, the one after the subcommand wins (it is parsed last)
    with pytest.raises(SystemExit):
        main(["--config", str(EXAMPLE), "office", "list", "--config", missing])
    assert "nowhere.toml" in capsys.readouterr().err


def test_user_add_without_a_terminal_asks_for_password_stdin(
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'database_url = "{db_url}"\n', encoding="utf-8")
    assert main([*OFFICE_ADD, *SENDER_FLAGS, "--config", str(cfg)]) == 0
    add = ["user", "add", "--office", "BLT", "--username", "dewi", "--role", "dispatcher"]
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal, nothing piped
    assert main([*add, "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "--password-stdin" in err and "EOFError" not in err
    monkeypatch.setattr("sys.stdin", io.StringIO("kuda-lumping-2026\n"))
    assert main([*add, "--password-stdin", "--config", str(cfg)]) == 0
    assert "user dewi" in capsys.readouterr().out
