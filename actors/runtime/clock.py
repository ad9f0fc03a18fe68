"""The injected clock: every timeout and sleep in platform code goes through one.

Two kinds:

- `RealClock(speed=1.0)` follows the event loop's monotonic time, optionally
  compressed (`speed=60` runs an hour of platform time in a minute).
- `VirtualClock` keeps its own time and jumps straight to the next timer
  whenever the loop has nothing else to do, so thirty minutes of crash
  backoff run in milliseconds.

Both give the same interface: `monotonic()`, `now()` (epoch seconds for
display), `sleep()`, `call_later()`, `timeout()` and `threaded_io()`.

Threaded I/O and virtual time: aiosqlite runs every statement on its own
thread and file work runs on `offload.in_thread` workers. While such work
is in flight the loop looks idle (nothing ready, the selector waiting on the
thread's wake-up), and a naive virtual clock would jump hours ahead while a
database write is still running. Every piece of real threaded I/O is entered
through `clock.threaded_io()`; the virtual clock never advances while that
count is above zero, it waits (in real time) for the I/O to finish first.

Nor may threads decide the order of events. A thread finishes whenever the
machine lets it, so with the driver running, a coroutine leaving
`threaded_io()` waits to be let go: calls are let go one at a time, in the
order they were entered, and only when the loop has nothing else to run.
What the rest of the platform sees of threaded I/O is then a function of
the seed alone, and a run repeats exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

__all__ = ["Clock", "RealClock", "TimerHandle", "VirtualClock"]

_monotonic = time.monotonic

# A fixed, readable epoch for virtual runs, so reports repeat byte for byte.
VIRTUAL_EPOCH = 1_795_600_000.0  # 2026-11-25T..Z, close to "today" for display


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What platform code may ask of time."""

    def monotonic(self) -> float: ...
    def now(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...
    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle: ...
    def timeout(self, seconds: float | None) -> contextlib.AbstractAsyncContextManager[None]: ...
    def threaded_io(self) -> contextlib.AbstractAsyncContextManager[None]: ...
    def for_real(self, seconds: float) -> float: ...


class _ClockBase:
    """Shared pieces: the cancel-scope timeout and the threaded-I/O count."""

    #: Seconds of `raw_time()` per second of this clock's time.
    raw_per_second = 1.0
    #: This clock's time in its cheapest form to read, for what reads it per
    #: message (ask deadlines, traces); `from_raw` turns it into
    #: `monotonic()`'s seconds. Here (and for the virtual clock) they are the
    #: same. One object, made once: the deadlines and the trace recorder see
    #: that they read the same clock, so an ask reads it once for both.
    raw_time: Callable[[], float]

    def __init__(self) -> None:
        self._io_in_flight = 0
        self._io_idle: asyncio.Event | None = None
        self.raw_time = self.monotonic

    def from_raw(self, raw: float) -> float:
        return raw

    def for_real(self, seconds: float) -> float:
        """The platform seconds that last `seconds` of real time: a bound a
        person or an HTTP client waits on. As given here (and on the
        virtual clock, which has no real time); `speed` times more on a
        sped-up real clock."""
        return seconds

    # Subclasses provide these.
    def monotonic(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:  # pragma: no cover
        raise NotImplementedError

    @property
    def io_in_flight(self) -> int:
        return self._io_in_flight

    @contextlib.asynccontextmanager
    async def threaded_io(self) -> AsyncIterator[None]:
        """Mark real threaded I/O in flight for the duration of the block."""
        self._io_in_flight += 1
        try:
            yield
        finally:
            self._io_in_flight -= 1
            if self._io_in_flight == 0 and self._io_idle is not None:
                self._io_idle.set()

    @contextlib.asynccontextmanager
    async def timeout(self, seconds: float | None) -> AsyncIterator[None]:
        """Cancel the block after `seconds` of this clock's time; raise TimeoutError.

        Works the way `asyncio.timeout` does (cancel the task, then turn that
        cancellation into TimeoutError on exit), but on this clock's timers.
        """
        if seconds is None:
            yield
            return
        task = asyncio.current_task()
        assert task is not None, "clock.timeout() needs a running task"
        fired = False

        def _fire() -> None:
            nonlocal fired
            fired = True
            task.cancel()

        handle = self.call_later(max(0.0, seconds), _fire)
        try:
            yield
        except asyncio.CancelledError:
            if fired and task.uncancel() == 0:
                raise TimeoutError(f"timed out after {seconds} s of platform time") from None
            raise
        finally:
            handle.cancel()
        if fired and task.cancelling():
            # The timer fired after the body finished but before we got here.
            task.uncancel()


class RealClock(_ClockBase):
    """Loop time, optionally sped up by `speed`."""

    def __init__(self, speed: float = 1.0, epoch: float | None = None) -> None:
        super().__init__()
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._epoch = time.time() if epoch is None else epoch  # the one wall-clock read
        self._origin = time.monotonic()
        # The loop's monotonic seconds, unscaled: a C call, no Python frame.
        self.raw_time = _monotonic
        self.raw_per_second = 1.0 / speed

    def from_raw(self, raw: float) -> float:
        return (raw - self._origin) * self.speed

    def for_real(self, seconds: float) -> float:
        return seconds * self.speed

    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def monotonic(self) -> float:
        return (_monotonic() - self._origin) * self.speed

    def now(self) -> float:
        return self._epoch + (_monotonic() - self._origin) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        return self._loop().call_later(max(0.0, delay) / self.speed, callback, *args)


class _VirtualTimer:
    __slots__ = ("args", "callback", "cancelled", "seq", "when")

    def __init__(self, when: float, seq: int, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.when = when
        self.seq = seq
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: _VirtualTimer) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)


class VirtualClock(_ClockBase):
    """Simulated time that advances only when the loop is otherwise idle.

    `start()` launches the driver task on the running loop; `stop()` ends it.
    Timers due at the same instant fire in the order they were scheduled, so
    a run is deterministic given the same seed and the same messages.
    """

    def __init__(self, start: float = 0.0, epoch: float = VIRTUAL_EPOCH, idle_rounds: int = 3) -> None:
        super().__init__()
        self._now = start
        self._epoch = epoch
        self._timers: list[_VirtualTimer] = []
        self._seq = itertools.count()
        self._driver: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._idle_rounds = idle_rounds
        self._idle_waiters: list[asyncio.Future[None]] = []
        self.auto_advance = True
        # Threaded I/O under the driver: tickets in entry order; those whose
        # thread work is over wait in `_io_done` to be let go, oldest first.
        self._io_tickets = itertools.count()
        self._io_open: set[int] = set()
        self._io_done: dict[int, asyncio.Future[None]] = {}
        self._io_news: asyncio.Event | None = None
        # Callbacks the loop was asked to run (`call_soon`), counted by
        # `_watch_loop`: the driver's test for "is anything about to run".
        self._scheduled = 0
        self._watched: asyncio.AbstractEventLoop | None = None

    # --- time ---------------------------------------------------------------

    def monotonic(self) -> float:
        return self._now

    def now(self) -> float:
        return self._epoch + self._now

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> _VirtualTimer:
        timer = _VirtualTimer(self._now + max(0.0, delay), next(self._seq), callback, args)
        heapq.heappush(self._timers, timer)
        if self._wakeup is not None:
            self._wakeup.set()
        return timer

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        timer = self.call_later(seconds, _set_if_pending, fut)
        try:
            await fut
        finally:
            timer.cancel()

    def pending_timers(self) -> int:
        return sum(1 for t in self._timers if not t.cancelled)

    def next_deadline(self) -> float | None:
        self._drop_cancelled()
        return self._timers[0].when if self._timers else None

    def _drop_cancelled(self) -> None:
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)

    # --- threaded I/O, in a repeatable order ---------------------------------

    @contextlib.asynccontextmanager
    async def threaded_io(self) -> AsyncIterator[None]:
        """Mark real threaded I/O in flight; with the driver running, leave
        only when let go (in entry order, at a quiet moment)."""
        if self._driver is None:
            async with super().threaded_io():
                yield
            return
        ticket = next(self._io_tickets)
        self._io_open.add(ticket)
        self._io_in_flight += 1
        try:
            yield
        finally:
            try:
                if self._driver is not None:
                    turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                    self._io_done[ticket] = turn
                    self._io_news_set()
                    await turn
            finally:
                self._io_open.discard(ticket)
                self._io_done.pop(ticket, None)
                self._io_in_flight -= 1
                if self._io_in_flight == 0 and self._io_idle is not None:
                    self._io_idle.set()
                self._io_news_set()

    def _io_news_set(self) -> None:
        if self._io_news is not None:
            self._io_news.set()

    async def _let_io_go(self) -> bool:
        """Driver step: let the oldest finished I/O go on, or wait for the
        oldest to finish. False when no I/O is open."""
        assert self._io_news is not None
        if not self._io_open:
            return False
        oldest = min(self._io_open)
        turn = self._io_done.get(oldest)
        if turn is not None:
            if not turn.done():
                turn.set_result(None)
            return True
        self._io_news.clear()
        if self._io_open and min(self._io_open) not in self._io_done:
            await self._io_news.wait()
        return True

    # --- manual stepping (tests) ------------------------------------------

    def fire_due(self) -> int:
        """Run every timer due at the current time; return how many ran."""
        ran = 0
        while True:
            self._drop_cancelled()
            if not self._timers or self._timers[0].when > self._now:
                return ran
            timer = heapq.heappop(self._timers)
            timer.callback(*timer.args)
            ran += 1

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, firing timers in order and letting
        the loop settle after each, as if that much time had passed.

        With the driver running, this sleeps on the clock and then waits for
        the driver to find the loop idle (two settling loops would each see
        the other's `sleep(0)` and never find quiet)."""
        if self._driver is not None:
            if seconds > 0:
                await self.sleep(seconds)
            await self.wait_idle()
            return
        target = self._now + seconds
        while True:
            await self._settle()
            self._drop_cancelled()
            if not self._timers or self._timers[0].when > target:
                break
            self._now = max(self._now, self._timers[0].when)
            self.fire_due()
        self._now = target
        await self._settle()

    async def wait_idle(self) -> None:
        """Return when nothing but timers is left to run (driver mode)."""
        if self._driver is None:
            await self._settle()
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(fut)
        assert self._wakeup is not None
        self._wakeup.set()
        await fut

    # --- the driver -------------------------------------------------------

    def start(self) -> None:
        """Start advancing automatically whenever the loop goes idle."""
        if self._driver is None:
            self._wakeup = asyncio.Event()
            self._io_idle = asyncio.Event()
            self._io_news = asyncio.Event()
            loop = asyncio.get_running_loop()
            self._watch_loop(loop)
            self._driver = loop.create_task(self._drive(), name="virtual-clock")

    async def stop(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driver
        self._unwatch_loop()
        for turn in list(self._io_done.values()):  # nobody is left to let them go
            _set_if_pending(turn)

    def _watch_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Count what the loop is asked to run.

        Every future's callbacks and every task's next step are scheduled
        through the loop's public `call_soon` (and a thread's hand-over
        through `call_soon_threadsafe`), on asyncio's loop and on uvloop
        alike, so wrapping the two on this loop object tells the driver
        whether anything else is about to run without reading any of the
        loop's private state.
        """
        if self._watched is not None:
            return
        call_soon = loop.call_soon
        call_soon_threadsafe = loop.call_soon_threadsafe

        def counted_call_soon(callback: Callable[..., Any], *args: Any, context: Any = None) -> asyncio.Handle:
            self._scheduled += 1
            return call_soon(callback, *args, context=context)

        def counted_call_soon_threadsafe(
            callback: Callable[..., Any], *args: Any, context: Any = None
        ) -> asyncio.Handle:
            self._scheduled += 1
            return call_soon_threadsafe(callback, *args, context=context)

        loop.call_soon = counted_call_soon  # type: ignore[method-assign, assignment]
        loop.call_soon_threadsafe = counted_call_soon_threadsafe  # type: ignore[method-assign, assignment]
        self._watched = loop

    def _unwatch_loop(self) -> None:
        loop, self._watched = self._watched, None
        if loop is not None:
            # The wrappers are attributes of this loop object: removing them
            # leaves the loop's own methods.
            for name in ("call_soon", "call_soon_threadsafe"):
                with contextlib.suppress(AttributeError):
                    delattr(loop, name)

    async def _settle(self, *, wait_io: bool = True) -> None:
        """Return once nothing on the loop is runnable and (with `wait_io`) no
        threaded I/O is in flight: the only thing left that could happen is a
        timer. The driver settles without waiting for I/O: it lets I/O go
        itself (`_let_io_go`)."""
        if self._watched is None:
            self._watch_loop(asyncio.get_running_loop())
        quiet = 0
        while quiet < self._idle_rounds:
            if wait_io and self._io_in_flight:
                quiet = 0
                assert self._io_idle is not None or not self._driver
                if self._io_idle is None:
                    self._io_idle = asyncio.Event()
                self._io_idle.clear()
                if self._io_in_flight:
                    await self._io_idle.wait()
                continue
            before = self._scheduled
            await asyncio.sleep(0)
            # Our own sleep(0) scheduled exactly one callback (this task's
            # next step); anything more was scheduled by someone else, and
            # runs on the next pass.
            if self._scheduled - before <= 1:
                quiet += 1
            else:
                quiet = 0

    async def _drive(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._settle(wait_io=False)
            if await self._let_io_go():
                continue
            if self._idle_waiters:
                # Wake whoever waits for quiet, then settle again: waking
                # them is itself new work.
                waiters, self._idle_waiters = self._idle_waiters, []
                for waiter in waiters:
                    _set_if_pending(waiter)
                continue
            self._drop_cancelled()
            if not self._timers or not self.auto_advance:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._now = max(self._now, self._timers[0].when)
            self.fire_due()


def _set_if_pending(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
