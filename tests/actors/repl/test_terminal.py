"""An interactive session through a pseudo terminal (pexpect): the prompt,
Tab completion, colour, history, and Ctrl-C ending a `logs` tail while the
REPL and the platform go on."""

from __future__ import annotations

import sys

import pexpect
import pytest

from tests.actors.repl.conftest import ROOT, RUN, SPEED, mf_env

PROMPT = "minifoundry> "


@pytest.fixture
def terminal(data_dir):
    child = pexpect.spawn(
        sys.executable,
        [str(RUN), "--data-dir", str(data_dir), "--speed", SPEED],
        cwd=str(ROOT),
        env=mf_env(),
        encoding="utf-8",
        timeout=15,
        dimensions=(50, 200),
    )
    try:
        yield child
    finally:
        if child.isalive():
            child.terminate(force=True)
        child.close()


def test_a_terminal_session_shows_the_prompt_completes_and_ctrl_c_ends_a_tail(terminal, data_dir):
    child = terminal
    child.expect("Tab completes; Ctrl-D or 'exit' leaves.")
    child.expect(PROMPT)
    child.sendline("push hello -p examples/python -i 1")
    child.expect("instances:       1/1")
    child.expect(PROMPT)

    child.send("stat\t")  # Tab completes the command's name
    child.expect("status")
    child.send("\r")
    child.expect(r"apps:         1 started, 1 of 1 instances running")
    child.expect(PROMPT)

    child.send("logs hel\t")  # ... and an app's name
    child.expect("hello")
    child.send("\r")
    child.expect("Retrieving logs for app hello in org minifoundry / space dev as admin...")
    child.sendline("")  # typed during the tail: not a command
    child.sendintr()  # Ctrl-C ends the tail, not the REPL
    child.expect(PROMPT)
    child.sendline("apps")
    child.expect(r"hello\s+started\s+web:1/1")
    child.expect(PROMPT)

    child.sendline("app ghost")
    child.expect("\x1b\\[1;31mFAILED\x1b\\[0m")  # FAILED in red
    child.expect(PROMPT)
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    history = (data_dir / "history").read_text()
    assert "+status" in history and "+logs hello" in history


def test_an_attached_terminal_completes_app_names_the_server_knows_and_pushes(served):
    assert served.attach(stdin="push hello -p examples/python -i 1\n").returncode == 0
    child = pexpect.spawn(
        sys.executable,
        [str(RUN), "--data-dir", str(served.data_dir), "--attach"],
        cwd=str(ROOT),
        env=mf_env(),
        encoding="utf-8",
        timeout=15,
        dimensions=(50, 200),
    )
    try:
        child.expect(PROMPT)
        child.send("app hel\t")
        child.expect("hello")
        child.send("\r")
        child.expect("requested state:   started")
        child.expect(PROMPT)
        child.sendline("push static -p examples/static -i 1")
        child.expect("Staging app and tracing logs...")
        child.sendintr()  # stop waiting: the push goes on in the serving process
        child.expect("Stopped waiting for 'push static -p examples/static -i 1'; it goes on in the platform.")
        child.expect("'push static -p examples/static -i 1' finished in the platform: OK")
        child.sendline("exit")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        if child.isalive():
            child.terminate(force=True)
    done = served.attach("apps")
    assert "static   started           web:1/1" in done.stdout
