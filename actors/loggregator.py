"""The `loggregator` actor: per-app log streams (Loggregator / Log Cache).

Components send `LogLine`s tagged with a source type: `API` (Cloud
Controller), `STG` (staging), `CELL` (container lifecycle), `APP` (the
instance's own output). It keeps the recent lines of each app (what
`cf logs APP --recent` shows), sends each new line to the live subscribers
(a push tracing staging output, `cf logs APP` tailing) as a `LogDelivery`
message to the subscribing actor, through the delivery seam like any other
message (so a fault on the link to the cli loses log lines, as it would in
Cloud Foundry), and writes them to `<data>/logs/<app_guid>.jsonl` so a later
process can still show them.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import structlog

from actors.runtime import AsyncioActor, handles
from actors.runtime.offload import in_thread
from protocol.messages import ForgetLogs, LogDelivery, LogLine, LogLines, LogRow, RecentLogs, Subscribe, Unsubscribe

__all__ = ["LoggregatorActor", "format_log_line"]

log = structlog.get_logger("minifoundry.loggregator")

RECENT = 1000
FLUSH_EVERY = 2.0  # platform seconds
_REWRITE_OVER = 2 * RECENT


class _Flush:
    """Timer: write buffered lines to disk."""


def format_log_line(line: LogLine) -> str:
    """A line as `cf logs` prints it (local time, as cf does); a message of
    several lines gives one such line each, each with the whole header."""
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(line.timestamp, UTC).astimezone()
    ts = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 10000:02d}" + stamp.strftime("%z")
    source = line.source_type
    if source == "APP":
        source = "APP/PROC/WEB"
    pieces = [p.rstrip("\r") for p in line.text.rstrip("\r\n").split("\n")] or [""]
    return "\n".join(f"   {ts} [{source}/{line.source_instance}] {line.stream} {p}" for p in pieces)


class LoggregatorActor(AsyncioActor):
    default_name = "loggregator"

    def __init__(self, log_dir: Path | None = None, *, name: str = "loggregator") -> None:
        super().__init__(name=name)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        # Lines are kept as rows (`LogRow`); a `LogLine` is made when one is read.
        self._recent: dict[str, deque[LogRow]] = {}
        self._loaded: set[str] = set()
        # app_guid -> subscription id -> the subscribing actor's name
        self._subscribers: dict[str, dict[str, str]] = {}
        self._pending: dict[str, list[LogRow]] = {}
        # How many lines each app's file holds, as this process counted them
        # (absent: not counted yet), so a flush need not read the file again.
        self._on_disk: dict[str, int] = {}
        self._flush_armed = False
        self.lines_seen = 0

    async def on_stop(self) -> None:  # type: ignore[override]  # pykka types hooks -> None
        await self._flush()

    @handles(Subscribe)
    def _subscribe(self, message: Subscribe) -> None:
        self._subscribers.setdefault(message.app_guid, {})[message.subscription] = message.subscriber

    @handles(Unsubscribe)
    def _unsubscribe(self, message: Unsubscribe) -> None:
        subs = self._subscribers.get(message.app_guid)
        if subs is not None:
            subs.pop(message.subscription, None)

    @handles(RecentLogs)
    async def _recent_logs(self, message: RecentLogs) -> list[LogLine]:
        await self._load(message.app_guid)
        rows = list(self._recent.get(message.app_guid, ()))
        return [LogLine(*row) for row in rows[-message.limit :]]

    @handles(ForgetLogs)
    async def _forget_logs(self, message: ForgetLogs) -> None:
        await self._forget(message.app_guid)

    @handles(_Flush)
    async def _flush_now(self, _message: _Flush) -> None:
        self._flush_armed = False
        await self._flush()

    @handles(LogLines)
    def _append_many(self, message: LogLines) -> None:
        # Each run of one app's lines taken together (a cell starting
        # instances sends them app by app).
        rows = message.rows
        start = 0
        n = len(rows)
        while start < n:
            app_guid = rows[start][0]
            end = start + 1
            while end < n and rows[end][0] == app_guid:
                end += 1
            self._take(app_guid, rows[start:end])
            start = end

    @handles(LogLine)
    def _append(self, line: LogLine) -> None:
        self._take(line.app_guid, (line.row,))

    def _take(self, app_guid: str, run: tuple[LogRow, ...]) -> None:
        """Keep one app's new lines, send each to its subscribers, and
        queue them for the disk."""
        self.lines_seen += len(run)
        recent = self._recent.get(app_guid)
        if recent is None:
            recent = self._recent[app_guid] = deque(maxlen=RECENT)
        recent.extend(run)
        subscribers = self._subscribers.get(app_guid)
        if subscribers:
            lines = tuple(LogLine(*row) for row in run)
            for subscription, subscriber in list(subscribers.items()):
                if not self.system.tell(subscriber, LogDelivery(subscription, lines)):
                    subscribers.pop(subscription, None)  # the subscriber is gone
        if self.log_dir is not None:
            self._pending.setdefault(app_guid, []).extend(run)
            if not self._flush_armed:
                self._flush_armed = True
                self.tell_self_later(FLUSH_EVERY, _Flush())

    async def _load(self, app_guid: str) -> None:
        """Bring lines written by an earlier process in front of this one's."""
        if self.log_dir is None or app_guid in self._loaded:
            return
        self._loaded.add(app_guid)
        path = self.log_dir / f"{app_guid}.jsonl"
        async with self.clock.threaded_io():
            older = await in_thread(_read_lines, path)
        current = list(self._recent.get(app_guid, ()))
        pending = {id(x) for x in self._pending.get(app_guid, ())}
        # Lines already flushed by this process are in the file too.
        written_here = [x for x in current if id(x) not in pending]
        if written_here:
            older = older[: max(0, len(older) - len(written_here))]
        merged: deque[LogRow] = deque(older, maxlen=RECENT)
        merged.extend(current)
        self._recent[app_guid] = merged

    async def _flush(self) -> None:
        if self.log_dir is None or not self._pending:
            return
        pending, self._pending = self._pending, {}
        log_dir = self.log_dir
        known = {app_guid: self._on_disk.get(app_guid) for app_guid in pending}
        async with self.clock.threaded_io():
            counts = await in_thread(_append_lines, log_dir, pending, known)
        self._on_disk.update(counts)

    async def _forget(self, app_guid: str) -> None:
        self._recent.pop(app_guid, None)
        self._pending.pop(app_guid, None)
        self._subscribers.pop(app_guid, None)
        self._on_disk.pop(app_guid, None)
        if self.log_dir is not None:
            path = self.log_dir / f"{app_guid}.jsonl"
            async with self.clock.threaded_io():
                await in_thread(lambda: path.unlink(missing_ok=True))


