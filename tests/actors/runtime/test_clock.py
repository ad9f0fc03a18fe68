"""The injected clocks: virtual time jumps, but never over threaded I/O."""

from __future__ import annotations

import asyncio
import threading
import time

import anyio
import pytest

from actors.runtime import RealClock, VirtualClock

pytestmark = pytest.mark.anyio


async def test_virtual_time_waits_for_callbacks_already_scheduled():
    # Work that is only scheduled (a chain of callbacks, each scheduling the
    # next) is still work: time must not jump before it is done.
    clock = VirtualClock()
    clock.start()
    loop = asyncio.get_running_loop()
    seen: list[tuple[int, float]] = []

    def step(n: int) -> None:
        seen.append((n, clock.monotonic()))
        if n < 50:
            loop.call_soon(step, n + 1)

    try:
        loop.call_soon(step, 0)
        await clock.sleep(10)
        assert [n for n, _ in seen] == list(range(51))
        assert {t for _, t in seen} == {0.0}
        assert clock.monotonic() == 10
    finally:
        await clock.stop()


async def test_stopping_the_clock_leaves_the_loop_as_it_was():
    loop = asyncio.get_running_loop()
    before = (type(loop).call_soon, type(loop).call_soon_threadsafe)
    clock = VirtualClock()
    clock.start()
    await clock.sleep(1)
    await clock.stop()
    assert "call_soon" not in vars(loop) if hasattr(loop, "__dict__") else True
    assert (loop.call_soon.__func__, loop.call_soon_threadsafe.__func__) == before


async def test_virtual_time_advances_without_real_waiting():
    clock = VirtualClock()
    clock.start()
    try:
        began = time.perf_counter()
        await clock.sleep(30 * 60)  # thirty minutes of platform time
        assert clock.monotonic() == pytest.approx(1800)
        assert time.perf_counter() - began < 1.0
    finally:
        await clock.stop()


async def test_virtual_timers_fire_in_time_order_then_schedule_order():
    clock = VirtualClock()
    fired: list[str] = []
    clock.call_later(5, fired.append, "b")
    clock.call_later(1, fired.append, "a")
    clock.call_later(5, fired.append, "c")
    cancelled = clock.call_later(3, fired.append, "never")
    cancelled.cancel()
    await clock.advance(10)
    assert fired == ["a", "b", "c"]
    assert clock.monotonic() == 10


async def test_virtual_time_does_not_jump_while_threaded_io_is_in_flight():
    clock = VirtualClock()
    clock.start()
    release = threading.Event()
    observed: list[float] = []
    try:

        async def io_work():
            async with clock.threaded_io():
                await anyio.to_thread.run_sync(release.wait)
                observed.append(clock.monotonic())

        async def timer_user():
            await clock.sleep(100)
            observed.append(clock.monotonic())

        async with anyio.create_task_group() as tg:
            tg.start_soon(io_work)
            tg.start_soon(timer_user)
            await asyncio.sleep(0.05)  # real time passes; the I/O is still running
            assert clock.monotonic() == 0
            release.set()
        # The I/O finished at platform time 0, before the 100 s timer fired.
        assert observed == [0, 100]
    finally:
        await clock.stop()


async def test_clock_timeout_raises_timeout_error_on_platform_time():
    clock = VirtualClock()
    clock.start()
    try:
        with pytest.raises(TimeoutError):
            async with clock.timeout(10):
                await clock.sleep(20)
        assert clock.monotonic() == pytest.approx(10)
        async with clock.timeout(10):
            await clock.sleep(5)
    finally:
        await clock.stop()


async def test_a_compressed_real_clock_runs_platform_time_faster():
    clock = RealClock(speed=1000)
    began = time.perf_counter()
    await clock.sleep(50)  # 50 platform seconds = 50 ms
    assert time.perf_counter() - began < 1.0
    assert clock.monotonic() >= 49


async def test_now_is_epoch_seconds_for_display():
    clock = VirtualClock()
    assert clock.now() > 1_700_000_000
    await clock.advance(60)
    assert clock.now() - clock.monotonic() == pytest.approx(clock.now() - 60 - 0 - (clock.monotonic() - 60))


def test_a_bound_in_real_time_is_speed_times_longer_on_a_sped_up_clock():
    assert RealClock(speed=50).for_real(2.0) == 100.0
    assert RealClock().for_real(2.0) == 2.0
    assert VirtualClock().for_real(2.0) == 2.0  # no real time to keep to
