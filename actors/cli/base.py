"""What every cli command shares: running one command and ending it with a
`CommandOutcome`, its output lines (sent to the terminal actor), questions,
log subscriptions, and talking to Cloud Controller."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import structlog

from actors.cli.commands import Command, parse, refusal_lines
from actors.runtime import AsyncioActor, handles
from actors.runtime.delivery import current_trace
from actors.runtime.errors import ActorDeadError
from protocol.errors import (
    AppInvalid,
    AppMemoryQuotaExceeded,
    AppNameTaken,
    FileTooLarge,
    IncorrectUsage,
    InvalidAppName,
    InvalidManifest,
    MinifoundryError,
    NotStaged,
    PathEmpty,
    PathNotFound,
    PlatformError,
    QuotaInstanceLimitExceeded,
    QuotaInstanceMemoryLimitExceeded,
    StackNotFound,
    UnknownBuildpack,
    UnknownCommand,
    UnsafePath,
)
from protocol.manifest import validate_app_name
from protocol.messages import (
    CancelCommand,
    CliCommand,
    CommandOutcome,
    Confirm,
    GetApp,
    LogDelivery,
    LogLine,
    Output,
    Subscribe,
    Unsubscribe,
)
from protocol.records import AppRecord
from protocol.snapshots import CliStatistics

__all__ = ["CliBase", "CliConfig", "Command", "CommandFailed", "Run", "runs"]

log = structlog.get_logger("minifoundry.cli")

Out = Callable[[str], None]
OnLine = Callable[[LogLine], None]
Handler = Callable[..., Any]


#: Errors cf v8 reports in words of its own, which the cli prints without a name.
_CF_WORDED = (
    AppInvalid,
    AppMemoryQuotaExceeded,
    AppNameTaken,
    FileTooLarge,
    InvalidAppName,
    InvalidManifest,
    NotStaged,
    PathEmpty,
    PathNotFound,
    QuotaInstanceLimitExceeded,
    QuotaInstanceMemoryLimitExceeded,
    StackNotFound,
    UnknownBuildpack,
    UnsafePath,
)


def runs(name: str) -> Callable[[Handler], Handler]:
    """Mark a method as the cli's handler of command `name` (as `@handles` marks message handlers)."""

    def mark(method: Handler) -> Handler:
        method.__runs__ = name  # type: ignore[attr-defined]
        return method

    return mark


@dataclasses.dataclass(frozen=True, slots=True)
class CliConfig:
    org: str = "minifoundry"
    space: str = "dev"
    user: str = "admin"
    poll_interval: float = 3.0  # platform seconds between instance polls (cf v8 polls every 3 s)
    start_timeout: float = 300.0  # cf's CF_STARTUP_TIMEOUT (5 minutes)
    staging_wait: float = 960.0  # longer than Cloud Controller's staging timeout
    api_timeout: float = 30.0


class CommandFailed(Exception):
    """A command ends failed by its own choice (not an exception of the
    platform's): it printed `lines` and fails as `error` with exit code 1."""

    def __init__(self, error: str, *lines: str) -> None:
        super().__init__(error)
        self.error = error
        self.lines = lines


class Run:
    """One running command: where its output goes, and how many lines it sent."""

    def __init__(self, cli: CliBase, message: CliCommand) -> None:
        self.cli = cli
        self.message = message
        self.command_id = message.command_id
        self.lines = 0
        self.task: asyncio.Task[Any] | None = None
        self._pending: list[tuple[str, str]] = []

    def out(self, text: str) -> None:
        """Print one line (to the command's terminal, as an `Output` message)."""
        self._send(text, "out")

    def err(self, text: str) -> None:
        """Print one line to the command's standard error (errors, warnings)."""
        self._send(text, "err")

    def _send(self, text: str, stream: str) -> None:
        # The lines of one turn of the loop go together: the first schedules
        # the message, the others join it.
        self.lines += 1
        pending = self._pending
        pending.append((text, stream))
        if len(pending) == 1:
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Send the lines printed since the last `Output` (in order)."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        token = current_trace.set(None)  # output is not part of the picture of a push
        try:
            first = self.lines - len(pending) + 1
            self.cli.tell(self.message.terminal, Output(self.command_id, first, tuple(pending)))
        finally:
            current_trace.reset(token)

    async def confirm(self, question: str) -> bool | None:
        """The user's yes or no; None when nobody can be asked (not interactive)."""
        if not self.message.interactive:
            return None
        self.flush()  # what was printed before the question comes before it
        answer = await self.cli.ask(self.message.terminal, Confirm(self.command_id, question), timeout=3600.0)
        return None if answer is None else bool(answer)


