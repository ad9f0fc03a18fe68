"""The two local consoles a session (or an attached client) talks through.

`TerminalConsole`: a person at a terminal. prompt_toolkit's `prompt_async`
on the platform's own loop (the platform keeps running while the prompt
waits), line editing, history in the data directory, completion of command
names, app names, actor names and message types, colour for the prompt and
for `FAILED` / `OK`.

`LineConsole`: stdin is a pipe or a file. One line at a time, read by a
daemon thread so the loop never blocks; plain output, no prompts, no colour.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import ANSI
from prompt_toolkit.history import FileHistory, InMemoryHistory

from actors.cli.commands import ALIASES, COMMANDS
from actors.stdout import write_line

__all__ = ["CommandCompleter", "LineConsole", "ScriptConsole", "TerminalConsole", "colourize"]

_RED = "\x1b[1;31m"
_GREEN = "\x1b[1;32m"
_CYAN = "\x1b[1;36m"
_YELLOW = "\x1b[33m"
_RESET = "\x1b[0m"


def colourize(line: str) -> str:
    """FAILED red, OK green: the two words a cf user's eye looks for."""
    if line == "FAILED":
        return f"{_RED}{line}{_RESET}"
    if line == "OK":
        return f"{_GREEN}{line}{_RESET}"
    if line.startswith("Stopped waiting for") or line.endswith("finished in the platform: OK"):
        return f"{_YELLOW}{line}{_RESET}"
    if line.endswith("finished in the platform: FAILED"):
        return f"{_RED}{line}{_RESET}"
    return line


def _app_commands() -> set[str]:
    names = {name for name, spec in COMMANDS.items() if spec.positionals[:1] and spec.positionals[0][0] == "APP_NAME"}
    return names | {alias for alias, name in ALIASES.items() if name in names}


def _flags(command: str) -> list[str]:
    spec = COMMANDS.get(ALIASES.get(command, command))
    if spec is None:
        return []
    names = [f"--{f.long}" for f in spec.flags if f.long] + [f"-{f.short}" for f in spec.flags if f.short]
    return sorted(names)


class CommandCompleter(Completer):
    """Completes the first word from the commands, then by command: app names,
    `help` topics, `send`'s actor and message type, and a command's flags."""

    def __init__(self, words: Callable[[], dict[str, list[str]]]) -> None:
        self.words = words
        self._app_commands = _app_commands()

    def candidates(self, text: str) -> tuple[str, Iterable[str]]:
        """(the word being typed, what it may become) for the text before the cursor."""
        parts = text.split()
        if not parts or not text[-1:].isspace():
            current = parts.pop() if parts else ""
        else:
            current = ""
        words = self.words()
        if not parts:
            return current, words.get("commands", [])
        command = parts[0]
        if current.startswith("-"):
            return current, _flags(command)
        if len(parts) == 1:
            if command in self._app_commands:
                return current, words.get("apps", [])
            if command == "help":
                return current, words.get("commands", [])
            if command == "send":
                return current, words.get("actors", [])
        if command == "send" and len(parts) == 2 and "(" not in current:
            return current, words.get("messages", [])
        return current, []

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        current, options = self.candidates(document.text_before_cursor)
        for option in options:
            if option.startswith(current) and option != current:
                yield Completion(option, start_position=-len(current))


class TerminalConsole:
    """A person at a terminal; see the module docstring."""

    terminal = True

    def __init__(self, data_dir: Path, *, after_prompt: Callable[[], None] | None = None) -> None:
        self._words: dict[str, list[str]] = {}
        self._after_prompt = after_prompt
        self._stdout = sys.stdout  # the terminal itself, before patch_stdout replaces it
        self._prompting = False
        data_dir.mkdir(parents=True, exist_ok=True)
        self._sessions: dict[str, PromptSession[str]] = {
            "cf": PromptSession(
                history=FileHistory(str(data_dir / "history")),
                completer=CommandCompleter(lambda: self._words),
                complete_while_typing=False,
            ),
            "py": PromptSession(history=FileHistory(str(data_dir / "history.py"))),
            "confirm": PromptSession(history=InMemoryHistory()),
        }

    def write(self, line: str) -> None:
        text = colourize(line)
        if self._prompting:
            # sys.stdout is prompt_toolkit's proxy (patch_stdout): a line
            # printed while the prompt is up appears above it.
            print(text, flush=True)
            return
        # No prompt is up (a command runs): write in order, at once. The
        # proxy writes from a thread and could land inside the next prompt.
        self._stdout.write(text + "\n")
        self._stdout.flush()

    async def read(self, prompt: str, *, mode: str = "cf", words: dict[str, list[str]] | None = None) -> str | None:
        if words is not None and mode == "cf":
            self._words = words
        session = self._sessions.get(mode, self._sessions["confirm"])
        styled = ANSI(f"{_CYAN}{prompt}{_RESET}") if mode == "cf" else ANSI(prompt)
        self._prompting = True
        try:
            return await session.prompt_async(styled)
        except EOFError:
            return None
        finally:
            self._prompting = False
            if self._after_prompt is not None:
                # prompt_toolkit takes SIGINT over while it prompts and
                # removes the loop's handler when it is done: put ours back.
                self._after_prompt()


class LineConsole:
    """stdin a pipe or a file; see the module docstring."""

    terminal = False

    def __init__(self, stdin: Any = None, stdout: Any = None) -> None:
        self._stdin = stdin if stdin is not None else sys.stdin
        self._stdout = stdout
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._ended = False
        self.reading = False
        loop = asyncio.get_running_loop()
        thread = threading.Thread(target=self._pump, args=(loop,), name="stdin-reader", daemon=True)
        thread.start()

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        stream = getattr(self._stdin, "buffer", self._stdin)
        try:
            while True:
                raw = stream.readline()
                if not raw:
                    break
                text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
                loop.call_soon_threadsafe(self._lines.put_nowait, text.rstrip("\r\n"))
        except (OSError, ValueError):
            pass
        finally:
            try:
                loop.call_soon_threadsafe(self._lines.put_nowait, None)
            except RuntimeError:  # the loop has closed: nobody is reading any more
                pass

    def end_input(self) -> None:
        """Behave as if input ended here (Ctrl-C while no command runs)."""
        self._ended = True
        self._lines.put_nowait(None)

    def write(self, line: str) -> None:
        write_line(line, self._stdout)

    async def read(self, prompt: str, *, mode: str = "cf", words: dict[str, list[str]] | None = None) -> str | None:
        if self._ended:
            return None
        self.reading = True
        try:
            line = await self._lines.get()
        finally:
            self.reading = False
        if line is None:
            self._ended = True
        return line


class ScriptConsole:
    """Lines given up front (`run.py --attach COMMAND`), then end of input."""

    terminal = False

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = list(lines)

    def write(self, line: str) -> None:
        write_line(line)

    def end_input(self) -> None:
        self._lines.clear()

    async def read(self, prompt: str, *, mode: str = "cf", words: dict[str, list[str]] | None = None) -> str | None:
        return self._lines.pop(0) if self._lines else None
