"""The runtime's own errors: what breaks the actor system's contract.

They are minifoundry errors (a user or an experiment can name them), but
they belong to the runtime, not to Cloud Foundry's vocabulary in `protocol`.
`ActorDeadError` is pykka's own, re-exported: queued asks of a stopped actor
fail with it.
"""

from __future__ import annotations

from pykka import ActorDeadError
from pykka import Timeout as _PykkaTimeout

from protocol.errors import MinifoundryError

__all__ = ["ActorDeadError", "AskTimeout", "GetOnLoopThread", "RuntimeNotRunning"]


class AskTimeout(MinifoundryError, _PykkaTimeout, TimeoutError):
    """An ask's reply did not arrive before its deadline (raised to the asker).

    It is also a `pykka.Timeout` and a builtin `TimeoutError`, so code written
    against either keeps working."""


class GetOnLoopThread(MinifoundryError, RuntimeError):
    """`Future.get()` was called on the event loop's own thread, which would
    deadlock it; `await` the future instead."""


class RuntimeNotRunning(MinifoundryError, RuntimeError):
    """An actor was started, or a message sent, with no runtime loop running."""
