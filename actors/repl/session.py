"""One REPL session on a running platform: read a line, run it, repeat.

A `Session` is the same whether it is driven from this process's terminal,
from a pipe, or from a client attached to `serve` over its socket: all it
sees is a `Console` (write a line, read a line with a prompt) and calls to
`interrupt()` when the user presses Ctrl-C.

Lines are cf commands, passed unchanged to `platform.command` (same names,
flags and output as the one-shot interface), or one of the REPL's own:
`status`, `send ACTOR MESSAGE`, `py`, `exit` / `quit`.

Ctrl-C while a command runs stops the *waiting*: a `logs APP` tail ends (the
cli is told to cancel it), a push or any other command goes on in the
platform with its remaining output dropped, and a line says when it ends.
"""

from __future__ import annotations

import asyncio
import os
import pprint
import shlex
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from actors.cli.commands import COMMANDS, EXTRA_COMMANDS, parse
from actors.repl import status as status_mod
from actors.repl.literals import MESSAGE_TYPES, MessageSyntaxError, parse_message
from actors.repl.pyconsole import ExitPython, PythonConsole
from actors.runtime.errors import ActorDeadError, AskTimeout
from protocol.errors import MinifoundryError
from protocol.messages import CancelCommand, ListApps

__all__ = ["PROMPT", "Console", "Session", "register_commands"]

log = structlog.get_logger("minifoundry.repl")

PROMPT = "minifoundry> "
from actors.faults import FAULT_COMMANDS as _FAULT_COMMANDS  # noqa: E402

PY_PROMPT = ">>> "
PY_MORE = "... "

#: The REPL's own commands: name -> (usage, summary), as `help` lists them.
REPL_COMMANDS: dict[str, tuple[str, str]] = {
    "status": ("status", "Show actors, mailbox depths, message counts, uptime and apps running vs desired"),
    "send": (
        'send ACTOR MESSAGE   e.g. send cloud_controller GetApp(name="hello")',
        "Send a protocol message to a named actor and print its reply",
    ),
    "py": ("py", "Open an asyncio Python prompt with the platform and its actors in scope"),
    "exit": ("exit", "Leave the REPL (also: quit, end of input)"),
    "quit": ("quit", "Leave the REPL"),
}


def register_commands() -> None:
    """List the REPL's commands (and the fault commands) in the cli's `help`."""
    from actors.faults import FAULT_COMMANDS

    for name, entry in {**REPL_COMMANDS, **FAULT_COMMANDS}.items():
        EXTRA_COMMANDS.setdefault(name, entry)


class Console(Protocol):
    """Where a session reads lines and writes output."""

    #: A person at a terminal (colour, confirmations, line editing).
    terminal: bool

    def write(self, line: str) -> None:
        """Show one line of output."""

    async def read(self, prompt: str, *, mode: str = "cf", words: dict[str, list[str]] | None = None) -> str | None:
        """The next line typed (None at end of input). `mode` is `cf`, `py`
        or `confirm`; `words` feeds completion. Ctrl-C at the prompt raises
        KeyboardInterrupt."""


class _Sink:
    """A command's `out`: writes through until muted (the user stopped waiting)."""

    __slots__ = ("muted", "write")

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write
        self.muted = False

    def __call__(self, line: str) -> None:
        if not self.muted:
            self.write(line)


