"""`python run.py serve`: the platform, headless, until SIGINT or SIGTERM.

Prints where it serves and how to attach, then a one-line status every
`STATUS_INTERVAL` seconds (apps, instances running/desired, cells,
messages). Structured logs go to `<data-dir>/minifoundry.log` (run.py set
that up). REPLs attach over `<data-dir>/repl.sock` (see `attach`).

Shutdown is graceful: the socket closes and its sessions end, then the
platform stops its actors newest first (cli, Cloud Controller, cells, ...,
CC_DB last), so no CC_DB write or blob is cut in half. A build that was
staging is failed by Cloud Controller at the next start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import signal
import sys
from typing import Any

import structlog

from actors.repl import status as status_mod
from actors.repl.attach import AttachServer, socket_path
from actors.repl.shell import start_platform

__all__ = ["STATUS_INTERVAL", "serve"]

log = structlog.get_logger("minifoundry.serve")

#: Real seconds between status lines.
STATUS_INTERVAL = 10.0


def serve(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM; 0 after a clean stop, 1 if the platform
    could not start (the data dir is in use) or its supervision gave up."""
    if len(args.command) > 1:
        print(f"serve takes no arguments (got: {shlex.join(args.command[1:])})", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 130


async def _serve(args: argparse.Namespace) -> int:
    platform: Any = await start_platform(args)
    if platform is None:
        return 1
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(signum: int) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    server = AttachServer(platform, socket_path(args.data_dir), debug=args.debug)
    code = 0
    try:
        await server.start()
        data_dir = shlex.quote(str(args.data_dir))
        _say(
            f"minifoundry serving {args.data_dir} (pid {os.getpid()}, {args.cells} cells in {args.zones} zones); "
            f"attach with: python run.py --data-dir {data_dir} --attach"
        )
        failed = asyncio.ensure_future(platform.system.failed.wait())
        # The first status once the cells have reported and re-desired apps are up.
        settling = asyncio.ensure_future(platform.settle(timeout=30))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({settling, stopping, failed}, return_when=asyncio.FIRST_COMPLETED)
        for job in (settling, stopping):
            job.cancel()
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
