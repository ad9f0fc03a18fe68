"""The platform as a background process: `up`, one-shot cf commands run by
it over the attach socket, the implicit start, `down`. Real processes; every
test stops what it started."""

from __future__ import annotations

import json
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.actors.repl.background import alive, env, run_py, serving_pid, stop_background
from tests.actors.repl.conftest import ROOT, RUN, SPEED, wait_for


@pytest.fixture
def background(data_dir: Path) -> Iterator[Path]:
    """A data dir whose background platform, if a test started one, is stopped after it."""
    try:
        yield data_dir
    finally:
        stop_background(data_dir)


@pytest.fixture
def up(background: Path) -> Path:
    done = run_py(background, "up")
    assert done.returncode == 0, done.stdout + done.stderr
    return background


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_up_serves_in_the_background_and_one_shot_commands_run_there_until_down(background):
    data = background
    done = run_py(data, "up")

    assert done.returncode == 0, done.stderr
    first, api, *login, stop_line = done.stdout.splitlines()
    pid = serving_pid(data)
    assert pid is not None and alive(pid)
    assert first.startswith(f"minifoundry serves {data} in the background (pid {pid}, 4 cells in 2 zones, API http://")
    assert first.endswith(f"its output: {data / 'serve.log'}")
    url = re.fullmatch(r"API endpoint: (http://127\.0\.0\.1:\d+)", api).group(1)
    assert stop_line == f"Stop it with: python run.py --data-dir {data} down"
    password = data / "uaa" / "admin-password"
    assert login == ["Log in with cf:", f"  cf api {url}", f"  cf login -u admin        (password: in {password})"]
    assert password.is_file()
    with urllib.request.urlopen(url + "/", timeout=5) as reply:
        assert reply.status == 200
    state = json.loads((data / "platform.json").read_text())
    assert state["pid"] == pid and state["api_url"] == url and state["socket"] == str(data / "repl.sock")
    for name in ("platform.json", "serve.log"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name

    out = ok(run_py(data, "push", "hello", "-p", "examples/python", "-i", "1"))
    assert out.startswith("Pushing app hello to org minifoundry / space dev as admin...\n")
    assert "instances:       1/1" in out
    assert re.search(r"^hello\s+started\s+web:1/1", ok(run_py(data, "apps")), re.M)
    assert "requested state:   started" in ok(run_py(data, "app", "hello"))
    assert re.search(r"^instances:\s+\d/2$", ok(run_py(data, "scale", "hello", "-i", "2")), re.M)
    logs = ok(run_py(data, "logs", "hello", "--recent"))
    assert logs.startswith("Retrieving logs for app hello in org minifoundry / space dev as admin...")
    assert "[API/0] OUT Created app with guid" in logs
    bogus = run_py(data, "bogus")
    assert bogus.returncode == 1 and bogus.stdout == ""
    assert bogus.stderr == "'bogus' is not a registered command. See 'cf help -a'\n"
    unasked = run_py(data, "delete", "hello")  # no terminal: nobody to ask
    # No answer to read: cf fails with EOF right after its prompt.
    assert unasked.returncode == 1
    assert (unasked.stdout, unasked.stderr) == ("Really delete the app hello? [yN]: FAILED\n", "EOF\n")
    deleted = ok(run_py(data, "delete", "hello", "-f"))
    assert "Deleting app hello" in deleted and deleted.rstrip().endswith("OK")
    assert "No apps found" in ok(run_py(data, "apps"))
    assert serving_pid(data) == pid  # every command ran on the one platform

    again = run_py(data, "up")
    assert again.returncode == 0
    assert again.stdout.startswith(f"minifoundry already serves {data} (pid {pid},")

    down = run_py(data, "down")
    assert down.returncode == 0, down.stderr
    assert down.stdout == f"Stopping minifoundry for {data} (pid {pid})...\nStopped.\n"
    assert not alive(pid)
    assert not (data / "platform.json").exists() and not (data / "repl.sock").exists()
    log = (data / "serve.log").read_text()
    assert "minifoundry serving" in log and log.rstrip().endswith("stopping (SIGTERM)...\nstopped")
    assert '"event": "one-shot-command"' in (data / "minifoundry.log").read_text()

    none = run_py(data, "down")
    assert none.returncode == 0 and none.stdout == f"No minifoundry serves {data}.\n"


def test_a_command_where_none_serves_starts_one_in_the_background_and_says_so_once(background):
    data = background
    held = socket.socket()
    held.bind(("127.0.0.1", 0))  # the default port is someone else's: a free one is chosen
    held.listen()
    taken = held.getsockname()[1]
    try:
        began = time.monotonic()
        done = run_py(data, "apps", api_port=None, environment=env(MINIFOUNDRY_API_PORT=str(taken)), timeout=60)
        took = time.monotonic() - began
    finally:
        held.close()

    assert done.returncode == 0, done.stderr
    pid = serving_pid(data)
    assert pid is not None and alive(pid)
    (line,) = done.stderr.splitlines()
    started = re.fullmatch(
        rf"Started minifoundry in the background for {re.escape(str(data))} "
        rf"\(pid {pid}, API (http://127\.0\.0\.1:(\d+))\); stop it with: python run.py --data-dir {re.escape(str(data))} down",
        line,
    )
    assert started, line
    assert int(started.group(2)) != taken
    assert done.stdout == "Getting apps in org minifoundry / space dev as admin...\n\nNo apps found\n"
    assert took < 30  # capture_output waited for the pipes' end: the background child holds neither

    second = run_py(data, "apps", api_port=None)
    assert second.returncode == 0 and second.stderr == "" and serving_pid(data) == pid
    # Its output went to serve.log, never to the pipes of whoever started it.
    log = (data / "serve.log").read_text()
    assert f"ApiPortInUse - cannot listen on 127.0.0.1:{taken}" in log
    assert f"minifoundry serving {data} (pid {pid}" in log


def test_ctrl_c_ends_a_long_command_with_130_and_the_platform_serves_on(up):
    data = up
    ok(run_py(data, "push", "hello", "-p", "examples/python", "-i", "1"))
    client = subprocess.Popen(
        [sys.executable, str(RUN), "--data-dir", str(data), "logs", "hello"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env(),
    )
    try:
        assert client.stdout is not None
        assert client.stdout.readline().startswith("Retrieving logs for app hello")
        client.send_signal(signal.SIGINT)
        assert client.wait(timeout=10) == 130
        assert "Traceback" not in client.stderr.read()  # type: ignore[union-attr]
    finally:
        if client.poll() is None:
            client.kill()
        client.communicate(timeout=5)

    assert re.search(r"^hello\s+started\s+web:1/1", ok(run_py(data, "apps")), re.M)
    wait_for(lambda: '"cancelled": true' in (data / "minifoundry.log").read_text(), 5, what="the cancel logged")


def test_delete_at_a_terminal_asks_and_the_answer_travels_to_the_platform(up):
    data = up
    ok(run_py(data, "push", "hello", "-p", "examples/static", "-i", "1"))

    def delete(answer: str) -> str:
        child = pexpect.spawn(
            sys.executable,
            [str(RUN), "--data-dir", str(data), "delete", "hello"],
            cwd=str(ROOT),
            env=env(),
            encoding="utf-8",
            timeout=15,
        )
        try:
            child.expect_exact("Really delete the app hello? [yN]: ")
            child.sendline(answer)
            child.expect(pexpect.EOF)
            return child.before
        finally:
            child.close()
            assert child.exitstatus == 0

    assert "App 'hello' has not been deleted." in delete("n")
    assert "Deleting app hello" in delete("y")
    assert "No apps found" in ok(run_py(data, "apps"))


def test_the_repl_attaches_to_the_platform_that_serves_the_data_dir(up):
    data = up
    ok(run_py(data, "push", "hello", "-p", "examples/static", "-i", "1"))

    done = run_py(data, stdin="apps\n")  # no command: a REPL, and this one is the server's

    assert re.search(r"^hello\s+started\s+web:1/1", ok(done), re.M)
    assert "in use by minifoundry process" not in done.stderr


def test_a_data_dir_that_cannot_be_served_fails_with_the_servers_words_and_leaves_nothing_running(background):
    data = background
    data.mkdir()
    (data / "ccdb.sqlite3").write_text("not a database\n")

    for argv in (["up"], ["apps"]):
        done = run_py(data, *argv)
        assert done.returncode == 1, argv
        assert done.stderr.startswith(f"DataDirUnusable - {data / 'ccdb.sqlite3'} is not an SQLite database"), (
            done.stderr
        )
        assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (data / "platform.json").exists()
    pid = int((data / "lock").read_text() or 0) if (data / "lock").exists() else None
    assert pid is None or not alive(pid)


def test_a_data_dir_that_is_a_file_is_unusable_for_every_command_and_nothing_starts(tmp_path):
    taken = tmp_path / "a-file"
    taken.write_text("hi\n")
    for data, says in ((taken, f"{taken} is not a directory"), (taken / "sub", f"{taken} (in {taken / 'sub'})")):
        for argv in (["up"], ["apps"], ["serve"], ["down"], []):
            done = run_py(data, *argv, timeout=30)
            assert done.returncode == 1, (data, argv, done.stderr)
            assert done.stderr.startswith(f"DataDirUnusable - {says}"), done.stderr
            assert done.stderr.rstrip().endswith("FAILED") and "Traceback" not in done.stderr
    assert taken.read_text() == "hi\n"


def test_a_command_line_cf_refuses_starts_no_platform(tmp_path):
    data = tmp_path / "never"
    for argv, first in (
        (["apps", "--data-dir", "/tmp/elsewhere"], "Incorrect Usage: unknown flag `data-dir'"),
        (["nosuchcmd"], "'nosuchcmd' is not a registered command. See 'cf help -a'"),
        (["push", "x", "-p", str(tmp_path / "nope")], "Incorrect Usage: The specified path"),
    ):
        done = run_py(data, *argv, timeout=30)
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith(first), done.stderr
        assert "Started minifoundry" not in done.stderr
    assert not data.exists()  # nothing started, nothing written


def test_down_while_the_platform_is_still_stopping_waits_for_it(tmp_path):
    data = tmp_path / "stopping"
    data.mkdir()
    # A process that holds the data dir's lock and answers nothing more, as
    # a platform does between its socket closing and its exit.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600);"
            "fcntl.flock(fd, fcntl.LOCK_EX); os.pwrite(fd, str(os.getpid()).encode(), 0);"
            "print('held', flush=True); time.sleep(1.5)",
            str(data / "lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        done = run_py(data, "down", timeout=30)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [
            f"minifoundry for {data} (pid {holder.pid}) is stopping; waiting for it...",
            "Stopped.",
        ]
        assert holder.poll() is not None  # it had ended by the time down said so
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()


def test_a_speed_that_is_no_speed_is_a_usage_error(tmp_path):
    for speed in ("0", "-1", "inf", "nan", "1e9", "abc"):
        done = subprocess.run(
            [sys.executable, str(RUN), "--data-dir", str(tmp_path / "d"), "--speed", speed, "apps"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2 and "argument --speed" in done.stderr and "Traceback" not in done.stderr, speed
    assert not (tmp_path / "d").exists()
    for argv, says in (
        (["--zones", "5", "--cells", "2", "apps"], "--zones (5) must be at most --cells (2)"),
        (["--cells", "100000", "apps"], "--cells is at most 10000"),
    ):
        done = subprocess.run(
            [sys.executable, str(RUN), "--data-dir", str(tmp_path / "d"), *argv],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 1 and says in done.stderr, (argv, done.stderr)
    assert not (tmp_path / "d").exists()


def test_the_commands_only_the_platform_knows_are_the_repls_and_the_fault_commands():
    from actors.faults import FAULT_COMMANDS
    from actors.repl.client import PLATFORM_ONLY_COMMANDS
    from actors.repl.session import REPL_COMMANDS

    assert set(REPL_COMMANDS) | set(FAULT_COMMANDS) == PLATFORM_ONLY_COMMANDS


def test_up_on_a_taken_api_port_says_so_and_exits_1(background):
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    try:
        done = run_py(background, "up", api_port=str(held.getsockname()[1]))
    finally:
        held.close()
    assert done.returncode == 1
    assert done.stderr.startswith("ApiPortInUse - cannot listen on 127.0.0.1:"), done.stderr
    assert "Traceback" not in done.stderr
    assert serving_pid(background) is None


def test_a_one_shot_command_imports_neither_the_platform_nor_asyncio(up):
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(RUN), "--data-dir", str(up), "--speed", SPEED, "apps"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=env(),
    )
    assert done.returncode == 0, done.stderr
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "actors.repl.client" in imported
    heavy = {"asyncio", "structlog", "pykka", "aiosqlite", "aiohttp", "actors.platform", "actors.runtime"}
    assert heavy.isdisjoint(imported), heavy & imported
