"""Ask deadlines without a timer per ask.

A timer per ask (create it, cancel it on the reply) was the largest single
cost of an ask round trip. Deadlines with the same timeout expire in the
order they were armed, so one FIFO queue per distinct timeout value holds
them in expiry order, and one clock timer, set for the earliest pending
expiry, serves them all. A reply cancels nothing: the sweep drops answered
futures as it meets them.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actors.runtime.clock import Clock, TimerHandle
    from actors.runtime.future import AsyncioFuture

__all__ = ["Deadlines"]

_INF = float("inf")


class Deadlines:
    """Fails asks with AskTimeout when their deadline passes (loop thread only)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # (expiry, future, message, receiver): the message's type is named
        # only if the deadline passes.
        self._queues: dict[float, deque[tuple[float, AsyncioFuture[Any], Any, str]]] = {}
        self._timer: TimerHandle | None = None
        self._timer_at = _INF

    def arm(self, future: AsyncioFuture[Any], timeout: float, message: Any, receiver: str) -> None:
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = deque()
        else:
            # Answered asks at the head need no deadline any more.
            while queue and queue[0][1]._state:
                queue.popleft()
        expiry = self._clock.monotonic() + timeout
        queue.append((expiry, future, message, receiver))
        if expiry < self._timer_at:
            self._schedule(expiry)

    def pending(self) -> int:
        return sum(1 for q in self._queues.values() for _, f, _, _ in q if not f._state)

    def cancel_all(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = _INF
        self._queues.clear()

    def _schedule(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._clock.call_later(max(0.0, at - self._clock.monotonic()), self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        self._timer_at = _INF
        now = self._clock.monotonic()
        earliest = _INF
        for timeout in list(self._queues):
            queue = self._queues[timeout]
            while queue:
                expiry, future, message, receiver = queue[0]
                if future._state:
                    queue.popleft()
                elif expiry <= now:
                    queue.popleft()
                    future._expire(timeout, f"{type(message).__name__} to {receiver}")
                else:
                    earliest = min(earliest, expiry)
                    break
            if not queue:
                del self._queues[timeout]
        if earliest < _INF:
            self._schedule(earliest)
