"""Scripted REPL sessions: `python run.py` with its stdin a pipe, at real
time compressed ten times (--speed 10)."""

from __future__ import annotations

import re

from tests.actors.repl.conftest import mf

SCRIPT = """\
# a scripted session: comments and blank lines are ignored
push hello -p examples/python -i 1

scale hello -i 2
push crashloop -f examples/crashloop/manifest.yml
py
await platform.clock.sleep(8)
exit()
logs crashloop --recent
apps
exit
apps
"""


def test_a_scripted_session_pushes_scales_watches_a_crash_loop_and_exits_cleanly(data_dir):
    done = mf(data_dir, stdin=SCRIPT)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert done.stderr == ""
    assert "minifoundry>" not in out and "\x1b" not in out  # no prompts, no colour
    assert out.startswith("Pushing app hello to org minifoundry / space dev as admin...\n")
    assert "Scaling app hello in org minifoundry / space dev as admin..." in out
    assert "Pushing app crashloop to org minifoundry / space dev as admin..." in out
    recent = out[out.index("Retrieving logs for app crashloop") :]
    assert "[APP/PROC/WEB/0] OUT APP/PROC/WEB: Exited with status 1" in recent
    assert 'Process has crashed with type: "web"' in recent
    assert re.search(r"^hello\s+started\s+web:2/2\s+hello\.apps\.internal$", out, re.MULTILINE)
    assert re.search(r"^crashloop\s+started\s+web:[01]/1", out, re.MULTILINE)
    assert out.count("Getting apps in org") == 1  # nothing after `exit` ran

    # The platform stopped cleanly and the next process resumes from its state.
    again = mf(data_dir, stdin="apps\n")
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.search(r"^hello\s+started\s+web:2/2", again.stdout, re.MULTILINE)


def test_a_raw_send_prints_the_actors_reply(data_dir):
    done = mf(
        data_dir,
        stdin='push hello -p examples/python -i 1\nsend cloud_controller GetApp(name="hello")\nsend bbs BBSSnapshot()\n',
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^AppRecord\(guid='[0-9a-f-]+',\n {10}name='hello',", done.stdout, re.MULTILINE)
    assert "cells=('cell-1', 'cell-2', 'cell-3', 'cell-4')," in done.stdout
    assert re.search(r"desired=1,\s+counts=InstanceCounts\(running=1,", done.stdout)


def test_the_py_prompt_awaits_asks_to_running_actors_over_a_pipe(data_dir):
    script = (
        "py\n"
        'snap = await system.ask("bbs", BBSSnapshot())\n'
        "print(len(snap.cells), 'cells')\n"
        "await cell_2.ask_async(CellInfo())\n"
        "exit()\n"
        "apps\n"
    )
    done = mf(data_dir, stdin=script)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "4 cells"
    assert lines[1] == "CellStatistics(cell_id='cell-2',"
    assert "No apps found" in lines  # back at the main prompt after exit()


def test_a_failed_command_makes_the_exit_code_1_without_stopping_the_script(data_dir):
    done = mf(data_dir, stdin="push nope -p examples/undetectable\nbogus --flag\napp ghost\napps\n")
    assert done.returncode == 1
    out = done.stdout
    assert "NoAppDetectedError - An app was not successfully detected by any available buildpack" in out
    assert "'bogus' is not a registered command. See 'cf help -a'" in out  # cf: no FAILED after this one
    assert "App 'ghost' not found." in out
    assert out.count("FAILED") == 2
    assert re.search(r"^nope\s+stopped\s+web:0/1\s+nope\.apps\.internal\n\Z", out, re.MULTILINE)
    assert "Traceback" not in out + done.stderr
