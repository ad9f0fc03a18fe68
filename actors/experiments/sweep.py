"""`python run.py experiment FILE --seeds 1-1000 [--workers N | --scheduler
tcp://HOST:PORT] [--resume]`: one experiment over many seeds.

Each seed runs exactly as `python run.py experiment FILE --seed N --results
<results>/<name>-sweep` would, on a worker of a local process pool (`pool`,
default one per core) or of a Dask cluster (`cluster`), and its report
files come back to this process, the driver, which alone writes the
sweep's folder:

    <results>/<name>-sweep/
        sweep.json            verdict counts, failing checks with seeds and
                              repeat commands, distributions, every seed's row
        wall.json             wall time, workers, seeds run again
        report.html           all of it on a page, with distributions.svg
        distributions.svg
        <name>-<seed>/        report.json, wall.json, timeline.svg, report.html:
                              a single run's, byte for byte

A seed's folder appears whole or not at all (written beside it, renamed),
so Ctrl-C or a crash never leaves half a seed, and `--resume` trusts every
seed folder it finds. Without `--resume` a sweep starts afresh: the
folder's earlier results are removed.

Exit codes: 0 every seed VALID, 1 any INVALID, 2 any UNKNOWN (or not run)
and none INVALID, and 2 for bad input (a named error; nothing is written);
130 after Ctrl-C, once the summary of what finished is written.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import structlog

from actors.experiments.pool import LocalPool, SeedStarted, WorkerLost, default_workers
from actors.experiments.runner import WALL_LIMIT
from actors.experiments.schema import Experiment, InvalidExperiment, load_experiment
from actors.experiments.seeds import format_seeds, parse_seeds
from actors.experiments.sweep_errors import (
    InvalidSweep,
    NothingToResume,
    ResumeMismatch,
    SweepInUse,
)
from actors.experiments.sweep_report import build_summary, print_summary, seed_row, write_json, write_sweep_report
from actors.experiments.sweep_worker import (
    REPORT_FILES,
    SeedJob,
    SeedProblem,
    SeedResult,
    WorkerSetup,
    code_digest,
    file_digest,
)
from protocol.errors import PlatformError

__all__ = ["SWEEP_FLAGS", "is_sweep", "main", "sweep_folder"]

log = structlog.get_logger("minifoundry.experiments")

#: Any of these on `run.py experiment`'s command line makes it a sweep.
SWEEP_FLAGS = ("--seeds", "--resume", "--workers", "--scheduler")
INTERRUPTED = 130

Event = SeedStarted | WorkerLost | SeedResult | SeedProblem


class Backend(Protocol):
    def describe(self) -> str: ...
    def run(self, jobs: Sequence[SeedJob]) -> Iterator[Any]: ...
    def close(self, *, kill: bool = False) -> None: ...


def is_sweep(argv: Sequence[str]) -> bool:
    """Whether `run.py experiment ARGV` asks for a sweep rather than one run."""
    return any(arg.split("=", 1)[0] in SWEEP_FLAGS for arg in argv)


def sweep_folder(exp: Experiment, results: Path) -> Path:
    return results / f"{exp.name}-sweep"


# --- the command line ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py experiment", description="Run a fault-injection experiment over many seeds."
    )
    p.add_argument("file", help="the experiment (.toml, .yml or .yaml)")
    p.add_argument("--seeds", help="the seeds: 1-1000, 7, or 1-10,20,30-40")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: one per core)")
    p.add_argument("--scheduler", default=None, help="run on the Dask cluster of this scheduler (tcp://HOST:PORT)")
    p.add_argument("--resume", action="store_true", help="skip the seeds the last sweep already reported")
    p.add_argument("--results", default="results", help="folder for results (default ./results)")
    p.add_argument(
        "--wall-limit",
        type=float,
        default=WALL_LIMIT,
        help=f"stop a seed's run after this many real seconds (default {WALL_LIMIT:g})",
    )
    p.add_argument("--seed", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    exp: Experiment
    source: str
    seeds: tuple[int, ...]
    folder: Path
    wall_limit: float
    resume: bool
    digest: str
    command: list[str]  # the sweep's own arguments, for the resume line


def main(
    argv: list[str],
    *,
    setup: WorkerSetup | None = None,
    on_event: Callable[[Any], None] | None = None,
    out: Callable[[str], None] = print,
) -> int:
    """Run the sweep named on the command line; exit 0 / 1 / 2 by its seeds' verdicts, 130 after Ctrl-C."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage already
        return 2 if exc.code else 0
    setup = setup or WorkerSetup()
    try:
        plan = _plan(args, argv)
        backend: Backend
        if args.scheduler is not None:
            from actors.experiments.cluster import DaskCluster

            backend = DaskCluster(args.scheduler, setup)
        else:
            backend = LocalPool(args.workers or default_workers(), setup)
    except (PlatformError, InvalidExperiment) as exc:
        print(str(exc), file=sys.stderr)
        print("FAILED", file=sys.stderr)
        return 2
    try:
        return run_sweep(plan, backend, on_event=on_event, out=out)
    except SweepInUse as exc:
        backend.close()
        print(str(exc), file=sys.stderr)
        print("FAILED", file=sys.stderr)
        return 2


