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


def test_help_lists_every_command_and_each_help_is_useful(tmp_path: Path) -> None:
    env = {**os.environ, "COURIER_CONFIG": str(tmp_path / "absent.toml")}  # --help needs none
    commands = [[name] for name in _subcommands(build_parser())]
    assert {"serve", "import", "migrate", "user", "token", "office"} <= {c[0] for c in commands}
    # the real console script, one process per command, all started at once
    procs = {
        tuple(cmd): subprocess.Popen(
            [str(COURIER), *cmd, "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for cmd in [[], *commands]
    }
    outputs = {}
    for cmd, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (cmd, err)
        assert out.startswith("usage: courier"), cmd
        outputs[cmd] = out
    top = outputs[()]
    for cmd in commands:
        if len(cmd) == 1:
            assert f"    {cmd[0]} " in top or f"    {cmd[0]}\n" in top, cmd  # listed with help
    for cmd, out in outputs.items():
        assert _useful(out), f"{cmd} --help says too little"
    assert "--office" in outputs[("import",)] and "line" in outputs[("import",)]
    assert "--host" in outputs[("serve",)] and "--port" in outputs[("serve",)]


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
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "worker.lease_seconds (30)" in done.stderr and "longest courier call" in done.stderr
