"""The REPL's fault commands: what they name must exist and their numbers
must make sense, else one line, FAILED, exit 1 and nothing injected; a crash
storm takes its share of all running instances; a killed cell can stay down."""

from __future__ import annotations

import pytest

from actors.faults import run_fault_command
from protocol.messages import CellInfo
from tests.actors.conftest import EXAMPLES, eventually, run

pytestmark = pytest.mark.anyio


async def _fault(platform, *argv: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = await run_fault_command(platform.faults, list(argv), lines.append)
    return code, lines


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ("kill-cell", "cell-99"),
            "cell-99 is not a cell of this platform (its cells: cell-1, cell-2, cell-3, cell-4)",
        ),
        (("drain", "cell-99"), "cell-99 is not a cell of this platform (its cells: cell-1, cell-2, cell-3, cell-4)"),
        (("kill", "nobody"), "no actor is named 'nobody'"),
        (("pause", "nobody"), "no actor is named 'nobody'"),
        (("blob-fail", "no.such.op"), "'no.such.op' matches no blob store operation"),
        (("db-slow", "1", "ccdb.nothing"), "'ccdb.nothing' matches no CC_DB operation"),
        (("crash-storm", "1.5"), "the fraction must be from 0 to 1, got 1.5"),
        (("crash-storm", "-0.1"), "the fraction must be from 0 to 1, got -0.1"),
        (("crash-storm", "half"), "the fraction must be a number, got 'half'"),
        (("kill-cell", "--fraction", "2"), "--fraction must be from 0 to 1, got 2"),
        (("drop", "-p", "lots"), "-p must be a number, got 'lots'"),
        (("delay", "nan"), "the seconds must be a finite number, got 'nan'"),
        (("corrupt-blob", "package"), "no stored blob is package"),
        (("blob-fail", "--bogus", "1"), "unknown option --bogus"),
        # Names and patterns that name nothing on this platform.
        (("partition", "nope,bbs", "cell-1"), "'nope' names no actor of this platform"),
        (("partition", "zone:z9", "bbs"), "'zone:z9': no cell is in zone 'z9' (zones: z1, z2)"),
        (("partition", "cell-1", "cell-1"), "the groups of a partition must not share a member"),
        (("drop", "--type", "Nope"), "--type 'Nope' matches no message type"),
        (("drop", "--from", "nope"), "'nope' names no actor"),
        (("drop", "--to", "nobody"), "'nobody' names no actor"),
        (("resume", "bbs"), "resume bbs: it is not paused"),
        (("reorder", "0"), "reorder needs a window above 0 seconds"),
        (("delay", "1e308"), "the seconds must be from 0 to 86400"),
        (("kill", "bbs", "--for", "1e308"), "--for must be from 0 to 86400"),
    ],
)
async def test_a_fault_aimed_at_nothing_fails_named_and_injects_nothing(platform, argv, said):
    code, lines = await _fault(platform, *argv)
    assert code == 1
    assert lines[0].startswith(said), lines
    assert lines[-1] == "FAILED"
    assert platform.faults.active() == []
    assert platform.faults.killed == []


async def test_a_crash_storm_crashes_its_share_of_all_running_instances(platform):
    code, lines = await run(platform, "push", "spread", "-p", str(EXAMPLES / "python"), "-i", "4", "-m", "64M")
    assert code == 0, "\n".join(lines)
    per_cell = [(await platform.system.ask(f"cell-{n}", CellInfo())).running for n in range(1, 5)]
    assert sum(per_cell) == 4
    code, lines = await _fault(platform, "crash-storm", "0.5")
    assert (code, lines) == (0, ["crashed 2 instances"])  # half of all four, wherever they run


async def test_a_killed_cell_stays_down_for_its_down_time(platform):
    code, lines = await _fault(platform, "kill-cell", "cell-2", "--for", "30")
    assert (code, lines) == (0, ["killed cell-2, down for 30 s"])
    killed_at = platform.clock.monotonic()

    async def back() -> bool:
        ref = platform.system.lookup("cell-2")
        return ref is not None and ref.is_alive()

    await platform.clock.advance(20)
    assert not await back()
    await eventually(platform, back, every=0.5)
    assert platform.clock.monotonic() - killed_at >= 30


async def test_a_zone_names_its_cells_in_a_partition_and_a_message_fault(platform):
    code, lines = await _fault(platform, "partition", "zone:z1", "bbs")
    assert code == 0 and lines[0].endswith("cell-1,cell-3 | bbs"), lines
    code, lines = await _fault(platform, "drop", "--from", "zone:z2", "--to", "bbs")
    assert code == 0, lines


async def test_an_actor_killed_to_stay_down_is_listed_and_heal_brings_it_back_at_once(platform):
    code, lines = await _fault(platform, "kill", "bbs", "--for", "300")
    assert (code, lines) == (0, ["kill bbs: OK"])
    await platform.clock.advance(1)
    assert any(line.startswith("down bbs for ") for line in platform.faults.active()), platform.faults.active()
    code, lines = await _fault(platform, "heal")
    assert code == 0 and "restarted 1" in lines[0], lines

    async def back() -> bool:
        ref = platform.system.lookup("bbs")
        return ref is not None and ref.is_alive()

    await eventually(platform, back, every=0.5)
    assert platform.clock.monotonic() < 60  # not the 300 s it was held for
    assert platform.faults.active() == []
