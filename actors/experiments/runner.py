"""`python run.py experiment FILE [--seed N] [--results DIR]`: run one
fault-injection experiment and judge it.

A run boots the whole platform on a `VirtualClock` with the experiment's
seed, in a fresh data directory (`<results>/<name>-<seed>/data`), then:

1. plays the workload (each cf command a concurrent task through
   `Platform.command`, its exit code and named error recorded) and the fault
   schedule (`actors.experiments.schedule`, through the Faults API), while a
   sampler notes, every `sample_every` platform seconds, desired instances
   (the BBS) against instances really running on the cells, and the message
   statistics of the delivery seam;
2. heals (`Faults.heal()`), then watches for every started app to run its
   desired instances (`recover_within`), waits for every command to end,
   and for the orphan blob reaper;
3. gathers the final state (CC_DB's apps, builds, packages, droplets and
   crash events; the blob store's inventory, verified) and runs the checks;
4. writes `report.json`, `timeline.svg` and `report.html` beside the data
   and prints the verdict with the seed that repeats it.

Time is platform time: the virtual clock jumps to the next timer whenever
the loop is idle, so half an hour of crash backoff runs in about a second.
Real threaded I/O cannot race it: aiosqlite's statements, blob files and
the CLI's file scans are all entered through `clock.threaded_io()`, and the
virtual clock never advances while any such call is in flight (see
`actors/runtime/clock.py`). The same seed therefore gives the same fault
decisions and placements.

The SIGKILL experiment (a `kill-platform` fault) needs a real process to
kill: the runner starts itself as a child (`--child`) on the same data
directory, lets it run the workload up to the kill time, freezes its clock
there (work in flight goes on, no timer fires), waits for a moment when
threaded I/O is in flight and SIGKILLs it, then boots a new platform on what
the child left on disk and checks it. The child
mirrors what it records, line by line, so nothing it saw is lost with it.

Exit codes: 0 valid, 1 invalid, 2 unknown (including an experiment file
that cannot be run: its error is printed, nothing is started).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fnmatch
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import IO, Any

import structlog

from actors.bbs.actor import BBSConfig
from actors.cloud_controller import ControllerConfig, desired_lrp
from actors.experiments.checks import (
    CheckResult,
    Views,
    check_apps_intact,
    check_blobs,
    check_crash_backoff,
    check_drain_capacity,
    check_pushes_end,
    check_recovery,
    check_retries,
    check_succeeded,
    check_views_agree,
    disagreements,
    verdict,
)
from actors.experiments.record import Recording, Sample
from actors.experiments.report import build_report, print_summary, write_report
from actors.experiments.schedule import apply_fault, describe_fault, running_by_cell
from actors.experiments.schema import Experiment, ExperimentInUse, InvalidExperiment, load_experiment
from actors.experiments.workload import Workload, command_argv, describe_step
from actors.platform import Platform, PlatformConfig
from actors.runtime import VirtualClock
from protocol import blobs, ccdb
from protocol.ccdb import CCDBOperation
from protocol.messages import ListActualLRPs, ListContainers, ListDesiredLRPs
from protocol.snapshots import BBSStatistics, InstanceCounts
from protocol.states import AppState, BuildState, DropletState, PackageState

__all__ = ["EXIT_CODES", "main", "run_experiment"]

log = structlog.get_logger("minifoundry.experiments")

EXIT_CODES = {"valid": 0, "invalid": 1, "unknown": 2}
RUN_PY = Path(__file__).resolve().parents[2] / "run.py"
KILL_POINT = "kill-point"
# Wall-clock bounds for the SIGKILL experiment's child process.
CHILD_START_WALL = 120.0
CHILD_LINGER_WALL = 60.0
KILL_WAIT_FOR_IO = 0.5
# A platform that never goes idle never lets virtual time pass: stop it.
WALL_LIMIT = 600.0


# --- the command line ------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run.py experiment", description="Run a fault-injection experiment.")
    p.add_argument("file", help="the experiment (.toml, .yml or .yaml)")
    p.add_argument("--seed", type=int, default=None, help="override the file's seed")
    p.add_argument("--results", default="results", help="folder for results (default ./results)")
    p.add_argument(
        "--wall-limit",
        type=float,
        default=WALL_LIMIT,
        help=f"stop a run after this many real seconds (default {WALL_LIMIT:g})",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str]) -> int:
    """Run the experiment named on the command line; exit 0 valid, 1 invalid, 2 unknown."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage already
        return 2 if exc.code else 0
    try:
        exp = load_experiment(args.file)
    except InvalidExperiment as exc:
        print(str(exc), file=sys.stderr)
        print("FAILED", file=sys.stderr)
        return 2
    seed = exp.seed if args.seed is None else args.seed
    results = Path(args.results)
    if args.child:
        return asyncio.run(_child_main(exp, seed, results))
    try:
        report = asyncio.run(run_experiment(exp, seed, results, source=args.file, wall_limit=args.wall_limit))
    except ExperimentInUse as exc:
        print(str(exc), file=sys.stderr)
        print("FAILED", file=sys.stderr)
        return 2
    print_summary(report, print)
    return EXIT_CODES[report["verdict"]]


