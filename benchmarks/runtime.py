"""The runtime as the platform runs it, against two floors and pykka's threads.

Three workloads, one process, one run:

1. tell throughput: N tells to one actor, then one ask to wait for the drain;
2. sequential ask round trips (one ask in flight at a time);
3. one bid round: ask 1,000 actors for a number and gather every reply.

Ours sends through the paths the platform uses: tells and asks by name
(`system.tell` / `system.ask`, as the platform's actors address each other;
asks by name come back on asyncio's own future, `AsyncActorRef.request`),
the bid round as the auctioneer's (`system.request_all`: the same ask to
every cell at once, one deadline and one reading of the context for the
round, every ask delivered, counted and recorded; gathered). Two
more rows measure a held ref's `tell` and pykka's face, `ref.ask(block=False)`
(the REPL, proxies), against the same floors.

Implementations:

- ours, bare: `AsyncioActor` under `ActorSystem` (RealClock), nothing on the
  delivery seam;
- ours, as the platform runs it: the same, with the platform's
  `TraceRecorder` installed on the seam (as `Platform.start` installs it)
  and every message sent inside a conversation the recorder has open, and
  recorded: conversations of 100 sends (a push's is about 100 deliveries),
  a bid round's each in one of its own;
- deque floor: a deque mailbox with one waiter future, the shape of ours with
  nothing else (the floor the targets are measured against);
- asyncio.Queue: a bare `asyncio.Queue` consumer task;
- pykka threads: `pykka.ThreadingActor`, context only: its figures swing
  3-10x with the cores the kernel gives its threads.

Every measurement runs `--repeat` times (best and median are reported);
ratios use the best figures, taken side by side in one run. The pykka part
runs first and ends with `pykka.ActorRegistry.stop_all()`, because our
runtime registers its actors in pykka's global registry too. Targets are
printed as PASS/MISS: this is a report, not an assertion.

    python run.py [--loop uvloop] bench runtime [--quick] [--repeat N] [--json [PATH]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import platform
import random
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka

if TYPE_CHECKING:
    from actors.runtime import AsyncioActor

__all__ = ["IMPLEMENTATIONS", "WORKLOADS", "main"]

OURS, PLATFORM, DEQUE, BARE, PYKKA = "ours", "ours_platform", "deque_floor", "bare_asyncio", "pykka_threads"
IMPLEMENTATIONS = (OURS, PLATFORM, DEQUE, BARE, PYKKA)
NAMES = {
    OURS: "ours, bare",
    PLATFORM: "ours, as the platform runs it",
    DEQUE: "deque + waiter (floor)",
    BARE: "asyncio.Queue",
    PYKKA: "pykka threads",
}
TELL, TELL_NAME, ASK, ASK_PYKKA, BID = "tell", "tell_by_name", "ask", "ask_pykka_face", "bid_round"
WORKLOADS = (TELL, TELL_NAME, ASK, ASK_PYKKA, BID)
# Rows that measure another path of ours against the same floors (measured
# once, under the row named here).
SAME_FLOORS = {TELL_NAME: TELL, ASK_PYKKA: ASK}

LABELS = {
    TELL: "tell throughput, ref.tell (msg/s)",
    TELL_NAME: "tell throughput, by name (msg/s)",
    ASK: "sequential ask, by name (round trips/s)",
    ASK_PYKKA: "sequential ask, ref.ask (round trips/s)",
    BID: "bid round, {cells:,} actors (ms/round)",
}
# What each row's "ours" sends through.
PATHS = {
    TELL: "ref.tell(msg): a held ref",
    TELL_NAME: "system.tell(name, msg): how the platform's actors tell each other",
    ASK: "await system.ask(name, msg): how the platform's actors ask each other (AsyncActorRef.request)",
    ASK_PYKKA: "await ref.ask(msg, block=False): pykka's face (the REPL, proxies)",
    BID: "gather(*system.request_all(cells, msg)): the auctioneer's round (one deadline, one record for the round)",
}
UNITS = {TELL: "msg/s", TELL_NAME: "msg/s", ASK: "round trips/s", ASK_PYKKA: "round trips/s", BID: "ms/round"}
HIGHER_IS_BETTER = {TELL: True, TELL_NAME: True, ASK: True, ASK_PYKKA: True, BID: False}
# From the issue: as the platform runs it, within 1.25x of the deque floor.
FLOOR_TARGET = 1.25


@dataclass(frozen=True)
class Params:
    tells: int = 200_000
    pykka_asks: int = 20_000
    asyncio_asks: int = 100_000
    cells: int = 1_000
    rounds: int = 20
    repeat: int = 3
    seed: int = 7


QUICK = Params(tells=5_000, pykka_asks=300, asyncio_asks=2_000, cells=50, rounds=3, repeat=2)


# --- pykka's ThreadingActor ---------------------------------------------------------


class _PykkaCounter(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def on_receive(self, _message: Any) -> Any:
        self.n += 1
        return self.n


class _PykkaCell(pykka.ThreadingActor):
    def __init__(self, free: int) -> None:
        super().__init__()
        self.free = free

    def on_receive(self, mem: Any) -> Any:
        return (self.free - mem) / 32000.0 if self.free >= mem else None


def _pykka_tell(p: Params) -> float:
    ref = _PykkaCounter.start()
    try:
        n = p.tells
        gc.collect()
        t = time.perf_counter()
        for _ in range(n):
            ref.tell(1)
        ref.ask(0)  # wait for the drain
        dt = time.perf_counter() - t
    finally:
        ref.stop()
    return n / dt


def _pykka_ask(p: Params) -> float:
    ref = _PykkaCounter.start()
    try:
        n = p.pykka_asks
        gc.collect()
        t = time.perf_counter()
        for i in range(n):
            ref.ask(i)
        dt = time.perf_counter() - t
    finally:
        ref.stop()
    return n / dt


def _pykka_bid(p: Params, frees: list[int]) -> float:
    refs = [_PykkaCell.start(free) for free in frees]
    try:
        pykka.get_all([r.ask(512, block=False) for r in refs])  # warm-up round
        gc.collect()
        t = time.perf_counter()
        for _ in range(p.rounds):
            bids = list(pykka.get_all([r.ask(512, block=False) for r in refs]))
        dt = (time.perf_counter() - t) / p.rounds
        assert len(bids) == len(refs)
    finally:
        for r in refs:
            r.stop(block=False)
        for r in refs:
            r.actor_stopped.wait(10.0)
    return dt * 1000.0


def run_pykka(p: Params, frees: list[int], runs: dict[str, dict[str, list[float]]]) -> None:
    try:
        for _ in range(p.repeat):
            runs[TELL][PYKKA].append(_pykka_tell(p))
            runs[ASK][PYKKA].append(_pykka_ask(p))
            runs[BID][PYKKA].append(_pykka_bid(p, frees))
    finally:
        pykka.ActorRegistry.stop_all()
        _join_pykka_threads()


def _join_pykka_threads(timeout: float = 10.0) -> None:
    """Wait for the actor threads themselves to exit, not just their stop futures."""
    import threading

    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread.name.startswith(("_PykkaCounter", "_PykkaCell")):
            thread.join(max(0.0, deadline - time.monotonic()))


# --- ours, bare and as the platform runs it ---------------------------------------------


def _our_classes() -> tuple[type[AsyncioActor], type[AsyncioActor]]:
    # As the platform's actors are written: a `@handles` table, no on_receive.
    from actors.runtime import AsyncioActor, handles

    class Counter(AsyncioActor):
        def __init__(self, *, name: str | None = None) -> None:
            super().__init__(name=name)
            self.n = 0

        @handles(int)
        def count(self, _message: int) -> int:
            self.n += 1
            return self.n

    class Cell(AsyncioActor):
        def __init__(self, free: int, *, name: str | None = None) -> None:
            super().__init__(name=name)
            self.free = free

        @handles(int)
        def bid(self, mem: int) -> float | None:
            return (self.free - mem) / 32000.0 if self.free >= mem else None

    return Counter, Cell


@contextlib.asynccontextmanager
async def _our_system(as_platform: bool, ask_timeout: float) -> Any:
    """An ActorSystem; `as_platform`: with the platform's trace recorder on
    the seam and the sends inside a conversation it records."""
    from actors.runtime import ActorSystem
    from actors.runtime.delivery import current_trace
    from actors.runtime.tracing import TraceRecorder

    async with ActorSystem(default_ask_timeout=ask_timeout) as system:
        if not as_platform:
            yield system
            return
        recorder = TraceRecorder(system.clock)  # the platform's own defaults
        system.seam.add_observer(recorder)
        recorder.open("cmd-1")
        token = current_trace.set("cmd-1")
        try:
            yield system
        finally:
            current_trace.reset(token)


#: As the platform runs it, sends go in conversations of this many, every one
#: recorded (a push's conversation is about 100 deliveries).
CONVERSATION = 100


def _conversations(system: Any, n: int, size: int = CONVERSATION) -> Any:
    """The sizes of the runs `n` sends (or rounds) are made in; as the
    platform runs it (the recorder on the seam), each run in a conversation
    of its own."""
    from actors.runtime.delivery import current_trace

    recorder = system.seam.recorder
    for i, start in enumerate(range(0, n, size)):
        if recorder is not None:
            recorder.open(f"conversation-{i}")
            current_trace.set(f"conversation-{i}")
        yield min(size, n - start)


async def _ours_tell(p: Params, counter: type[AsyncioActor], as_platform: bool, by_name: bool = False) -> float:
    async with _our_system(as_platform, 120.0) as system:
        ref = counter.start(name="bench-counter")
        await ref.ask(0, block=False)  # started and warm
        n = p.tells
        gc.collect()
        if by_name:
            tell = system.tell
            t = time.perf_counter()
            for size in _conversations(system, n):
                for _ in range(size):
                    tell("bench-counter", 1)
        else:
            t = time.perf_counter()
            for size in _conversations(system, n):
                for _ in range(size):
                    ref.tell(1)
        await ref.ask(0, block=False)  # wait for the drain
        dt = time.perf_counter() - t
    return n / dt


async def _ours_ask(p: Params, counter: type[AsyncioActor], as_platform: bool, pykka_face: bool = False) -> float:
    async with _our_system(as_platform, 5.0) as system:
        ref = counter.start(name="bench-counter")
        await ref.ask(0, block=False)
        n = p.asyncio_asks
        gc.collect()
        i = 0
        if pykka_face:
            t = time.perf_counter()
            for size in _conversations(system, n):
                for _ in range(size):
                    await ref.ask(i, block=False)
                    i += 1
        else:
            ask = system.ask
            t = time.perf_counter()
            for size in _conversations(system, n):
                for _ in range(size):
                    await ask("bench-counter", i)
                    i += 1
        dt = time.perf_counter() - t
    return n / dt


async def _ours_bid(p: Params, cell: type[AsyncioActor], frees: list[int], as_platform: bool) -> float:
    async with _our_system(as_platform, 60.0) as system:
        refs = [cell.start(free, name=f"bench-cell-{i}") for i, free in enumerate(frees)]
        request_all = system.request_all
        await asyncio.gather(*request_all(refs, 512))  # warm-up round
        gc.collect()
        t = time.perf_counter()
        # As the platform runs it, every round is recorded whole: each in a
        # conversation of its own, as each push's rounds are in the push's.
        for _ in _conversations(system, p.rounds, size=1):
            bids = await asyncio.gather(*request_all(refs, 512))
        dt = (time.perf_counter() - t) / p.rounds
        assert len(bids) == len(refs)
    return dt * 1000.0


# --- the deque floor: our mailbox's shape and nothing else ---------------------------------


class _DequeActor:
    """A deque of (message, reply future) and one waiter future."""

    __slots__ = ("create_future", "handler", "queue", "waiter")

    def __init__(self, handler: Any) -> None:
        self.queue: deque[tuple[Any, Any]] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.create_future = asyncio.get_running_loop().create_future
        self.handler = handler

    def tell(self, message: Any) -> None:
        self.queue.append((message, None))
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set_result(None)

    def ask(self, message: Any) -> asyncio.Future[Any]:
        future = self.create_future()
        self.queue.append((message, future))
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set_result(None)
        return future

    async def run(self) -> None:
        queue = self.queue
        popleft = queue.popleft
        create_future = self.create_future
        handler = self.handler
        while True:
            if not queue:
                waiter = self.waiter = create_future()
                await waiter
                continue
            message, future = popleft()
            if message is None:
                return
            result = handler(message)
            if future is not None:
                future.set_result(result)


def _counting() -> Any:
    count = [0]

    def handler(_message: Any) -> int:
        count[0] += 1
        return count[0]

    return handler


@contextlib.asynccontextmanager
async def _deque_actors(handlers: list[Any]) -> Any:
    actors = [_DequeActor(h) for h in handlers]
    tasks = [asyncio.create_task(a.run()) for a in actors]
    await asyncio.sleep(0)
    try:
        yield actors
    finally:
        for a in actors:
            a.tell(None)
        await asyncio.gather(*tasks)


async def _deque_tell(p: Params) -> float:
    async with _deque_actors([_counting()]) as (actor,):
        await actor.ask(0)
        n = p.tells
        gc.collect()
        t = time.perf_counter()
        for _ in range(n):
            actor.tell(1)
        await actor.ask(0)
        dt = time.perf_counter() - t
    return n / dt


async def _deque_ask(p: Params) -> float:
    async with _deque_actors([_counting()]) as (actor,):
        await actor.ask(0)
        n = p.asyncio_asks
        gc.collect()
        t = time.perf_counter()
        for i in range(n):
            await actor.ask(i)
        dt = time.perf_counter() - t
    return n / dt


async def _deque_bid(p: Params, frees: list[int]) -> float:
    def bidder(free: int) -> Any:
        return lambda mem: (free - mem) / 32000.0 if free >= mem else None

    async with _deque_actors([bidder(free) for free in frees]) as actors:
        await asyncio.gather(*[a.ask(512) for a in actors])  # warm-up round
        gc.collect()
        t = time.perf_counter()
        for _ in range(p.rounds):
            bids = await asyncio.gather(*[a.ask(512) for a in actors])
        dt = (time.perf_counter() - t) / p.rounds
        assert len(bids) == len(actors)
    return dt * 1000.0


# --- a bare asyncio.Queue --------------------------------------------------------------------


async def _bare_tell(p: Params) -> float:
    # As bench/baseline.py: a counting consumer; a None sentinel is the drain.
    q: asyncio.Queue[Any] = asyncio.Queue()
    done = asyncio.get_running_loop().create_future()

    async def consumer() -> None:
        n = 0
        while True:
            m = await q.get()
            if m is None:
                done.set_result(n)
                return
            n += 1

    task = asyncio.create_task(consumer())
    await asyncio.sleep(0)  # started, as ours is
    n = p.tells
    gc.collect()
    t = time.perf_counter()
    for _ in range(n):
        q.put_nowait(1)
    q.put_nowait(None)
    await done
    dt = time.perf_counter() - t
    await task
    return n / dt


async def _bare_ask(p: Params) -> float:
    q: asyncio.Queue[Any] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def actor() -> None:
        while True:
            m, fut = await q.get()
            if m is None:
                fut.set_result(None)
                return
            fut.set_result(m)

    task = asyncio.create_task(actor())
    n = p.asyncio_asks
    gc.collect()
    t = time.perf_counter()
    for i in range(n):
        f = loop.create_future()
        q.put_nowait((i, f))
        await f
    dt = time.perf_counter() - t
    done = loop.create_future()
    q.put_nowait((None, done))
    await done
    await task
    return n / dt


async def _bare_bid(p: Params, frees: list[int]) -> float:
    loop = asyncio.get_running_loop()

    async def cell(q: asyncio.Queue[Any], free: int) -> None:
        while True:
            mem, fut = await q.get()
            if mem is None:
                return
            fut.set_result((free - mem) / 32000.0 if free >= mem else None)

    qs: list[asyncio.Queue[Any]] = []
    tasks = []
    for free in frees:
        q: asyncio.Queue[Any] = asyncio.Queue()
        qs.append(q)
        tasks.append(asyncio.create_task(cell(q, free)))

    async def one_round() -> list[Any]:
        futs = []
        for q in qs:
            f = loop.create_future()
            q.put_nowait((512, f))
            futs.append(f)
        return await asyncio.gather(*futs)

    try:
        await one_round()  # warm-up round
        gc.collect()
        t = time.perf_counter()
        for _ in range(p.rounds):
            bids = await one_round()
        dt = (time.perf_counter() - t) / p.rounds
        assert len(bids) == len(qs)
    finally:
        for q in qs:
            q.put_nowait((None, None))
        await asyncio.gather(*tasks)
    return dt * 1000.0


async def run_asyncio(p: Params, frees: list[int], runs: dict[str, dict[str, list[float]]], progress: Any) -> None:
    counter, cell = _our_classes()
    # Interleaved, so drifting machine load hits every implementation alike.
    for r in range(p.repeat):
        progress(f"run {r + 1}/{p.repeat}: tell")
        runs[TELL][OURS].append(await _ours_tell(p, counter, False))
        runs[TELL][PLATFORM].append(await _ours_tell(p, counter, True))
        runs[TELL][DEQUE].append(await _deque_tell(p))
        runs[TELL][BARE].append(await _bare_tell(p))
        runs[TELL_NAME][OURS].append(await _ours_tell(p, counter, False, by_name=True))
        runs[TELL_NAME][PLATFORM].append(await _ours_tell(p, counter, True, by_name=True))
        progress(f"run {r + 1}/{p.repeat}: ask")
        runs[ASK][OURS].append(await _ours_ask(p, counter, False))
        runs[ASK][PLATFORM].append(await _ours_ask(p, counter, True))
        runs[ASK_PYKKA][OURS].append(await _ours_ask(p, counter, False, pykka_face=True))
        runs[ASK_PYKKA][PLATFORM].append(await _ours_ask(p, counter, True, pykka_face=True))
        runs[ASK][DEQUE].append(await _deque_ask(p))
        runs[ASK][BARE].append(await _bare_ask(p))
        progress(f"run {r + 1}/{p.repeat}: bid round")
        runs[BID][OURS].append(await _ours_bid(p, cell, frees, False))
        runs[BID][PLATFORM].append(await _ours_bid(p, cell, frees, True))
        runs[BID][DEQUE].append(await _deque_bid(p, frees))
        runs[BID][BARE].append(await _bare_bid(p, frees))


# --- report ------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    from benchmarks.common import loop_name

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "pykka": _version("pykka"),
        "loop": loop_name(),
    }


def _version(dist: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return None


def _slower(value: float, floor: float, higher: bool) -> float:
    """How many times slower `value` is than `floor` (1.0: as fast)."""
    return floor / value if higher else value / floor


def summarize(p: Params, runs: dict[str, dict[str, list[float]]], machine: dict[str, Any]) -> dict[str, Any]:
    workloads: dict[str, Any] = {}
    for w in WORKLOADS:
        higher = HIGHER_IS_BETTER[w]
        results: dict[str, dict[str, Any]] = {}
        best: dict[str, float] = {}
        median: dict[str, float] = {}
        for impl in IMPLEMENTATIONS:
            values = runs[w][impl]
            if not values and w in SAME_FLOORS and impl not in (OURS, PLATFORM):
                values = runs[SAME_FLOORS[w]][impl]
            if not values:  # left out (--no-pykka)
                continue
            best[impl] = max(values) if higher else min(values)
            median[impl] = statistics.median(values)
            results[impl] = {"best": best[impl], "median": median[impl], "runs": values}
        vs_floor = _slower(best[PLATFORM], best[DEQUE], higher)
        workloads[w] = {
            "label": LABELS[w].format(cells=p.cells),
            "path": PATHS[w],
            "floors_of": SAME_FLOORS.get(w, w),
            "unit": UNITS[w],
            "higher_is_better": higher,
            "results": results,
            # times slower than the deque floor (lower is better)
            "ours_vs_floor": _slower(best[OURS], best[DEQUE], higher),
            "platform_vs_floor": vs_floor,
            "platform_vs_floor_median": _slower(median[PLATFORM], median[DEQUE], higher),
            "platform_vs_bare_ours": _slower(best[PLATFORM], best[OURS], higher),
            "queue_vs_floor": _slower(best[BARE], best[DEQUE], higher),
            "platform_vs_queue": _slower(best[PLATFORM], best[BARE], higher),
            # speedup over pykka's threads (higher is better; context only)
            "platform_over_pykka": _slower(best[PYKKA], best[PLATFORM], higher) if PYKKA in best else None,
            "targets": {"floor_max": FLOOR_TARGET, "floor_pass": vs_floor <= FLOOR_TARGET},
        }
    return {
        "bench": "runtime",
        "machine": machine,
        "params": p.__dict__,
        "notes": {
            "*_vs_floor": "times slower than the deque + waiter floor (best of each); lower is better",
            "platform": "the platform's TraceRecorder on the seam, every send recorded, in conversations of 100 sends (a bid round: one each)",
            "platform_over_pykka": "speedup over pykka's threads; context, not a target",
        },
        "workloads": workloads,
    }


def _fmt(value: float, w: str) -> str:
    return f"{value:,.2f}" if w == BID else f"{value:,.0f}"


def print_report(report: dict[str, Any], out: Any = None) -> None:
    out = sys.stdout if out is None else out
    headers = ["workload", *(NAMES[i] for i in IMPLEMENTATIONS), "platform vs floor", "target"]
    rows = []
    for w in WORKLOADS:
        d = report["workloads"][w]
        cells = [d["label"]]
        for impl in IMPLEMENTATIONS:
            r = d["results"].get(impl)
            cells.append("-" if r is None else f"{_fmt(r['best'], w)} (med {_fmt(r['median'], w)})")
        t = d["targets"]
        cells.append(f"{d['platform_vs_floor']:.2f}x slower (med {d['platform_vs_floor_median']:.2f}x)")
        cells.append(f"<={t['floor_max']:g}x: {'PASS' if t['floor_pass'] else 'MISS'}")
        rows.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(widths[i]) if i in (0, len(cells) - 1) else c.rjust(widths[i]) for i, c in enumerate(cells)
        )

    print(line(headers), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in rows:
        print(line(row), file=out)
    print(
        "Best (and median) of each; 'platform vs floor': times slower than the deque + waiter floor. "
        "pykka's threads are context only.",
        file=out,
    )
    print("Ours sends through:", file=out)
    for w in WORKLOADS:
        print(f"  {w}: {PATHS[w]}", file=out)
    for w in WORKLOADS:
        d = report["workloads"][w]
        over = d["platform_over_pykka"]
        print(
            f"  {w}: ours bare {d['ours_vs_floor']:.2f}x the floor, as the platform runs it "
            f"{d['platform_vs_floor']:.2f}x; asyncio.Queue {d['queue_vs_floor']:.2f}x"
            + ("" if over is None else f"; platform {over:.1f}x pykka"),
            file=out,
        )


def _machine_line(m: dict[str, Any]) -> str:
    aff = f", {m['affinity']} usable" if m.get("affinity") is not None else ""
    return (
        f"Python {m['python']} ({m['implementation']}) on {m['platform']}; "
        f"{m['cpu_count']} CPUs{aff}; pykka {m['pykka']}; loop {m['loop']}"
    )


def _params_line(p: dict[str, Any]) -> str:
    return (
        f"tells {p['tells']:,}; asks pykka {p['pykka_asks']:,} / asyncio {p['asyncio_asks']:,}; "
        f"bid round {p['cells']:,} actors x {p['rounds']} rounds (+1 warm-up); "
        f"best and median of {p['repeat']} runs"
    )


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import add_json_option, emit, progress_printer, run_loop

    parser = argparse.ArgumentParser(prog="run.py bench runtime", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts (seconds, for tests); figures are noisy")
    parser.add_argument("--repeat", type=int, default=None, help="runs per measurement (default 3, quick 2)")
    parser.add_argument("--no-pykka", action="store_true", help="leave pykka's threads out")
    add_json_option(parser)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)  # kept for old scripts
    args = parser.parse_args(argv)

    p = QUICK if args.quick else Params()
    if args.repeat is not None:
        if args.repeat < 1:
            parser.error("--repeat must be at least 1")
        p = Params(**{**p.__dict__, "repeat": args.repeat})

    info = sys.stderr if args.json == "-" else sys.stdout
    machine = _machine()
    print(_machine_line(machine), file=info)
    print(_params_line(p.__dict__), file=info, flush=True)
    progress = progress_printer()

    rng = random.Random(p.seed)
    frees = [rng.randint(1000, 32000) for _ in range(p.cells)]
    runs: dict[str, dict[str, list[float]]] = {w: {i: [] for i in IMPLEMENTATIONS} for w in WORKLOADS}

    if not args.no_pykka:
        progress("pykka threads")
        run_pykka(p, frees, runs)
        leftover = pykka.ActorRegistry.get_all()
        if leftover:  # pragma: no cover - stop_all() above should leave none
            raise RuntimeError(f"pykka actors still running after stop_all(): {leftover[:3]}")
    run_loop(run_asyncio(p, frees, runs, progress))
    progress(None)

    report = summarize(p, runs, machine)
    if args.json != "-":
        print_report(report)
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
