"""`courier serve` as a real process: refuses the placeholder passport pepper and an unmigrated
database, serves /healthz and /readyz on the port it reports, and exits 0 on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from courier import config
from courier.cli.base import require_secrets

COURIER = Path(sys.executable).with_name("courier")


def _env(tmp_path: Path) -> dict[str, str]:
    # no config file in tmp_path: defaults plus these overrides
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("COURIER_")},
        "COURIER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.sqlite3'}",
        "COURIER_LOG__FORMAT": "json",
        "COURIER_SECURITY__PASSPORT_PEPPER": "serve-test-pepper-0123456789-abcdefgh",
    }


def test_serve_refuses_the_placeholder_pepper(tmp_path: Path) -> None:
    env = {k: v for k, v in _env(tmp_path).items() if k != "COURIER_SECURITY__PASSPORT_PEPPER"}
    done = subprocess.run(
        [str(COURIER), "serve", "--port", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "security.passport_pepper" in done.stderr
    assert "COURIER_SECURITY__PASSPORT_PEPPER" in done.stderr
    assert "listening" not in done.stdout


def test_the_placeholder_pepper_needs_an_explicit_allowance(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as refused:
        require_secrets(config.from_mapping({}))
    assert refused.value.code == 2
    assert "allow_default_pepper" in capsys.readouterr().err
    require_secrets(config.from_mapping({"security": {"allow_default_pepper": True}}))
    require_secrets(
        config.from_mapping(
            {"security": {"passport_pepper": "serve-test-pepper-0123456789-abcdefgh"}}
        )
    )


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env = _env(tmp_path)
    done = subprocess.run(
        [str(COURIER), "serve", "--port", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2  # like every command on an unmigrated database (issue 10)
    assert "courier migrate" in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.glob("*.sqlite3"))  # and it created no database file


def test_serve_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = _env(tmp_path)
    subprocess.run(
        [str(COURIER), "migrate"],
        env=env,
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=60,
    )
    proc = subprocess.Popen(
        [str(COURIER), "serve", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the server reports its address
        assert line.startswith("listening on http://127.0.0.1:"), line
        base = line.split()[-1]
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as resp:
            assert json.load(resp) == {"status": "ok"}
        with urllib.request.urlopen(f"{base}/readyz", timeout=10) as resp:
            assert json.load(resp)["status"] == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        stderr = proc.stderr.read() if proc.stderr else ""
        events = [json.loads(x)["event"] for x in stderr.splitlines() if x.startswith("{")]
        assert "serve_stopping" in events and "http_request" in events
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
