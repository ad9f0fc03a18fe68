"""The loggregator actor on its own: recent lines, live subscribers through
the seam, lines kept on disk for a later process, and forgetting an app."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.loggregator import RECENT, LoggregatorActor, _bucket, format_log_line
from actors.runtime import ActorSystem, AsyncioActor, VirtualClock, handles
from protocol.messages import ForgetLogs, LogDelivery, LogLine, RecentLogs, Subscribe, Unsubscribe

pytestmark = pytest.mark.anyio


class Tail(AsyncioActor):
    """A subscriber: keeps what it is sent."""

    def __init__(self, *, name: str) -> None:
        super().__init__(name=name)
        self.got: list[tuple[str, str]] = []

    @handles(LogDelivery)
    def _line(self, message: LogDelivery) -> None:
        self.got.extend((message.subscription, line.text) for line in message.lines)

    def on_receive(self, message: object) -> object:
        if message == "got":
            return list(self.got)
        return super().on_receive(message)


def _line(text: str, guid: str = "app-1", t: float = 1_767_225_600.0) -> LogLine:
    return LogLine(guid, "APP", "0", text, t)


async def _lines(system: ActorSystem, guid: str = "app-1", limit: int = 1000) -> list[str]:
    return [x.text for x in await system.ask("loggregator", RecentLogs(guid, limit))]


async def test_recent_lines_are_kept_per_app_in_order_and_bounded(tmp_path: Path) -> None:
    async with ActorSystem(clock=VirtualClock()) as system:
        LoggregatorActor.start()
        for i in range(RECENT + 5):
            system.tell("loggregator", _line(f"line {i}"))
        system.tell("loggregator", _line("other", guid="app-2"))
        lines = await _lines(system)
        assert len(lines) == RECENT
        assert lines[0] == "line 5" and lines[-1] == f"line {RECENT + 4}"
        assert await _lines(system, limit=2) == [f"line {RECENT + 3}", f"line {RECENT + 4}"]
        assert await _lines(system, "app-2") == ["other"]
        assert await _lines(system, "app-3") == []


async def test_subscribers_get_new_lines_of_their_app_until_they_unsubscribe() -> None:
    async with ActorSystem(clock=VirtualClock()) as system:
        LoggregatorActor.start()
        Tail.start(name="tail")
        system.tell("loggregator", _line("before"))
        await system.ask("loggregator", Subscribe("app-1", "tail", "s1"))
        system.tell("loggregator", _line("one"))
        system.tell("loggregator", _line("elsewhere", guid="app-2"))
        await system.ask("loggregator", RecentLogs("app-1"))  # the lines above were handled
        assert await system.ask("tail", "got") == [("s1", "one")]
        await system.ask("loggregator", Unsubscribe("app-1", "s1"))
        system.tell("loggregator", _line("two"))
        await system.ask("loggregator", RecentLogs("app-1"))
        assert await system.ask("tail", "got") == [("s1", "one")]


async def test_a_subscriber_that_is_gone_is_dropped_not_fatal() -> None:
    async with ActorSystem(clock=VirtualClock()) as system:
        LoggregatorActor.start()
        await system.ask("loggregator", Subscribe("app-1", "nobody", "s1"))
        system.tell("loggregator", _line("one"))
        system.tell("loggregator", _line("two"))
        assert await _lines(system) == ["one", "two"]


def _bucket_file(tmp_path: Path, guid: str = "app-1") -> Path:
    return tmp_path / f"{_bucket(guid)}.jsonl"


async def test_lines_written_to_disk_are_shown_by_a_later_process_and_forgetting_removes_them(tmp_path: Path) -> None:
    neighbour = next(f"app-{i}" for i in range(2, 10_000) if _bucket(f"app-{i}") == _bucket("app-1"))
    async with ActorSystem(clock=VirtualClock()) as system:
        LoggregatorActor.start(tmp_path)
        system.tell("loggregator", _line("first run"))
        system.tell("loggregator", _line("next door", guid=neighbour))
        await system.clock.sleep(5)  # past the flush interval
    assert [p.name for p in tmp_path.iterdir()] == [_bucket_file(tmp_path).name]  # one file for both apps
    with _bucket_file(tmp_path).open("a") as fh:
        fh.write('{"a": "app-1", "t": 1, "src": "APP"')  # torn by a crash mid-write
    async with ActorSystem(clock=VirtualClock()) as system:
        LoggregatorActor.start(tmp_path)
        system.tell("loggregator", _line("second run"))
        assert await _lines(system) == ["first run", "second run"]
        await system.ask("loggregator", ForgetLogs("app-1"))
        assert await _lines(system) == []
        assert await _lines(system, neighbour) == ["next door"]
    async with ActorSystem(clock=VirtualClock()) as system:
        LoggregatorActor.start(tmp_path)
        assert await _lines(system) == []
        assert await _lines(system, neighbour) == ["next door"]


async def test_an_apps_file_of_an_earlier_version_is_read_first_and_removed_with_the_app(tmp_path: Path) -> None:
    old = tmp_path / "app-1.jsonl"
    old.write_text('{"t": 1767225600.0, "src": "APP", "i": "0", "s": "OUT", "m": "from before"}\n')
    async with ActorSystem(clock=VirtualClock()) as system:
        LoggregatorActor.start(tmp_path)
        system.tell("loggregator", _line("now"))
        await system.clock.sleep(5)
        assert await _lines(system) == ["from before", "now"]
        await system.ask("loggregator", ForgetLogs("app-1"))
        assert not old.exists() and await _lines(system) == []


def test_a_line_is_printed_as_cf_logs_prints_it() -> None:
    line = LogLine("g", "APP", "0", "hello", 1_767_225_600.25)
    assert format_log_line(line) == "   2026-01-01T00:00:00.25+0000 [APP/PROC/WEB/0] OUT hello"
    staging = LogLine("g", "STG", "0", "Staging...", 1_767_225_600.0, "ERR")
    assert format_log_line(staging) == "   2026-01-01T00:00:00.00+0000 [STG/0] ERR Staging..."


async def test_lines_sent_together_are_kept_and_delivered_one_by_one_in_order() -> None:
    from protocol.messages import LogLines

    async with ActorSystem(clock=VirtualClock()) as system:
        LoggregatorActor.start()
        Tail.start(name="tail")
        await system.ask("loggregator", Subscribe("app-1", "tail", "s1"))
        system.tell("loggregator", _line("first"))
        rows = (_line("second").row, _line("elsewhere", guid="app-2").row, _line("third").row)
        assert LogLines(rows).lines == (_line("second"), _line("elsewhere", guid="app-2"), _line("third"))
        system.tell("loggregator", LogLines(rows))
        assert await _lines(system) == ["first", "second", "third"]
        assert await _lines(system, "app-2") == ["elsewhere"]
        assert await system.ask("tail", "got") == [("s1", "first"), ("s1", "second"), ("s1", "third")]


async def test_an_apps_file_is_cut_back_to_the_newest_window_past_twice_it_across_processes(tmp_path: Path) -> None:
    from protocol.messages import LogLines

    def count() -> int:
        return len(_bucket_file(tmp_path).read_text().splitlines())

    async def write(system: ActorSystem, start: int, n: int) -> None:
        system.tell("loggregator", LogLines(tuple(_line(f"line {i}").row for i in range(start, start + n))))
        await system.clock.sleep(5)  # past the flush interval

    async with ActorSystem(clock=VirtualClock()) as system:
        LoggregatorActor.start(tmp_path)
        await write(system, 0, RECENT)
        await write(system, RECENT, RECENT)
        assert count() == 2 * RECENT  # not past twice the window yet
    async with ActorSystem(clock=VirtualClock()) as system:
        LoggregatorActor.start(tmp_path)  # a later process counts what the file holds
        await write(system, 2 * RECENT, 1)
        assert count() == RECENT
        await write(system, 2 * RECENT + 1, RECENT)
        assert count() == 2 * RECENT
        await write(system, 3 * RECENT + 1, 1)
        assert count() == RECENT
        lines = await _lines(system)
    assert lines[-1] == f"line {3 * RECENT + 1}" and len(lines) == RECENT
    assert _bucket_file(tmp_path).read_text().splitlines()[-1].endswith(f'"m": "line {3 * RECENT + 1}"}}')
