"""`courier --help` lists the commands, and every command and sub-command has a useful --help,
run as the installed console script in subprocesses."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import tomli_w

from courier.cli import build_parser
from simulators import jnt as jnt_simulator

COURIER = Path(sys.executable).with_name("courier")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _useful(help_text: str) -> bool:
    """More than a usage line: a description or option help of some substance."""
    body = help_text.split("\n\n", 1)[1] if "\n\n" in help_text else ""
    return len(body.strip()) > 40


def test_help_lists_every_command_and_each_help_is_useful() -> None:
    """In-process: the same parser the console script builds, no interpreter start-up each."""
    parser = build_parser()
    commands = _subcommands(parser)
    assert {"serve", "import", "migrate", "user", "token", "office"} <= set(commands)
    top = parser.format_help()
    assert top.startswith("usage: courier")
    for name, child in commands.items():
        assert f"    {name} " in top or f"    {name}\n" in top, name  # listed with help
        text = child.format_help()
        assert text.startswith(f"usage: courier {name}"), name
        assert _useful(text), f"{name} --help says too little"
    assert "--office" in commands["import"].format_help()
    assert "line" in commands["import"].format_help()
    assert "--host" in commands["serve"].format_help()
    assert "--port" in commands["serve"].format_help()


def test_the_installed_console_script_answers_help(tmp_path: Path) -> None:
    """One smoke test of the real entry point (the rest is checked in-process above)."""
    env = {**os.environ, "COURIER_CONFIG": str(tmp_path / "absent.toml")}  # --help needs none
    done = subprocess.run(
        [str(COURIER), "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,  # a bound on a hung process, not a speed expectation
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: courier")
    assert list(tmp_path.iterdir()) == []  # --help writes nothing


def test_every_sub_action_has_useful_help() -> None:
    """Nested actions (user add, token revoke, …) are checked in-process: same parser, no
    interpreter start-up per action."""
    checked = []
    for name, parser in _subcommands(build_parser()).items():
        for action, child in _subcommands(parser).items():
            text = child.format_help()
            assert text.startswith(f"usage: courier {name} {action}"), text
            assert _useful(text), f"{name} {action} --help says too little"
            checked.append(f"{name} {action}")
    assert {"user add", "token add", "token revoke", "office sync"} <= set(checked)
    user_add = _subcommands(_subcommands(build_parser())["user"])["add"].format_help()
    assert "--password-stdin" in user_add


def test_work_refuses_a_lease_shorter_than_a_courier_call(tmp_path: Path) -> None:
    """worker.lease_seconds must outlast the longest courier call with its retries."""
    config = tmp_path / "courier.toml"
    jnt = jnt_simulator.adapter_settings("http://127.0.0.1:9")
    config.write_bytes(
        tomli_w.dumps(
            {
                "database_url": f"sqlite+aiosqlite:///{tmp_path / 'c.sqlite3'}",
                "security": {"passport_pepper": "a-real-pepper-for-this-test-0123456789"},
                "worker": {"lease_seconds": 30},
                "couriers": {"jnt": jnt},
            }
        ).encode()
    )
    done = subprocess.run(
        [COURIER, "--config", str(config), "work", "--once"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "worker.lease_seconds (30)" in done.stderr and "longest courier call" in done.stderr