def run_dir(exp: Experiment, seed: int, results: Path) -> Path:
    return results / f"{exp.name}-{seed}"


# --- one run ------------------------------------------------------------------------------------------


async def run_experiment(
    exp: Experiment,
    seed: int,
    results: Path,
    *,
    source: str | None = None,
    wall_limit: float = WALL_LIMIT,
    folder: str | None = None,
) -> dict[str, Any]:
    """Run `exp` with `seed`; write the report files; return the report.

    `folder` is the folder the report names as its own (default: where it is
    written): a sweep runs each seed in scratch space and moves the files to
    the folder a single run would have written them to.
    """
    out = run_dir(exp, seed, results)
    out.mkdir(parents=True, exist_ok=True)
    with _run_lock(out):
        return await _run_locked(exp, seed, out, results, source=source, wall_limit=wall_limit, folder=folder)


@contextlib.contextmanager
def _run_lock(out: Path) -> Any:
    """One run of an experiment and seed at a time: taken before the last
    run's data is deleted (ExperimentInUse if another run holds it)."""
    import fcntl

    fd = os.open(out / "run.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ExperimentInUse(
                f"{out} is in use by another run of this experiment and seed; wait for it or use --results"
            ) from None
        yield
    finally:
        os.close(fd)


async def _run_locked(
    exp: Experiment, seed: int, out: Path, results: Path, *, source: str | None, wall_limit: float, folder: str | None
) -> dict[str, Any]:
    data = out / "data"
    if data.exists():
        shutil.rmtree(data)  # a run starts from nothing, or the seed would not repeat it
    started = time.monotonic()
    run = _Run(exp, seed, data, Recording())
    try:
        body = run.sigkill_then_restart(out, results) if exp.kill_platform_at is not None else run.in_process()
        await asyncio.wait_for(body, wall_limit)
    except TimeoutError:
        run.results.append(CheckResult("run", "unknown", f"stopped after {wall_limit:g} s of wall time, unfinished"))
    except Exception as exc:
        log.exception("experiment-crashed", experiment=exp.name)
        run.results.append(CheckResult("run", "unknown", f"the run broke: {type(exc).__name__}: {exc}"))
    report = build_report(
        exp,
        seed,
        run.recording,
        run.results,
        verdict(run.results),
        extra=run.extra,
        wall_seconds=time.monotonic() - started,
        source=source or str(exp.path),
    )
    report["folder"] = str(out) if folder is None else folder
    write_report(report, out)
    return report


