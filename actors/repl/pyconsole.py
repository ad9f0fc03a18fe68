"""`py`: an asyncio Python prompt on the running platform.

Statements run on the platform's own event loop, so `await` works at top
level and an awaited ask is answered while the platform goes on running:

    >>> await system.ask("bbs", BBSSnapshot())
    {'apps': {...}, 'cells': ['cell-1', ...], ...}

In scope: `platform`, `system`, `protocol`, `messages` (protocol.messages),
`asyncio`, every message and record class, the state enums, and each running
actor's ref by name (`bbs`, `cloud_controller`, `cell_1`: dashes become
underscores; a name already taken gets `_actor`, so the root supervisor is
`platform_actor`). `exit()`, `quit()` or end of input returns to the main prompt.

This module only compiles and runs source; reading lines and showing output
belong to whoever drives it (the local prompt or an attached client).
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import codeop
import inspect
import io
import itertools
import linecache
import pprint
import pydoc
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any

import protocol
import protocol.messages
from actors.repl.literals import MESSAGE_TYPES, STATE_ENUMS

__all__ = ["BANNER", "ExitPython", "PythonConsole"]

BANNER = (
    "Python {version} asyncio prompt on the running platform: `await` works at top level,",
    "and an actor's `ask` here is awaited: `await cell_1.ask(CellInfo())`.",
    "In scope: platform, system, protocol, messages, every message class, and each actor by name ({actors}).",
    "exit() or Ctrl-D returns to the minifoundry prompt.",
)


class ConsoleRef:
    """An actor's ref as the prompt shows it: everything the ref does, but
    `ask` returns what to await (the prompt runs on the platform's loop,
    where a blocking ask could only raise `GetOnLoopThread`)."""

    __slots__ = ("_ref",)

    def __init__(self, ref: Any) -> None:
        self._ref = ref

    def ask(self, message: Any, *, block: bool = False, timeout: float | None = None) -> Any:
        return self._ref.ask(message, block=False, timeout=timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ref, name)

    def __eq__(self, other: object) -> bool:
        return self._ref == (other._ref if isinstance(other, ConsoleRef) else other)

    def __hash__(self) -> int:
        return hash(self._ref)

    def __repr__(self) -> str:
        return repr(self._ref)


_RESULT = "__minifoundry_result__"
_inputs = itertools.count(1)


class ExitPython(Exception):
    """Raised by `exit()` / `quit()` inside the prompt: back to the main prompt."""


class _Exit:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Use {self.name}() or Ctrl-D (i.e. EOF) to return to the minifoundry prompt"

    def __call__(self, code: Any = None) -> None:
        raise ExitPython()


class PythonConsole:
    """Compiles what is typed (with top-level await) and runs it on the loop."""

    def __init__(self, platform: Any, write: Callable[[str], None]) -> None:
        self.platform = platform
        self.write = write
        self._compiler = codeop.CommandCompiler()
        self._compiler.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        self._buffer: list[str] = []
        self._partial = ""
        self._actor_names: set[str] = set()
        self.namespace: dict[str, Any] = {
            "__name__": "__minifoundry__",
            "__builtins__": builtins,
            "platform": platform,
            "system": platform.system,
            "protocol": protocol,
            "messages": protocol.messages,
            "asyncio": asyncio,
            "pprint": pprint.pprint,
            "print": self._print,
            "help": self._help,
            "exit": _Exit("exit"),
            "quit": _Exit("quit"),
            **MESSAGE_TYPES,
            **STATE_ENUMS,
        }
        self._fixed = frozenset(self.namespace)
        self.refresh_actors()

    # --- scope -------------------------------------------------------------------------

    def refresh_actors(self) -> list[str]:
        """Put each running actor's ref in scope by name (a restarted actor's
        new ref replaces the old one); return the names."""
        names = sorted(self.platform.system.names())
        current = {}
        for name in names:
            ref = self.platform.system.lookup(name)
            if ref is not None:
                key = name.replace("-", "_")
                if key in self._fixed:
                    key += "_actor"  # the root supervisor is `platform_actor`: `platform` is the Platform
                previous = self.namespace.get(key)
                same = isinstance(previous, ConsoleRef) and previous._ref is ref
                current[key] = previous if same else ConsoleRef(ref)
        for gone in self._actor_names - set(current):
            self.namespace.pop(gone, None)
        self.namespace.update(current)
        self._actor_names = set(current)
        return names

    def banner(self) -> list[str]:
        cells = sorted(
            (n for n in self._actor_names if n.startswith("cell_")), key=lambda n: int(n[5:]) if n[5:].isdigit() else 0
        )
        others = sorted(n for n in self._actor_names if not n.startswith("cell_"))
        actors = ", ".join(others + ([f"{cells[0]}..{cells[-1]}" if len(cells) > 1 else cells[0]] if cells else []))
        version = ".".join(map(str, sys.version_info[:3]))
        return [line.format(version=version, actors=actors) for line in BANNER]

    # --- input -------------------------------------------------------------------------------

    @property
    def continuing(self) -> bool:
        """Whether the lines so far are an unfinished statement (prompt `...`)."""
        return bool(self._buffer)

    def reset(self) -> None:
        self._buffer.clear()

    def feed(self, line: str) -> str | None:
        """Add a line; return the whole source once it is a complete statement,
        None while more is needed. A syntax error is written and dropped."""
        self._buffer.append(line)
        source = "\n".join(self._buffer)
        try:
            code = self._compiler(source, "<py>", "single")
        except (SyntaxError, ValueError, OverflowError) as exc:
            self._buffer.clear()
            self._write_exception(exc, strip=False)
            return None
        if code is None:
            return None
        self._buffer.clear()
        return source

    # --- running ----------------------------------------------------------------------------

    async def run(self, source: str) -> None:
        """Run one complete input; show the value of a final expression.

        `ExitPython` propagates; cancellation propagates (the caller reports
        it); any other exception is shown as a traceback of the typed code."""
        filename = f"<py-{next(_inputs)}>"
        lines = source.splitlines(keepends=True)
        linecache.cache[filename] = (len(source), None, lines, filename)
        try:
            tree = ast.parse(source, filename, "exec")
            shows = bool(tree.body) and isinstance(tree.body[-1], ast.Expr)
            if shows:
                last = tree.body[-1]
                assert isinstance(last, ast.Expr)
                tree.body[-1] = ast.copy_location(
                    ast.Assign(targets=[ast.Name(_RESULT, ast.Store())], value=last.value), last
                )
                ast.fix_missing_locations(tree)
            code = compile(tree, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except (SyntaxError, ValueError, OverflowError) as exc:
            self._write_exception(exc, strip=False)
            return
        self.refresh_actors()
        self.namespace.pop(_RESULT, None)
        try:
            result = types.FunctionType(code, self.namespace)()
            if code.co_flags & inspect.CO_COROUTINE:
                await result
        except (ExitPython, asyncio.CancelledError):
            raise
        except SystemExit:
            raise ExitPython() from None
        except BaseException as exc:  # noqa: BLE001 - the prompt shows it, like Python's own
            self._flush_partial()
            self._write_exception(exc, strip=True)
            return
        finally:
            self._flush_partial()
        if shows:
            value = self.namespace.pop(_RESULT, None)
            if value is not None:
                self.namespace["_"] = value
                for text in pprint.pformat(value, width=100, sort_dicts=False).split("\n"):
                    self.write(text)

    # --- output -----------------------------------------------------------------------------

    def _print(
        self, *args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
    ) -> None:
        if file is not None and file not in (sys.stdout, sys.stderr):
            print(*args, sep=sep, end=end, file=file, flush=flush)
            return
        buffer = io.StringIO()
        print(*args, sep=sep, end=end, file=buffer)
        text = self._partial + buffer.getvalue()
        *complete, self._partial = text.split("\n")
        for line in complete:
            self.write(line)

    def _flush_partial(self) -> None:
        if self._partial:
            self.write(self._partial)
            self._partial = ""

    def _help(self, thing: Any = None) -> None:
        if thing is None:
            self._print(
                "help(obj) shows an object's documentation; the platform's commands are listed by `help` at the minifoundry prompt."
            )
            return
        self._print(pydoc.render_doc(thing, renderer=pydoc.plaintext).rstrip())  # type: ignore[attr-defined]

    def _write_exception(self, exc: BaseException, *, strip: bool) -> None:
        if strip:
            # Drop our own frames: the trace starts at the typed code.
            tb = exc.__traceback__
            while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<py"):
                tb = tb.tb_next
            exc = exc.with_traceback(tb)
        text = "".join(traceback.format_exception(exc) if strip else traceback.format_exception_only(exc))
        for line in text.rstrip("\n").split("\n"):
            self.write(line)
