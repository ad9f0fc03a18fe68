"""A REPL session in process, on the platform fixture's virtual clock: the
same lines a person types, read from a list."""

from __future__ import annotations

import asyncio

import pytest

from actors.repl.session import Session
from protocol.snapshots import CliStatistics
from tests.actors.conftest import EXAMPLES
from tests.actors.repl.conftest import ListConsole

pytestmark = pytest.mark.anyio


async def _session(platform, *lines, **console):
    con = ListConsole(list(lines), **console)
    session = Session(platform, con, cwd=str(EXAMPLES.parent))
    code = await session.run()
    await session.close()
    return code, con


async def test_cf_commands_print_what_the_one_shot_interface_prints(platform):
    code, con = await _session(platform, "push hello -p examples/python -i 1", "apps")
    assert code == 0
    assert con.output[0] == "Pushing app hello to org minifoundry / space dev as admin..."
    assert "instances:       1/1" in con.output
    assert any(line.startswith("hello   started           web:1/1") for line in con.output)


async def test_blank_lines_comments_and_exit_end_nothing_but_the_session(platform):
    code, con = await _session(platform, "", "   # a comment", "apps", "exit", "apps")
    assert code == 0
    assert con.output.count("No apps found") == 1  # nothing after exit ran


async def test_errors_print_a_clear_message_the_session_goes_on_and_the_exit_code_says_so(platform):
    code, con = await _session(platform, "bogus", "scale", "app nope", "push 'unclosed", "apps")
    assert code == 1
    assert "'bogus' is not a registered command. See 'cf help -a'" in con.output
    assert "App 'nope' not found." in con.output
    assert any(line.startswith("Incorrect Usage: No closing quotation") for line in con.output)
    assert con.output[-1] == "No apps found"
    assert not any("Traceback" in line for line in con.output)


async def test_help_lists_the_repls_own_commands(platform):
    _, con = await _session(platform, "help", "help status")
    assert any("send" in line.split() for line in con.output)
    assert "   status - Show actors, mailbox depths, message counts, uptime and apps running vs desired" in con.output


async def test_status_reports_actors_messages_and_apps(platform):
    _, con = await _session(platform, "push hello -p examples/python -i 2", "status")
    text = con.text
    assert "actors:" in text and "dead letters" in text
    assert "apps:         1 started, 2 of 2 instances running" in text
    assert "   hello   2/2 running" in con.output


async def test_send_asks_an_actor_and_prints_its_reply(platform):
    code, con = await _session(
        platform, "push hello -p examples/python -i 1", 'send cloud_controller GetApp(name="hello")'
    )
    assert code == 0
    reply = con.output[con.output.index("start command:   python app.py") + 3 :]
    assert reply[0].startswith("AppRecord(guid=")
    assert "          name='hello'," in reply


async def test_send_says_clearly_what_went_wrong(platform):
    code, con = await _session(
        platform,
        "send bbs",
        "send nobody BBSSnapshot()",
        "send bbs os.system('true')",
        'send cloud_controller GetApp(name="ghost")',
        "send nobody Foo()",  # the receiver is what is wrong first
    )
    assert code == 1
    assert con.output[0].startswith("Incorrect Usage: send ACTOR MESSAGE")
    assert con.output[2].startswith("No actor named 'nobody' is running. Running: auctioneer, bbs")
    assert con.output[4] == "Incorrect Usage: only message types can be called, by their name (or ccdb.X, blobs.X)"
    assert con.output[6] == "cloud_controller answered with an error: AppNotFound: App 'ghost' not found."
    assert con.output[8].startswith("No actor named 'nobody' is running.")


async def test_py_runs_top_level_await_with_the_platform_in_scope(platform):
    code, con = await _session(
        platform,
        "py",
        'snap = await system.ask("bbs", BBSSnapshot())',
        "sorted(snap.cells)",
        "type(platform).__name__, platform_actor",
        "for name in ('bbs', 'cell_1'):",
        "    print(name, type(globals()[name]).__name__)",
        "",
        "(await cell_1.ask(CellInfo())).cell_id",
        "1 / 0",
        "exit()",
        "apps",
    )
    assert code == 0
    assert "['cell-1', 'cell-2', 'cell-3', 'cell-4']" in con.output
    assert "('Platform', <ActorRef platform>)" in con.output  # the root supervisor does not hide the Platform
    assert "bbs ConsoleRef" in con.output and "cell_1 ConsoleRef" in con.output
    assert "'cell-1'" in con.output  # the banner's promise: `await ref.ask(msg)` works
    assert "ZeroDivisionError: division by zero" in con.output
    assert con.output[-1] == "No apps found"  # back at the main prompt
    assert [mode for _, mode in con.prompts].count("py") == 9


async def test_delete_asks_at_a_terminal_before_the_cli_runs(platform):
    _, con = await _session(
        platform, "push hello -p examples/python -i 1", "delete hello", terminal=True, answers=["n"]
    )
    assert ("Really delete the app hello? [yN]: ", "confirm") in con.prompts
    assert con.output[-1] == "App 'hello' has not been deleted."


async def test_ctrl_c_ends_a_logs_tail_and_unsubscribes_it(platform):
    await _session(platform, "push hello -p examples/python -i 1")
    con = ListConsole()
    session = Session(platform, con, cwd=str(EXAMPLES.parent))
    tail = asyncio.ensure_future(session.execute("logs hello"))
    while not con.output:
        await asyncio.sleep(0.01)
    cli = platform.system.actor("cli")
    assert cli.statistics() == CliStatistics(commands=1, subscriptions=1)
    assert session.interrupt()
    assert await tail == 0
    await asyncio.sleep(0.01)
    assert cli.statistics() == CliStatistics(commands=0, subscriptions=0)
    assert con.output == ["Retrieving logs for app hello in org minifoundry / space dev as admin...", ""]
    assert not session.interrupt()  # nothing left to interrupt


async def test_ctrl_c_abandons_waiting_for_a_push_which_goes_on_in_the_platform(platform):
    con = ListConsole()
    session = Session(platform, con, cwd=str(EXAMPLES.parent))
    push = asyncio.ensure_future(session.execute("push hello -p examples/python -i 1"))
    while "Staging app and tracing logs..." not in con.output:
        await asyncio.sleep(0.01)
    session.interrupt()
    assert await push == 130
    assert con.output[-1] == "Stopped waiting for 'push hello -p examples/python -i 1'; it goes on in the platform."
    assert not session.failed
    seen = len(con.output)
    while not con.output[-1].endswith("finished in the platform: OK"):
        await platform.clock.sleep(1)
    assert con.output[seen:] == ["'push hello -p examples/python -i 1' finished in the platform: OK"]
    snapshot = await platform.snapshot()
    assert [a.counts.running for a in snapshot.apps] == [1]
