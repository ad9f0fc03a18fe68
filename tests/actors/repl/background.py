"""Helpers for tests that leave the platform serving in the background
(`up`, or a cf command's implicit start): run run.py, and make sure that no
serving process outlives its test."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.actors.repl.conftest import ROOT, RUN, SPEED, mf_env


def env(**extra: str) -> dict[str, str]:
    environment = mf_env()
    environment.pop("MINIFOUNDRY_API_PORT", None)
    environment.update(extra)
    return environment


def run_py(
    data_dir: Path,
    *argv: str,
    stdin: str = "",
    timeout: float = 60,
    api_port: str | None = "0",
    environment: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python run.py --data-dir DATA --speed N [--api-port P] ARGV...`, its output captured."""
    port = ["--api-port", api_port] if api_port is not None else []
    return subprocess.run(
        [sys.executable, str(RUN), "--data-dir", str(data_dir), "--speed", SPEED, *port, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=environment or env(),
    )


def serving_pid(data_dir: Path) -> int | None:
    try:
        pid = json.loads((data_dir / "platform.json").read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None
    return pid if isinstance(pid, int) else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 :][:1] != b"Z"


def stop_background(data_dir: Path) -> None:
    """`down`; then, as a last resort, kill whatever pid the data dir names
    (platform.json, or the lock's holder)."""
    if data_dir.is_dir():
        with contextlib.suppress(subprocess.TimeoutExpired):
            run_py(data_dir, "down", timeout=60)
    pids = {serving_pid(data_dir)}
    with contextlib.suppress(OSError, ValueError):
        pids.add(int((data_dir / "lock").read_text().strip()))
    for pid in pids - {None, os.getpid()}:
        assert pid is not None
        if alive(pid) and _serves(pid, data_dir):
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)


def _serves(pid: int, data_dir: Path) -> bool:
    """Whether `pid` is a run.py on `data_dir` (not a process that got a freed pid)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the data dir's word
    return any(a.endswith(b"run.py") for a in argv) and os.fsencode(os.path.abspath(data_dir)) in argv
