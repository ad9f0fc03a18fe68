"""A sweep on a Dask cluster (`--scheduler tcp://HOST:PORT`; the `cluster` extra).

Each seed is one task (`_run_on_worker`, which reaches the workers as the
installed package), and its report comes back in-band as a `SeedResult`:
workers write nothing of the sweep's. A worker lost mid-task has its tasks
run again by the scheduler (up to `distributed.scheduler.allowed-failures`
times, then the seed is reported as not run); a task that raises is tried
`RETRIES` more times, perhaps on another worker. Results are keyed by seed
and each future is read once, so no seed is missing or doubled.

Workers need this checkout's code (checked: `SeedJob.code_digest`) and the
experiment file and the apps it pushes at the same path as the driver: the
reports name those paths, and would not be a single run's otherwise.
"""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import structlog

from actors.experiments.pool import WorkerLost
from actors.experiments.sweep_errors import SchedulerUnreachable
from actors.experiments.sweep_worker import SeedJob, SeedProblem, SeedResult, WorkerSetup, ensure_setup, run_seed
from protocol.errors import PlatformError

__all__ = ["CONNECT_TIMEOUT", "DaskCluster"]

log = structlog.get_logger("minifoundry.experiments")

CONNECT_TIMEOUT = 10.0
RETRIES = 2


class DaskCluster:
    """A connected client; `run(jobs)` yields each seed's result as it comes."""

    checks_code = True

    def __init__(self, address: str, setup: WorkerSetup, *, timeout: float = CONNECT_TIMEOUT) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise SchedulerUnreachable(
                "dask.distributed is not installed: pip install -e '.[cluster]' (on the workers too)"
            ) from None
        self.address = _address(address)
        self.setup = setup
        _probe(address, self.address, timeout)
        try:
            self.client: Any = Client(self.address, timeout=timeout, set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - whatever the comm layer raises, it did not connect
            raise SchedulerUnreachable(f"no Dask scheduler answered at {self.address}: {exc}") from None
        self._pending: dict[Any, int] = {}

    def describe(self) -> str:
        workers = len(self.client.nthreads())
        return f"the Dask cluster at {self.address} ({workers} worker{'s' if workers != 1 else ''})"

    def run(self, jobs: Sequence[SeedJob]) -> Iterator[SeedResult | SeedProblem | WorkerLost]:
        from distributed import as_completed

        token = uuid.uuid4().hex[:8]  # a key of this sweep's, apart from any other client's
        keys: dict[str, int] = {}
        for job in jobs:
            key = f"minifoundry-seed-{job.seed}-{token}"
            future = self.client.submit(_run_on_worker, job, self.setup, key=key, pure=False, retries=RETRIES)
            self._pending[future] = job.seed
            keys[key] = job.seed
        for future in as_completed(list(self._pending), loop=self.client.loop):
            seed = self._pending.pop(future)
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - a task that failed every try is a seed not run
                yield SeedProblem(seed, _problem(exc))
            else:
                yield result
            finally:
                future.release()
        yield from self._losses(keys)

    def _losses(self, keys: dict[str, int]) -> Iterator[WorkerLost]:
        """The workers the scheduler lost while they held this sweep's seeds
        (running, or done but not yet fetched): it ran those seeds again."""
        try:
            events = self.client.get_events("all")
        except Exception:  # noqa: BLE001 - a figure for wall.json, not worth failing the sweep for
            return
        for _, event in events:
            if not isinstance(event, dict) or event.get("action") != "remove-worker" or event.get("expected"):
                continue
            held = [*event.get("processing-tasks", ()), *event.get("lost-computed-tasks", ())]
            seeds = tuple(sorted({keys[k] for k in held if k in keys}))
            if seeds:
                log.warning("sweep-worker-lost", worker=event.get("worker"), seeds=list(seeds), retry=True)
                yield WorkerLost(str(event.get("worker", "?")), seeds)

    def close(self, *, kill: bool = False) -> None:
        """Cancel what has not come back (after Ctrl-C) and disconnect."""
        if self._pending:
            with contextlib.suppress(Exception):
                self.client.cancel(list(self._pending), force=kill)
            self._pending.clear()
        self.client.close()

    def __enter__(self) -> DaskCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(kill=exc[0] is not None)


def _address(text: str) -> str:
    return text if "://" in text else f"tcp://{text}"


def _probe(given: str, address: str, timeout: float) -> None:
    """Fail at once on a refused or unresolvable address (Dask would retry until its timeout)."""
    parts = urlsplit(address)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if parts.scheme not in ("tcp", "tls") or not host or port is None:
        raise SchedulerUnreachable(f"--scheduler {given}: a scheduler's address is tcp://HOST:PORT")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise SchedulerUnreachable(
            f"no Dask scheduler answered at {address}: {exc.strerror or exc} "
            "(start one with `dask scheduler`; see the README)"
        ) from None


def _problem(exc: BaseException) -> str:
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        return "every worker that ran it died (Dask's allowed-failures)"
    if isinstance(exc, ModuleNotFoundError):
        return f"{type(exc).__name__}: {exc}: install minifoundry on the workers (pip install -e '.[cluster]')"
    return str(exc) if isinstance(exc, PlatformError) else f"{type(exc).__name__}: {exc}"


def _run_on_worker(job: SeedJob, setup: WorkerSetup) -> SeedResult:
    """The task: one seed, on a Dask worker, in the worker's own scratch space."""
    ensure_setup(setup)
    scratch = None
    try:
        from distributed import get_worker

        scratch = get_worker().local_directory
    except (ImportError, ValueError):
        pass
    return run_seed(job, scratch)