class _Run:
    """One run's state: the platform, the recording, the results."""

    def __init__(self, exp: Experiment, seed: int, data: Path, recording: Recording) -> None:
        self.exp = exp
        self.seed = seed
        self.data = data
        self.recording = recording
        self.results: list[CheckResult] = []
        self.extra: dict[str, Any] = {}
        self.platform: Platform | None = None
        self.workload: Workload | None = None
        self.recovered_at: float | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._healing: asyncio.Task[Any] | None = None
        # The pauses still holding each actor, each its own token: overlapping
        # pauses of one actor end when the last of them does; a resume or the
        # heal ends them all (and a pause ended that way is not ended again).
        self._pauses: dict[str, set[object]] = {}

    # --- the platform -------------------------------------------------------------------------

    def config(self) -> PlatformConfig:
        p = self.exp.platform
        bbs = BBSConfig()
        if p.convergence_interval is not None:
            bbs = dataclasses.replace(bbs, convergence_interval=p.convergence_interval)
        if p.presence_ttl is not None:
            bbs = dataclasses.replace(bbs, presence_ttl=p.presence_ttl)
        if "convergence" in p.breaks:
            bbs = dataclasses.replace(bbs, convergence_enabled=False)
        kwargs: dict[str, Any] = {}
        if p.staging_seconds is not None:
            kwargs["staging_seconds"] = p.staging_seconds
        if "sync" in p.breaks:
            kwargs["controller"] = dataclasses.replace(ControllerConfig(), sync_enabled=False)
        if "links" in p.breaks:
            kwargs["supervisor_links"] = False
        return PlatformConfig(
            data_dir=self.data,
            cells=p.cells,
            zones=p.zones,
            cell_memory_mb=p.cell_memory_mb,
            cell_disk_mb=p.cell_disk_mb,
            cell_containers=p.cell_containers,
            seed=self.seed,
            bbs=bbs,
            **kwargs,
        )

    async def boot(self, clock_start: float = 0.0) -> Platform:
        platform = Platform(self.config(), clock=VirtualClock(start=clock_start))
        await platform.start()
        self.platform = platform
        self.workload = Workload(platform, self.recording, deadline=self.exp.checks.push_deadline)
        if "convergence" in self.exp.platform.breaks:
            self.recording.event(self.now(), "break", 'convergence switched off (break = "convergence")')
        if "sync" in self.exp.platform.breaks:
            self.recording.event(
                self.now(), "break", 'Cloud Controller\'s sync with the BBS switched off (break = "sync")'
            )
        if "links" in self.exp.platform.breaks:
            self.recording.event(
                self.now(), "break", 'a crashed supervisor leaves its children running (break = "links")'
            )
        return platform

    def now(self) -> float:
        assert self.platform is not None
        return self.platform.clock.monotonic()

    async def sleep_until(self, t: float) -> None:
        assert self.platform is not None
        delay = t - self.platform.clock.monotonic()
        if delay > 0:
            await self.platform.clock.sleep(delay)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.append(task)
        return task

    async def stop_tasks(self) -> None:
        if self.workload is not None:
            await self.workload.cancel_pending()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    # --- the whole run, in this process ----------------------------------------------------------

    async def in_process(self) -> None:
        platform = await self.boot()
        try:
            self.spawn(self.sampler(), "experiment:sampler")
            self.schedule(lambda _t: True)
            await self.finish()
        finally:
            await self.stop_tasks()
            await platform.stop()

    def schedule(self, when: Callable[[float], bool]) -> None:
        """Start timers for the workload and faults whose time passes `when`,
        and the heal."""
        exp = self.exp
        for step in exp.workload:
            times = [(t, app) for t, app in step.times_and_apps() if when(t)]
            if times:
                self.spawn(self._play(step, times), f"experiment:workload:{step.action}")
        for n, fault in enumerate(exp.faults, 1):
            if fault.action != "kill-platform" and when(fault.at):
                self.spawn(self._inject(fault), f"experiment:fault:{n}")
        if when(exp.heal_time):
            self._healing = self.spawn(self._heal(), "experiment:heal")

    async def _play(self, step: Any, times: list[tuple[float, str]]) -> None:
        assert self.workload is not None
        await self.sleep_until(times[0][0])
        self.recording.event(self.now(), "workload", describe_step(step))
        for t, app in times:
            await self.sleep_until(t)
            self.workload.start(step.action, app, command_argv(self.exp, step, app))

    async def _inject(self, fault: Any) -> None:
        assert self.platform is not None
        await self.sleep_until(fault.at)
        try:
            entry = await apply_fault(self.platform, self.exp, fault, self.recording, self.now())
        except Exception as exc:  # noqa: BLE001 - a fault that cannot be injected is reported, not fatal
            self.recording.event(self.now(), "fault-error", f"{describe_fault(fault)}: {type(exc).__name__}: {exc}")
            self.results.append(CheckResult("faults", "unknown", f"could not inject {describe_fault(fault)}: {exc}"))
            return
        actor = fault.options.get("actor")
        token = object()
        if entry.get("ok") is False:
            # Named right, but not running at that instant (a restart under way).
            self.recording.event(self.now(), "fault-missed", f"{describe_fault(fault)}: {actor} was not running")
        elif fault.action == "pause":
            self._pauses.setdefault(actor, set()).add(token)
        elif fault.action == "resume":
            self._pauses.pop(actor, None)
        if fault.duration is not None:
            await self.sleep_until(fault.at + fault.duration)
            holds = self._pauses.get(actor, set()) if fault.action == "pause" else set()
            if token in holds:
                holds.discard(token)
                if not holds:
                    del self._pauses[actor]
                    self.platform.faults.resume(actor)
            self.recording.event(self.now(), "fault-end", f"{describe_fault(fault)} ends")

    async def _heal(self) -> None:
        assert self.platform is not None
        await self.sleep_until(self.exp.heal_time)
        healed = self.platform.faults.heal()
        self._pauses.clear()
        self.recording.event(self.now(), "heal", "heal: every fault removed", **healed)

    async def finish(self) -> None:
        """After the schedule: recovery, the end of every command, the checks."""
        exp = self.exp
        checks = exp.checks
        assert self.platform is not None and self.workload is not None
        healed_at = exp.heal_time
        if self._healing is not None:
            await self._healing  # the heal first, then anything else due at that instant
        await self.sleep_until(healed_at)
        if checks.recover_within is not None:
            await self.watch_recovery(healed_at, checks.recover_within)
        await self.sleep_until(exp.duration)
        if not await self.workload.wait(checks.push_deadline + 60.0):
            await self.workload.cancel_pending()
        if checks.views_agree:
            self.results.append(await self.watch_views(healed_at, checks.views_within))
        if checks.retry_interrupted:
            self.results.append(check_retries(self.recording.commands))
        if checks.pushes_end:
            self.results.append(check_pushes_end(self.recording.commands, checks))
        floor = check_succeeded(self.recording.commands, checks)
        if floor is not None:
            self.results.append(floor)
        if checks.recover_within is not None:
            final = await self.app_states()
            self.results.append(
                check_recovery(
                    healed_at=healed_at,
                    within=checks.recover_within,
                    recovered_at=self.recovered_at,
                    final=final,
                    pattern=checks.recover_apps,
                )
            )
            self.extra["apps"] = final
        if checks.drain_capacity:
            drains = [f for f in self.recording.faults if f["action"] == "drain"]
            by_cell = running_by_cell(self.platform)
            left = {d["cell"]: by_cell.get(d["cell"], 0) for d in drains if d.get("cell")}
            self.results.append(check_drain_capacity(self.recording.samples, drains, left))
        if checks.crash_backoff is not None:
            crashes = await self.crash_events()
            self.extra["crashes"] = crashes
            self.results.append(check_crash_backoff(crashes, checks.crash_backoff))
        if checks.blobs_consistent:
            self.results.append(await self.blobs(healed_at, checks.orphans_within))
        if checks.apps_intact:
            # Leftovers of lost messages are Cloud Controller's cleanup jobs'
            # to fail: judge them once those could have run (cheap on a virtual clock).
            ended = [r.ended for r in self.recording.commands if r.ended is not None]
            await self.sleep_until(max([healed_at, *ended]) + self.config().controller.cleanup_bound)
            self.results.append(check_apps_intact(await self.app_integrity()))
        await self.take_sample()
        self.recording.event(self.now(), "end", "experiment ends")

    # --- watching -------------------------------------------------------------------------------

    async def sampler(self) -> None:
        assert self.platform is not None
        clock = self.platform.clock
        assert isinstance(clock, VirtualClock)
        while True:
            # At a quiet moment of this instant: what is queued then is a
            # backlog, not a burst of messages that are being handled.
            await clock.wait_idle()
            await self.take_sample()
            await clock.sleep(self.exp.sample_every)

    async def take_sample(self) -> None:
        sample = self.sample()
        if sample is not None:
            self.recording.sample(sample)

    def sample(self) -> Sample | None:
        """Desired (the BBS's books) against running (the cells' containers),
        read in place: no message is sent, so sampling neither perturbs the
        platform nor falls to its faults."""
        assert self.platform is not None
        system = self.platform.system
        bbs = system.actor("bbs")
        if bbs is None:
            return None
        books: BBSStatistics = bbs.statistics()  # type: ignore[attr-defined]
        desired = {a.process_guid: a.desired for a in books.apps}
        truth: dict[str, set[int]] = {}
        per_cell: dict[str, int] = {}
        for name, cell in _cells(system):
            running = [c for c in cell.containers() if c.state == "running"]
            per_cell[name] = len(running)
            for c in running:
                if c.index < desired.get(c.process_guid, 0):
                    truth.setdefault(c.process_guid, set()).add(c.index)
        apps: dict[str, tuple[int, int]] = {}
        counts = InstanceCounts()
        for app in books.apps:
            d, r = apps.get(app.app_name, (0, 0))
            apps[app.app_name] = (d + app.desired, r + len(truth.get(app.process_guid, ())))
            counts += app.counts
        stats = {k: v for k, v in system.statistics().items() if k not in ("actors", "uptime")}
        return Sample(
            t=round(self.now(), 3),
            desired=sum(d for d, _ in apps.values()),
            running=sum(r for _, r in apps.values()),
            bbs_running=counts.running,
            starting=counts.starting,
            crashed=counts.crashed,
            unclaimed=counts.unclaimed,
            apps=dict(sorted(apps.items())),
            stats=stats,
            cells=per_cell,
            queued={name: depth for name, depth in sorted(system.mailbox_depths().items()) if depth >= 10},
        )

    async def db(self, operation: CCDBOperation) -> Any:
        assert self.platform is not None
        return await self.platform.system.ask("ccdb", operation, timeout=30.0)

    async def app_states(self) -> list[dict[str, Any]]:
        """Every started app (CC_DB) against what the BBS and the cells run."""
        assert self.platform is not None
        apps = await self.db(ccdb.ListApps())
        sample = self.sample()
        bbs_running: dict[str, int] = {}
        bbs = self.platform.system.actor("bbs")
        if bbs is not None:
            for app in bbs.statistics().apps:  # type: ignore[attr-defined]
                bbs_running[app.app_name] = bbs_running.get(app.app_name, 0) + app.counts.running
        states = []
        for app in sorted(apps, key=lambda a: a.name):
            if app.state is not AppState.STARTED or app.droplet_guid is None:
                continue
            desired, running = sample.apps.get(app.name, (0, 0)) if sample is not None else (0, 0)
            ok = desired == app.instances and running == app.instances and bbs_running.get(app.name, 0) == app.instances
            states.append(
                {
                    "name": app.name,
                    "desired": app.instances,
                    "bbs_desired": desired,
                    "running": running,
                    "bbs_running": bbs_running.get(app.name, 0),
                    "ok": ok,
                }
            )
        return states

    async def views(self) -> Views:
        """CC_DB's, the BBS's and every cell's view, asked for at one moment."""
        assert self.platform is not None
        system = self.platform.system
        apps = {a.guid: (a.name, a.state.value) for a in await self.db(ccdb.ListApps())}
        expected = {app.guid: desired_lrp(app, droplet) for app, droplet in await self.db(ccdb.ListStartedProcesses())}
        desired = await system.ask("bbs", ListDesiredLRPs(), timeout=30.0)
        actuals = await system.ask("bbs", ListActualLRPs(), timeout=30.0)
        containers: list[Any] = []
        unreachable = []
        for name in sorted((n for n in system.names() if re.fullmatch(r"cell-\d+", n)), key=lambda n: int(n[5:])):
            try:
                containers += await system.ask(name, ListContainers(), timeout=5.0)
            except Exception:  # noqa: BLE001 - a cell that cannot answer is not judged
                unreachable.append(name)
        return Views(apps, expected, desired, actuals, containers, tuple(unreachable))

    async def watch_views(self, healed_at: float, within: float) -> CheckResult:
        """Poll each platform second until the three views agree, within the bound."""
        assert self.platform is not None
        deadline = max(self.now(), healed_at) + within
        found: list[str] = []
        while True:
            try:
                views = await self.views()
            except Exception as exc:  # noqa: BLE001 - a view that cannot be read decides nothing
                return check_views_agree([], agreed_at=None, since=healed_at, within=within, apps=0, error=repr(exc))
            found = disagreements(views)
            if not found:
                self.recording.event(self.now(), "views-agree", "CC_DB, the BBS and the cells agree")
                return check_views_agree([], agreed_at=self.now(), since=healed_at, within=within, apps=len(views.apps))
            if self.now() >= deadline:
                self.recording.event(self.now(), "views-disagree", f"{len(found)} disagreements: {found[0]}")
                return check_views_agree(found, agreed_at=None, since=healed_at, within=within, apps=len(views.apps))
            await self.platform.clock.sleep(1.0)

    async def watch_recovery(self, healed_at: float, within: float) -> None:
        """Poll each platform second from the heal until every started app
        runs its desired instances; remember when."""
        deadline = healed_at + within
        pattern = self.exp.checks.recover_apps
        while True:
            try:
                states = await self.app_states()
            except Exception as exc:  # noqa: BLE001 - CC_DB not answering is not recovered
                log.info("recovery-probe-failed", error=repr(exc))
                states = None
            if states is not None and all(s["ok"] for s in states if fnmatch.fnmatchcase(s["name"], pattern)):
                self.recovered_at = round(self.now(), 3)
                self.recording.event(
                    self.now(),
                    "recovered",
                    f"every started app runs its desired instances ({self.now() - healed_at:.1f} s after healing)",
                )
                return
            if self.now() >= deadline:
                self.recording.event(self.now(), "not-recovered", f"not recovered within {within:g} s of healing")
                return
            assert self.platform is not None
            await self.platform.clock.sleep(1.0)

    async def crash_events(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for app in await self.db(ccdb.ListApps()):
            events = await self.db(ccdb.ListEvents(app.guid, limit=100_000))
            crashes = [
                {
                    "index": e.metadata.get("index"),
                    "crash_count": e.metadata.get("crash_count"),
                    "crash_timestamp": e.metadata.get("crash_timestamp"),
                }
                for e in events
                if e.type == "audit.app.process.crash"
            ]
            if crashes:
                out[app.name] = sorted(crashes, key=lambda c: (c["index"], c["crash_timestamp"]))
        return out

    async def inventory(self, verify: bool) -> dict[str, Any]:
        assert self.platform is not None
        referenced = frozenset(await self.db(ccdb.ReferencedBlobKeys()))
        report = await self.platform.system.ask("blobstore", blobs.TakeInventory(referenced, verify), timeout=60.0)
        # JSON-ready: the report keeps lists.
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(report).items()}

    async def blobs(self, healed_at: float, within: float) -> CheckResult:
        """Missing or corrupt blobs fail at once; orphans get the reaper's time."""
        assert self.platform is not None
        try:
            inv = await self.inventory(verify=False)
            first = len(inv["orphans"])
            swept_at = None
            deadline = max(self.now(), healed_at + within)
            while inv["orphans"] and self.now() < deadline:
                await self.platform.clock.sleep(min(30.0, deadline - self.now()))
                inv = await self.inventory(verify=False)
            if first and not inv["orphans"]:
                swept_at = round(self.now(), 3)
                self.recording.event(self.now(), "orphans-swept", f"{first} orphan blobs swept by Cloud Controller")
            inv = await self.inventory(verify=True)
        except Exception as exc:  # noqa: BLE001 - no inventory, no verdict on blobs
            return check_blobs(
                {"error": f"{type(exc).__name__}: {exc}"}, orphans_swept_at=None, orphans_first=0, within=within
            )
        self.extra["blobs"] = inv
        return check_blobs(inv, orphans_swept_at=swept_at, orphans_first=first, within=within)

    async def app_integrity(self) -> list[dict[str, Any]]:
        """Each CC_DB app: nothing left mid-flight, and its droplet whole."""
        assert self.platform is not None
        inv = await self.inventory(verify=True)
        bad_keys = set(inv["missing"]) | set(inv["corrupt"])
        out = []
        for app in sorted(await self.db(ccdb.ListApps()), key=lambda a: a.name):
            problems = []
            interrupted = 0
            for build in await self.db(ccdb.ListBuilds(app.guid)):
                if build.state is BuildState.STAGING:
                    problems.append(f"build {build.guid} left STAGING")
                elif build.state is BuildState.FAILED and "interrupted" in (build.error or ""):
                    interrupted += 1
            for package in await self.db(ccdb.ListPackages(app.guid)):
                if package.state in (PackageState.AWAITING_UPLOAD, PackageState.PROCESSING_UPLOAD):
                    problems.append(f"package {package.guid} left {package.state.value}")
                if package.state is PackageState.READY and package.blob_key in bad_keys:
                    problems.append(f"package {package.guid}'s blob is missing or corrupt")
            droplet = None
            if app.droplet_guid is not None:
                droplet = await self.db(ccdb.GetDroplet(app.droplet_guid))
                if droplet.state is not DropletState.STAGED:
                    problems.append(f"current droplet {droplet.guid} is {droplet.state.value}")
                if droplet.blob_key is None or droplet.blob_key in bad_keys:
                    problems.append(f"current droplet {droplet.guid}'s blob is missing or corrupt")
            out.append(
                {
                    "name": app.name,
                    "state": app.state.value,
                    "droplet": app.droplet_guid,
                    "interrupted_builds": interrupted,
                    "problems": problems,
                }
            )
        return out

    # --- SIGKILL: a child process, killed; a new platform on what it left -----------------------------

    async def sigkill_then_restart(self, out: Path, results: Path) -> None:
        exp = self.exp
        kill_at = exp.kill_platform_at
        assert kill_at is not None
        mirror = out / "child.jsonl"
        mirror.unlink(missing_ok=True)
        killed, child_info = await _run_child_and_kill(exp, self.seed, out, results)
        self.extra["child"] = child_info
        child = Recording.read_mirror(mirror)
        child_info["samples"] = len(child.samples)
        self.recording = child
        if not killed:
            self.recording.event(
                kill_at, "platform", f"the child never reached the kill point: {child_info.get('problem')}"
            )
            self.results.append(
                CheckResult("kill-platform", "unknown", f"the platform was not killed: {child_info.get('problem')}")
            )
            return
        self.recording.event(kill_at, "kill-platform", "platform process killed (SIGKILL)", pid=child_info.get("pid"))
        self.recording.fault(
            {"t": kill_at, "action": "kill-platform", "label": "SIGKILL the platform", "duration": None}
        )
        for record in self.recording.commands:
            if record.outcome == "running":
                record.outcome = "interrupted"
                record.ended = kill_at
                record.error_line = "the platform process was killed"
        platform = await self.boot(clock_start=kill_at)
        try:
            self.recording.event(self.now(), "platform", "platform restarted on the same data directory")
            self.spawn(self.sampler(), "experiment:sampler")
            if exp.checks.retry_interrupted:
                await platform.settle(timeout=60.0)
                assert self.workload is not None
                for record in [r for r in self.recording.commands if r.outcome == "interrupted"]:
                    self.workload.start(record.action, record.app, list(record.argv), retry_of=record.seq)
            self.schedule(lambda t: t > kill_at)
            await self.finish()
        finally:
            await self.stop_tasks()
            await platform.stop()


