"""`python run.py --attach`: a REPL on the platform a `serve` process runs.

`serve` listens on a unix socket, `<data-dir>/repl.sock` (owner-only, 0600,
removed when it stops): whoever connects may run anything in the serving
process (`py`), so only its owner may. Each connection is one `Session` run by the serving
process: commands run there, and their output streams back line by line.
The client only reads lines (with the same prompt, history, completion and
colour as the local REPL) and forwards Ctrl-C.

The protocol is JSON, one object per line. A connection is one of three
things, told by its first line:

A REPL session (`--attach`):

    client -> server   {"hello": {"cwd": "...", "terminal": true}}   first, once
                       {"line": "push hello"} / {"line": null}        answer to a read (null: end of input)
                       {"interrupt": true}                            answer to a read: Ctrl-C at the prompt
                       {"cancel": true}                               Ctrl-C while a command runs
    server -> client   {"out": "..."}                                 one line of output
                       {"read": "minifoundry> ", "mode": "cf", "words": {...}}
                       {"exit": 0}                                    the session ended; the client exits with it

One cf command (`python run.py apps`; the client is `client`):

    client -> server   {"hello": {...}, "run": ["apps"], "cwd": "...", "interactive": false}
                       {"answer": true}                               the user's y/N to a confirm
                       {"cancel": true}                               Ctrl-C: the command is cancelled
    server -> client   {"out": "..."} / {"err": "..."}                a line of its standard output / error
                       {"confirm": "Really delete the app hello?"}    only when interactive
                       {"exit": 1}                                    how it ended (130: cancelled)

A question about the serving process (`up`, `down`):

    client -> server   {"hello": {...}, "info": true}
    server -> client   {"info": {"pid": 1234, "api_url": "http://127.0.0.1:9022", ...}}

A connection that sends nothing (a probe: does anything serve here?) is
closed without a word.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from actors.repl.daemon import socket_path
from actors.repl.session import Session
from protocol.messages import CancelCommand

__all__ = ["AttachServer", "RemoteConsole", "attach", "socket_path"]

log = structlog.get_logger("minifoundry.repl")

_LIMIT = 16 * 1024 * 1024  # longest line either side accepts


def _encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":")) + "\n").encode()


# --- the serving side ---------------------------------------------------------------------------


class RemoteConsole:
    """A session's console whose person is at the other end of the socket."""

    def __init__(self, writer: asyncio.StreamWriter, *, terminal: bool) -> None:
        self.terminal = terminal
        self._writer = writer
        self._pending: asyncio.Future[tuple[str, str | None]] | None = None
        self._closed = False

    def send(self, message: dict[str, Any]) -> None:
        if self._closed or self._writer.is_closing():
            return
        self._writer.write(_encode(message))

    def write(self, line: str) -> None:
        self.send({"out": line})

    async def read(self, prompt: str, *, mode: str = "cf", words: dict[str, list[str]] | None = None) -> str | None:
        if self._closed:
            return None
        future: asyncio.Future[tuple[str, str | None]] = asyncio.get_running_loop().create_future()
        self._pending = future
        self.send({"read": prompt, "mode": mode, "words": words or {}})
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()
        try:
            kind, value = await future
        finally:
            self._pending = None
        if kind == "interrupt":
            raise KeyboardInterrupt
        return value

    def answer(self, kind: str, value: str | None) -> None:
        future = self._pending
        if future is not None and not future.done():
            future.set_result((kind, value))

    def close(self) -> None:
        self.answer("line", None)
        self._closed = True


