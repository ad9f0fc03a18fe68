"""What every bench shares: `--json`, one JSON object out, progress on a
terminal, and running on the loop `run.py --loop` chose."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "add_json_option",
    "at_least",
    "emit",
    "loop_name",
    "peak_rss_mb",
    "positive_number",
    "progress_printer",
    "run_loop",
]

T = TypeVar("T")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="PATH",
        type=_json_path,
        help="print one JSON object with the figures (and nothing else) on stdout; with PATH, write it there",
    )


def _json_path(text: str) -> str:
    """Checked before the run, not after it: a bench's figures are not lost
    to a folder that is not there."""
    if text != "-":
        folder = Path(text).resolve().parent
        if not folder.is_dir():
            raise argparse.ArgumentTypeError(f"no folder {folder} to write {text} in")
    return text


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `low`."""

    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value

    return whole


def positive_number(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, not {text}")
    return value


def emit(report: dict[str, Any], where: str | None) -> None:
    """`--json`: the report as one JSON object, on stdout ("-") or in a file."""
    if where is None:
        return
    # Strict JSON (no NaN or Infinity): what any JSON parser reads.
    text = json.dumps(report, sort_keys=False, allow_nan=False)
    if where == "-":
        print(text, flush=True)
    else:
        Path(where).write_text(text + "\n", encoding="utf-8")


def progress_printer(stream: Any = None) -> Callable[[str | None], None]:
    """A progress line on a terminal (rewritten in place), nothing elsewhere;
    `progress(None)` clears it."""
    out = stream if stream is not None else sys.stderr
    if not out.isatty():
        return lambda _text: None
    started = time.monotonic()
    width = [0]

    def show(text: str | None) -> None:
        if text is None:
            out.write("\r" + " " * width[0] + "\r")
        else:
            line = f"[{time.monotonic() - started:6.1f} s] {text}"
            out.write("\r" + line.ljust(width[0]))
            width[0] = max(width[0], len(line))
        out.flush()

    return show


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on a new loop of the kind `run.py --loop` installed."""
    return asyncio.run(coro)


def loop_name() -> str:
    from actors.runtime.loops import installed

    return installed()


def peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