def _row_to_json(row: LogRow) -> str:
    _, source_type, source_instance, text, timestamp, stream = row
    return json.dumps({"t": timestamp, "src": source_type, "i": source_instance, "s": stream, "m": text})


def _append_lines(log_dir: Path, pending: dict[str, list[LogRow]], known: dict[str, int | None]) -> dict[str, int]:
    """Append each app's new lines to its file; how many lines each file
    holds now. A file's lines are counted once (`known` holds the counts of
    those already counted), and a file past twice the window is cut back to
    the newest window."""
    log_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for app_guid, lines in pending.items():
        path = log_dir / f"{app_guid}.jsonl"
        count = known.get(app_guid)
        if count is None:
            count = _count_lines(path)
        with path.open("ab") as fh:
            fh.write("".join(_row_to_json(x) + "\n" for x in lines).encode("utf-8"))
        count += len(lines)
        if count > _REWRITE_OVER:
            with path.open("r", encoding="utf-8") as fh:
                keep = deque(fh, maxlen=RECENT)
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(keep), encoding="utf-8")
            tmp.replace(path)
            count = len(keep)
        counts[app_guid] = count
    return counts


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 16), b""))
    except FileNotFoundError:
        return 0


def _read_lines(path: Path) -> list[LogRow]:
    if not path.exists():
        return []
    lines: list[LogRow] = []
    with path.open("r", encoding="utf-8") as fh:
        for raw in deque(fh, maxlen=RECENT):
            try:
                d = json.loads(raw)
                lines.append((path.stem, d["src"], d["i"], d["m"], d["t"], d.get("s", "OUT")))
            except (ValueError, KeyError):
                continue  # a line torn by a crash mid-write is skipped, not fatal
    return lines
