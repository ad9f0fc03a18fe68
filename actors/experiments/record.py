"""What an experiment run saw, as plain data: commands, samples, a timeline.

The runner writes here as things happen; checks and the report read it
afterwards. Everything is JSON-ready. A run in a child process (the SIGKILL
experiment) mirrors each record as a JSON line to a file as it happens, so
the parent can read back everything the child saw before it was killed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import IO, Any

__all__ = ["CommandRecord", "Recording", "Sample"]


@dataclasses.dataclass(slots=True)
class CommandRecord:
    """One workload command and how it ended."""

    seq: int
    action: str
    app: str
    argv: list[str]
    started: float
    ended: float | None = None
    code: int | None = None
    outcome: str = "running"  # running | succeeded | failed | hung | interrupted
    error: str | None = None  # the error's name, when it has one
    error_line: str = ""
    retry_of: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(slots=True)
class Sample:
    """Instances at one moment: what BBS wants and what cells really run."""

    t: float
    desired: int
    running: int  # distinct instance indices running on cells (the truth)
    bbs_running: int
    starting: int
    crashed: int
    unclaimed: int
    apps: dict[str, tuple[int, int]]  # app name -> (desired, running)
    stats: dict[str, int]
    cells: dict[str, int] = dataclasses.field(default_factory=dict)  # cell -> instances running there
    queued: dict[str, int] = dataclasses.field(default_factory=dict)  # actor -> mailbox depth, when 10 or more

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Recording:
    """Everything one run saw, in platform time."""

    def __init__(self, mirror: IO[str] | None = None) -> None:
        self.commands: list[CommandRecord] = []
        self.samples: list[Sample] = []
        self.timeline: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self._mirror = mirror

    # --- writing -------------------------------------------------------------------

    def event(self, t: float, kind: str, text: str, **data: Any) -> dict[str, Any]:
        entry = {"t": round(t, 3), "kind": kind, "text": text, **data}
        self.timeline.append(entry)
        self._write("event", entry)
        return entry

    def fault(self, entry: dict[str, Any]) -> None:
        self.faults.append(entry)
        self._write("fault", entry)

    def command_started(self, record: CommandRecord) -> None:
        self.commands.append(record)
        self._write("command", record.as_dict())

    def command_ended(self, record: CommandRecord) -> None:
        self._write("command", record.as_dict())

    def sample(self, sample: Sample) -> None:
        self.samples.append(sample)
        self._write("sample", sample.as_dict())

    def _write(self, kind: str, data: dict[str, Any]) -> None:
        if self._mirror is not None:
            self._mirror.write(json.dumps({"record": kind, **data}, default=str) + "\n")
            self._mirror.flush()

    # --- reading back a child's mirror ----------------------------------------------------

    @classmethod
    def read_mirror(cls, path: Path) -> Recording:
        """Rebuild a recording from a child's JSON lines; a line cut short by
        the kill is ignored."""
        rec = cls()
        by_seq: dict[int, CommandRecord] = {}
        if not path.exists():
            return rec
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            kind = data.pop("record", None)
            if kind == "event":
                rec.timeline.append(data)
            elif kind == "fault":
                rec.faults.append(data)
            elif kind == "sample":
                data["apps"] = {k: tuple(v) for k, v in data["apps"].items()}
                rec.samples.append(Sample(**data))
            elif kind == "command":
                record = CommandRecord(**data)
                if record.seq in by_seq:
                    rec.commands[rec.commands.index(by_seq[record.seq])] = record
                else:
                    rec.commands.append(record)
                by_seq[record.seq] = record
        return rec
