"""An experiment file, read and checked: `load_experiment(path) -> Experiment`.

A file is TOML (or YAML, by its `.yml`/`.yaml` extension) with these parts:

    name, description, seed, duration, sample_every
    [platform]      cells, zones, capacity, BBS timings, `break`
    [[workload]]    timed cf commands: push, scale, restart, ...
    [[faults]]      timed faults, one per entry, by the Faults API's names
    [heal]          when every fault is removed
    [checks]        what the platform promised, and the bounds

Anything the reader does not know (a key, an action, a value of the wrong
kind) is an `InvalidExperiment` naming where it is; a file is never run half
understood.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import yaml

from protocol.errors import PlatformError

__all__ = [
    "BREAKS",
    "DURATION_FAULTS",
    "FAULT_ACTIONS",
    "PUSH_FLAGS",
    "PUSH_OPTIONS",
    "TIMED_FAULTS",
    "WORKLOAD_ACTIONS",
    "BackoffCheck",
    "Checks",
    "Experiment",
    "ExperimentInUse",
    "FaultStep",
    "InvalidExperiment",
    "PlatformSpec",
    "WorkloadStep",
    "load_experiment",
    "parse_experiment",
]


class InvalidExperiment(PlatformError):
    """An experiment file that cannot be run as written (raised by `load_experiment`)."""

    code = "InvalidExperiment"


class ExperimentInUse(PlatformError):
    """Another run of the same experiment and seed holds its results folder."""

    code = "ExperimentInUse"


#: Recovery mechanisms an experiment may switch off on purpose, to prove
#: that its checks can fail.
BREAKS = ("convergence", "sync", "links")

# --- workload ----------------------------------------------------------------------------

PUSH_OPTIONS = {
    "path": "-p",
    "manifest": "-f",
    "instances": "-i",
    "memory": "-m",
    "disk": "-k",
    "command": "-c",
    "stack": "-s",
    "health_check_type": "-u",
    "timeout": "-t",
}
PUSH_FLAGS = {"no_start": "--no-start", "no_route": "--no-route", "random_route": "--random-route"}

#: action -> the options it takes (besides at, action, app, count, every).
WORKLOAD_ACTIONS: dict[str, frozenset[str]] = {
    "push": frozenset({*PUSH_OPTIONS, *PUSH_FLAGS, "buildpack", "buildpacks"}),
    "scale": frozenset({"instances", "memory", "disk"}),
    "restart": frozenset(),
    "restage": frozenset(),
    "stop": frozenset(),
    "start": frozenset(),
    "delete": frozenset(),
}
_WORKLOAD_COMMON = frozenset({"at", "action", "app", "count", "every"})

# --- faults ------------------------------------------------------------------------------

_MESSAGE_MATCH = frozenset({"from", "to", "type", "probability"})

#: action -> the options it takes (besides at, action, duration, label).
FAULT_ACTIONS: dict[str, frozenset[str]] = {
    "kill-cells": frozenset({"fraction", "count"}),
    "kill": frozenset({"actor"}),
    "pause": frozenset({"actor"}),
    "resume": frozenset({"actor"}),
    "drain": frozenset({"cell"}),
    "partition": frozenset({"groups", "one_way"}),
    "drop": _MESSAGE_MATCH,
    "duplicate": _MESSAGE_MATCH,
    "delay": _MESSAGE_MATCH | {"seconds"},
    "reorder": _MESSAGE_MATCH | {"seconds"},
    "blob-fail": frozenset({"ops", "probability"}),
    "blob-slow": frozenset({"ops", "seconds"}),
    "db-fail": frozenset({"ops", "probability"}),
    "db-slow": frozenset({"ops", "seconds"}),
    "corrupt-blob": frozenset({"key", "kind"}),
    "crash-storm": frozenset({"fraction"}),
    "kill-platform": frozenset(),
}
#: Faults that last (until `duration` passes or the heal).
TIMED_FAULTS = frozenset(
    {"pause", "partition", "drop", "duplicate", "delay", "reorder", "blob-fail", "blob-slow", "db-fail", "db-slow"}
)
#: Faults that may be given a `duration` (killed cells: how long they stay cut off).
DURATION_FAULTS = TIMED_FAULTS | {"kill-cells"}
_FAULT_COMMON = frozenset({"at", "action", "duration", "label", "repeat", "every"})

_TOP = frozenset(
    {"name", "description", "seed", "duration", "sample_every", "platform", "workload", "faults", "heal", "checks"}
)
_PLATFORM = frozenset(
    {
        "cells",
        "zones",
        "cell_memory_mb",
        "cell_disk_mb",
        "cell_containers",
        "staging_seconds",
        "convergence_interval",
        "presence_ttl",
        "break",
    }
)
_HEAL = frozenset({"at"})
_CHECKS = frozenset(
    {
        "recover_within",
        "recover_apps",
        "pushes_end",
        "push_deadline",
        "expect_failures",
        "min_succeeded",
        "views_agree",
        "views_within",
        "blobs_consistent",
        "orphans_within",
        "apps_intact",
        "retry_interrupted",
        "crash_backoff",
        "drain_capacity",
    }
)
_BACKOFF = frozenset({"app", "tolerance", "min_crashes"})
#: Bounds on what a file may ask for, so that a typo cannot take the machine:
#: any time (platform seconds), the samples of a run, the commands of one
#: workload entry, the cells.
MAX_SECONDS = 86_400.0
MAX_SAMPLES = 100_000
MAX_COUNT = 10_000
MAX_CELLS = 10_000
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclasses.dataclass(frozen=True, slots=True)
class PlatformSpec:
    cells: int = 4
    zones: int = 2
    cell_memory_mb: int = 8192
    cell_disk_mb: int = 32768
    cell_containers: int = 250
    staging_seconds: float | None = None
    convergence_interval: float | None = None
    presence_ttl: float | None = None
    breaks: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class WorkloadStep:
    """One `[[workload]]` entry: `count` commands, `every` seconds apart."""

    action: str
    at: float = 0.0
    app: str = "app-{i}"
    count: int = 1
    every: float = 0.0
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def times_and_apps(self) -> list[tuple[float, str]]:
        return [(self.at + k * self.every, self.app.replace("{i}", str(k + 1))) for k in range(self.count)]


@dataclasses.dataclass(frozen=True, slots=True)
class FaultStep:
    """One `[[faults]]` entry."""

    action: str
    at: float = 0.0
    duration: float | None = None
    label: str = ""
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class BackoffCheck:
    app: str = "*"
    tolerance: float = 5.0
    min_crashes: int = 5


@dataclasses.dataclass(frozen=True, slots=True)
class Checks:
    recover_within: float | None = None
    recover_apps: str = "*"
    pushes_end: bool = False
    push_deadline: float = 1800.0
    expect_failures: tuple[str, ...] | None = None
    # A floor on the commands that succeeded: a fraction (`0.8`) fails the
    # run below it; a count (`1`, the default when the workload pushes)
    # makes a run that achieved nothing UNKNOWN: its other checks judged nothing.
    min_succeeded: float = 0.0
    min_succeeded_count: int = 0
    # CC_DB, the BBS and the cells say the same thing after the heal.
    views_agree: bool = True
    views_within: float = 120.0
    blobs_consistent: bool = False
    orphans_within: float = 1800.0
    apps_intact: bool = False
    retry_interrupted: bool = False
    crash_backoff: BackoffCheck | None = None
    drain_capacity: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    duration: float
    path: Path
    description: str = ""
    seed: int = 0
    sample_every: float = 5.0
    platform: PlatformSpec = PlatformSpec()
    workload: tuple[WorkloadStep, ...] = ()
    faults: tuple[FaultStep, ...] = ()
    heal_at: float | None = None
    checks: Checks = Checks()

    @property
    def heal_time(self) -> float:
        """When every fault is removed: `[heal] at`, else the end of `duration`."""
        return self.duration if self.heal_at is None else self.heal_at

    @property
    def kill_platform_at(self) -> float | None:
        times = [f.at for f in self.faults if f.action == "kill-platform"]
        return min(times) if times else None

    def resolve(self, value: str) -> str:
        """A path in the file, relative to the file's own folder."""
        p = Path(value)
        return str(p if p.is_absolute() else (self.path.parent / p).resolve())


