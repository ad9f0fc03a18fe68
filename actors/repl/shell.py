"""`python run.py`: the platform and a prompt in one process (or, with
`--attach`, a prompt on a platform that `serve` runs).

The platform lives on the same asyncio loop as the prompt, so it keeps
running between commands and while one is typed.

On a terminal: line editing, history in `<data-dir>/history`, completion,
colour; Ctrl-C stops waiting for the running command (it ends a `logs` tail;
a push goes on in the platform); Ctrl-D or `exit` leaves.

Without a terminal (stdin a pipe or a file): one command per line, blank
lines and `# comments` ignored, plain output without prompts; at end of
input the platform settles and the process exits with 1 if any command
failed, else 0 (a command stopped with Ctrl-C does not count as failed).
Ctrl-C (SIGINT) stops waiting for the running command, or when none runs,
ends the input. A live `logs APP` tail runs until Ctrl-C there too: scripts
want `logs APP --recent`.

    printf 'push hello -p examples/python\\napps\\n' | python run.py --data-dir /tmp/d
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import structlog

from actors.repl.session import Session

__all__ = ["run_repl"]

log = structlog.get_logger("minifoundry.repl")


def run_repl(args: argparse.Namespace) -> int:
    """Run the REPL (or attach to `serve`); the process's exit code."""
    if args.attach:
        from actors.repl.attach import attach

        return attach(args)
    try:
        return asyncio.run(_repl(args))
    except KeyboardInterrupt:
        return 130


def boot_platform(args: argparse.Namespace, *, api_port: int | None = None) -> object:
    """The platform that `args` describes (not yet started); with an HTTP API
    on `api_port` (0: any free port), or none."""
    from actors.platform import Platform, PlatformConfig
    from actors.runtime import RealClock

    if args.cells < 1 or args.zones < 1:
        raise SystemExit("run.py: --cells and --zones must be at least 1")
    config = PlatformConfig(
        data_dir=Path(args.data_dir), cells=args.cells, zones=args.zones, seed=args.seed, api_port=api_port
    )
    return Platform(config, clock=RealClock(speed=args.speed))


#: Told why a start failed: the error's name and the lines printed for it.
Report = Callable[[str, list[str]], None]


async def start_platform(
    args: argparse.Namespace, *, api_port: int | None = None, report: Report | None = None
) -> object | None:
    """Start the platform on the data dir; None (after saying why on stderr,
    and to `report`) if another process serves it, the data dir is unusable
    or the API's port is taken."""
    from actors.platform import DataDirInUse
    from protocol.errors import ApiPortInUse, DataDirUnusable

    platform = boot_platform(args, api_port=api_port)
    try:
        await platform.start()  # type: ignore[attr-defined]
    except DataDirInUse as exc:
        lines = [str(exc), f"  python run.py --data-dir {shlex.quote(str(args.data_dir))} --attach"]
        code = "DataDirInUse"
    except DataDirUnusable as exc:
        lines, code = [str(exc), "FAILED"], exc.code
    except ApiPortInUse as exc:
        lines, code = [str(exc)], exc.code
    else:
        return platform
    for line in lines:
        print(line, file=sys.stderr, flush=True)
    if report is not None:
        report(code, lines)
    return None


async def _repl(args: argparse.Namespace) -> int:
    platform = await start_platform(args, api_port=getattr(args, "api_port", None))
    if platform is None:
        return 1
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    loop.add_signal_handler(signal.SIGTERM, main.cancel)
    terminal = sys.stdin.isatty() and sys.stdout.isatty()
    try:
        if terminal:
            return await _terminal(platform, args)
        return await _piped(platform, args)
    except asyncio.CancelledError:
        # SIGTERM: stop the platform cleanly below, then exit as killed.
        return 143
    finally:
        # Shutting down: nothing left to interrupt, and a stop is not cut short.
        loop.add_signal_handler(signal.SIGINT, _ignore)
        loop.add_signal_handler(signal.SIGTERM, _ignore)
        try:
            await platform.stop()  # type: ignore[attr-defined]
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)


def _ignore() -> None:
    log.info("signal-ignored-while-stopping")


async def _piped(platform: object, args: argparse.Namespace) -> int:
    from actors.repl.consoles import LineConsole

    loop = asyncio.get_running_loop()
    console = LineConsole()
    session = Session(platform, console, cwd=os.getcwd(), debug=args.debug)
    stopped_by_user = False

    def on_sigint() -> None:
        nonlocal stopped_by_user
        if not session.interrupt():
            stopped_by_user = True
            console.end_input()

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    # As a one-shot command does: apps re-desired at boot come up first.
    await platform.settle(timeout=30)  # type: ignore[attr-defined]
    try:
        code = await session.run()
    finally:
        _leaving(session)
        await session.close()
    await platform.settle(timeout=10)  # type: ignore[attr-defined]
    return 130 if stopped_by_user else code


async def _terminal(platform: object, args: argparse.Namespace) -> int:
    from prompt_toolkit.patch_stdout import patch_stdout

    from actors.repl.consoles import TerminalConsole

    loop = asyncio.get_running_loop()
    session: Session | None = None

    def on_sigint() -> None:
        if session is not None:
            session.interrupt()

    def reinstall() -> None:
        loop.add_signal_handler(signal.SIGINT, on_sigint)

    reinstall()
    console = TerminalConsole(Path(args.data_dir), after_prompt=reinstall)
    session = Session(platform, console, cwd=os.getcwd(), debug=args.debug)
    config = platform.config  # type: ignore[attr-defined]
    with patch_stdout(raw=True):
        console.write(
            f"minifoundry on {config.data_dir}: {config.cells} cells in {config.zones} zones. "
            "'help' lists the commands; Tab completes; Ctrl-D or 'exit' leaves."
        )
        try:
            await session.run()
        finally:
            _leaving(session)
            await session.close()
    return 0


def _leaving(session: Session) -> None:
    still = session.in_background
    if still:
        listed = ", ".join(f"'{c}'" for c in still)
        session.console.write(f"Leaving while {listed} still runs: it stops with the platform.")
