"""`in_thread`: blocking work on worker threads, on asyncio's loop and on uvloop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from actors.runtime import offload
from actors.runtime.offload import in_thread

pytestmark = pytest.mark.anyio


async def _until(check: object, seconds: float = 10.0) -> None:
    """Wait (real time: thread lifetimes are real) until `check()` holds."""
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_the_work_runs_on_a_worker_thread_and_its_result_or_error_comes_back() -> None:
    loop_thread = threading.get_ident()
    assert await in_thread(lambda a, b: (a + b, threading.get_ident() != loop_thread), 2, 3) == (5, True)

    def fails() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        await in_thread(fails)

    def stops() -> None:
        raise StopIteration

    with pytest.raises(RuntimeError, match="StopIteration"):
        await in_thread(stops)


async def test_a_caller_cancelled_mid_work_is_cancelled_only_once_the_work_is_over() -> None:
    begun, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def work() -> None:
        begun.set()
        release.wait(10)
        time.sleep(0.05)
        finished.append("done")

    seen_at_cancel: list[list[str]] = []

    async def caller() -> None:
        try:
            await in_thread(work)
        except asyncio.CancelledError:
            seen_at_cancel.append(list(finished))
            raise

    task = asyncio.ensure_future(caller())
    await _until(begun.is_set)
    task.cancel()
    await asyncio.sleep(0.02)
    task.cancel()  # a second cancel does not cut the wait short either
    assert not task.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen_at_cancel == [["done"]]


async def test_work_cancelled_before_a_worker_took_it_never_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offload, "MAX_WORKERS", 1)
    monkeypatch.setattr(offload, "_pools", type(offload._pools)())
    begun, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def first() -> str:
        begun.set()
        release.wait(10)
        return "first"

    head = asyncio.ensure_future(in_thread(first))
    await _until(begun.is_set)
    queued = asyncio.ensure_future(in_thread(ran.append, "queued"))
    await asyncio.sleep(0)
    queued.cancel()
    await asyncio.sleep(0.02)
    release.set()
    assert await head == "first"
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert await in_thread(ran.append, "after") is None
    assert ran == ["after"]


async def test_workers_are_reused_capped_and_end_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offload, "MAX_WORKERS", 3)
    monkeypatch.setattr(offload, "IDLE_SECONDS", 0.1)
    monkeypatch.setattr(offload, "_pools", type(offload._pools)())
    for i in range(20):
        assert await in_thread(lambda i=i: i * i) == i * i
    assert offload.workers() == 1  # one at a time: the same worker every time

    def slow(i: int) -> int:
        time.sleep(0.001)
        return i

    results = await asyncio.gather(*(in_thread(slow, i) for i in range(200)))
    assert results == list(range(200))
    assert 1 <= offload.workers() <= 3
    await _until(lambda: offload.workers() == 0)
    # A pool whose workers all ended starts one again.
    assert await in_thread(lambda: "again") == "again"


def test_a_loop_that_is_done_with_is_let_go_with_its_workers() -> None:
    import gc
    import weakref

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(in_thread(lambda: 42)) == 42
        assert offload.workers(loop) == 1
    finally:
        loop.close()
    gone = weakref.ref(loop)
    del loop
    gc.collect()
    assert gone() is None