# --- reading -------------------------------------------------------------------------------


def load_experiment(path: str | Path) -> Experiment:
    """Read and check an experiment file; `InvalidExperiment` says what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidExperiment(f"{path}: no such experiment file") from None
    except UnicodeDecodeError:
        raise InvalidExperiment(f"{path}: not a text file (it is not UTF-8)") from None
    except OSError as exc:
        raise InvalidExperiment(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if path.suffix in (".yml", ".yaml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidExperiment(f"{path}: not valid YAML: {exc}") from None
    elif path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidExperiment(f"{path}: not valid TOML: {exc}") from None
    else:
        raise InvalidExperiment(f"{path}: an experiment file ends in .toml, .yml or .yaml")
    return parse_experiment(data, path)


def parse_experiment(data: Any, path: Path) -> Experiment:
    r = _Reader(path)
    top = r.table(data, "the file", _TOP)
    name = r.string(top, "name", "the file", required=True)
    if not _NAME.match(name):
        r.fail("the file", f"name {name!r} must be lower case letters, digits, '.', '_' or '-'")
    duration = r.number(top, "duration", "the file", required=True, positive=True)
    seed = r.integer(top, "seed", "the file", default=0, minimum=0)
    sample_every = r.number(top, "sample_every", "the file", default=5.0, positive=True)
    description = r.string(top, "description", "the file", default="")
    if duration / sample_every > MAX_SAMPLES:
        r.fail(
            "the file",
            f"sample_every {sample_every:g} takes {duration / sample_every:.0f} samples; at most {MAX_SAMPLES}",
        )
    platform = _platform(r, top.get("platform", {}))
    workload = tuple(_workload(r, entry, n) for n, entry in enumerate(r.array(top, "workload"), 1))
    faults = tuple(step for n, entry in enumerate(r.array(top, "faults"), 1) for step in _fault(r, entry, n, platform))
    heal = r.table(top.get("heal", {}), "[heal]", _HEAL)
    heal_at = r.number(heal, "at", "[heal]", default=None, minimum=0.0)
    _check_times(r, duration, heal_at, workload, faults)
    checks = _checks(r, top.get("checks", {}), pushes=any(w.action == "push" for w in workload))
    exp = Experiment(
        name=name,
        duration=duration,
        path=path.resolve(),
        description=description,
        seed=seed,
        sample_every=sample_every,
        platform=platform,
        workload=workload,
        faults=faults,
        heal_at=heal_at,
        checks=checks,
    )
    kills = [f for f in faults if f.action == "kill-platform"]
    if len(kills) > 1:
        r.fail("[[faults]]", "the platform process can be killed once per experiment")
    if checks.retry_interrupted and not kills:
        r.fail("[checks]", "retry_interrupted needs a kill-platform fault (nothing else interrupts a push)")
    for step in faults:
        if step.action == "drain" and step.options.get("cell") is not None:
            _cell_name(r, step.options["cell"], platform.cells, f"[[faults]] #{faults.index(step) + 1}")
    return exp


def _check_times(
    r: _Reader,
    duration: float,
    heal_at: float | None,
    workload: tuple[WorkloadStep, ...],
    faults: tuple[FaultStep, ...],
) -> None:
    """Nothing is scheduled where the run would silently skip it (after both
    the duration and the heal, when the checks have begun), and no lasting
    fault starts at or after the heal (nothing would remove it before the
    checks, which would then blame the platform for it)."""
    heal = duration if heal_at is None else heal_at
    end = max(duration, heal)
    for n, step in enumerate(workload, 1):
        last = step.at + (step.count - 1) * step.every
        if last > end:
            r.fail(f"[[workload]] #{n}", f"its last command (at {last:g}) comes after the run ends ({end:g})")
    for fault in faults:
        where = f"[[faults]] {fault.action} at {fault.at:g}"
        if fault.at > end:
            r.fail(where, f"comes after the run ends ({end:g}): it would never be injected")
        lasting = fault.action in TIMED_FAULTS or (fault.action == "kill-cells" and fault.duration is not None)
        if lasting and fault.at >= heal:
            r.fail(where, f"starts at or after the heal (at {heal:g}): nothing would remove it before the checks")


def _platform(r: _Reader, raw: Any) -> PlatformSpec:
    where = "[platform]"
    t = r.table(raw, where, _PLATFORM)
    breaks_raw = t.get("break", ())
    breaks = (breaks_raw,) if isinstance(breaks_raw, str) else breaks_raw
    if not isinstance(breaks, (list, tuple)) or not all(isinstance(b, str) for b in breaks):
        r.fail(where, "break must be a name or a list of names")
    for b in breaks:
        if b not in BREAKS:
            r.fail(where, f"unknown break {b!r}; expected one of: {', '.join(BREAKS)}")
    d = PlatformSpec()
    cells = r.integer(t, "cells", where, default=d.cells, minimum=1, maximum=MAX_CELLS)
    return PlatformSpec(
        cells=cells,
        zones=r.integer(t, "zones", where, default=d.zones, minimum=1, maximum=cells),
        cell_memory_mb=r.integer(t, "cell_memory_mb", where, default=d.cell_memory_mb, minimum=1),
        cell_disk_mb=r.integer(t, "cell_disk_mb", where, default=d.cell_disk_mb, minimum=1),
        cell_containers=r.integer(t, "cell_containers", where, default=d.cell_containers, minimum=1),
        staging_seconds=r.number(t, "staging_seconds", where, default=None, minimum=0.0),
        convergence_interval=r.number(t, "convergence_interval", where, default=None, positive=True),
        presence_ttl=r.number(t, "presence_ttl", where, default=None, positive=True),
        breaks=tuple(breaks),
    )


def _workload(r: _Reader, raw: Any, n: int) -> WorkloadStep:
    where = f"[[workload]] #{n}"
    if not isinstance(raw, Mapping):
        r.fail(where, "must be a table")
    action = r.string(raw, "action", where, required=True)
    if action not in WORKLOAD_ACTIONS:
        r.fail(where, f"unknown action {action!r}; expected one of: {', '.join(WORKLOAD_ACTIONS)}")
    allowed = _WORKLOAD_COMMON | WORKLOAD_ACTIONS[action]
    t = r.table(raw, where, allowed, what=f"{action} option")
    options: dict[str, Any] = {}
    for key in sorted(WORKLOAD_ACTIONS[action]):
        if key not in t:
            continue
        value = t[key]
        if key in PUSH_FLAGS:
            options[key] = r.boolean(t, key, where, default=False)
        elif key in ("instances",):
            options[key] = r.integer(t, key, where, minimum=0)
        elif key == "timeout":
            options[key] = r.integer(t, key, where, minimum=1)
        elif key in ("memory", "disk"):
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                r.fail(where, f"{key} must be megabytes (a number) or a size like '256M'")
            options[key] = f"{value}M" if isinstance(value, int) else value
        elif key == "buildpacks":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                r.fail(where, "buildpacks must be a list of names")
            options[key] = tuple(value)
        else:
            options[key] = r.string(t, key, where)
    app = r.string(t, "app", where, default="app-{i}")
    count = r.integer(t, "count", where, default=1, minimum=1, maximum=MAX_COUNT)
    if count > 1 and "{i}" not in app:
        r.fail(where, f"app {app!r} needs '{{i}}' to name {count} apps")
    return WorkloadStep(
        action=action,
        at=r.number(t, "at", where, default=0.0, minimum=0.0),
        app=app,
        count=count,
        every=r.number(t, "every", where, default=0.0, minimum=0.0),
        options=options,
    )


def _fault(r: _Reader, raw: Any, n: int, platform: PlatformSpec) -> list[FaultStep]:
    """One `[[faults]]` entry: `repeat` times, `every` seconds apart (a storm)."""
    step = _one_fault(r, raw, n)
    _check_names(r, step, f"[[faults]] #{n}", platform)
    where = f"[[faults]] #{n}"
    repeat = r.integer(raw, "repeat", where, default=1, minimum=1)
    every = r.number(raw, "every", where, default=None, positive=True)
    if repeat > 1 and every is None:
        r.fail(where, "repeat needs every (seconds between the repeats)")
    if repeat > 1 and step.action == "kill-platform":
        r.fail(where, "the platform process can be killed once per experiment")
    if repeat > MAX_COUNT:
        r.fail(where, f"repeat must be at most {MAX_COUNT}, not {repeat}")
    return [dataclasses.replace(step, at=step.at + k * (every or 0.0)) for k in range(repeat)]


def _one_fault(r: _Reader, raw: Any, n: int) -> FaultStep:
    where = f"[[faults]] #{n}"
    if not isinstance(raw, Mapping):
        r.fail(where, "must be a table")
    action = r.string(raw, "action", where, required=True)
    if action not in FAULT_ACTIONS:
        r.fail(where, f"unknown action {action!r}; expected one of: {', '.join(FAULT_ACTIONS)}")
    t = r.table(raw, where, _FAULT_COMMON | FAULT_ACTIONS[action], what=f"{action} option")
    duration = r.number(t, "duration", where, default=None, positive=True)
    if duration is not None and action not in DURATION_FAULTS:
        r.fail(where, f"duration does not apply to {action} (it happens at once)")
    options: dict[str, Any] = {}
    for key in ("fraction", "probability"):
        if key in t:
            # A fraction of cells or instances of 0 would do nothing: a mistake.
            options[key] = r.number(t, key, where, minimum=0.0, maximum=1.0, positive=key == "fraction")
    if "count" in t:
        options["count"] = r.integer(t, "count", where, minimum=1)
    if "seconds" in t:
        options["seconds"] = r.number(t, "seconds", where, minimum=0.0)
    for key in ("actor", "cell", "from", "to", "type", "ops", "key", "kind"):
        if key in t:
            options[key] = r.string(t, key, where)
    if "one_way" in t:
        options["one_way"] = r.boolean(t, "one_way", where)
    if action == "kill-cells":
        if ("fraction" in t) == ("count" in t):
            r.fail(where, "kill-cells takes either fraction or count")
    elif action in ("kill", "pause", "resume"):
        if "actor" not in t:
            r.fail(where, f"{action} needs actor (a name such as 'bbs' or 'cell-3')")
    elif action == "partition":
        groups = t.get("groups")
        if (
            not isinstance(groups, list)
            or len(groups) < 2
            or not all(isinstance(g, list) and g and all(isinstance(x, str) for x in g) for g in groups)
        ):
            r.fail(where, "partition needs groups: at least two lists of actor names or patterns")
        options["groups"] = tuple(tuple(g) for g in groups)
    elif action in ("delay", "reorder", "blob-slow", "db-slow"):
        if "seconds" not in t:
            r.fail(where, f"{action} needs seconds")
    elif action == "crash-storm":
        if "fraction" not in t:
            r.fail(where, "crash-storm needs fraction")
    elif action == "corrupt-blob":
        if "key" in t and "kind" in t:
            r.fail(where, "corrupt-blob takes key or kind, not both")
        if options.get("kind") not in (None, "package", "droplet"):
            r.fail(where, f"kind must be package or droplet, not {options['kind']!r}")
    return FaultStep(
        action=action,
        at=r.number(t, "at", where, default=0.0, minimum=0.0),
        duration=duration,
        label=r.string(t, "label", where, default=""),
        options=options,
    )


def _checks(r: _Reader, raw: Any, *, pushes: bool = False) -> Checks:
    where = "[checks]"
    t = r.table(raw, where, _CHECKS, what="check")
    floor = t.get("min_succeeded", 1 if pushes else 0)
    if isinstance(floor, bool) or not isinstance(floor, (int, float)):
        r.fail(where, f"min_succeeded must be a count (1) or a fraction (0.8), not {_kind(floor)}")
    if isinstance(floor, float) and not 0.0 <= floor <= 1.0:
        r.fail(where, f"min_succeeded as a fraction must be from 0 to 1, not {floor}")
    if isinstance(floor, int) and floor < 0:
        r.fail(where, f"min_succeeded must not be negative, not {floor}")
    expect = t.get("expect_failures")
    if expect is not None and (not isinstance(expect, list) or not all(isinstance(e, str) for e in expect)):
        r.fail(where, "expect_failures must be a list of error names such as 'StagingError'")
    backoff: BackoffCheck | None = None
    raw_backoff = t.get("crash_backoff")
    if raw_backoff is True:
        backoff = BackoffCheck()
    elif isinstance(raw_backoff, Mapping):
        b = r.table(raw_backoff, "[checks.crash_backoff]", _BACKOFF)
        backoff = BackoffCheck(
            app=r.string(b, "app", "[checks.crash_backoff]", default="*"),
            tolerance=r.number(b, "tolerance", "[checks.crash_backoff]", default=5.0, positive=True),
            min_crashes=r.integer(b, "min_crashes", "[checks.crash_backoff]", default=5, minimum=2),
        )
    elif raw_backoff not in (None, False):
        r.fail(where, "crash_backoff must be true or a table (app, tolerance, min_crashes)")
    d = Checks()
    return Checks(
        recover_within=r.number(t, "recover_within", where, default=None, minimum=0.0),
        recover_apps=r.string(t, "recover_apps", where, default="*"),
        pushes_end=r.boolean(t, "pushes_end", where, default=False),
        push_deadline=r.number(t, "push_deadline", where, default=d.push_deadline, positive=True),
        expect_failures=tuple(expect) if expect is not None else None,
        min_succeeded=floor if isinstance(floor, float) else 0.0,
        min_succeeded_count=floor if isinstance(floor, int) else 0,
        views_agree=r.boolean(t, "views_agree", where, default=True),
        views_within=r.number(t, "views_within", where, default=d.views_within, positive=True),
        blobs_consistent=r.boolean(t, "blobs_consistent", where, default=False),
        orphans_within=r.number(t, "orphans_within", where, default=d.orphans_within, minimum=0.0),
        apps_intact=r.boolean(t, "apps_intact", where, default=False),
        retry_interrupted=r.boolean(t, "retry_interrupted", where, default=False),
        crash_backoff=backoff,
        drain_capacity=r.boolean(t, "drain_capacity", where, default=False),
    )


def _check_names(r: _Reader, step: FaultStep, where: str, platform: PlatformSpec) -> None:
    """What a fault names must exist on the platform the file describes:
    actors (or patterns matching one), zones, message types, storage operations."""
    from actors.faults import BLOB_OPS, DB_OPS, message_types
    from actors.platform import actor_names

    names = actor_names(platform.cells)

    def target(name: str, what: str) -> None:
        if name == "*":
            return
        if name.startswith("zone:"):
            zones = [f"z{i}" for i in range(1, platform.zones + 1)]
            if name[5:] not in zones:
                r.fail(where, f"{what} {name!r} is no zone of this platform (zone:z1 .. zone:z{platform.zones})")
            return
        if not fnmatch.filter(names, name):
            r.fail(
                where,
                f"{what} {name!r} names no actor of this platform: {', '.join(names[: -platform.cells])}, "
                f"cell-1 .. cell-{platform.cells}",
            )

    o = step.options
    if step.action in ("kill", "pause", "resume"):
        if o["actor"] == "platform" and step.action == "kill":
            r.fail(where, "killing the root supervisor ends supervision; to kill the platform use kill-platform")
        if o["actor"] not in names:
            target(o["actor"], "actor")
            r.fail(where, f"actor {o['actor']!r} must be one actor's name, not a pattern")
    for group in o.get("groups", ()):
        for name in group:
            target(name, "partition member")
    for key in ("from", "to"):
        if key in o:
            target(o[key], key)
    if "type" in o and o["type"] != "*" and not fnmatch.filter(sorted(message_types()), o["type"]):
        r.fail(where, f"type {o['type']!r} matches no message type of the platform (such as Perform or DesireLRP)")
    if "ops" in o:
        known = BLOB_OPS if step.action.startswith("blob") else DB_OPS
        if not fnmatch.filter(known, o["ops"]):
            r.fail(where, f"ops {o['ops']!r} matches no operation ({', '.join(known)})")


def _cell_name(r: _Reader, name: str, cells: int, where: str) -> None:
    m = re.fullmatch(r"cell-(\d+)", name)
    if m is None or not 1 <= int(m.group(1)) <= cells:
        r.fail(where, f"no cell {name!r} on a platform of {cells} cells (cell-1 .. cell-{cells})")


class _Reader:
    """Typed access to the parsed file, failing with the entry's location."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> NoReturn:
        raise InvalidExperiment(f"{self.path}: {where}: {problem}")

    def table(self, raw: Any, where: str, allowed: frozenset[str], what: str = "key") -> Mapping[str, Any]:
        if not isinstance(raw, Mapping):
            self.fail(where, "must be a table")
        unknown = sorted(str(k) for k in raw if k not in allowed)
        if unknown:
            self.fail(where, f"unknown {what} {unknown[0]!r}; expected one of: {', '.join(sorted(allowed))}")
        return raw

    def array(self, top: Mapping[str, Any], key: str) -> list[Any]:
        value = top.get(key, [])
        if not isinstance(value, list):
            self.fail(f"[[{key}]]", "must be an array of tables")
        return value

    def _missing(self, t: Mapping[str, Any], key: str, where: str, required: bool, default: Any) -> tuple[bool, Any]:
        if key in t:
            return False, None
        if required:
            self.fail(where, f"{key} is required")
        return True, default

    def string(self, t: Mapping[str, Any], key: str, where: str, *, required: bool = False, default: Any = None) -> Any:
        absent, value = self._missing(t, key, where, required, default)
        if absent:
            return value
        if not isinstance(t[key], str):
            self.fail(where, f"{key} must be a string, not {_kind(t[key])}")
        return t[key]

    def boolean(self, t: Mapping[str, Any], key: str, where: str, *, default: Any = None) -> Any:
        absent, value = self._missing(t, key, where, False, default)
        if absent:
            return value
        if not isinstance(t[key], bool):
            self.fail(where, f"{key} must be true or false, not {_kind(t[key])}")
        return t[key]

    def integer(
        self,
        t: Mapping[str, Any],
        key: str,
        where: str,
        *,
        default: Any = None,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> Any:
        absent, value = self._missing(t, key, where, False, default)
        if absent:
            return value
        value = t[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"{key} must be a whole number, not {_kind(value)}")
        if minimum is not None and value < minimum:
            self.fail(where, f"{key} must be at least {minimum}, not {value}")
        if maximum is not None and value > maximum:
            self.fail(where, f"{key} must be at most {maximum}, not {value}")
        return value

    def number(
        self,
        t: Mapping[str, Any],
        key: str,
        where: str,
        *,
        required: bool = False,
        default: Any = None,
        minimum: float | None = None,
        maximum: float | None = MAX_SECONDS,
        positive: bool = False,
    ) -> Any:
        """A finite number (every number here is platform seconds, at most
        `MAX_SECONDS`, or a fraction, whose `maximum` is 1)."""
        absent, value = self._missing(t, key, where, required, default)
        if absent:
            return value
        value = t[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(where, f"{key} must be a number, not {_kind(value)}")
        if not math.isfinite(value):
            self.fail(where, f"{key} must be a finite number, not {value}")
        if positive and value <= 0:
            self.fail(where, f"{key} must be above 0, not {value}")
        if minimum is not None and value < minimum:
            self.fail(where, f"{key} must be at least {minimum:g}, not {value}")
        if maximum is not None and value > maximum:
            self.fail(where, f"{key} must be at most {maximum:g}, not {value}")
        return float(value)


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"
