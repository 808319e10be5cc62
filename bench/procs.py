"""Servers in child processes, as an operator runs them: started, found on their port, measured
(peak resident memory from /proc) and stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_LISTENING = re.compile(r"listening on (http://\S+)")
ROOT = Path(__file__).resolve().parents[1]  # where `python -m bench.…` finds the package


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[str]
    url: str

    def peak_rss_mb(self) -> float | None:
        return peak_rss_mb(self.process.pid)


def peak_rss_mb(pid: int) -> float | None:
    """The process's high-water resident set (VmHWM) in MB (10⁶ bytes); None off Linux."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6  # the kernel counts kB of 1024 bytes
    return None


@contextmanager
def server(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    start_timeout: float = 60.0,
) -> Iterator[Server]:
    """Run ``argv`` until it prints ``listening on http://…``; stop it on leaving. Its logs
    (stderr) go to the null device: they are part of what it costs, not of what we read."""
    proc = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd or ROOT,
    )
    try:
        url = _await_listening(proc, time.monotonic() + start_timeout)
        yield Server(proc, url)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def _await_listening(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    # readline blocks, but the child prints its address as soon as it is bound, or exits
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{proc.args!r} exited ({proc.wait()}) before listening")
        if found := _LISTENING.search(line):
            return found.group(1)
    raise RuntimeError(f"{proc.args!r} did not start listening in time")
