"""How a push's words travel: what a command prints in one turn of the loop
goes to the terminal as one `Output` message, a cell's staging lines said
together go to the loggregator together, and the loggregator hands a
subscriber each run of lines in one `LogDelivery`, all in order."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.messages import LogDelivery, LogLine, LogLines, Output
from tests.actors.conftest import EXAMPLES, run, run_streams

pytestmark = pytest.mark.anyio


def _watch(platform: Any) -> list[tuple[str, str, Any]]:
    """(sender, receiver, message) of every delivery from now on."""
    seen: list[tuple[str, str, Any]] = []
    platform.system.seam.add_observer(lambda envelope, receiver: seen.append((envelope.sender, receiver, envelope[0])))
    return seen


async def test_a_pushs_lines_reach_the_terminal_in_fewer_messages_and_in_order(platform):
    seen = _watch(platform)
    code, out, err = await run_streams(platform, "push", "hello", "-p", str(EXAMPLES / "python"))
    assert code == 0, "\n".join(out + err)
    outputs = [m for _, receiver, m in seen if receiver == "user" and isinstance(m, Output)]
    printed = [line for m in outputs for line in m.lines]
    assert [text for text, stream in printed if stream == "out"] == out
    assert [text for text, stream in printed if stream == "err"] == err
    assert [m.seq for m in outputs] == [1 + sum(len(o.lines) for o in outputs[:i]) for i in range(len(outputs))]
    assert len(outputs) < len(printed) / 2


async def test_a_question_comes_after_the_lines_printed_before_it(platform):
    code, _ = await run(platform, "push", "hello", "-p", str(EXAMPLES / "python"))
    assert code == 0
    code, out, _ = await run_streams(platform, "delete", "hello", answers=[True])
    assert code == 0
    assert out[0].startswith("Really delete the app hello?"), out


async def test_a_stagings_lines_travel_together_and_arrive_in_order(platform):
    seen = _watch(platform)
    code, lines = await run(platform, "push", "hello", "-p", str(EXAMPLES / "python"))
    assert code == 0, "\n".join(lines)
    to_loggregator = [m for sender, receiver, m in seen if sender.startswith("cell-") and receiver == "loggregator"]
    staging = [m for m in to_loggregator if m.step == 8]
    staged_lines = [row[3] for m in staging for row in (m.rows if isinstance(m, LogLines) else (m.row,))]
    assert len(staging) <= 7 and len(staged_lines) > 15  # a message for each thing the cell said at once
    start = lines.index("Staging app and tracing logs...") + 1
    shown = lines[start : lines.index("", start)]
    assert shown == [f"   {text}" for text in staged_lines]
    assert sum(isinstance(m, LogLine) for m in staging) <= 2  # "Downloading ..." and "Downloaded ..." alone
    delivered = [m for _, receiver, m in seen if receiver == "cli" and isinstance(m, LogDelivery)]
    assert [line.text for m in delivered for line in m.lines if line.source_type == "STG"] == staged_lines
    assert max(len(m.lines) for m in delivered) > 1
