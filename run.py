#!/usr/bin/env python3
"""minifoundry's front door.

    python run.py [OPTIONS]                      the REPL (attached to the platform serving the data dir, if one does)
    python run.py [OPTIONS] COMMAND [ARGS...]    one cf command on the platform serving the data dir
    python run.py [OPTIONS] up                   start serving the data dir in the background
    python run.py [OPTIONS] down                 stop it
    python run.py [OPTIONS] serve                the platform in the foreground, until SIGINT/SIGTERM
    python run.py bench runtime|auction|push|api [...]    benchmarks
    python run.py experiment FILE [--seed N]     a fault-injection experiment

Parses the command line, configures logging once, and hands over. A cf
command is only carried to the serving process (started in the background
when none serves the data dir yet), so that path imports next to nothing:
no platform, no asyncio, no structlog. Everything else lives in `actors/`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


#: A log file past this size when a process opens it is moved aside first.
LOG_ROTATE_BYTES = 64 * 1024 * 1024


def configure_logging(*, debug: bool = False, log_file: Path | None = None, json_to_stderr: bool = False) -> None:
    """structlog, configured once: JSON lines to `log_file` (INFO and up), and
    to stderr only with --debug (DEBUG and up, readable)."""
    import logging

    import structlog

    level = logging.DEBUG if debug else logging.INFO
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if debug and not json_to_stderr:
        sink = sys.stderr
        renderer: structlog.types.Processor = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    elif log_file is not None:
        # The log is data of the platform's: owner-only, like CC_DB and the socket.
        log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            if log_file.stat().st_size > LOG_ROTATE_BYTES:
                # Kept bounded: the older half goes to <name>.1, replacing the last.
                os.replace(log_file, log_file.with_name(log_file.name + ".1"))
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        sink = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        renderer = structlog.processors.JSONRenderer()
        processors.append(structlog.processors.format_exc_info)
    else:
        sink = sys.stderr
        renderer = structlog.processors.JSONRenderer()
        level = logging.WARNING
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=sink),
        cache_logger_on_first_use=True,
    )
    # pykka and aiosqlite log through the standard library: keep them quiet
    # unless debugging, and off the user's terminal.
    logging.basicConfig(level=logging.DEBUG if debug else logging.ERROR, stream=sys.stderr)


#: The most cells a platform runs (as an experiment file's `cells`).
MAX_CELLS = 10_000
#: Faster than this, the platform's own deadlines (an ask's 10 or 30 platform
#: seconds) pass before Python can answer: experiments run on the virtual clock.
MAX_SPEED = 1000.0


def _speed(text: str) -> float:
    try:
        speed = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(speed) or not 0 < speed <= MAX_SPEED:
        raise argparse.ArgumentTypeError(f"the speed is above 0 and at most {MAX_SPEED:g}, not {text}")
    return speed


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 0 and 65535, not {port}")
    return port


def _global_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py",
        description="minifoundry: Cloud Foundry's cf push pipeline as an asyncio actor system.",
        add_help=True,
    )
    p.add_argument(
        "--data-dir",
        default=os.environ.get("MINIFOUNDRY_DATA", ".minifoundry"),
        help="platform state (default ./.minifoundry)",
    )
    p.add_argument("--cells", type=int, default=4, help="number of cells (default 4)")
    p.add_argument("--zones", type=int, default=2, help="availability zones (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed for every random choice (default 0)")
    p.add_argument(
        "--speed", type=_speed, default=1.0, help=f"platform seconds per real second (default 1, at most {MAX_SPEED:g})"
    )
    p.add_argument(
        "--api-port",
        type=_port,
        default=None,
        help="the HTTP API's port for serve and up (default: $MINIFOUNDRY_API_PORT, else 9022; 0: any free port)",
    )
    p.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default=os.environ.get("MINIFOUNDRY_LOOP", "asyncio"),
        help="the event loop: asyncio's own or uvloop (default: $MINIFOUNDRY_LOOP, else asyncio)",
    )
    p.add_argument("--debug", action="store_true", help="log to stderr and show tracebacks")
    p.add_argument("--attach", action="store_true", help="open a REPL on the platform serving --data-dir")
    p.add_argument("command", nargs=argparse.REMAINDER, help="a cf command, up, down, serve, bench or experiment")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # Whoever read our output went away (`| head`): no traceback.
        from actors.stdout import silence_stdout

        silence_stdout()
        return 0
    except KeyboardInterrupt:
        return 130  # Ctrl-C before a command ran (say, while the platform was starting)


def _main(argv: list[str] | None = None) -> int:
    args = _global_parser().parse_args(argv)
    command = args.command
    data_dir = Path(args.data_dir)
    if args.cells < 1 or args.zones < 1:
        raise SystemExit("run.py: --cells and --zones must be at least 1")
    if args.cells > MAX_CELLS:
        raise SystemExit(f"run.py: --cells is at most {MAX_CELLS} (bench auction measures more)")
    if args.zones > args.cells:
        raise SystemExit(f"run.py: --zones ({args.zones}) must be at most --cells ({args.cells}): a zone holds cells")
    first = command[0] if command else None
    if first != "bench" and (problem := _unusable(data_dir)) is not None:
        # Before anything opens a socket, a log or a lock in it.
        print(f"DataDirUnusable - {problem}", file=sys.stderr)
        print("FAILED", file=sys.stderr)  # as the server's own DataDirUnusable
        return 1
    # Processes started from this one (up's server, an experiment's child
    # runs) make the same choice of loop.
    os.environ["MINIFOUNDRY_LOOP"] = args.loop
    if first in ("bench", "experiment", "serve") or not command or args.attach:
        from actors.runtime.loops import install

        install(args.loop)
    if first == "bench":
        configure_logging(debug=args.debug)
        return _bench(command[1:])
    if first == "experiment":
        configure_logging(debug=args.debug, log_file=data_dir / "experiment.log")
        from actors.experiments.sweep import is_sweep

        if is_sweep(command[1:]):
            from actors.experiments.sweep import main as sweep_main
            from actors.experiments.sweep_worker import WorkerSetup

            # Each worker sets up its logging and loop as this process just did.
            setup = WorkerSetup(debug=args.debug, log_file=str(data_dir / "experiment.log"), loop=args.loop)
            return sweep_main(command[1:], setup=setup)
        from actors.experiments.runner import main as experiment_main

        return experiment_main(command[1:])
    if first == "serve":
        configure_logging(debug=args.debug, log_file=data_dir / "minifoundry.log")
        from actors.repl.serve import serve

        return serve(args)
    if first in ("up", "down"):
        from actors.repl import daemon

        return daemon.up(args) if first == "up" else daemon.down(args)
    if command and not args.attach:
        # One cf command, run by the platform serving the data dir.
        from actors.repl.client import run_one

        return run_one(args)
    if not args.attach:
        from actors.repl.daemon import connect

        try:
            probe = connect(data_dir)
        except PermissionError:
            probe = None  # another user's: the data dir's lock says so
        if probe is not None:  # a platform serves the data dir: the REPL is its
            probe.close()
            args.attach = True
    configure_logging(debug=args.debug, log_file=data_dir / "minifoundry.log")
    from actors.repl.shell import run_repl

    return run_repl(args)


def _unusable(data_dir: Path) -> str | None:
    """Why `data_dir` cannot be a data directory (a file is in its place, or
    in the place of a folder above it), or None."""
    for path in (data_dir, *data_dir.parents):
        try:
            if not (path.exists() or path.is_symlink()):
                continue
            is_dir = path.is_dir()
        except OSError:
            return None  # not ours to look into (another user's): the command says so itself
        if not is_dir:
            return f"{path} is not a directory" if path == data_dir else f"{path} (in {data_dir}) is not a directory"
        return None
    return None


def _bench(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE))
    if not argv or argv[0] not in ("runtime", "auction", "push", "api"):
        if argv:
            print(f"run.py bench: no bench named {argv[0]!r}", file=sys.stderr)
        print("usage: run.py [--loop asyncio|uvloop] bench runtime|auction|push|api [options]", file=sys.stderr)
        return 2
    if argv[0] == "runtime":
        from benchmarks.runtime import main as bench_main
    elif argv[0] == "auction":
        from benchmarks.auction import main as bench_main
    elif argv[0] == "push":
        from benchmarks.push import main as bench_main
    else:
        from benchmarks.api import main as bench_main
    return bench_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
