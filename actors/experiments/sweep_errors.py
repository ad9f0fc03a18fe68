"""The named errors of a sweep (`python run.py experiment FILE --seeds ...`).

Each is raised before anything is written, except `WorkerMismatch`, which a
worker raises for the one seed it was asked to run. The command line prints
`str(error)` and `FAILED`, and exits 2.
"""

from __future__ import annotations

from protocol.errors import PlatformError

__all__ = [
    "InvalidSeeds",
    "InvalidSweep",
    "NothingToResume",
    "ResumeMismatch",
    "SchedulerUnreachable",
    "SweepInUse",
    "WorkerMismatch",
]


class InvalidSeeds(PlatformError):
    """`--seeds` is not a list of seeds (raised by `parse_seeds`)."""

    code = "InvalidSeeds"


class InvalidSweep(PlatformError):
    """Options that do not make a sweep: `--workers 0`, `--seed` with `--seeds`,
    `--workers` with `--scheduler`, a sweep with no seeds to run."""

    code = "InvalidSweep"


class SchedulerUnreachable(PlatformError):
    """`--scheduler` names no Dask scheduler that answers (or dask.distributed is not installed)."""

    code = "SchedulerUnreachable"


class NothingToResume(PlatformError):
    """`--resume` where no earlier sweep of the experiment left its results."""

    code = "NothingToResume"


class ResumeMismatch(PlatformError):
    """`--resume` of a sweep whose experiment file has changed since it began."""

    code = "ResumeMismatch"


class SweepInUse(PlatformError):
    """Another sweep of the same experiment holds its results folder."""

    code = "SweepInUse"


class WorkerMismatch(PlatformError):
    """A worker's experiment file or code is not the driver's: its report
    would not be the one a single run gives (raised on the worker)."""

    code = "WorkerMismatch"
