"""The `loggregator` actor: per-app log streams (Loggregator / Log Cache).

Components send `LogLine`s tagged with a source type: `API` (Cloud
Controller), `STG` (staging), `CELL` (container lifecycle), `APP` (the
instance's own output). It keeps the recent lines of each app (what
`cf logs APP --recent` shows), sends each new line to the live subscribers
(a push tracing staging output, `cf logs APP` tailing) as a `LogDelivery`
message to the subscribing actor, through the delivery seam like any other
message (so a fault on the link to the cli loses log lines, as it would in
Cloud Foundry), and writes them to disk so a later process can still show
them.

On disk, apps share files: an app's lines go to `<data>/logs/<bucket>.jsonl`,
one of 256 buckets by the app's guid, each line a JSON object naming its app
(`"a"`). Making a file costs far more than appending to one (on this
project's machine, half a millisecond of CPU against ten microseconds), and a
file per app made one per push. A bucket keeps the newest `RECENT` lines of
each of its apps: past twice that for one app, the bucket is rewritten.
Files of an earlier version (`<app_guid>.jsonl`, one app each) are still read,
and removed with their app.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
        # How many lines of each app every bucket file holds, as this process
        # counted them (absent: not counted yet), so a flush need not read
        # the file again.
        self._on_disk: dict[str, dict[str, int]] = {}
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
        log_dir = self.log_dir
        async with self.clock.threaded_io():
            older = await in_thread(_read_lines, log_dir, app_guid)
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
        known = {bucket: self._on_disk.get(bucket) for bucket in {_bucket(app_guid) for app_guid in pending}}
        async with self.clock.threaded_io():
            counts = await in_thread(_append_lines, log_dir, pending, known)
        self._on_disk.update(counts)

    async def _forget(self, app_guid: str) -> None:
        self._recent.pop(app_guid, None)
        self._pending.pop(app_guid, None)
        self._subscribers.pop(app_guid, None)
        if self.log_dir is not None:
            log_dir = self.log_dir
            bucket = _bucket(app_guid)
            async with self.clock.threaded_io():
                counts = await in_thread(_forget_lines, log_dir, app_guid, self._on_disk.get(bucket))
            self._on_disk[bucket] = counts


# --- the files (on a worker thread) ------------------------------------------------------------


def _bucket(app_guid: str) -> str:
    return hashlib.sha1(app_guid.encode("utf-8"), usedforsecurity=False).hexdigest()[:2]


def _row_to_json(row: LogRow) -> str:
    app_guid, source_type, source_instance, text, timestamp, stream = row
    return json.dumps({"a": app_guid, "t": timestamp, "src": source_type, "i": source_instance, "s": stream, "m": text})


def _parsed(path: Path) -> Iterator[dict[str, Any]]:
    """The lines of a file as JSON objects (a line torn by a crash mid-write is skipped)."""
    try:
        fh = path.open("r", encoding="utf-8")
    except FileNotFoundError:
        return
    with fh:
        for raw in fh:
            try:
                d = json.loads(raw)
            except ValueError:
                continue
            if isinstance(d, dict):
                yield d


def _count_apps(path: Path) -> dict[str, int]:
    apps: Counter[str] = Counter()
    for d in _parsed(path):
        app = d.get("a")
        if isinstance(app, str):
            apps[app] += 1
    return dict(apps)


def _append_lines(
    log_dir: Path, pending: dict[str, list[LogRow]], known: dict[str, dict[str, int] | None]
) -> dict[str, dict[str, int]]:
    """Append each app's new lines to its bucket; how many lines of each app
    every bucket written holds now. A bucket's lines are counted once
    (`known` holds the counts of those already counted); a bucket with more
    than twice `RECENT` lines of an app is cut back to each app's newest
    `RECENT`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    by_bucket: dict[str, list[LogRow]] = {}
    for app_guid, lines in pending.items():
        by_bucket.setdefault(_bucket(app_guid), []).extend(lines)
    counts: dict[str, dict[str, int]] = {}
    for bucket, lines in by_bucket.items():
        path = log_dir / f"{bucket}.jsonl"
        held = known.get(bucket)
        held = dict(held) if held is not None else _count_apps(path)
        with path.open("ab") as fh:
            fh.write("".join(_row_to_json(x) + "\n" for x in lines).encode("utf-8"))
        for row in lines:
            held[row[0]] = held.get(row[0], 0) + 1
        if max(held.values(), default=0) > _REWRITE_OVER:
            held = _rewrite(path, held, drop=None)
        counts[bucket] = held
    return counts


def _rewrite(path: Path, held: dict[str, int], drop: str | None) -> dict[str, int]:
    """Rewrite a bucket with each app's newest `RECENT` lines (none of `drop`'s)."""
    skip = {app: max(0, n - RECENT) for app, n in held.items()}
    kept: list[str] = []
    for d in _parsed(path):
        app = d.get("a")
        if app == drop or not isinstance(app, str):
            continue
        if skip.get(app, 0) > 0:
            skip[app] -= 1
            continue
        kept.append(json.dumps(d) + "\n")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    tmp.replace(path)
    return {app: min(n, RECENT) for app, n in held.items() if app != drop}


def _forget_lines(log_dir: Path, app_guid: str, known: dict[str, int] | None) -> dict[str, int]:
    """Remove an app's lines (its bucket rewritten without them, its file of
    an earlier version removed); the bucket's counts now."""
    (log_dir / f"{app_guid}.jsonl").unlink(missing_ok=True)
    path = log_dir / f"{_bucket(app_guid)}.jsonl"
    held = dict(known) if known is not None else _count_apps(path)
    if held.get(app_guid):
        held = _rewrite(path, held, drop=app_guid)
    return held


def _read_lines(log_dir: Path, app_guid: str) -> list[LogRow]:
    """An app's newest `RECENT` lines on disk: its file of an earlier version, then its bucket's."""
    lines: deque[LogRow] = deque(maxlen=RECENT)
    for path, own in ((log_dir / f"{app_guid}.jsonl", True), (log_dir / f"{_bucket(app_guid)}.jsonl", False)):
        for d in _parsed(path):
            if not own and d.get("a") != app_guid:
                continue
            try:
                lines.append((app_guid, d["src"], d["i"], d["m"], d["t"], d.get("s", "OUT")))
            except KeyError:
                continue
    return list(lines)
