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
