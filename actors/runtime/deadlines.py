"""Ask deadlines without a timer per ask.

A timer per ask (create it, cancel it on the reply) was the largest single
cost of an ask round trip. Deadlines with the same timeout expire in the
order they were armed, so one FIFO queue per distinct timeout value holds
them in expiry order, and one clock timer, set for the earliest pending
expiry, serves them all. A reply cancels nothing: the sweep drops answered
futures as it meets them, and arming drops those at a queue's head every
`_PRUNE_EVERY` arms. Times are the clock's raw ones (`raw_time()`, a C call
for the real clock), `timeout * raw_per_second` past the arming.

`AsyncActorRef.ask` arms inline what `arm` would (the queue exists and is
not due a pruning): an ask's round trip is a few microseconds, and a method
call is a tenth of that.

A round of asks sent together with one timeout (`ActorSystem.request_all`,
the auctioneer's bid round) shares one entry, `arm_round`: its futures
expire together, each named by its own receiver.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from actors.runtime.future import expire

if TYPE_CHECKING:
    import asyncio

    from actors.runtime.clock import Clock, TimerHandle

__all__ = ["Deadlines"]

_INF = float("inf")
# Answered asks are dropped from a queue's head every this many arms.
_PRUNE_EVERY = 64


class Deadlines:
    """Fails asks with AskTimeout when their deadline passes (loop thread only)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # Expiries are kept in the clock's raw time (cheapest to read; an
        # ask arms one every round trip), `timeout * rate` past the arming.
        self._raw = getattr(clock, "raw_time", clock.monotonic)
        self._rate: float = getattr(clock, "raw_per_second", 1.0)
        # (expiry, future, message, receiver): the message's type is named
        # only if the deadline passes.
        self._queues: dict[float, deque[tuple[float, asyncio.Future[Any], Any, str]]] = {}
        self._timer: TimerHandle | None = None
        self._timer_at = _INF

    def arm(
        self, future: asyncio.Future[Any], timeout: float, message: Any, receiver: str, now: float | None = None
    ) -> None:
        """Fail `future` if `timeout` passes from `now` (the clock's raw time,
        read here unless the caller has just read it)."""
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = deque()
        elif not len(queue) % _PRUNE_EVERY:
            # Answered asks at the head need no deadline any more.
            while queue and queue[0][1].done():
                queue.popleft()
        expiry = (self._raw() if now is None else now) + timeout * self._rate
        queue.append((expiry, future, message, receiver))
        if expiry < self._timer_at:
            self._schedule(expiry)

    def arm_round(
        self, futures: list[asyncio.Future[Any]], timeout: float, message: Any, receivers: list[str], now: float
    ) -> None:
        """Fail each of `futures` (asks of `message` to `receivers`, in the
        same order) not answered when `timeout` passes from `now`: one entry
        for the round."""
        queue = self._queues.get(timeout)
        if queue is not None:
            # A round holds many futures (and their replies): answered ones
            # at the head go now, not every `_PRUNE_EVERY` entries.
            while queue and queue[0][1].done():
                queue.popleft()
        self.arm(_Round(futures), timeout, message, receivers, now)  # type: ignore[arg-type]

    def pending(self) -> int:
        return sum(
            len(f.pending()) if type(f) is _Round else not f.done() for q in self._queues.values() for _, f, _, _ in q
        )

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
        delay = max(0.0, (at - self._raw()) / self._rate)
        self._timer = self._clock.call_later(delay, self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        self._timer_at = _INF
        now = self._raw()
        earliest = _INF
        for timeout in list(self._queues):
            queue = self._queues[timeout]
            while queue:
                expiry, future, message, receiver = queue[0]
                if future.done():
                    queue.popleft()
                elif expiry <= now:
                    queue.popleft()
                    if type(future) is _Round:
                        for i in future.pending():
                            expire(future.futures[i], timeout, f"{type(message).__name__} to {receiver[i]}")
                    else:
                        expire(future, timeout, f"{type(message).__name__} to {receiver}")
                else:
                    earliest = min(earliest, expiry)
                    break
            if not queue:
                del self._queues[timeout]
        if earliest < _INF:
            self._schedule(earliest)


class _Round:
    """The futures of one round's entry: done when every one is."""

    __slots__ = ("_first", "futures")

    def __init__(self, futures: list[asyncio.Future[Any]]) -> None:
        self.futures = futures
        self._first = 0  # every future before it is done

    def done(self) -> bool:
        futures = self.futures
        first = self._first
        while first < len(futures) and futures[first].done():
            first += 1
        self._first = first
        return first == len(futures)

    def pending(self) -> list[int]:
        """The indexes of the futures not answered yet."""
        return [i for i in range(self._first, len(self.futures)) if not self.futures[i].done()]