class AttachServer:
    """Serves sessions on `<data-dir>/repl.sock` for `--attach` clients."""

    def __init__(
        self, platform: Any, path: Path, *, debug: bool = False, info: Callable[[], dict[str, Any]] | None = None
    ) -> None:
        self.platform = platform
        self.path = Path(path)
        self.debug = debug
        self.info = info or (lambda: {"pid": os.getpid()})
        #: One-shot commands wait for this: set once the platform has settled
        #: after its start (apps re-desired at boot come up first), as the
        #: old one-shot commands, which booted their own platform, did.
        self.settled = asyncio.Event()
        self.settled.set()
        self._server: asyncio.AbstractServer | None = None
        self._clients: dict[asyncio.Task[Any], RemoteConsole | _CommandConsole | None] = {}

    async def start(self) -> None:
        # The data dir's lock is ours, so a socket file left here is stale.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o177)  # created 0600: no window where others may connect
        try:
            self._server = await asyncio.start_unix_server(self._serve_client, path=str(self.path), limit=_LIMIT)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        log.info("attach-socket-listening", path=str(self.path))

    async def close(self) -> None:
        """Stop listening, end every session, remove the socket."""
        if self._server is not None:
            self._server.close()
        for task, console in list(self._clients.items()):
            if console is not None:
                console.write("minifoundry is stopping: this session ends.")
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        log.info("attach-socket-closed", path=str(self.path))

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients[task] = None
        session: Session | None = None
        run: asyncio.Future[int] | None = None
        pump: asyncio.Future[None] | None = None
        try:
            first_line = await reader.readline()
            if not first_line:
                return  # a probe: is anything serving here?
            first = json.loads(first_line)
            hello = first.get("hello") if isinstance(first, dict) else None
            if isinstance(hello, dict) and first.get("info"):
                writer.write(_encode({"info": self.info()}))
                await writer.drain()
                return
            if isinstance(hello, dict) and "run" in first:
                await self._run_one(first, hello, reader, writer, task)
                return
            if not isinstance(hello, dict):
                writer.write(_encode({"out": "not a minifoundry attach client"}))
                writer.write(_encode({"exit": 2}))
                return
            console = RemoteConsole(writer, terminal=bool(hello.get("terminal")))
            self._clients[task] = console
            cwd = hello.get("cwd") if isinstance(hello.get("cwd"), str) else None
            session = Session(self.platform, console, cwd=cwd, debug=self.debug)
            log.info("attach-session-opened", cwd=cwd, terminal=console.terminal)
            run = asyncio.ensure_future(session.run())
            pump = asyncio.ensure_future(_pump(reader, console, session))
            await asyncio.wait({run, pump}, return_when=asyncio.FIRST_COMPLETED)
            if run.done():
                console.send({"exit": run.result()})
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
        except (ConnectionError, json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            log.info("attach-client-dropped", error=repr(exc))
        except asyncio.CancelledError:
            # close() ends the session. The handler task must not end
            # cancelled: asyncio 3.11's stream server logs that as an error.
            pass
        finally:
            for job in (run, pump):
                if job is not None and not job.done():
                    job.cancel()
            await asyncio.gather(*(j for j in (run, pump) if j is not None), return_exceptions=True)
            if session is not None:
                await session.close()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)
            self._clients.pop(task, None)
            if session is not None:
                log.info("attach-session-closed")

    # --- one command, for `python run.py COMMAND` -------------------------------------------

    async def _run_one(
        self,
        request: dict[str, Any],
        hello: dict[str, Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        task: asyncio.Task[Any],
    ) -> None:
        """Run `request["run"]` as `platform.run_command` does, its lines
        streamed back; Ctrl-C (a `cancel`) or the client going away cancels it."""
        console = _CommandConsole(writer)
        self._clients[task] = console
        argv = request.get("run")
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            console.send({"err": "not a command: 'run' must be a list of strings"})
            console.send({"exit": 2})
            await console.drain()
            return
        cwd = request.get("cwd") if isinstance(request.get("cwd"), str) else hello.get("cwd")
        cwd = cwd if isinstance(cwd, str) else "/"
        interactive = bool(request.get("interactive"))
        platform = self.platform
        command_id = platform.new_command_id()
        log.info("one-shot-command", argv=argv, command_id=command_id, client_pid=hello.get("pid"))

        async def confirm(question: str) -> bool | None:
            return await console.confirm(question)

        pump = asyncio.ensure_future(_pump_one(reader, console))
        job: asyncio.Future[Any] | None = None
        try:
            if not self.settled.is_set():
                settled = asyncio.ensure_future(self.settled.wait())
                await asyncio.wait({settled, pump}, return_when=asyncio.FIRST_COMPLETED)
                settled.cancel()
            if not pump.done():
                job = asyncio.ensure_future(
                    platform.run_command(
                        argv,
                        console.out,
                        cwd=cwd,
                        confirm=confirm if interactive else None,
                        command_id=command_id,
                        err=console.err,
                    )
                )
                await asyncio.wait({job, pump}, return_when=asyncio.FIRST_COMPLETED)
            if job is not None and job.done():
                code = self._code_of(job, console)
            else:  # cancelled by the client (Ctrl-C), or it went away
                code = 130
                if job is not None:
                    platform.system.tell("cli", CancelCommand(command_id))
                    job.cancel()
                    await asyncio.gather(job, return_exceptions=True)
            log.info("one-shot-command-ended", command_id=command_id, exit_code=code, cancelled=pump.done())
            console.send({"exit": code})
            await console.drain()
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            if job is not None and not job.done():
                job.cancel()
                await asyncio.gather(job, return_exceptions=True)

    def _code_of(self, job: asyncio.Future[Any], console: _CommandConsole) -> int:
        if job.cancelled():
            console.err("The command was cancelled in the platform")
            console.err("FAILED")
            return 1
        exc = job.exception()
        if exc is None:
            return int(job.result().exit_code)
        # What an old one-shot command printed when the platform failed it.
        log.error("one-shot-command-failed", error=repr(exc))
        console.err(f"{exc}")
        console.err("FAILED")
        return 1


class _CommandConsole:
    """The far end of one `run` request: lines, questions, the exit code."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._answer: asyncio.Future[bool | None] | None = None

    def send(self, message: dict[str, Any]) -> None:
        if not self._writer.is_closing():
            self._writer.write(_encode(message))

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    def out(self, line: str) -> None:
        self.send({"out": line})

    def err(self, line: str) -> None:
        self.send({"err": line})

    def write(self, line: str) -> None:  # what `AttachServer.close` says to every client
        self.err(line)

    async def confirm(self, question: str) -> bool | None:
        future: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._answer = future
        self.send({"confirm": question})
        await self.drain()
        try:
            return await future
        finally:
            self._answer = None

    def answer(self, value: bool | None) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(value)


async def _pump_one(reader: asyncio.StreamReader, console: _CommandConsole) -> None:
    """What the client of one command sends; returns at a cancel or when it goes away."""
    while True:
        try:
            raw = await reader.readline()
            message = json.loads(raw) if raw else None
        except (ConnectionError, ValueError):
            message = None
        if not isinstance(message, dict) or message.get("cancel"):
            return
        if "answer" in message:
            answer = message["answer"]
            console.answer(None if answer is None else bool(answer))  # None: the input ended


async def _pump(reader: asyncio.StreamReader, console: RemoteConsole, session: Session) -> None:
    """What the client sends, while its session runs."""
    try:
        while True:
            raw = await reader.readline()
            if not raw:
                return  # the client went away
            message = json.loads(raw)
            if "line" in message:
                line = message["line"]
                console.answer("line", line if isinstance(line, str) else None)
            elif message.get("interrupt"):
                console.answer("interrupt", None)
            elif message.get("cancel"):
                session.interrupt()
    finally:
        console.close()


# --- the attaching side -------------------------------------------------------------------------


def attach(args: argparse.Namespace) -> int:
    """`python run.py --attach [COMMAND...]`: the process's exit code."""
    try:
        return asyncio.run(_attach(args))
    except KeyboardInterrupt:
        return 130


async def _attach(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    path = socket_path(data_dir)
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=_LIMIT)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        why = "does not exist" if isinstance(exc, FileNotFoundError) else "is left from a serve that stopped"
        print(f"No minifoundry serves {data_dir}: {path} {why}.", file=sys.stderr)
        quoted = shlex.quote(str(data_dir))
        print(
            f"Start one with: python run.py --data-dir {quoted} up (or serve, in the foreground)",
            file=sys.stderr,
        )
        return 1
    except PermissionError:
        print(f"Not allowed to attach to {path}: it belongs to another user.", file=sys.stderr)
        return 1
    client = _Client(args, data_dir, reader, writer)
    try:
        return await client.run()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


class _Client:
    def __init__(
        self, args: argparse.Namespace, data_dir: Path, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.args = args
        self.data_dir = data_dir
        self.reader = reader
        self.writer = writer
        self.reading: asyncio.Task[None] | None = None
        self.console: Any = None

    def send(self, message: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(_encode(message))

    def on_sigint(self) -> None:
        if self.reading is not None and not self.reading.done():
            if not self.console.terminal:
                self.console.end_input()  # a script's Ctrl-C at "the prompt": input ends
            return
        self.send({"cancel": True})

    async def run(self) -> int:
        from actors.repl.consoles import LineConsole, ScriptConsole, TerminalConsole

        loop = asyncio.get_running_loop()

        def reinstall() -> None:
            loop.add_signal_handler(signal.SIGINT, self.on_sigint)

        terminal = sys.stdin.isatty() and sys.stdout.isatty()
        if self.args.command:
            self.console = ScriptConsole([shlex.join(self.args.command)])
            terminal = False
        elif terminal:
            self.console = TerminalConsole(self.data_dir, after_prompt=reinstall)
        else:
            self.console = LineConsole()
        self.send({"hello": {"cwd": os.getcwd(), "terminal": terminal, "pid": os.getpid()}})
        reinstall()
        try:
            if terminal:
                from prompt_toolkit.patch_stdout import patch_stdout

                with patch_stdout(raw=True):
                    return await self._converse()
            return await self._converse()
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    async def _converse(self) -> int:
        try:
            while True:
                try:
                    raw = await self.reader.readline()
                except ConnectionError:
                    raw = b""
                if not raw:
                    self.console.write(
                        f"The minifoundry process serving {self.data_dir} went away; the session has ended."
                    )
                    return 1
                message = json.loads(raw)
                if "out" in message:
                    self.console.write(message["out"])
                elif "read" in message:
                    self.reading = asyncio.ensure_future(self._answer(message))
                elif "exit" in message:
                    return int(message["exit"])
        finally:
            if self.reading is not None and not self.reading.done():
                self.reading.cancel()
                await asyncio.gather(self.reading, return_exceptions=True)

    async def _answer(self, request: dict[str, Any]) -> None:
        try:
            line = await self.console.read(request["read"], mode=request.get("mode", "cf"), words=request.get("words"))
        except KeyboardInterrupt:
            self.send({"interrupt": True})
        else:
            self.send({"line": line})
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()
