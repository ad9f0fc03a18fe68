"""Blocking work on worker threads, its result handed back to the loop:
`await in_thread(fn, *args)`.

The platform's file work (blob files, staging, app scans, log files) runs
here. It is what `anyio.to_thread.run_sync` did for it, with what the
platform needs and nothing else, so a hop costs the loop a future, a queue
put and one wake-up (about a quarter of anyio's loop-side CPU with calls in
flight together, half of it one at a time, measured on this project's
machine):

- Work a worker has begun runs to its end. A task cancelled while waiting
  for it gets its `CancelledError` only once the work is over, as with
  anyio's default: nothing is left half-done on a thread while the caller
  goes on as if it had stopped.
- Work cancelled before a worker took it up never runs.
- Workers (threads) start as they are needed, up to `MAX_WORKERS` a loop,
  and one that has been idle `IDLE_SECONDS` ends. Their lifetimes follow
  real time, but nothing the platform decides depends on them.

The calls go through `clock.threaded_io()` like any threaded I/O: that is
what keeps a virtual clock from jumping while one is in flight, and what
lets their results go on in a repeatable order.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["IDLE_SECONDS", "MAX_WORKERS", "in_thread", "workers"]

T = TypeVar("T")

MAX_WORKERS = 32
IDLE_SECONDS = 10.0


class _Job:
    __slots__ = ("args", "cancelled", "fn", "future", "over")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.args = args
        self.future = future
        self.cancelled = False  # set on the loop: skip it if not begun
        # Set on the loop when the worker has reported back (ran or skipped),
        # for a cancelled caller waiting for the work to be over.
        self.over: asyncio.Future[None] | None = None


def _report(job: _Job, ok: bool, value: Any) -> None:
    """On the loop: the worker is done with `job`."""
    future = job.future
    if not future.done():
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    over, job.over = job.over, None
    if over is not None and not over.done():
        over.set_result(None)
    job.fn = job.args = None  # type: ignore[assignment]  # let go of what it held


class _Pool:
    """The worker threads of one loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weakly: `_pools` holds its pools by their loops, weakly too, so a
        # loop that is done with is let go with its pool.
        self._loop = weakref.ref(loop)
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Every job queued is spoken for by exactly one worker: one that was
        # idle (`_idle` counts those not yet spoken for), one started for it,
        # or, with every worker busy, the next to finish (`_backlog`).
        self._idle = 0
        self._backlog = 0
        self.workers = 0

    def submit(self, job: _Job) -> None:
        self._jobs.put(job)
        with self._lock:
            if self._idle:
                self._idle -= 1  # an idle worker will take it
                return
            if self.workers >= MAX_WORKERS:
                self._backlog += 1  # the next worker to finish takes it
                return
            self.workers += 1
        threading.Thread(target=self._work, name="minifoundry-io", daemon=True).start()

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            try:
                job = jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._idle:
                        # Idle and not spoken for: end. (At zero every idle
                        # worker is spoken for: a job is on its way to one.)
                        self._idle -= 1
                        self.workers -= 1
                        return
                continue
            if job.cancelled:
                ok, value = True, None
            else:
                try:
                    ok, value = True, job.fn(*job.args)
                except StopIteration as exc:  # a future cannot carry it
                    ok, value = False, RuntimeError(f"StopIteration raised on a worker thread: {exc!r}")
                except BaseException as exc:  # noqa: BLE001 - it is handed to the caller, whatever it is
                    ok, value = False, exc
            # Free before the caller hears back: its next call finds this
            # worker idle rather than starting another.
            with self._lock:
                if self._backlog:
                    self._backlog -= 1
                else:
                    self._idle += 1
            loop = self._loop()
            try:
                if loop is not None:
                    loop.call_soon_threadsafe(_report, job, ok, value)
            except RuntimeError:
                pass  # the loop is closed: nobody is waiting any more
            del loop
            del job, value


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()
_pools_lock = threading.Lock()


def _pool(loop: asyncio.AbstractEventLoop) -> _Pool:
    pool = _pools.get(loop)
    if pool is None:
        with _pools_lock:
            pool = _pools.get(loop)
            if pool is None:
                pool = _pools[loop] = _Pool(loop)
    return pool


def workers(loop: asyncio.AbstractEventLoop | None = None) -> int:
    """How many worker threads the loop (default: the running one) has now."""
    pool = _pools.get(loop or asyncio.get_running_loop())
    return 0 if pool is None else pool.workers


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on a worker thread; its result, or its exception, here."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    job = _Job(fn, args, future)
    _pool(loop).submit(job)
    try:
        return await future
    except asyncio.CancelledError:
        if job.fn is not None:  # the worker has not reported back yet
            job.cancelled = True
            over = job.over = loop.create_future()
            while not over.done():
                try:
                    await asyncio.shield(over)
                except asyncio.CancelledError:
                    continue  # cancelled again: still wait for the work to be over
        raise
