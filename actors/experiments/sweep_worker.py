"""What a sweep's worker does with one seed, wherever it runs: a process of
the local pool (`pool`) or a Dask worker (`cluster`).

`run_seed(job)` runs the seed exactly as `python run.py experiment FILE
--seed N` would, in scratch space of the worker's own, and hands back the
report files as bytes (`SeedResult`): the worker writes nothing of the
sweep's; the driver writes each seed's folder, once. The report names the
folder the driver will put it in (`SeedJob.folder`), so the bytes are those
of a single run into that folder.

A worker's logging and event loop are set up once per process, as run.py
sets up its own (`ensure_setup`), and each line it logs while running a seed
carries the seed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import structlog

from actors.experiments.runner import run_experiment
from actors.experiments.schema import load_experiment
from actors.experiments.sweep_errors import WorkerMismatch

__all__ = [
    "REPORT_FILES",
    "SeedJob",
    "SeedProblem",
    "SeedResult",
    "WorkerSetup",
    "code_digest",
    "ensure_setup",
    "file_digest",
    "run_seed",
]

log = structlog.get_logger("minifoundry.experiments")

#: What a run leaves in its folder that a sweep keeps: the report, the
#: picture, the page and the wall time. (The platform's data directory is
#: scratch: the seed rebuilds it exactly.)
REPORT_FILES = ("report.json", "wall.json", "timeline.svg", "report.html")

_ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerSetup:
    """What run.py set up in the driver, at its edge: the same on every worker."""

    debug: bool = False
    log_file: str | None = None
    loop: str = "asyncio"  # run.py --loop


@dataclasses.dataclass(frozen=True, slots=True)
class SeedJob:
    """One seed to run."""

    path: str  # the experiment file, absolute: where the worker reads it
    source: str  # the file as the command line named it (the report's `file` and `reproduce`)
    seed: int
    folder: str  # the seed's folder, as the report names it
    wall_limit: float
    file_digest: str  # the experiment file the driver read
    code_digest: str | None = None  # the driver's code, when the worker may have other code


@dataclasses.dataclass(frozen=True, slots=True)
class SeedResult:
    """A seed that ran: its verdict and report files, as bytes."""

    seed: int
    verdict: str
    files: dict[str, bytes]
    worker: str  # host:pid
    wall_seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class SeedProblem:
    """A seed that could not be run (its worker died too often, or it raised)."""

    seed: int
    problem: str


# --- the process's edge -----------------------------------------------------------------------------

_setup_lock = threading.Lock()
_setup_done: list[WorkerSetup] = []


def ensure_setup(setup: WorkerSetup) -> None:
    """Configure this process's logging and event loop as run.py does, once."""
    with _setup_lock:
        if _setup_done:
            return
        from actors.runtime.loops import install
        from run import configure_logging

        install(setup.loop)
        configure_logging(debug=setup.debug, log_file=Path(setup.log_file) if setup.log_file else None)
        _setup_done.append(setup)


# --- what the worker and the driver must agree on ----------------------------------------------


def file_digest(path: str | os.PathLike[str]) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


_code_digest: list[str] = []


def code_digest() -> str:
    """A digest of this installation's code (run.py, actors/, protocol/): two
    processes with the same digest give the same report for the same seed."""
    if not _code_digest:
        h = hashlib.sha256()
        files = [_ROOT / "run.py", *(_ROOT / "actors").rglob("*.py"), *(_ROOT / "protocol").rglob("*.py")]
        for f in sorted(files, key=lambda p: p.relative_to(_ROOT).as_posix()):
            h.update(f.relative_to(_ROOT).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
        _code_digest.append(h.hexdigest())
    return _code_digest[0]


# --- one seed ---------------------------------------------------------------------------------------

# One run per process at a time: the GIL would give two no speed, and a run's
# platform is not promised to share its process (a Dask worker with threads).
_one_run = threading.Lock()


def run_seed(job: SeedJob, scratch_root: str | None = None) -> SeedResult:
    """Run one seed as a single run would; return its report files."""
    with _one_run, structlog.contextvars.bound_contextvars(seed=job.seed):
        started = time.monotonic()
        _check_inputs(job)
        exp = load_experiment(job.path)
        log.info("sweep-seed-started", experiment=exp.name, folder=job.folder)
        scratch = Path(tempfile.mkdtemp(prefix=f"minifoundry-seed-{job.seed}-", dir=scratch_root))
        try:
            report = asyncio.run(
                run_experiment(exp, job.seed, scratch, source=job.source, wall_limit=job.wall_limit, folder=job.folder)
            )
            out = scratch / f"{exp.name}-{job.seed}"
            files = {name: (out / name).read_bytes() for name in REPORT_FILES}
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        wall = time.monotonic() - started
        log.info("sweep-seed-finished", experiment=exp.name, verdict=report["verdict"], wall_seconds=round(wall, 3))
        return SeedResult(job.seed, report["verdict"], files, f"{socket.gethostname()}:{os.getpid()}", wall)


def _check_inputs(job: SeedJob) -> None:
    where = f"worker {socket.gethostname()}:{os.getpid()}"
    try:
        digest = file_digest(job.path)
    except OSError as exc:
        raise WorkerMismatch(
            f"{where} cannot read {job.path} ({exc.strerror or exc}): workers need the experiment "
            "and the apps it pushes at the same path as the driver"
        ) from None
    if digest != job.file_digest:
        raise WorkerMismatch(f"{where} has another {job.path} than the driver's: the same file is needed everywhere")
    if job.code_digest is not None and code_digest() != job.code_digest:
        raise WorkerMismatch(
            f"{where} runs other minifoundry code than the driver's: install the same checkout on every worker"
        )