async def _run_child_and_kill(exp: Experiment, seed: int, out: Path, results: Path) -> tuple[bool, dict[str, Any]]:
    """Start the child, SIGKILL it as soon as it reports the kill point."""
    argv = [
        sys.executable,
        str(RUN_PY),
        "--data-dir",
        str(out),  # the child's log goes beside its results
        "experiment",
        str(exp.path),
        "--seed",
        str(seed),
        "--results",
        str(results.resolve()),
        "--child",
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(RUN_PY.parent)
    )
    info: dict[str, Any] = {"pid": proc.pid, "argv": argv[1:]}
    assert proc.stdout is not None and proc.stderr is not None
    killed = False
    try:
        deadline = time.monotonic() + CHILD_START_WALL
        while True:
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                info["problem"] = f"no kill point within {CHILD_START_WALL:g} s of wall time"
                break
            if not line:
                info["problem"] = "the child exited before the kill point"
                break
            if line.decode().startswith(KILL_POINT):
                proc.send_signal(signal.SIGKILL)  # now: work in flight dies with it
                killed = True
                info["kill_line"] = line.decode().strip()
                break
    finally:
        if proc.returncode is None and not killed:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()
        stderr = (await proc.stderr.read()).decode(errors="replace").strip()
        info["returncode"] = proc.returncode
        if stderr:
            info["stderr"] = stderr[-2000:]
    return killed, info


