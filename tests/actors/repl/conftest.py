"""Helpers for the REPL's tests: a console driven from a list of lines (in
process), and `python run.py` as a subprocess (scripted over a pipe, or
`serve` in the background) at real time, compressed with --speed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
RUN = ROOT / "run.py"
EXAMPLES = ROOT / "examples"
SPEED = "10"  # platform seconds per real second in subprocess tests


class ListConsole:
    """A console that reads the given lines, then end of input, and keeps
    what is written."""

    terminal = False

    def __init__(
        self, lines: list[str] | None = None, *, terminal: bool = False, answers: list[str] | None = None
    ) -> None:
        self.lines = list(lines or [])
        self.answers = list(answers or [])
        self.terminal = terminal
        self.output: list[str] = []
        self.prompts: list[tuple[str, str]] = []

    def write(self, line: str) -> None:
        self.output.append(line)

    async def read(self, prompt: str, *, mode: str = "cf", words: dict[str, list[str]] | None = None) -> str | None:
        self.prompts.append((prompt, mode))
        if mode == "confirm":
            return self.answers.pop(0) if self.answers else None
        return self.lines.pop(0) if self.lines else None

    @property
    def text(self) -> str:
        return "\n".join(self.output)


def mf_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MINIFOUNDRY_DATA", None)
    env.pop("MINIFOUNDRY_API_PORT", None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PROMPT_TOOLKIT_NO_CPR"] = "1"
    return env


def mf(
    data_dir: Path, *argv: str, stdin: str = "", timeout: float = 30, speed: str = SPEED
) -> subprocess.CompletedProcess[str]:
    """`python run.py --data-dir DATA --speed N ARGV...` with `stdin` piped in."""
    return subprocess.run(
        [sys.executable, str(RUN), "--data-dir", str(data_dir), "--speed", speed, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=mf_env(),
    )


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Served:
    """A `python run.py serve` running in the background."""

    def __init__(self, data_dir: Path, *extra: str, speed: str = SPEED) -> None:
        self.data_dir = data_dir
        self.socket = data_dir / "repl.sock"
        self.log = data_dir.parent / f"{data_dir.name}-serve.out"
        self._out = self.log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(RUN),
                "--data-dir",
                str(data_dir),
                "--speed",
                speed,
                "--api-port",
                "0",
                *extra,
                "serve",
            ],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env=mf_env(),
        )
        wait_for(
            lambda: "minifoundry serving" in self.output() or self.process.poll() is not None,
            15,
            what="serve to listen",
        )
        assert self.process.poll() is None, self.output()

    def output(self) -> str:
        return self.log.read_text()  # the child writes to the file itself

    def attach(self, *argv: str, stdin: str = "", timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return mf(self.data_dir, "--attach", *argv, stdin=stdin, timeout=timeout)

    def attach_in_background(self) -> Attached:
        return Attached(self.data_dir)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._out.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._out.close()


class Attached:
    """`python run.py --attach` in the background: the test writes its stdin
    line by line; a thread collects its output lines."""

    def __init__(self, data_dir: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(RUN), "--data-dir", str(data_dir), "--attach"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            cwd=ROOT,
            env=mf_env(),
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def end_input(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def wait(self, timeout: float = 15) -> int:
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def served(data_dir: Path) -> Iterator[Served]:
    server = Served(data_dir)
    try:
        yield server
    finally:
        server.kill()
