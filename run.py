#!/usr/bin/env python3
"""minifoundry's front door.

    python run.py [OPTIONS]                      the REPL on a running platform
    python run.py [OPTIONS] COMMAND [ARGS...]    one cf command, then exit
    python run.py [OPTIONS] serve                the platform, headless, until SIGINT/SIGTERM
    python run.py bench runtime|auction [...]    benchmarks
    python run.py experiment FILE [--seed N]     a fault-injection experiment

Parses the command line, configures logging once, boots the platform and
hands over. Everything else lives in `actors/`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from actors.platform import PlatformConfig

HERE = Path(__file__).resolve().parent


def configure_logging(*, debug: bool = False, log_file: Path | None = None, json_to_stderr: bool = False) -> None:
    """structlog, configured once: JSON lines to `log_file` (INFO and up), and
    to stderr only with --debug (DEBUG and up, readable)."""
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
    p.add_argument("--speed", type=float, default=1.0, help="platform seconds per real second (default 1)")
    p.add_argument("--debug", action="store_true", help="log to stderr and show tracebacks")
    p.add_argument("--attach", action="store_true", help="open a REPL on a running `serve` of --data-dir")
    p.add_argument("command", nargs=argparse.REMAINDER, help="a cf command, serve, bench or experiment")
    return p


def platform_config(args: argparse.Namespace) -> PlatformConfig:
    from actors.platform import PlatformConfig

    if args.cells < 1:
        raise SystemExit("run.py: --cells must be at least 1")
    if args.zones < 1:
        raise SystemExit("run.py: --zones must be at least 1")
    return PlatformConfig(data_dir=Path(args.data_dir), cells=args.cells, zones=args.zones, seed=args.seed)


async def one_shot(args: argparse.Namespace) -> int:
    """Boot on the data dir, run one command, let the platform settle, stop."""
    from actors.platform import Platform
    from actors.runtime import RealClock
    from actors.stdout import write_line

    def out(line: str) -> None:
        write_line(line)

    async def ask_user(question: str) -> bool:
        # On a thread: the question must not hold up the platform's loop.
        answer = await asyncio.to_thread(input, f"{question} [yN]: ")
        return answer.strip().lower() in ("y", "yes")

    confirm = ask_user if sys.stdin.isatty() else None

    async with Platform(platform_config(args), clock=RealClock(speed=args.speed)) as platform:
        await platform.settle(timeout=30)  # apps re-desired at boot come up first
        try:
            code = await platform.command(args.command, out, cwd=os.getcwd(), confirm=confirm)
        except asyncio.CancelledError:
            code = 130
        await platform.settle(timeout=10)
        return code


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # Whoever read our output went away (`| head`): no traceback.
        from actors.stdout import silence_stdout

        silence_stdout()
        return 0


def _main(argv: list[str] | None = None) -> int:
    args = _global_parser().parse_args(argv)
    command = args.command
    data_dir = Path(args.data_dir)
    if command[:1] == ["bench"]:
        configure_logging(debug=args.debug)
        return _bench(command[1:])
    if command[:1] == ["experiment"]:
        configure_logging(debug=args.debug, log_file=data_dir / "experiment.log")
        from actors.experiments.runner import main as experiment_main

        return experiment_main(command[1:])
    if command[:1] == ["serve"]:
        configure_logging(debug=args.debug, log_file=data_dir / "minifoundry.log")
        from actors.repl.serve import serve

        return serve(args)
    if not command or args.attach:
        configure_logging(debug=args.debug, log_file=data_dir / "minifoundry.log")
        from actors.repl.shell import run_repl

        return run_repl(args)
    configure_logging(debug=args.debug, log_file=data_dir / "minifoundry.log")
    try:
        return asyncio.run(one_shot(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from protocol.errors import MinifoundryError

        if args.debug or not isinstance(exc, MinifoundryError):
            if args.debug:
                raise
        print(f"{exc}", file=sys.stderr)
        print("FAILED", file=sys.stderr)
        return 1


def _bench(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE))
    if not argv or argv[0] not in ("runtime", "auction"):
        print("usage: run.py bench runtime|auction [options]", file=sys.stderr)
        return 2
    if argv[0] == "runtime":
        from benchmarks.runtime import main as bench_main
    else:
        from benchmarks.auction import main as bench_main
    return bench_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