async def _child_main(exp: Experiment, seed: int, results: Path) -> int:
    """The child of the SIGKILL experiment: run until the kill time, freeze
    the clock, say so, and wait to be killed."""
    out = run_dir(exp, seed, results)
    kill_at = exp.kill_platform_at
    if kill_at is None:
        print("this experiment has no kill-platform fault", file=sys.stderr)
        return 2
    with (out / "child.jsonl").open("w", encoding="utf-8") as mirror:
        run = _Run(exp, seed, out / "data", Recording(mirror=mirror))
        platform = await run.boot()
        run.spawn(run.sampler(), "experiment:sampler")
        run.schedule(lambda t: t <= kill_at)
        await run.sleep_until(kill_at)
        clock = platform.clock
        assert isinstance(clock, VirtualClock)
        clock.auto_advance = False  # time stops here; what is in flight goes on
        await run.take_sample()
        run.recording.event(kill_at, "kill-point", "the child stops its clock and waits for SIGKILL")
        # Rather die with I/O half done: wait (a little real time) for a
        # moment when some threaded I/O is in flight, then call for the kill.
        give_up = time.monotonic() + KILL_WAIT_FOR_IO
        while not clock.io_in_flight and time.monotonic() < give_up:
            await asyncio.sleep(0)
        _say(sys.stdout, f"{KILL_POINT} t={kill_at:g} pid={os.getpid()} io_in_flight={clock.io_in_flight}")
        await asyncio.sleep(CHILD_LINGER_WALL)  # real time: only the parent's SIGKILL should end this
    print("the parent never killed this child", file=sys.stderr)
    os._exit(3)


def _cells(system: Any) -> list[tuple[str, Any]]:
    """The live cell actors, by number (for observers that send no messages)."""
    found = []
    for name in system.names():
        if re.fullmatch(r"cell-\d+", name):
            actor = system.actor(name)
            if actor is not None:
                found.append((name, actor))
    return sorted(found, key=lambda item: int(item[0][5:]))


def _say(stream: IO[str], text: str) -> None:
    stream.write(text + "\n")
    stream.flush()
