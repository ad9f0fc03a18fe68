"""The workload: timed cf commands, each run as its own task through the
platform's front door, recorded with how it ended.

A command ends `succeeded` (exit 0), `failed` (exit 1 with the error it
printed), `hung` (no answer within the push deadline) or `interrupted` (the
platform process died under it).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from actors.experiments.record import CommandRecord, Recording
from actors.experiments.schema import PUSH_FLAGS, PUSH_OPTIONS, Experiment, WorkloadStep
from actors.runtime.errors import ActorDeadError, AskTimeout

if TYPE_CHECKING:
    from actors.platform import Platform

__all__ = ["Workload", "command_argv", "describe_step", "summarize"]

log = structlog.get_logger("minifoundry.experiments")


def command_argv(exp: Experiment, step: WorkloadStep, app: str) -> list[str]:
    """The cf command line one workload entry runs for one app."""
    o = step.options
    argv = [step.action, app]
    if step.action == "push":
        for key, flag in PUSH_OPTIONS.items():
            if key in o:
                value = o[key]
                argv += [flag, exp.resolve(value) if key in ("path", "manifest") else str(value)]
        if "path" in o and "manifest" not in o:
            # An app directory's own manifest (as the examples carry): cf
            # reads one only from the working directory or -f, so name it.
            own = Path(exp.resolve(o["path"])) / "manifest.yml"
            if own.is_file():
                argv += ["-f", str(own)]
        for bp in (*((o["buildpack"],) if "buildpack" in o else ()), *o.get("buildpacks", ())):
            argv += ["-b", bp]
        argv += [flag for key, flag in PUSH_FLAGS.items() if o.get(key)]
    elif step.action == "scale":
        for key, flag in (("instances", "-i"), ("memory", "-m"), ("disk", "-k")):
            if key in o:
                argv += [flag, str(o[key])]
        argv.append("-f")
    elif step.action == "delete":
        argv.append("-f")
    return argv


class Workload:
    """Runs commands as tasks and keeps their records."""

    def __init__(self, platform: Platform, recording: Recording, *, deadline: float, t0: float = 0.0) -> None:
        self.platform = platform
        self.recording = recording
        self.deadline = deadline
        self.t0 = t0
        self.tasks: list[asyncio.Task[None]] = []
        self._seq = len(recording.commands)

    def now(self) -> float:
        return self.platform.clock.monotonic() - self.t0

    def start(self, action: str, app: str, argv: list[str], *, retry_of: int | None = None) -> CommandRecord:
        self._seq += 1
        record = CommandRecord(self._seq, action, app, argv, started=round(self.now(), 3), retry_of=retry_of)
        self.recording.command_started(record)
        task = asyncio.get_running_loop().create_task(self._run(record), name=f"workload:{action}:{app}")
        self.tasks.append(task)
        return record

    async def _run(self, record: CommandRecord) -> None:
        try:
            outcome = await self.platform.run_command(record.argv, _discard, timeout=self.deadline)
        except AskTimeout:
            record.outcome = "hung"
            record.error_line = f"no answer within {self.deadline:g} s"
        except ActorDeadError as exc:
            record.outcome = "failed"
            record.error, record.error_line = "ActorDeadError", f"ActorDeadError - {exc}"
        except asyncio.CancelledError:
            record.outcome = "hung"
            record.error_line = "still running when the experiment ended"
            raise
        else:
            record.code = outcome.exit_code
            if outcome.exit_code == 0:
                record.outcome = "succeeded"
            else:
                # The error's name comes typed with the outcome: nothing is read back from the text.
                record.outcome = "failed"
                record.error, record.error_line = outcome.error, outcome.error_line or "(no output)"
        finally:
            record.ended = round(self.now(), 3)
            self.recording.command_ended(record)
            log.info(
                "experiment-command-ended", argv=record.argv, outcome=record.outcome, error=record.error_line or None
            )

    def pending(self) -> list[asyncio.Task[None]]:
        return [t for t in self.tasks if not t.done()]

    async def wait(self, timeout: float) -> bool:
        """Wait (platform time) until every command has ended; False if some have not."""
        deadline = self.platform.clock.monotonic() + timeout
        while self.pending():
            if self.platform.clock.monotonic() >= deadline:
                return False
            await self.platform.clock.sleep(1.0)
        return True

    async def cancel_pending(self) -> None:
        pending = self.pending()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def _discard(line: str) -> None:
    """An experiment's commands print to nobody: what matters is how they end."""


def describe_step(step: WorkloadStep) -> str:
    apps = step.times_and_apps()
    who = apps[0][1] if step.count == 1 else f"{apps[0][1]} .. {apps[-1][1]}"
    spacing = f" every {step.every:g} s" if step.count > 1 and step.every else ""
    extra = " ".join(f"{k}={v}" for k, v in sorted(step.options.items()) if k not in ("path", "manifest"))
    return f"{step.action} {who}{spacing}{' (' + extra + ')' if extra else ''}"


def summarize(records: list[CommandRecord]) -> dict[str, Any]:
    out: dict[str, Any] = {"total": len(records), "succeeded": 0, "failed": {}, "hung": 0, "interrupted": 0}
    for r in records:
        if r.outcome == "succeeded":
            out["succeeded"] += 1
        elif r.outcome == "failed":
            name = r.error or "unnamed"
            out["failed"][name] = out["failed"].get(name, 0) + 1
        elif r.outcome in ("hung", "running"):
            out["hung"] += 1
        elif r.outcome == "interrupted":
            out["interrupted"] += 1
    return out
