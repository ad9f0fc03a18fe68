"""Pushes per second through the whole pipeline, in one process.

    python run.py bench push [--pushes 1000] [--concurrency N] [--clock both|virtual|real] [--json [PATH]]

Each push is `cf push APP -p examples/python` run by the platform's own
`cli` actor, exactly as the REPL runs it: the app is created in CC_DB (a
real SQLite file in WAL mode), its files are matched and uploaded into the
blob store (real files, fsync'd), a cell stages it (real buildpack output,
a real droplet tarball), and the instances are started and polled until
one is RUNNING. Every push is a new app. Nothing is skipped.

Two clocks, each on a fresh data directory:

- virtual: platform time costs nothing, so the figure is what the
  pipeline's own work costs (CPU and the real disk I/O it does);
- real (`--speed` platform seconds per real second, default 1): what a user
  waits, with `--concurrency` pushes in flight. Here each push also waits
  for the platform's modelled time (2 s of staging, cf's 3 s poll of the
  instances: 5.05 s alone), so the figure is bounded by concurrency /
  latency: 128 in flight can never give more than 25 pushes/s, whatever the
  platform does. By default every push is in flight at once (at most
  1,000), so the figure is the platform's, not the model's; on the virtual
  clock, 128 (more only makes each wave of pushes bigger).

Reported per clock: pushes/s, the p50 and max of a push's wall time, the
process's CPU per push, and that CPU broken down by component: the loop
thread and every worker thread (CC_DB's SQLite thread, the blob store's and
cells' file threads) are sampled every 5 ms and each busy sample is
charged to the platform component whose code is on the stack (`ccdb`,
`blobstore`, `cell`, `cloud_controller`, `bbs`, ...; `runtime` for the actor
runtime, `event loop` for asyncio itself); each thread's own CPU time (from
the kernel) is split in those proportions. The loop thread samples itself
(a profiling timer's signal, handled where it stands), the others are
sampled by a thread of their own (see `Sampler`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "examples" / "python"

__all__ = ["main", "run_pushes"]


# --- where the CPU goes ------------------------------------------------------------------------

_ACTORS = str(ROOT / "actors") + os.sep
_IDLE = {
    ("selectors.py", "select"),
    ("threading.py", "wait"),
    ("queue.py", "get"),
}


# The virtual clock's wrappers of the loop's call_soon (they count what the
# loop is asked to run): below them is asyncio's own scheduling.
_COUNTING = {"counted_call_soon", "counted_call_soon_threadsafe"}


def _component(frame: FrameType | None) -> str | None:
    """The platform component whose code is on this stack (None: idle)."""
    innermost = frame
    if frame is None:
        return None
    code = frame.f_code
    name = (os.path.basename(code.co_filename), code.co_name)
    if name in _IDLE:
        return None
    if name == ("core.py", "_connection_worker_thread") and "get(" in _line(frame):
        return None  # aiosqlite's thread, waiting for its next statement
    if name == ("offload.py", "_work") and "get(" in _line(frame):
        return None  # a file worker, waiting for its next job
    if code.co_name == "run" and ("uvloop" in code.co_filename or name == ("runners.py", "run")):
        return None  # inside uvloop's own loop (C): waiting, or its scheduling
    while frame is not None:
        filename = frame.f_code.co_filename
        if frame.f_code.co_name in _COUNTING:
            return "event loop"  # asyncio scheduling a callback; the virtual clock only counts it
        if filename.startswith(_ACTORS):
            rest = filename[len(_ACTORS) :]
            part = rest.split(os.sep, 1)[0]
            return part[:-3] if part.endswith(".py") else part
        if "aiosqlite" in filename:
            return "ccdb"
        frame = frame.f_back
    assert innermost is not None
    if "asyncio" in innermost.f_code.co_filename:
        return "event loop"
    return "other"


def _line(frame: FrameType) -> str:
    import linecache

    return linecache.getline(frame.f_code.co_filename, frame.f_lineno)


def _thread_cpu(native_id: int) -> float:
    """A thread's user + system CPU seconds, from the kernel."""
    try:
        with open(f"/proc/self/task/{native_id}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class Sampler:
    """Samples every thread's stack every `interval` seconds.

    Worker threads are sampled by a thread of its own, which has to take the
    GIL to look: it gets it soonest where a thread lets go of it (zlib, file
    I/O), so its samples lean towards such code (it charged the tar writer
    about 4x its CPU in a push). The loop thread, where the actors run, is
    sampled in itself instead: a profiling timer (every `interval` of the
    process's CPU) raises a signal that the loop thread handles between two
    bytecodes, in the frame that was running, or that called the C code
    that was. Each thread's CPU is split by its count of samples.
    """

    # Every 5 ms: a sample takes the GIL and walks every thread's stack, and
    # at 1 ms that cost the pushes it measured 5-10% of their throughput.
    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.samples: dict[int, Counter[str]] = {}
        self._main = threading.main_thread().ident or 0
        self._main_samples: Counter[str] = Counter()
        self._previous_handler: Any = None
        self._previous_timer: tuple[float, float] = (0.0, 0.0)
        self._in_itself = False
        self.native: dict[int, int] = {}
        self.start_cpu: dict[int, float] = {}
        # Each thread's CPU as last read: a thread gone by the end (CC_DB's
        # connection thread closes with the platform) keeps its figure.
        self.last_cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        for thread in threading.enumerate():
            if thread.native_id is not None:
                self.start_cpu[thread.ident or 0] = _thread_cpu(thread.native_id)
        self._thread.start()  # first: if it cannot start, no timer is left running
        if threading.get_ident() == self._main and hasattr(signal, "setitimer"):
            self.samples[self._main] = self._main_samples
            self.native[self._main] = threading.get_native_id()
            self._previous_handler = signal.signal(signal.SIGPROF, self._on_timer)
            self._in_itself = True
            try:
                signal.siginterrupt(signal.SIGPROF, False)  # system calls it lands in resume
                self._previous_timer = signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)
            except BaseException:
                self.__exit__(None, None, None)
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_sampling_itself()
        self._stop.set()
        self._thread.join()
        self._read_cpu()

    def _stop_sampling_itself(self) -> None:
        if not self._in_itself:
            return
        self._in_itself = False
        signal.setitimer(signal.ITIMER_PROF, *self._previous_timer)
        previous = self._previous_handler
        # A SIGPROF still on its way must not find the default action
        # (ending the process): with no handler before, it is ignored.
        signal.signal(signal.SIGPROF, signal.SIG_IGN if previous in (None, signal.SIG_DFL) else previous)

    def _on_timer(self, _signum: int, frame: FrameType | None) -> None:
        component = _component(frame)
        if component is not None:
            self._main_samples[component] += 1

    def _run(self) -> None:
        me = threading.get_ident()
        rounds = 0
        while not self._stop.wait(self.interval):
            rounds += 1
            if rounds % 10 == 0:
                self._read_cpu()
            threads = {t.ident: t for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me or (self._in_itself and ident == self._main):
                    continue
                component = _component(frame)
                if component is None:
                    continue
                self.samples.setdefault(ident, Counter())[component] += 1
                thread = threads.get(ident)
                if thread is not None and thread.native_id is not None:
                    self.native[ident] = thread.native_id

    def _read_cpu(self) -> None:
        for ident, native in list(self.native.items()):
            cpu = _thread_cpu(native)
            if cpu > 0.0:
                self.last_cpu[ident] = cpu

    def breakdown(self) -> dict[str, float]:
        """CPU seconds by component: each thread's CPU split by its samples."""
        total: dict[str, float] = {}
        for ident, counts in self.samples.items():
            native = self.native.get(ident)
            if native is None:
                continue
            cpu = max(_thread_cpu(native), self.last_cpu.get(ident, 0.0)) - self.start_cpu.get(ident, 0.0)
            n = sum(counts.values())
            for component, k in counts.items():
                total[component] = total.get(component, 0.0) + cpu * k / n
        return total


# --- the pushes ----------------------------------------------------------------------------


async def run_pushes(
    pushes: int,
    concurrency: int,
    *,
    virtual: bool,
    data_dir: Path,
    cells: int = 4,
    speed: float = 1.0,
    progress: Any = None,
    sample_ms: float = 5.0,
) -> dict[str, Any]:
    from actors.platform import Platform, PlatformConfig
    from actors.runtime import RealClock, VirtualClock

    progress = progress or (lambda _text: None)
    clock = VirtualClock() if virtual else RealClock(speed=speed)
    # Room on the cells for every app's instance (`-p` reads no manifest:
    # cf's defaults, one instance of 1 GB) and for the stagings in flight
    # (1 GB each): a push must not fail for want of room.
    need = pushes * 1024 + concurrency * 1024
    memory = max(8192, -(-need // cells // 1024) * 1024 + 2048)
    disk = max(32768, (pushes * 2 * 1024 + concurrency * 8192) // cells + 8192)
    config = PlatformConfig(
        data_dir=data_dir,
        cells=cells,
        cell_memory_mb=memory,
        cell_disk_mb=disk,
        cell_containers=max(250, pushes),
        ask_timeout=60.0,
    )
    durations: list[float] = []
    failed: list[str] = []
    async with Platform(config, clock=clock) as platform:
        gate = asyncio.Semaphore(concurrency)
        done = 0

        async def one(i: int) -> None:
            nonlocal done
            name = f"app-{i}"
            lines: list[str] = []
            async with gate:
                began = time.perf_counter()
                code = await platform.command(["push", name, "-p", str(APP)], lines.append)
                durations.append(time.perf_counter() - began)
            if code != 0:
                failed.append(f"{name}: " + " | ".join(lines[-3:]))
            done += 1
            if done % 10 == 0 or done == pushes:
                progress(f"{'virtual' if virtual else 'real'} clock: {done:,}/{pushes:,} pushes")

        gc.collect()
        cpu0 = time.process_time()
        with Sampler(sample_ms / 1000.0) as sampler:
            began = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(pushes)))
            wall = time.perf_counter() - began
        cpu = time.process_time() - cpu0
        platform_seconds = clock.monotonic()
        stats = await platform.system.ask("ccdb", _count_rows())
    breakdown = sampler.breakdown()
    attributed = sum(breakdown.values())
    if attributed > cpu > 0:
        # The samples charged more than the process used between the run's
        # two readings (a sample's window reaches past them): scaled to it,
        # so the parts still add up to the whole.
        breakdown = {name: seconds * cpu / attributed for name, seconds in breakdown.items()}
    # CPU no sample could charge to a component (threads between samples,
    # the kernel's side of file I/O it did not catch on a stack).
    breakdown["unattributed"] = max(0.0, cpu - sum(breakdown.values()))
    return {
        "clock": "virtual" if virtual else "real",
        "speed": None if virtual else speed,
        "pushes": pushes,
        "concurrency": concurrency,
        "cells": cells,
        "failed": len(failed),
        "failures": failed[:5],
        "wall_s": round(wall, 3),
        "pushes_per_s": round(pushes / wall, 2),
        "push_p50_s": round(statistics.median(durations), 3),
        "push_max_s": round(max(durations), 3),
        "platform_seconds": round(platform_seconds, 1),
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_push": round(1000 * cpu / pushes, 2),
        "cpu_ms_per_push_by_component": {
            k: round(1000 * v / pushes, 2) for k, v in sorted(breakdown.items(), key=lambda kv: -kv[1])
        },
        "apps_in_ccdb": stats.apps,
    }


def _count_rows() -> Any:
    from protocol import ccdb

    return ccdb.CountRows()


# --- the command line ----------------------------------------------------------------------


def _print(result: dict[str, Any]) -> None:
    speed = "" if result["clock"] == "virtual" else f" (speed {result['speed']:g})"
    print(
        f"{result['clock']} clock{speed}: {result['pushes']:,} pushes, {result['concurrency']} at a time: "
        f"{result['pushes_per_s']:.1f} pushes/s (wall {result['wall_s']:.1f} s; a push p50 "
        f"{result['push_p50_s']:.2f} s, max {result['push_max_s']:.2f} s; {result['failed']} failed)"
    )
    parts = ", ".join(f"{k} {v:.2f}" for k, v in result["cpu_ms_per_push_by_component"].items())
    print(f"  CPU {result['cpu_ms_per_push']:.2f} ms per push: {parts}")
    for failure in result["failures"]:
        print(f"  failed: {failure}")


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import (
        add_json_option,
        at_least,
        emit,
        loop_name,
        peak_rss_mb,
        positive_number,
        progress_printer,
        run_loop,
    )

    p = argparse.ArgumentParser(prog="run.py bench push", description=__doc__.split("\n\n")[0])
    p.add_argument("--pushes", type=int, default=1000)
    p.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="pushes in flight (default: 128 on the virtual clock; on the real clock every push, at most 1,000)",
    )
    p.add_argument("--clock", choices=("both", "virtual", "real"), default="both")
    p.add_argument("--speed", type=positive_number, default=1.0, help="the real clock's platform seconds per second")
    p.add_argument("--cells", type=at_least(1), default=4)
    p.add_argument(
        "--sample-ms",
        type=float,
        default=5.0,
        help="how often the CPU breakdown samples every thread (default 5 ms; each sample costs the pushes some GIL time)",
    )
    p.add_argument(
        "--data-dir",
        help="where the data directories go (default: a new directory here, beside the platform's own"
        " ./.minifoundry, removed afterwards)",
    )
    add_json_option(p)
    args = p.parse_args(argv)
    if args.pushes < 1 or (args.concurrency is not None and args.concurrency < 1):
        p.error("--pushes and --concurrency must be at least 1")
    if not 0.1 <= args.sample_ms <= 1000:
        p.error("--sample-ms must be between 0.1 and 1000")
    info = sys.stderr if args.json == "-" else sys.stdout
    print(f"Python {sys.version.split()[0]}; loop {loop_name()}; app {APP.relative_to(ROOT)}", file=info, flush=True)
    progress = progress_printer()
    clocks = ("virtual", "real") if args.clock == "both" else (args.clock,)
    # By default beside the platform's own data dir (./.minifoundry), on the
    # file system a user's platform would write to, rather than in /tmp.
    base = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix=".minifoundry-bench-push-", dir="."))
    results = []
    try:
        for kind in clocks:
            data_dir = base / f"{kind}-clock"
            shutil.rmtree(data_dir, ignore_errors=True)
            result = run_loop(
                run_pushes(
                    args.pushes,
                    args.concurrency or (128 if kind == "virtual" else min(args.pushes, 1000)),
                    virtual=kind == "virtual",
                    data_dir=data_dir,
                    cells=args.cells,
                    speed=args.speed,
                    sample_ms=args.sample_ms,
                    progress=progress,
                )
            )
            progress(None)
            results.append(result)
            if args.json != "-":
                _print(result)
                sys.stdout.flush()
    finally:
        if not args.data_dir:
            shutil.rmtree(base, ignore_errors=True)
    emit({"bench": "push", "loop": loop_name(), "peak_rss_mb": peak_rss_mb(), "results": results}, args.json)
    return 0 if all(r["failed"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
