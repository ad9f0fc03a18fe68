"""Lines to standard output that may be a pipe someone closed (`| head`).

`write_line` prints and flushes; when the reader has gone (BrokenPipeError),
standard output is pointed at /dev/null for good, so neither this write, a
later one, nor the interpreter's final flush prints a traceback. The work
the command does goes on; only its output has nowhere to go.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

__all__ = ["silence_stdout", "stdout_closed", "write_line"]

_closed = False


def stdout_closed() -> bool:
    """Whether standard output's reader went away."""
    return _closed


def silence_stdout() -> None:
    """From now on, standard output goes nowhere (its reader went away)."""
    global _closed
    _closed = True
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def write_line(text: str, stream: TextIO | None = None) -> None:
    """Print one line and flush it; a closed pipe silences output instead of failing."""
    if _closed and (stream is None or stream is sys.stdout):
        return
    try:
        print(text, file=stream or sys.stdout, flush=True)
    except BrokenPipeError:
        if stream is None or stream is sys.stdout:
            silence_stdout()
