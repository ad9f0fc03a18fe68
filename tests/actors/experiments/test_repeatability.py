"""What makes a seed repeat a run: threaded I/O is let go in the order it
began, however the threads finish; a restart draws fresh guids."""

from __future__ import annotations

import asyncio
import threading

import anyio
import pytest

from actors.runtime import VirtualClock

pytestmark = pytest.mark.anyio


async def test_threaded_io_goes_on_in_the_order_it_began_not_the_order_threads_finish():
    clock = VirtualClock()
    clock.start()
    first_may_finish = threading.Event()
    order: list[str] = []
    try:

        async def io(name: str, wait: threading.Event | None) -> None:
            async with clock.threaded_io():
                await anyio.to_thread.run_sync(lambda: wait.wait(5) if wait else None)
            order.append(name)

        async with anyio.create_task_group() as tg:
            tg.start_soon(io, "first", first_may_finish)
            tg.start_soon(io, "second", None)  # its thread is done at once
            await asyncio.sleep(0.05)
            assert order == []  # the second waits for the first
            first_may_finish.set()
        assert order == ["first", "second"]
    finally:
        await clock.stop()


async def test_a_stopped_clock_lets_waiting_io_go(tmp_path):
    clock = VirtualClock()
    clock.start()
    blocker = threading.Event()
    done: list[str] = []

    async def io(name: str, wait: threading.Event | None) -> None:
        async with clock.threaded_io():
            await anyio.to_thread.run_sync(lambda: wait.wait(5) if wait else None)
        done.append(name)

    slow = asyncio.get_running_loop().create_task(io("slow", blocker))
    fast = asyncio.get_running_loop().create_task(io("fast", None))
    await asyncio.sleep(0.05)
    await clock.stop()
    await fast  # no driver is left to wait for: it goes on
    blocker.set()
    await slow
    assert sorted(done) == ["fast", "slow"]


async def test_a_restart_on_the_same_data_draws_new_guids(make_platform):
    from tests.actors.conftest import app_guid, run

    guids = []
    for name in ("first", "second"):
        platform = make_platform(seed=3)
        await platform.start()
        try:
            code, lines = await run(platform, "push", name, "-p", "examples/static", "--no-start")
            assert code == 0, "\n".join(lines)
            guids.append(await app_guid(platform, name))
        finally:
            await platform.stop()
    assert guids[0] != guids[1]
