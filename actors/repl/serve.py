"""`python run.py serve`: the platform, headless, until SIGINT or SIGTERM.

Prints where it serves and how to attach, then a one-line status every
`STATUS_INTERVAL` seconds (apps, instances running/desired, cells,
messages). Structured logs go to `<data-dir>/minifoundry.log` (run.py set
that up). REPLs attach, and one-shot commands run, over `<data-dir>/repl.sock`
(see `attach`). Cloud Controller's HTTP API listens on 127.0.0.1 at
`--api-port` (default MINIFOUNDRY_API_PORT, else 9022; 0: any free port).

While it serves, `<data-dir>/platform.json` says so: its pid, API URL and
socket (owner-only, written whole by rename, removed when it stops).
`python run.py up` runs serve in the background with `--ready-fd N`: the
write end of a pipe on which serve says, in one JSON line, that it serves
(`{"ready": {...}}`) or why it could not start (`{"error": ..., "code":
..., "lines": [...]}`), then closes it.

Shutdown is graceful: the socket closes and its sessions end, then the
platform stops its actors newest first (cli, Cloud Controller, cells, ...,
CC_DB last), so no CC_DB write or blob is cut in half. A build that was
staging is failed by Cloud Controller at the next start.
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
import time
from typing import Any

import structlog

from actors.repl import daemon
from actors.repl import status as status_mod
from actors.repl.attach import AttachServer, socket_path
from actors.repl.shell import start_platform

__all__ = ["STATUS_INTERVAL", "serve"]

log = structlog.get_logger("minifoundry.serve")

#: Real seconds between status lines.
STATUS_INTERVAL = 10.0


def serve(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM; 0 after a clean stop, 1 if the platform
    could not start (the data dir is in use or unusable, the API's port is
    taken) or its supervision gave up."""
    extra = args.command[1:]
    ready_fd: int | None = None
    if len(extra) == 2 and extra[0] == "--ready-fd" and extra[1].isdigit():
        ready_fd = int(extra[1])
    elif extra:
        print(f"serve takes no arguments (got: {shlex.join(extra)})", file=sys.stderr)
        return 2
    reporter = _Reporter(ready_fd)
    try:
        return asyncio.run(_serve(args, reporter))
    except KeyboardInterrupt:
        return 130
    finally:
        reporter.close()  # closed without a word: the client knows serve failed


class _Reporter:
    """The pipe `up` waits on: one line, ready or failed, then closed."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        if fd is not None:
            os.set_inheritable(fd, False)  # nothing serve starts may keep `up` waiting

    def say(self, message: dict[str, Any]) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.write(self.fd, (json.dumps(message) + "\n").encode())
            self.close()

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


async def _serve(args: argparse.Namespace, reporter: _Reporter) -> int:
    port, _ = daemon.api_port_of(args)

    def failed_to_start(code: str, lines: list[str]) -> None:
        reporter.say({"error": lines[0] if lines else code, "code": code, "lines": lines})

    platform: Any = await start_platform(args, api_port=port, report=failed_to_start)
    if platform is None:
        return 1
    data_dir = args.data_dir
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(signum: int) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    path = socket_path(data_dir)
    from actors.uaa import password_file

    admin_password = password_file(os.path.join(data_dir, "uaa"))  # written at the first start, unless given

    def info() -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "data_dir": os.path.abspath(data_dir),
            "api_url": platform.api_url,
            "socket": os.path.abspath(path),
            "cells": args.cells,
            "zones": args.zones,
            "started_at": started_at,
            "log": os.path.abspath(os.path.join(data_dir, "minifoundry.log")),
            "admin_password_file": os.path.abspath(admin_password) if admin_password.exists() else None,
            "protocol": daemon.PROTOCOL,
        }

    server = AttachServer(platform, path, debug=args.debug, info=info)
    server.settled.clear()  # one-shot commands wait for the settle below
    code = 0
    try:
        try:
            await server.start()
            daemon.write_state(data_dir, info())
        except OSError as exc:
            line = f"cannot serve {data_dir}: {exc}"
            print(line, file=sys.stderr, flush=True)
            failed_to_start("ServeFailed", [line])
            return 1
        reporter.say({"ready": info()})
        quoted = shlex.quote(str(data_dir))
        _say(
            f"minifoundry serving {data_dir} (pid {os.getpid()}, {args.cells} cells in {args.zones} zones, "
            f"API {platform.api_url}); attach with: python run.py --data-dir {quoted} --attach"
        )
        failed = asyncio.ensure_future(platform.system.failed.wait())
        # The first status once the cells have reported and re-desired apps are up.
        settling = asyncio.ensure_future(platform.settle(timeout=30))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({settling, stopping, failed}, return_when=asyncio.FIRST_COMPLETED)
        for job in (settling, stopping):
            job.cancel()
        server.settled.set()
        try:
            while not stop.is_set():
                data = await status_mod.gather(platform, with_names=False)
                _say(status_mod.serve_line(data["stats"], data["snapshot"]))
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait({stopping, failed}, timeout=STATUS_INTERVAL, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if failed.done():
                    _say("the platform's supervision gave up (see the log); stopping")
                    code = 1
                    break
        finally:
            failed.cancel()
    finally:
        _say(f"stopping ({', '.join(received) or 'shutdown'})...")
        daemon.remove_state(data_dir, os.getpid())
        server.settled.set()
        await server.close()
        await platform.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        _say("stopped")
        log.info("serve-stopped", signals=received)
    return code


def _say(line: str) -> None:
    with contextlib.suppress(BrokenPipeError):
        print(line, flush=True)
