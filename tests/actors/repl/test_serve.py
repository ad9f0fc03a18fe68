"""`python run.py serve` in the background, REPLs attached to it, the
single-process lock, and a graceful shutdown under load."""

from __future__ import annotations

import json
import os
import re
import signal
import stat

import pytest

from protocol import blobs
from protocol.states import BuildState
from tests.actors.conftest import db
from tests.actors.repl.conftest import Served, mf, wait_for


def test_serve_prints_status_serves_an_owner_only_socket_and_stops_cleanly_on_sigint(data_dir):
    served = Served(data_dir)
    try:
        mode = stat.S_IMODE(os.stat(served.socket).st_mode)
        assert stat.S_ISSOCK(os.stat(served.socket).st_mode) and mode == 0o600
        wait_for(lambda: "] apps " in served.output(), 10, what="a status line")
        assert served.stop(signal.SIGINT) == 0
    finally:
        served.kill()
    out = served.output()
    assert f"minifoundry serving {data_dir}" in out and f"--data-dir {data_dir} --attach" in out
    assert re.search(
        r"^\[\d\d:\d\d:\d\d\] apps 0 started, instances 0/0 running, cells 4, messages [\d,]+ delivered", out, re.M
    )
    assert out.rstrip().endswith("stopping (SIGINT)...\nstopped")
    assert not served.socket.exists()
    assert "platform-stopped" in (data_dir / "minifoundry.log").read_text()
    assert not (data_dir / "platform.json").exists()
    # The lock went with it: a REPL boots its own platform on the data dir.
    assert mf(data_dir, stdin="apps\n").returncode == 0


def test_an_attached_prompt_pushes_and_the_serving_process_runs_it(served):
    done = served.attach(stdin="push hello -p examples/python -i 1\napps\nstatus\n")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert out.startswith("Pushing app hello to org minifoundry / space dev as admin...\n")
    assert "instances:       1/1" in out
    assert re.search(r"^hello\s+started\s+web:1/1", out, re.M)
    assert "apps:         1 started, 1 of 1 instances running" in out
    # The app lives in the serving process, for the next client too.
    again = served.attach("app", "hello")
    assert again.returncode == 0 and "requested state:   started" in again.stdout
    assert served.process.poll() is None


def test_ctrl_c_on_an_attached_client_ends_a_logs_tail_in_the_serving_process(served):
    assert served.attach(stdin="push hello -p examples/python -i 1\n").returncode == 0
    client = served.attach_in_background()
    try:
        client.send("logs hello")
        wait_for(lambda: client.saw("Retrieving logs for app hello"), 10, what="the tail")
        client.process.send_signal(signal.SIGINT)
        client.send("apps")
        client.end_input()
        assert client.wait() == 0
    finally:
        client.close()
    assert any(re.match(r"hello\s+started\s+web:1/1", line) for line in client.lines), client.lines


def test_a_served_data_dir_runs_commands_and_repls_there_and_a_second_serve_is_refused(served):
    pid = served.process.pid
    state = json.loads((served.data_dir / "platform.json").read_text())
    assert state["pid"] == pid and state["api_url"].startswith("http://127.0.0.1:")
    done = mf(served.data_dir, "serve")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert f"{served.data_dir} is in use by minifoundry process {pid}" in done.stderr
    assert "--attach" in done.stderr and "Traceback" not in done.stderr
    # One command, and a REPL, run on the serving process, not on a platform of their own.
    for argv, stdin in ((["apps"], ""), ([], "apps\n")):
        done = mf(served.data_dir, *argv, stdin=stdin)
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
        assert "No apps found" in done.stdout and done.stderr == ""
    up = mf(served.data_dir, "up")
    assert up.returncode == 0 and up.stdout.startswith(f"minifoundry already serves {served.data_dir} (pid {pid},")
    assert served.process.poll() is None


def test_attaching_where_nothing_serves_says_how_to_start_it(data_dir):
    done = mf(data_dir, "--attach", stdin="apps\n")
    assert done.returncode == 1
    assert f"No minifoundry serves {data_dir}" in done.stderr
    assert f"python run.py --data-dir {data_dir} up (or serve, in the foreground)" in done.stderr


@pytest.mark.anyio
async def test_sigterm_during_pushes_loses_nothing_and_the_next_start_fails_interrupted_builds(data_dir, make_platform):
    served = Served(data_dir, speed="2")  # staging takes a real second: SIGTERM lands inside it
    clients = []
    try:
        assert served.attach(stdin="push first -p examples/static -i 2\n").returncode == 0
        for name, example in (("hello", "python"), ("node", "node"), ("gopher", "go")):
            client = served.attach_in_background()
            client.send(f"push {name} -p examples/{example} -i 3")
            clients.append(client)

        def loaded() -> bool:  # every push under way, and one of them staging right now
            staging = any(c.saw("Staging app and tracing logs...") and not c.saw("Waiting for app") for c in clients)
            return staging and all(c.saw("Pushing app") for c in clients)

        wait_for(loaded, 15, interval=0.02, what="every push under way and one staging")
        assert served.stop(signal.SIGTERM) == 0
        for client in clients:
            assert client.wait(timeout=10) == 1  # told that the platform went away
    finally:
        served.kill()
        for client in clients:
            client.close()
    out = served.output()
    assert out.rstrip().endswith("stopping (SIGTERM)...\nstopped"), out
    assert not served.socket.exists()
    for client in clients:
        assert client.saw("minifoundry is stopping: this session ends."), client.lines
        assert client.saw("went away; the session has ended.")

    platform = make_platform(data_dir=data_dir)
    await platform.start()
    try:
        apps = await db(platform, "list_apps")
        assert {a.name for a in apps} >= {"first"}
        interrupted = 0
        for app in apps:
            for build in await db(platform, "list_builds", app_guid=app.guid):
                assert build.state is not BuildState.STAGING
                if build.state is BuildState.FAILED:
                    assert "interrupted by a platform restart" in build.error
                    interrupted += 1
        assert interrupted >= 1
        referenced = await db(platform, "referenced_blob_keys")
        inventory = await platform.system.ask("blobstore", blobs.TakeInventory(frozenset(referenced), verify=True))
        assert inventory.missing == () and inventory.corrupt == ()
        assert await platform.settle(timeout=120)
        snapshot = await platform.snapshot()
        first = next(a for a in apps if a.name == "first")
        assert snapshot.app(first.guid).counts.running == 2
    finally:
        await platform.stop()
