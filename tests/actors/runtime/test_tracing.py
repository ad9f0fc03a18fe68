"""The trace recorder: what it keeps of a conversation, as rows, and that a
row's label and step are what `label_of` and `step_of` say of the message,
however the recorder finds them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from actors.runtime import VirtualClock
from actors.runtime.tracing import TraceRecorder, label_of, step_of
from protocol import blobs, ccdb
from protocol.messages import CliCommand, GetApp, LogLine, LogLines, StageApp
from protocol.records import DELIVERY_FIELDS, delivery_row


@dataclass(frozen=True, slots=True)
class _Stepped:
    STEP: ClassVar[int] = 4
    name: str = "x"


@dataclass(frozen=True, slots=True)
class _OwnStep:
    step: int | None = None


class _Loose:
    """Not slotted: an instance may carry a step of its own."""


def _loose_with_step() -> _Loose:
    loose = _Loose()
    loose.step = 7  # type: ignore[attr-defined]
    loose.label = "dynamic"  # type: ignore[attr-defined]
    return loose


MESSAGES = [
    _Stepped(),
    _OwnStep(),
    _OwnStep(step=3),
    _Loose(),
    _loose_with_step(),
    3,
    "text",
    GetApp("hello"),
    StageApp("guid", "push", "admin"),
    CliCommand(("push", "hello"), "cmd-1"),
    CliCommand(("apps",), "cmd-2"),
    LogLine("g", "STG", "0", "x", 0.0),
    LogLine("g", "APP", "0", "x", 0.0),
    LogLines((("g", "STG", "0", "x", 0.0, "OUT"),)),
    ccdb.GetApp("g"),
    ccdb.GetApp("g", step=3),
    blobs.GetBytes("k"),
    blobs.PutBytes(b"", step=9),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_a_recorded_row_says_what_label_of_and_step_of_say(message):
    recorder = TraceRecorder(VirtualClock())
    recorder.open("t")
    for _ in range(2):  # the second time, from what the recorder learned of the type
        recorder.record_delivery("t", "cli", "cloud_controller", message, True)
    rows = recorder.rows("t")
    assert [row[4:6] for row in rows] == [(label_of(message), step_of(message))] * 2
    assert [dict(zip(DELIVERY_FIELDS, row, strict=True))["sender"] for row in rows] == ["cli", "cli"]


def test_a_row_is_a_row_and_a_record_becomes_one():
    row = (1, 0.5, "cli", "bbs", "DesireLRP", 11, False)
    assert delivery_row(row) is row
    assert delivery_row(dict(zip(DELIVERY_FIELDS, row, strict=True))) == row
    with pytest.raises(ValueError):
        delivery_row(row[:6])


def test_a_conversation_records_deliveries_in_order_up_to_its_limit():
    recorder = TraceRecorder(VirtualClock(), max_deliveries=3)
    recorder.open("t")
    for i in range(5):
        recorder.record_delivery("t", "cli", "ccdb", _Stepped(name=str(i)), False)
    assert recorder.length("t") == 3
    assert [row[0] for row in recorder.rows("t")] == [1, 2, 3]
    recorder.close("t")
    assert recorder.rows("t") == [] and recorder.length("t") == 0


def test_a_rows_time_is_the_clocks_platform_time_on_a_compressed_clock():
    import time

    from actors.runtime import RealClock

    clock = RealClock(speed=1000)
    recorder = TraceRecorder(clock)
    recorder.open("t")
    time.sleep(0.01)
    before = clock.monotonic()
    recorder.record_delivery("t", "cli", "ccdb", _Stepped(), True)
    after = clock.monotonic()
    (row,) = recorder.rows("t")
    assert before - 1e-6 <= row[1] <= after + 1e-6 and row[1] >= 5  # ten ms at 1000x: about 10 s
