"""`courier office|user|token`: offices first, accounts with argon2 passwords, tokens printed once
that the HTTP API then accepts — and refuses once revoked; on both backends."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from core.clock import ManualClock
from courier import config
from courier.cli import main
from courier.context import AppContext
from courier.db.engine import make_engine, make_sessions
from courier.db.models import ApiToken, AuditEntry, Office, StaffUser
from courier.services import hashing
from courier.web.app import create_app

CONFIG = """
database_url = "{url}"
[log]
level = "warning"

[[offices]]
code = "BLT"
name = "Kantor Imigrasi Kelas II Non TPI Blitar"
home_regency_codes = ["35.05", "35.72"]
pickup_slots = ["10:00", "15:00"]
[offices.sender]
contact = "Seksi Dokumen Perjalanan"
phone = "0342-801344"
street = "Jl. Sudanco Supriyadi No. 40"
regency_code = "35.72"
district_code = "35.72.03"
postal_code = "66133"

[[offices]]
code = "MLG"
name = "Kantor Imigrasi Kelas I TPI Malang"
home_regency_codes = ["35.73", "35.07"]
collect_days = 30
[offices.sender]
contact = "Kanim Malang"
phone = "0341-491039"
street = "Jl. R. Panji Suroso No. 4"
regency_code = "35.73"
district_code = "35.73.03"
postal_code = "65126"
"""


@pytest.fixture
def cfg(db_url: str, tmp_path: Path) -> str:
    path = tmp_path / "courier.toml"
    path.write_text(CONFIG.format(url=db_url))
    return str(path)


def _rows(db_url: str, model: type) -> list:  # type: ignore[type-arg]
    async def read() -> list:  # type: ignore[type-arg]
        engine = make_engine(db_url)
        try:
            async with make_sessions(engine)() as session:
                return list((await session.execute(select(model))).scalars())
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_office_sync_add_and_list(
    cfg: str, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", cfg, "office", "sync"]) == 0
    assert capsys.readouterr().out.splitlines() == ["office BLT: created", "office MLG: created"]
    assert main(["--config", cfg, "office", "sync"]) == 0
    assert "office BLT: unchanged" in capsys.readouterr().out
    audits = len(_rows(db_url, AuditEntry))

    assert (
        main(
            [
                "--config",
                cfg,
                "office",
                "add",
                "--code",
                "BLT",
                "--name",
                "Kanim Blitar",
                "--home-regency",
                "35.72",
                "--pickup-slot",
                "11:00",
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
        )
        == 0
    )
    assert "office BLT: updated" in capsys.readouterr().out
    assert len(_rows(db_url, AuditEntry)) == audits + 1
    blt = next(o for o in _rows(db_url, Office) if o.code == "BLT")
    assert blt.home_regency_codes == ["35.72"] and blt.pickup_slots == ["11:00"]

    bad = main(
        [
            "--config",
            cfg,
            "office",
            "add",
            "--code",
            "blitar",
            "--name",
            "X",
            "--home-regency",
            "3572",
        ]
    )
    assert bad == 1
    err = capsys.readouterr().err
    assert "$.code" in err and "$.name" in err and "$.home_regency_codes[0]" in err

    assert main(["--config", cfg, "office", "list"]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == ["BLT", "MLG"]


def test_user_add_hashes_the_password(
    cfg: str, db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    main(["--config", cfg, "office", "sync"])

    def add(username: str, password: str, office: str = "BLT", role: str = "dispatcher") -> int:
        monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
        return main(
            [
                "--config",
                cfg,
                "user",
                "add",
                "--office",
                office,
                "--username",
                username,
                "--role",
                role,
                "--password-stdin",
            ]
        )

    assert add("dewi.k", "kuda-lumping-2026") == 0
    (user,) = _rows(db_url, StaffUser)
    assert user.password_hash.startswith("$argon2id$")
    assert "kuda-lumping" not in user.password_hash
    assert hashing.argon2_verify(user.password_hash, "kuda-lumping-2026")
    assert not hashing.argon2_verify(user.password_hash, "kuda-lumping-2027")

    assert add("dewi.k", "kuda-lumping-2026") == 1  # taken
    assert add("budi", "short") == 1
    assert "$.password" in capsys.readouterr().err
    assert add("budi", "kuda-lumping-2026", office="XYZ") == 1  # unknown office
    with pytest.raises(SystemExit):
        add("budi", "kuda-lumping-2026", role="superuser")  # argparse refuses the role
    assert len(_rows(db_url, StaffUser)) == 1
    capsys.readouterr()

    assert main(["--config", cfg, "user", "list", "--office", "BLT"]) == 0
    assert capsys.readouterr().out.split("\t")[:3] == ["BLT", "dewi.k", "dispatcher"]


def test_token_add_works_over_http_until_revoked(
    cfg: str, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--config", cfg, "office", "sync"])
    capsys.readouterr()
    add = ["token", "add", "--office", "BLT", "--role", "intake", "--name", "simkim"]
    assert main(["--config", cfg, *add]) == 0
    captured = capsys.readouterr()
    token = captured.out.strip()
    assert token.startswith("cpt_") and len(token) >= 40
    assert "shown only this once" in captured.err and token not in captured.err
    (row,) = _rows(db_url, ApiToken)
    assert token not in row.token_hash and token.startswith(row.prefix)

    async def put_status() -> int:
        engine = make_engine(db_url)
        settings = config.from_mapping({"database_url": db_url})
        ctx = AppContext(settings, engine, make_sessions(engine), ManualClock())
        try:
            async with TestClient(TestServer(create_app(ctx))) as client:
                resp = await client.put(
                    "/api/v1/applications/BLT-2026-3001",
                    json={
                        "applicant_name": "A",
                        "date_of_birth": "1990-01-01",
                        "phone": "081234567890",
                    },
                    headers={"Authorization": f"Bearer {token}"},
                )
                return resp.status
        finally:
            await engine.dispose()

    assert asyncio.run(put_status()) == 201

    assert main(["--config", cfg, "token", "list"]) == 0
    listing = capsys.readouterr().out
    assert row.prefix in listing and token not in listing
    assert main(["--config", cfg, "token", "revoke", row.prefix]) == 0
    assert f"token {row.prefix} revoked" in capsys.readouterr().out
    assert asyncio.run(put_status()) == 401
    assert main(["--config", cfg, "token", "revoke", "zz"]) == 1  # too short to be safe
    actions = [e.action for e in _rows(db_url, AuditEntry)]
    assert actions.count("api_token.created") == 1 and actions.count("api_token.revoked") == 1


def test_token_for_a_person_is_tied_to_their_account(
    cfg: str, db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    main(["--config", cfg, "office", "sync"])
    monkeypatch.setattr("sys.stdin", io.StringIO("kuda-lumping-2026\n"))
    assert (
        main(
            [
                "--config",
                cfg,
                "user",
                "add",
                "--office",
                "BLT",
                "--username",
                "dewi.k",
                "--role",
                "dispatcher",
                "--password-stdin",
            ]
        )
        == 0
    )
    capsys.readouterr()
    add = ["token", "add", "--office", "BLT", "--name", "dewi's laptop"]
    # a token acting for a person has that person's role, at that person's office
    assert main(["--config", cfg, *add, "--role", "intake", "--user", "dewi.k"]) == 1
    assert "$.role" in capsys.readouterr().err
    assert main(["--config", cfg, *add, "--role", "dispatcher", "--user", "nobody"]) == 1
    assert "$.user" in capsys.readouterr().err
    assert _rows(db_url, ApiToken) == []
    assert main(["--config", cfg, *add, "--role", "dispatcher", "--user", "dewi.k"]) == 0
    (user,) = _rows(db_url, StaffUser)
    (token,) = _rows(db_url, ApiToken)
    assert token.staff_user_id == user.id and token.role == "dispatcher"