def _plan(args: argparse.Namespace, argv: list[str]) -> _Plan:
    """Everything checked before anything is started or written."""
    if args.child:
        raise InvalidSweep("--child is a single run's, never a sweep's")
    if args.seed is not None:
        raise InvalidSweep("--seed runs one seed and --seeds a sweep: give one of them")
    if args.workers is not None and args.workers < 1:
        raise InvalidSweep(f"--workers {args.workers}: a sweep needs at least one worker")
    if args.workers is not None and args.scheduler is not None:
        raise InvalidSweep("--workers is for the local pool; a Dask cluster (--scheduler) has its own workers")
    if not args.wall_limit > 0:
        raise InvalidSweep(f"--wall-limit {args.wall_limit:g}: a run needs some time")
    if args.seeds is None and not args.resume:
        raise InvalidSweep("a sweep needs its seeds: --seeds 1-1000 (or --resume, to go on with the last sweep)")
    path = Path(args.file)
    exp = load_experiment(path)
    digest = file_digest(path)
    folder = sweep_folder(exp, Path(args.results))
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    if args.resume:
        earlier = _earlier_sweep(folder)
        if earlier.get("file_sha256") != digest:
            raise ResumeMismatch(
                f"{args.file} has changed since the sweep in {folder} began: run it afresh, without --resume"
            )
        if seeds is None:
            seeds = parse_seeds(earlier["seeds"])
    assert seeds is not None
    command = [a for a in argv if a != "--resume"]
    if args.seeds is None:
        command += ["--seeds", format_seeds(seeds)]
    return _Plan(exp, args.file, seeds, folder, args.wall_limit, args.resume, digest, command)


def _earlier_sweep(folder: Path) -> dict[str, Any]:
    try:
        earlier = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NothingToResume(f"--resume: no earlier sweep in {folder} to go on with") from None
    except (OSError, ValueError) as exc:
        raise NothingToResume(f"--resume: {folder / 'sweep.json'} cannot be read ({exc})") from None
    if not isinstance(earlier, dict) or "seeds" not in earlier:
        raise NothingToResume(f"--resume: {folder / 'sweep.json'} is not a sweep's")
    return earlier


# --- the sweep ---------------------------------------------------------------------------------------------


def run_sweep(
    plan: _Plan,
    backend: Backend,
    *,
    on_event: Callable[[Any], None] | None = None,
    out: Callable[[str], None] = print,
) -> int:
    folder = plan.folder
    name = plan.exp.name
    with _sweep_lock(folder):
        if plan.resume:
            _remove_partials(folder, name)
        else:
            _clear(folder)
        rows: dict[int, dict[str, Any]] = {}
        problems: dict[int, str] = {}
        if plan.resume:
            for seed in plan.seeds:
                row = _complete_seed(folder, name, seed)
                if row is not None:
                    rows[seed] = row
        resumed = len(rows)
        todo = [s for s in plan.seeds if s not in rows]
        jobs = [
            SeedJob(
                path=str(plan.exp.path),
                source=plan.source,
                seed=seed,
                folder=str(folder / f"{name}-{seed}"),
                wall_limit=plan.wall_limit,
                file_digest=plan.digest,
                code_digest=code_digest() if getattr(backend, "checks_code", False) else None,
            )
            for seed in todo
        ]
        described = backend.describe()
        wall: dict[str, Any] = {
            "workers": described,
            "wall_seconds": 0.0,
            "ran": 0,
            "resumed": resumed,
            "workers_lost": 0,
            "retried": [],
            "interrupted": False,
            "resume": _resume_command(plan),
        }
        summary = _summary(plan, rows, problems)
        write_json(folder / "sweep.json", summary)  # what --resume goes on with, should this process die
        log.info("sweep-started", experiment=name, seeds=summary["seeds"], todo=len(todo), backend=described)
        before = f" ({resumed} reported before: skipped)" if resumed else ""
        out(f"Running {name} over seeds {summary['seeds']} on {described}{before}...")
        if described.endswith("(0 workers)"):
            out("The cluster has no workers yet: the seeds wait for some to join.")
        started = time.monotonic()
        retried: set[int] = set()
        with _Progress(name, len(plan.seeds), resumed, out) as progress:
            ended = False
            try:
                for event in backend.run(jobs):
                    if isinstance(event, SeedResult):
                        if event.seed in rows:
                            log.warning("sweep-seed-duplicate", seed=event.seed)  # kept once: the first
                        else:
                            rows[event.seed] = _write_seed(folder, name, event)
                            problems.pop(event.seed, None)
                            wall["ran"] += 1
                            progress.finished(rows[event.seed])
                    elif isinstance(event, SeedProblem):
                        problems[event.seed] = event.problem
                        progress.not_run(event.seed, event.problem)
                        log.warning("sweep-seed-not-run", seed=event.seed, problem=event.problem)
                    elif isinstance(event, WorkerLost):
                        wall["workers_lost"] += 1
                        if event.seeds and not event.given_up:
                            retried.update(event.seeds)
                            seeds = format_seeds(event.seeds)
                            progress.note(f"worker {event.worker} was lost running seeds {seeds}: they ran again")
                    if on_event is not None:
                        on_event(event)
                ended = True
            except KeyboardInterrupt:
                wall["interrupted"] = True
            except Exception as exc:  # what finished is written all the same
                log.exception("sweep-broke", experiment=name)
                wall["problem"] = f"{type(exc).__name__}: {exc}"
            finally:
                backend.close(kill=not ended)  # nothing is left running, whatever happened
        wall["wall_seconds"] = round(time.monotonic() - started, 3)
        wall["retried"] = sorted(retried)
        summary = _summary(plan, rows, problems)
        write_sweep_report(summary, wall, folder)
        log.info(
            "sweep-finished" if not wall["interrupted"] else "sweep-interrupted",
            experiment=name,
            verdict=summary["verdict"],
            finished=summary["finished"],
            planned=summary["planned"],
        )
    print_summary(summary, wall, out)
    if "problem" in wall:
        print(f"the sweep broke: {wall['problem']}", file=sys.stderr)
        print("FAILED", file=sys.stderr)
        return 2
    return INTERRUPTED if wall["interrupted"] else int(summary["exit_code"])


