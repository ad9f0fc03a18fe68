"""Which event loop runs the platform: asyncio's own or uvloop.

`install(name)` is called once, at the program's edge (`run.py --loop`), and
sets the event loop policy, so every `asyncio.run` after it (the platform,
the REPL, experiments, benchmarks, the HTTP API's own loop) gets that kind
of loop. The choice is also put in the environment (`MINIFOUNDRY_LOOP`) so
processes started from this one (an experiment's child run, `up`'s server)
make the same choice. Nothing in the runtime depends on which loop it is.
"""

from __future__ import annotations

import asyncio
import os

__all__ = ["ENV", "LOOPS", "install", "installed"]

LOOPS = ("asyncio", "uvloop")
ENV = "MINIFOUNDRY_LOOP"


def install(name: str) -> None:
    """Make `name` ("asyncio" or "uvloop") the loop every `asyncio.run` gets."""
    if name not in LOOPS:
        raise ValueError(f"unknown event loop {name!r}; choose one of {', '.join(LOOPS)}")
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise SystemExit("uvloop is not installed: pip install -e '.[bench]'") from None
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    else:
        asyncio.set_event_loop_policy(None)
    os.environ[ENV] = name


def installed() -> str:
    """The kind of loop `asyncio.run` gives now: "uvloop" or "asyncio"."""
    policy = asyncio.get_event_loop_policy()
    return "uvloop" if type(policy).__module__.split(".")[0] == "uvloop" else "asyncio"