class Session:
    """Reads and runs lines until `exit` or end of input; see the module docstring."""

    def __init__(self, platform: Any, console: Console, *, cwd: str | None = None, debug: bool = False) -> None:
        register_commands()
        self.platform = platform
        self.console = console
        self.cwd = cwd or os.getcwd()
        self.debug = debug
        #: Whether any command failed (non-zero exit or an error): a script's exit code.
        self.failed = False
        self._interrupted: asyncio.Event | None = None
        self._background: dict[asyncio.Future[Any], str] = {}  # abandoned jobs -> their command line
        self._app_names: list[str] = []
        self._python: PythonConsole | None = None

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> int:
        """Read and run lines until exit; 1 if any command failed, else 0."""
        await self.refresh_words()
        while True:
            try:
                line = await self.console.read(PROMPT, mode="cf", words=self.words())
            except KeyboardInterrupt:
                continue
            if line is None:
                break
            if await self.execute(line) is None:
                break
        return 1 if self.failed else 0

    async def execute(self, line: str) -> int | None:
        """Run one line; its exit code, or None when the line ends the session."""
        text = line.strip()
        if not text or text.startswith("#"):
            return 0
        try:
            argv = shlex.split(text, comments=True)
        except ValueError as exc:
            return self._fail(f"Incorrect Usage: {exc}")
        if not argv:
            return 0
        name = argv[0]
        try:
            if name in ("exit", "quit"):
                return None
            if name == "status":
                code = await self._status(argv[1:])
            elif name == "send":
                code = await self._send(text)
            elif name == "py":
                code = await self._py(argv[1:])
            elif name in _FAULT_COMMANDS:
                from actors.faults import run_fault_command

                code = await run_fault_command(self.platform.faults, argv, self.console.write)
            else:
                code = await self._cf(argv)
        except Exception as exc:
            log.exception("repl-command-crashed", line=text)
            if self.debug:
                import traceback

                for chunk in traceback.format_exception(exc):
                    for piece in chunk.rstrip("\n").split("\n"):
                        self.console.write(piece)
            code = self._fail(f"Unexpected error: {type(exc).__name__}: {exc}", failed_line=True)
        if code not in (0, 130):
            self.failed = True
        if self.console.terminal and name not in ("status", "send", "py", "help"):
            await self.refresh_words()  # for completion
        return code

    def interrupt(self) -> bool:
        """Ctrl-C: stop waiting for the running command. False if none runs."""
        if self._interrupted is None or self._interrupted.is_set():
            return False
        self._interrupted.set()
        return True

    @property
    def in_background(self) -> list[str]:
        """Commands the user stopped waiting for that still run."""
        return list(self._background.values())

    async def close(self) -> None:
        """Stop waiting for anything still running on this session's behalf."""
        jobs = list(self._background)
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)

    # --- completion -------------------------------------------------------------------------

    def words(self) -> dict[str, list[str]]:
        """What the prompt completes: commands, app names, actors, message types."""
        return {
            "commands": sorted({*COMMANDS, *EXTRA_COMMANDS, *REPL_COMMANDS, *_FAULT_COMMANDS}),
            "apps": list(self._app_names),
            "actors": sorted(self.platform.system.names()),
            "messages": sorted(MESSAGE_TYPES),
        }

    async def refresh_words(self) -> None:
        try:
            apps = await self.platform.system.ask("cloud_controller", ListApps(), timeout=5)
        except Exception:  # noqa: BLE001 - completion keeps the names it had
            return
        self._app_names = sorted(app.name for app, _ in apps)

    # --- waiting, interruptibly ---------------------------------------------------------------

    async def _wait(self, job: asyncio.Future[Any]) -> bool:
        """Wait for `job` until it ends (True) or Ctrl-C (False)."""
        interrupted = asyncio.Event()
        self._interrupted = interrupted
        waiter = asyncio.ensure_future(interrupted.wait())
        try:
            await asyncio.wait({job, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            self._interrupted = None
        return job.done()

    def _fail(self, message: str, *, failed_line: bool = True) -> int:
        self.console.write(message)
        if failed_line:
            self.console.write("FAILED")
        self.failed = True
        return 1

    # --- cf commands ------------------------------------------------------------------------

    async def _cf(self, argv: list[str]) -> int:
        try:
            command = parse(argv)
        except MinifoundryError:
            command = None  # the cli says what is wrong, in cf's words
        tail = command is not None and command.name == "logs" and not command.args.recent
        confirm = None
        if command is not None and command.name == "delete" and not command.args.force and self.console.terminal:
            # Asked here, not inside the cli: a question must not hold the loop.
            answer = await self._confirm(f"Really delete the app {command.args.app}?")
            confirm = lambda _question: answer  # noqa: E731
        sink = _Sink(self.console.write)
        command_id = self.platform.new_command_id()
        job = asyncio.ensure_future(
            self.platform.command(argv, sink, cwd=self.cwd, confirm=confirm, command_id=command_id)
        )
        try:
            finished = await self._wait(job)
        except asyncio.CancelledError:
            self._abandon(job, sink, argv, command_id, tail=tail, quiet=True)
            raise
        if finished:
            return self._outcome(job)
        self._abandon(job, sink, argv, command_id, tail=tail, quiet=False)
        return 0 if tail else 130

    def _outcome(self, job: asyncio.Future[Any]) -> int:
        if job.cancelled():
            return self._fail("The command was cancelled in the platform")
        exc = job.exception()
        if exc is None:
            return int(job.result() or 0)
        if isinstance(exc, AskTimeout):
            return self._fail(f"The platform did not answer in time: {exc}")
        if isinstance(exc, ActorDeadError):
            return self._fail(f"The platform's cli is not running: {exc}")
        raise exc

    def _abandon(
        self, job: asyncio.Future[Any], sink: _Sink, argv: list[str], command_id: str, *, tail: bool, quiet: bool
    ) -> None:
        sink.muted = True
        if tail:
            # End the subscription in the cli, then stop waiting for it.
            self.platform.system.tell("cli", CancelCommand(command_id))
            job.cancel()
            return
        what = " ".join(argv)
        if not quiet:
            self.console.write("")
            self.console.write(f"Stopped waiting for '{what}'; it goes on in the platform.")
        self._background[job] = what

        def finished(done: asyncio.Future[Any]) -> None:
            self._background.pop(done, None)
            if quiet or done.cancelled():
                return
            exc = done.exception()
            result = "FAILED" if exc is not None or done.result() else "OK"
            self.console.write(f"'{what}' finished in the platform: {result}")

        job.add_done_callback(finished)

    async def _confirm(self, question: str) -> bool:
        try:
            answer = await self.console.read(f"{question} [yN]: ", mode="confirm")
        except KeyboardInterrupt:
            return False
        return (answer or "").strip().lower() in ("y", "yes")

    # --- status -------------------------------------------------------------------------------

    async def _status(self, args: list[str]) -> int:
        if args:
            return self._fail("Incorrect Usage: status takes no arguments")
        data = await status_mod.gather(self.platform)
        for line in status_mod.status_lines(data["stats"], data["depths"], data["snapshot"], data["names"]):
            self.console.write(line)
        return 0

    # --- send ---------------------------------------------------------------------------------

    async def _send(self, text: str) -> int:
        parts = text.split(None, 2)
        if len(parts) < 3:
            return self._fail(f"Incorrect Usage: {REPL_COMMANDS['send'][0]}")
        _, actor, source = parts
        system = self.platform.system
        if system.lookup(actor) is None:  # the receiver first, as `kill` checks it
            running = ", ".join(sorted(system.names()))
            return self._fail(f"No actor named '{actor}' is running. Running: {running}")
        try:
            message = parse_message(source)
        except MessageSyntaxError as exc:
            return self._fail(f"Incorrect Usage: {exc}")
        job = asyncio.ensure_future(system.ask(actor, message, timeout=30))
        try:
            finished = await self._wait(job)
        except asyncio.CancelledError:
            job.cancel()
            raise
        if not finished:
            job.cancel()
            self.console.write("Stopped waiting for the reply.")
            return 130
        if job.cancelled():
            return self._fail(f"The ask to {actor} was cancelled")
        error = job.exception()
        if isinstance(error, AskTimeout):
            return self._fail(f"No reply from {actor}: {error}")
        if isinstance(error, ActorDeadError):
            return self._fail(f"{actor} stopped before it answered: {error}")
        if error is not None:
            return self._fail(f"{actor} answered with an error: {type(error).__name__}: {error}")
        for line in pprint.pformat(job.result(), width=100, sort_dicts=False).split("\n"):
            self.console.write(line)
        return 0

    # --- py -----------------------------------------------------------------------------------

    async def _py(self, args: list[str]) -> int:
        if args:
            return self._fail("Incorrect Usage: py takes no arguments")
        if self._python is None:
            self._python = PythonConsole(self.platform, self.console.write)
        python = self._python
        python.refresh_actors()
        if self.console.terminal:
            for banner_line in python.banner():
                self.console.write(banner_line)
        words = {"commands": [], "apps": list(self._app_names), "actors": [], "messages": []}
        while True:
            prompt = PY_MORE if python.continuing else PY_PROMPT
            try:
                line = await self.console.read(prompt, mode="py", words=words)
            except KeyboardInterrupt:
                python.reset()
                self.console.write("KeyboardInterrupt")
                continue
            if line is None:
                python.reset()
                return 0
            source = python.feed(line)
            if source is None:
                continue
            job = asyncio.ensure_future(python.run(source))
            try:
                finished = await self._wait(job)
            except asyncio.CancelledError:
                job.cancel()
                raise
            if not finished:
                job.cancel()
                await asyncio.gather(job, return_exceptions=True)
                self.console.write("KeyboardInterrupt")
                continue
            if job.cancelled():
                self.console.write("CancelledError")
                continue
            exc = job.exception()
            if isinstance(exc, ExitPython):
                return 0
            if exc is not None:
                raise exc