def _summary(plan: _Plan, rows: dict[int, dict[str, Any]], problems: dict[int, str]) -> dict[str, Any]:
    return build_summary(
        experiment=plan.exp.name,
        source=plan.source,
        digest=plan.digest,
        seeds=plan.seeds,
        rows=rows,
        problems=problems,
        folder=str(plan.folder),
    )


def _resume_command(plan: _Plan) -> str:
    return shlex.join(["python", "run.py", "experiment", *plan.command, "--resume"])


# --- the folder ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _sweep_lock(folder: Path) -> Iterator[None]:
    """One sweep of an experiment per results folder at a time."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "sweep.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SweepInUse(
                f"{folder} is in use by another sweep of this experiment; wait for it or use --results"
            ) from None
        yield
    finally:
        os.close(fd)


def _clear(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.name == "sweep.lock":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _remove_partials(folder: Path, name: str) -> None:
    for entry in folder.glob(f".{name}-*.partial*"):
        shutil.rmtree(entry, ignore_errors=True)


def _complete_seed(folder: Path, name: str, seed: int) -> dict[str, Any] | None:
    """The row of a seed reported whole, else None (it runs again)."""
    where = folder / f"{name}-{seed}"
    if not all((where / f).is_file() for f in REPORT_FILES):
        return None
    try:
        report = json.loads((where / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or report.get("seed") != seed:
        return None
    try:
        return seed_row(report)
    except (KeyError, TypeError):
        return None


def _write_seed(folder: Path, name: str, result: SeedResult) -> dict[str, Any]:
    """The seed's folder, whole: written beside it, then renamed into place."""
    row = seed_row(json.loads(result.files["report.json"]))
    final = folder / f"{name}-{result.seed}"
    partial = Path(tempfile.mkdtemp(prefix=f".{name}-{result.seed}.partial-", dir=folder))
    try:
        for file, data in result.files.items():
            (partial / file).write_bytes(data)
        if final.exists():  # an incomplete leftover: --resume runs it again
            shutil.rmtree(final)
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    log.info("sweep-seed-written", seed=result.seed, verdict=row["verdict"], worker=result.worker)
    return row


# --- the terminal while it runs ------------------------------------------------------------------------------------


class _Progress:
    """A progress bar on a terminal (rich); elsewhere only the lines for seeds that did not pass."""

    def __init__(self, name: str, total: int, done: int, out: Callable[[str], None]) -> None:
        self.name = name
        self.total = total
        self.done = done
        self.out = out
        self.counts = {"valid": 0, "invalid": 0, "unknown": 0}
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.out is print and sys.stdout.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[tally]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._bar.start()
            self._task = self._bar.add_task(self.name, total=self.total, completed=self.done, tally=self._tally())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _tally(self) -> str:
        return " ".join(f"{k} {v}" for k, v in self.counts.items())

    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            self.out(text)

    def finished(self, row: dict[str, Any]) -> None:
        self.counts[row["verdict"]] += 1
        if row["verdict"] != "valid":
            checks = ", ".join(f"{c['check']} {c['status']}" for c in row["failing"])
            self._line(f"seed {row['seed']}: {row['verdict'].upper()} ({checks}): {row['reproduce']}")
        self._advance()

    def not_run(self, seed: int, problem: str) -> None:
        self._line(f"seed {seed}: not run: {problem}")
        self._advance()

    def note(self, text: str) -> None:
        self._line(text)

    def _advance(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, tally=self._tally())
