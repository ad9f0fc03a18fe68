"""The local pool of a sweep: worker processes on this machine, each running
one seed at a time, and a supervisor that loses no seed when one dies.

Not `concurrent.futures.ProcessPoolExecutor`: its pool breaks as a whole
when one worker dies. Here the driver holds a pipe to each worker and its
process sentinel, and waits on both: a result is read before a death is
judged, so a worker that answered and then died has its answer kept, and a
worker that died mid-seed sends its seed back to the front of the queue (up
to `attempts` times, after which the seed is reported as not run) while a
new worker takes its place. Each seed has one worker at a time, and its
result arrives once.

Workers are started (spawned, not forked: the driver has threads) in a
process group of their own, with SIGINT ignored: Ctrl-C at the terminal is
the driver's to handle. `close()` ends each worker's whole group, so a
child of a worker (the SIGKILL experiment's platform) goes with it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

import structlog

from actors.experiments.sweep_worker import SeedJob, SeedProblem, SeedResult, WorkerSetup, ensure_setup, run_seed
from protocol.errors import PlatformError

__all__ = ["LocalPool", "SeedStarted", "WorkerLost", "default_workers"]

log = structlog.get_logger("minifoundry.experiments")

#: Times a seed may take its worker down with it before it is reported as not run.
ATTEMPTS = 3
#: Real seconds a worker gets to leave after being told to.
STOP_GRACE = 5.0


@dataclasses.dataclass(frozen=True, slots=True)
class SeedStarted:
    """A worker began a seed."""

    seed: int
    worker: int  # its pid


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerLost:
    """A worker died; the `seeds` it held run again, unless `given_up`."""

    worker: int | str  # a local worker's pid, a Dask worker's address
    seeds: tuple[int, ...]
    given_up: bool = False


Event = SeedStarted | WorkerLost | SeedResult | SeedProblem


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclasses.dataclass(slots=True)
class _Worker:
    process: BaseProcess
    conn: Connection
    job: SeedJob | None = None


class LocalPool:
    """`workers` processes running `SeedJob`s; `run(jobs)` yields what happens."""

    def __init__(
        self, workers: int, setup: WorkerSetup, *, scratch_root: str | None = None, attempts: int = ATTEMPTS
    ) -> None:
        self.size = workers
        self.setup = setup
        self.scratch_root = scratch_root
        self._own_scratch = False
        self.attempts = attempts
        self._ctx = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._dead_groups: list[int] = []

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def describe(self) -> str:
        return f"{self.size} local worker{'s' if self.size != 1 else ''}"

    # --- the supervisor ----------------------------------------------------------------------------

    def run(self, jobs: Sequence[SeedJob]) -> Iterator[Event]:
        """Run every job; yield each start, result, problem and lost worker as it happens."""
        queue = collections.deque(jobs)
        deaths: collections.Counter[int] = collections.Counter()
        if self.scratch_root is None:
            # The workers' scratch space is the pool's: what a killed worker
            # leaves there goes when the pool closes.
            self.scratch_root = tempfile.mkdtemp(prefix="minifoundry-sweep-")
            self._own_scratch = True
        while queue or any(w.job is not None for w in self._workers):
            idle = [w for w in self._workers if w.job is None]
            while len(self._workers) < self.size and len(queue) > len(idle):
                idle.append(self._start())
                self._workers.append(idle[-1])
            for w in idle:
                if not queue:
                    break
                w.job = queue.popleft()
                try:
                    w.conn.send(w.job)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # it died: its sentinel says so below, and the job goes back
            ready = set(wait([w.conn for w in self._workers] + [w.process.sentinel for w in self._workers]))
            for w in list(self._workers):
                if w.conn in ready:
                    yield from self._read(w)
            for w in list(self._workers):
                if w.process.sentinel in ready:
                    # An answer already in the pipe counts: a worker that answered and died lost nothing.
                    yield from self._read(w)
                    yield from self._lost(w, queue, deaths)

    def _read(self, w: _Worker) -> Iterator[Event]:
        while True:
            try:
                if not w.conn.poll():
                    return
                message = w.conn.recv()
            except (EOFError, OSError):
                return  # the worker is gone: its sentinel tells the rest
            if message[0] == "started":
                yield SeedStarted(message[1], message[2])
            elif message[0] == "done":
                w.job = None
                yield message[1]

    def _lost(self, w: _Worker, queue: collections.deque[SeedJob], deaths: collections.Counter[int]) -> Iterator[Event]:
        self._workers.remove(w)
        w.process.join(timeout=STOP_GRACE)
        pid = w.process.pid or 0
        self._dead_groups.append(pid)
        _kill_group(pid)  # whatever it started dies with it
        w.conn.close()
        job, w.job = w.job, None
        code = w.process.exitcode
        if job is None:
            log.warning("sweep-worker-lost", worker=pid, exitcode=code)
            yield WorkerLost(pid, ())
            return
        deaths[job.seed] += 1
        given_up = deaths[job.seed] >= self.attempts
        log.warning("sweep-worker-lost", worker=pid, exitcode=code, seed=job.seed, retry=not given_up)
        yield WorkerLost(pid, (job.seed,), given_up)
        if given_up:
            yield SeedProblem(job.seed, f"its worker died {deaths[job.seed]} times running it (last exit code {code})")
        else:
            queue.appendleft(job)

    # --- workers ------------------------------------------------------------------------------------------

    def _start(self) -> _Worker:
        ours, theirs = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main, args=(theirs, self.setup, self.scratch_root), name="sweep-worker", daemon=True
        )
        # A Ctrl-C that lands before the worker has its own process group
        # must not reach it: it is the driver's.
        with _sigint_blocked():
            process.start()
        theirs.close()
        log.info("sweep-worker-started", worker=process.pid)
        return _Worker(process, ours)

    def close(self, *, kill: bool = False) -> None:
        """Stop every worker: asked to (after their seed), or at once (`kill`)."""
        if not kill:
            for w in self._workers:
                with contextlib.suppress(OSError):
                    w.conn.send(None)
            for w in self._workers:
                w.process.join(timeout=STOP_GRACE)
        for w in self._workers:
            if w.process.pid is not None:
                _kill_group(w.process.pid)
            if w.process.is_alive():
                w.process.kill()
            w.process.join(timeout=STOP_GRACE)
            w.conn.close()
        for pid in self._dead_groups:
            _kill_group(pid)
        self._workers.clear()
        self._dead_groups.clear()
        if self._own_scratch and self.scratch_root is not None:
            shutil.rmtree(self.scratch_root, ignore_errors=True)
            self.scratch_root, self._own_scratch = None, False

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(kill=exc[0] is not None)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT held back (not lost) while a worker is born: the child inherits
    the blocked signal, and ignores it before it could ever take it."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _worker_main(conn: Connection, setup: WorkerSetup, scratch_root: str | None) -> None:
    """A worker: seeds in, results out, until told to stop or the driver is gone."""
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    ensure_setup(setup)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return  # the driver is gone
        if job is None:
            return
        conn.send(("started", job.seed, os.getpid()))
        outcome: SeedResult | SeedProblem
        try:
            outcome = run_seed(job, scratch_root)
        except Exception as exc:  # noqa: BLE001 - a seed that cannot run is reported, the worker goes on
            outcome = SeedProblem(
                job.seed, str(exc) if isinstance(exc, PlatformError) else f"{type(exc).__name__}: {exc}"
            )
        try:
            conn.send(("done", outcome))
        except (BrokenPipeError, ConnectionResetError):
            return
