"""The `user` actor: where a command's output lines and questions reach
whoever typed it (a terminal, a script, an experiment's recorder).

The cli sends `Output` lines and `Confirm` questions here, as messages, like
any other conversation; this actor hands them to the functions its owner
(the platform's front door) registered for that command in `Terminals`. Those
functions are the owner's, never a message's.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from actors.runtime import AsyncioActor, handles
from protocol.messages import Confirm, Output

__all__ = ["TerminalActor", "Terminals"]

log = structlog.get_logger("minifoundry.terminal")

Write = Callable[[str], None]
Ask = Callable[[str], bool | Awaitable[bool | None] | None]


@dataclass(slots=True)
class _Open:
    write: Write
    ask: Ask | None
    write_err: Write | None = None
    seen: int = 0
    waiting: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)


class Terminals:
    """The commands whose output someone is waiting for, by command id."""

    def __init__(self) -> None:
        self._open: dict[str, _Open] = {}

    def open(self, command_id: str, write: Write, ask: Ask | None = None, write_err: Write | None = None) -> None:
        """Hand command `command_id`'s lines to `write` (its standard error
        lines to `write_err`, when given) and its questions to `ask`."""
        self._open[command_id] = _Open(write, ask, write_err)

    def close(self, command_id: str) -> None:
        entry = self._open.pop(command_id, None)
        if entry is not None:
            for _, waiter in entry.waiting:
                if not waiter.done():
                    waiter.set_result(None)

    def write(self, message: Output) -> None:
        entry = self._open.get(message.command_id)
        if entry is None:
            return  # nobody waits for it any more
        entry.seen = max(entry.seen, message.seq + len(message.lines) - 1)
        try:
            for text, stream in message.lines:
                if stream == "err" and entry.write_err is not None:
                    entry.write_err(text)
                else:
                    entry.write(text)
        except Exception as exc:  # noqa: BLE001 - a broken writer must not stop the platform
            log.warning("terminal-write-failed", command_id=message.command_id, error=repr(exc))
        for n, waiter in list(entry.waiting):
            if entry.seen >= n and not waiter.done():
                waiter.set_result(None)

    async def ask(self, message: Confirm) -> bool | None:
        """The user's yes or no; None when the input ended (cf's `EOF`)."""
        entry = self._open.get(message.command_id)
        if entry is None or entry.ask is None:
            return None
        answer = entry.ask(message.question)
        if inspect.isawaitable(answer):
            answer = await answer
        return None if answer is None else bool(answer)

    async def wait_for(self, command_id: str, lines: int, timeout: float, clock: Any) -> None:
        """Until the command's first `lines` lines have been written (or `timeout`)."""
        entry = self._open.get(command_id)
        if entry is None or entry.seen >= lines:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry.waiting.append((lines, waiter))
        try:
            async with clock.timeout(timeout):
                await waiter
        except TimeoutError:
            log.warning("terminal-lines-missing", command_id=command_id, expected=lines, seen=entry.seen)


class TerminalActor(AsyncioActor):
    default_name = "user"

    def __init__(self, terminals: Terminals, *, name: str = "user") -> None:
        super().__init__(name=name)
        self.terminals = terminals

    @handles(Output)
    def _output(self, message: Output) -> None:
        self.terminals.write(message)

    @handles(Confirm, concurrent=True)
    async def _confirm(self, message: Confirm) -> bool | None:
        return await self.terminals.ask(message)