class CliBase(AsyncioActor):
    default_name = "cli"
    #: command name -> its handler, from the `@runs` marks
    _commands: dict[str, Handler] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._commands = {
            attr.__runs__: getattr(cls, name)
            for klass in reversed(cls.__mro__)
            for name, attr in vars(klass).items()
            if getattr(attr, "__runs__", None) is not None
        }

    def __init__(self, config: CliConfig | None = None, *, recorder: Any = None, name: str = "cli") -> None:
        super().__init__(name=name)
        self.config = config or CliConfig()
        self.recorder = recorder
        self._runs: dict[str, Run] = {}
        self._subscriptions: dict[str, OnLine] = {}  # subscription id -> what takes its lines
        self._subscription_ids = itertools.count()

    # --- running one command -----------------------------------------------------------------

    @handles(CliCommand, concurrent=True)
    async def _run_command(self, message: CliCommand) -> CommandOutcome:
        run = Run(self, message)
        run.task = asyncio.current_task()
        self._runs[message.command_id] = run
        trace_id = current_trace.get()
        try:
            command = parse(message.argv, message.cwd)
            code = await self._commands[command.name](self, command, run)
            return CommandOutcome(int(code or 0), lines=run.lines)
        except CommandFailed as exc:
            for line in exc.lines:
                run.err(line)
            run.out("FAILED")
            return CommandOutcome(1, exc.error, next((x for x in exc.lines if x), ""), run.lines)
        except UnknownCommand as exc:
            # cf prints this itself: the text on stderr, no FAILED.
            for line in exc.message.split("\n"):
                run.err(line)
            return CommandOutcome(1, exc.code, exc.message.split("\n")[0], run.lines)
        except IncorrectUsage as exc:
            return self._usage_failed(run, exc, message.argv)
        except PlatformError as exc:
            # Errors cf has its own words for print as cf prints them (the
            # message alone); the platform's own failures keep their name.
            text = exc.message if isinstance(exc, _CF_WORDED) and exc.message else str(exc)
            return self._failed(run, exc.code, text)
        except (MinifoundryError, ActorDeadError) as exc:
            # The platform itself failed us (a deadline passed, a component
            # is down): named, so a user or an experiment can tell which.
            return self._failed(run, type(exc).__name__, f"{type(exc).__name__} - {exc}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("cli-command-crashed", argv=list(message.argv))
            run.err(f"Unexpected error: {type(exc).__name__}: {exc}")
            run.out("FAILED")
            return CommandOutcome(1, None, f"Unexpected error: {type(exc).__name__}: {exc}", run.lines)
        finally:
            run.flush()
            self._runs.pop(message.command_id, None)
            if self.recorder is not None and trace_id is not None and not isinstance(trace_id, tuple):
                self.recorder.close(trace_id)

    def _failed(self, run: Run, error: str, text: str) -> CommandOutcome:
        """cf's DisplayError: the error's text on stderr, FAILED on stdout."""
        for line in text.split("\n"):
            run.err(line)
        run.out("FAILED")
        return CommandOutcome(1, error, text.split("\n")[0], run.lines)

    def _usage_failed(self, run: Run, exc: IncorrectUsage, argv: tuple[str, ...]) -> CommandOutcome:
        """A command line cf refuses: its words on stderr, then the command's
        help on stdout; FAILED between them for cf's own checks, not for
        what its flag parser refuses."""
        for stream, line in refusal_lines(exc, argv):
            run.out(line) if stream == "out" else run.err(line)
        return CommandOutcome(1, exc.code, exc.message, run.lines)

    @handles(CancelCommand)
    def _cancel_command(self, message: CancelCommand) -> int:
        """Cancel the command `message.command_id`; how many were running (0 or 1)."""
        run = self._runs.get(message.command_id)
        if run is None or run.task is None:
            return 0
        run.task.cancel()
        return 1

    def statistics(self) -> CliStatistics:
        return CliStatistics(commands=len(self._runs), subscriptions=len(self._subscriptions))

    # --- log streams -------------------------------------------------------------------------

    def subscribe(self, app_guid: str, on_line: OnLine, kind: str = "tail") -> str:
        subscription = f"{kind}-{next(self._subscription_ids)}"
        self._subscriptions[subscription] = on_line
        self.tell("loggregator", Subscribe(app_guid, self.actor_name, subscription))
        return subscription

    def unsubscribe(self, app_guid: str, subscription: str) -> None:
        self._subscriptions.pop(subscription, None)
        if self.actor_ref.is_alive():
            self.system.tell("loggregator", Unsubscribe(app_guid, subscription))

    @handles(LogDelivery)
    def _log_delivery(self, message: LogDelivery) -> None:
        on_line = self._subscriptions.get(message.subscription)
        if on_line is not None:
            for line in message.lines:
                on_line(line)

    # --- helpers -----------------------------------------------------------------------------

    def _header(self, verb: str, app: str | None = None) -> str:
        c = self.config
        what = f" app {app}" if app else ""
        return f"{verb}{what} in org {c.org} / space {c.space} as {c.user}..."

    async def cc(self, message: Any, timeout: float | None = None) -> Any:
        return await self.ask("cloud_controller", message, timeout=timeout or self.config.api_timeout)

    async def _app(self, name: str) -> AppRecord:
        validate_app_name(name)
        return await self.cc(GetApp(name))

    def _trace_length(self) -> int:
        trace_id = current_trace.get()
        if self.recorder is None or not isinstance(trace_id, str):
            return 0
        return self.recorder.length(trace_id)

    async def _save_trace(self, app: AppRecord, kind: str, *, since: int = 0) -> None:
        raise NotImplementedError  # push.Push
