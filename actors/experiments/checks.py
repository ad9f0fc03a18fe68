"""The checks: users' promises, judged on what a run recorded.

Each check is a plain function of plain data (command records, samples,
the final state gathered from CC_DB, the blob store and the BBS) and gives
a `CheckResult`: `pass`, `fail`, or `unknown` when the run did not produce
what the check needs. The verdict of a run is `invalid` if any check
failed, else `unknown` if any could not decide, else `valid`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from actors.bbs.backoff import restart_delay
from actors.experiments.record import CommandRecord, Sample
from actors.experiments.schema import BackoffCheck, Checks
from protocol.lrp import ActualLRP, ContainerInfo, DesiredLRP
from protocol.states import ActualLRPState

__all__ = [
    "CheckResult",
    "Views",
    "check_apps_intact",
    "check_blobs",
    "check_crash_backoff",
    "check_drain_capacity",
    "check_pushes_end",
    "check_recovery",
    "check_retries",
    "check_succeeded",
    "check_views_agree",
    "disagreements",
    "verdict",
]

PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"


@dataclasses.dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: str  # pass | fail | unknown
    summary: str
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "summary": self.summary, "details": dict(self.details)}


def verdict(results: Iterable[CheckResult]) -> str:
    statuses = {r.status for r in results}
    if FAIL in statuses:
        return "invalid"
    if UNKNOWN in statuses:
        return "unknown"
    return "valid"


# --- pushes ---------------------------------------------------------------------------------


def check_pushes_end(records: Sequence[CommandRecord], checks: Checks) -> CheckResult:
    """Every command ended: success or a named error, never a hang."""
    total = len(records)
    succeeded = [r for r in records if r.outcome == "succeeded"]
    hung = [r for r in records if r.outcome in ("hung", "running")]
    interrupted = [r for r in records if r.outcome == "interrupted"]
    failed = [r for r in records if r.outcome == "failed"]
    unnamed = [r for r in failed if not r.error]
    by_error: dict[str, int] = {}
    for r in failed:
        by_error[r.error or "unnamed"] = by_error.get(r.error or "unnamed", 0) + 1
    allowed = checks.expect_failures
    unexpected = [r for r in failed if r.error and allowed is not None and r.error not in allowed]
    finished = total - len(interrupted)
    rate = len(succeeded) / finished if finished else 1.0
    details: dict[str, Any] = {
        "total": total,
        "succeeded": len(succeeded),
        "failed": dict(sorted(by_error.items())),
        "hung": [f"{r.action} {r.app}" for r in hung],
        "interrupted": [f"{r.action} {r.app}" for r in interrupted],
        "unnamed": [f"{r.action} {r.app}: {r.error_line}" for r in unnamed],
        "unexpected": [f"{r.action} {r.app}: {r.error_line}" for r in unexpected],
        "success_rate": round(rate, 3),
    }
    failures = ", ".join(f"{n} {name}" for name, n in sorted(by_error.items())) or "none"
    summary = f"{total} commands: {len(succeeded)} succeeded, failed: {failures}; {len(hung)} hung" + (
        f", {len(interrupted)} interrupted by the kill" if interrupted else ""
    )
    if total == 0:
        return CheckResult("pushes_end", UNKNOWN, "no commands ran", details)
    problems = []
    if hung:
        problems.append(f"{len(hung)} never ended (first: {details['hung'][0]})")
    if unnamed:
        problems.append(f"{len(unnamed)} failed without a named error (first: {details['unnamed'][0]})")
    if unexpected:
        problems.append(
            f"{len(unexpected)} failed with an error not in expect_failures (first: {details['unexpected'][0]})"
        )
    if rate < checks.min_succeeded:
        problems.append(f"only {rate:.0%} succeeded, below min_succeeded {checks.min_succeeded:.0%}")
    if problems:
        return CheckResult("pushes_end", FAIL, summary + " -- " + "; ".join(problems), details)
    return CheckResult("pushes_end", PASS, summary, details)


def check_succeeded(records: Sequence[CommandRecord], checks: Checks) -> CheckResult | None:
    """The workload achieved something: a run where no command succeeded
    (and the file did not say that was fine, `min_succeeded = 0`) gave every
    other check nothing to judge, so its verdict cannot be VALID."""
    floor = checks.min_succeeded_count
    if not floor or not records:
        return None
    # A workload that pushes is judged by its pushes: deleting or stopping
    # an app that was never pushed succeeds (cf says so and exits 0), and
    # must not make a run whose pushes all failed look like it did something.
    pushes = [r for r in records if r.action == "push"]
    judged = pushes or list(records)
    what = "pushes" if pushes else "commands"
    succeeded = sum(1 for r in judged if r.outcome == "succeeded")
    details = {"succeeded": succeeded, "min_succeeded": floor, what: len(judged), "commands": len(records)}
    summary = f"{succeeded} of {len(judged)} {what} succeeded (at least {floor} wanted)"
    if succeeded >= floor:
        return CheckResult("min_succeeded", PASS, summary, details)
    if succeeded == 0:
        return CheckResult(
            "min_succeeded",
            UNKNOWN,
            summary + ": nothing the workload did succeeded, so the other checks judged nothing",
            details,
        )
    return CheckResult("min_succeeded", FAIL, summary, details)


def check_retries(records: Sequence[CommandRecord]) -> CheckResult:
    """Commands the kill interrupted, run again after the restart, succeed."""
    retries = [r for r in records if r.retry_of is not None]
    interrupted = [r for r in records if r.outcome == "interrupted"]
    details = {
        "interrupted": len(interrupted),
        "retried": [
            f"{r.action} {r.app}: {r.outcome}" + (f" ({r.error_line})" if r.error_line else "") for r in retries
        ],
    }
    if not interrupted:
        return CheckResult("retry_interrupted", UNKNOWN, "the kill interrupted no command: nothing to retry", details)
    bad = [r for r in retries if r.outcome != "succeeded"]
    summary = f"{len(retries)} interrupted commands run again after the restart: {len(retries) - len(bad)} succeeded"
    if bad or len(retries) < len(interrupted):
        why = (
            f"first failure: {bad[0].app}: {bad[0].error_line}"
            if bad
            else f"{len(interrupted) - len(retries)} not retried"
        )
        return CheckResult("retry_interrupted", FAIL, f"{summary}; {why}", details)
    return CheckResult("retry_interrupted", PASS, summary, details)


# --- recovery ----------------------------------------------------------------------------------


def check_recovery(
    *,
    healed_at: float,
    within: float,
    recovered_at: float | None,
    final: Sequence[Mapping[str, Any]],
    pattern: str = "*",
) -> CheckResult:
    """After healing, every started app runs its desired instances within the bound (and still does at the end)."""
    apps = [a for a in final if fnmatch.fnmatchcase(a["name"], pattern)]
    if not apps and pattern != "*":
        # A pattern that names no started app is most likely a typo.
        return CheckResult(
            "recover_within",
            UNKNOWN,
            f"no started app matches recover_apps {pattern!r} at the end: the check judged nothing",
            {"healed_at": healed_at, "bound": within, "apps": 0},
        )
    short = [a for a in apps if not a["ok"]]
    details: dict[str, Any] = {
        "healed_at": healed_at,
        "bound": within,
        "recovered_at": recovered_at,
        "time_to_recover": None if recovered_at is None else round(recovered_at - healed_at, 3),
        "apps": len(apps),
        "short_at_end": [f"{a['name']}: {a['running']}/{a['desired']} running" for a in short],
    }
    if recovered_at is None:
        first = details["short_at_end"][0] if short else "never all at once"
        return CheckResult(
            "recover_within",
            FAIL,
            f"not every started app ran its desired instances within {within:g} s of healing "
            f"({len(short)} of {len(apps)} short at the end; first: {first})",
            details,
        )
    if short:
        return CheckResult(
            "recover_within",
            FAIL,
            f"recovered {recovered_at - healed_at:.1f} s after healing but fell short again by the end "
            f"(first: {details['short_at_end'][0]})",
            details,
        )
    return CheckResult(
        "recover_within",
        PASS,
        f"all {len(apps)} started apps ran their desired instances {recovered_at - healed_at:.1f} s after healing "
        f"(bound {within:g} s)",
        details,
    )


# --- blobs -------------------------------------------------------------------------------------


def check_blobs(
    inventory: Mapping[str, Any], *, orphans_swept_at: float | None, orphans_first: int, within: float
) -> CheckResult:
    """CC_DB's blobs are all there and verify; no orphan outlives the reaper's bound."""
    missing = list(inventory.get("missing", ()))
    corrupt = list(inventory.get("corrupt", ()))
    orphans = list(inventory.get("orphans", ()))
    details = {
        "referenced": inventory.get("referenced", 0),
        "held": inventory.get("held", 0),
        "missing": missing,
        "corrupt": corrupt,
        "orphans": orphans,
        "orphans_after_heal": orphans_first,
        "orphans_swept_at": orphans_swept_at,
    }
    if "error" in inventory:
        return CheckResult("blobs_consistent", UNKNOWN, f"could not take the inventory: {inventory['error']}", details)
    head = (
        f"{details['referenced']} blobs referenced by CC_DB, {details['held']} held: "
        f"{len(missing)} missing, {len(corrupt)} corrupt, {len(orphans)} orphaned"
    )
    if orphans_first:
        head += f" ({orphans_first} orphans after healing, " + (
            "all swept)" if not orphans else f"not swept within {within:g} s)"
        )
    if missing or corrupt or orphans:
        return CheckResult("blobs_consistent", FAIL, head, details)
    return CheckResult("blobs_consistent", PASS, head, details)


def check_apps_intact(apps: Sequence[Mapping[str, Any]]) -> CheckResult:
    """Every app is absent or intact: nothing left mid-flight, its droplet whole."""
    broken = [a for a in apps if a["problems"]]
    details = {
        "apps": len(apps),
        "with_droplet": sum(1 for a in apps if a.get("droplet")),
        "broken": {a["name"]: a["problems"] for a in broken},
        "interrupted_builds": sum(int(a.get("interrupted_builds", 0)) for a in apps),
    }
    summary = f"{len(apps)} apps in CC_DB, {details['with_droplet']} with a droplet"
    if details["interrupted_builds"]:
        summary += f", {details['interrupted_builds']} builds failed as interrupted by the restart"
    if broken:
        first = broken[0]
        return CheckResult(
            "apps_intact",
            FAIL,
            f"{summary}; {len(broken)} not intact (first: {first['name']}: {first['problems'][0]})",
            details,
        )
    return CheckResult("apps_intact", PASS, summary + "; every one intact", details)


# --- crash backoff ---------------------------------------------------------------------------------


def check_crash_backoff(crashes: Mapping[str, Sequence[Mapping[str, Any]]], spec: BackoffCheck) -> CheckResult:
    """Restart gaps follow Diego's schedule: crash c is followed, after the
    instance's own run time, by a restart delay of 0, 0, 30, 60, 120 ... s.

    `crashes` maps an app name to its `audit.app.process.crash` events
    (index, crash_count, crash_timestamp). The run time (start to crash) is
    taken from the gaps after immediate restarts; every gap must be that
    plus the schedule's delay, within `tolerance`.
    """
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    seen = 0
    for app, events in sorted(crashes.items()):
        if not fnmatch.fnmatchcase(app, spec.app):
            continue
        by_index: dict[int, list[Mapping[str, Any]]] = {}
        for e in events:
            by_index.setdefault(int(e["index"]), []).append(e)
        for index, series in sorted(by_index.items()):
            series = sorted(series, key=lambda e: (e["crash_timestamp"], e["crash_count"]))
            seen = max(seen, len(series))
            gaps = [
                (a["crash_count"], b["crash_timestamp"] - a["crash_timestamp"], b["crash_count"])
                for a, b in itertools.pairwise(series)
            ]
            immediate = [gap for count, gap, _ in gaps if restart_delay(count) == 0]
            if not immediate:
                problems.append(f"{app}#{index}: no immediate restart seen to measure the run time by")
                continue
            run = min(immediate)
            for count, gap, next_count in gaps:
                delay = restart_delay(count)
                expected = None if delay is None else delay + run
                ok = expected is not None and abs(gap - expected) <= spec.tolerance and next_count == count + 1
                rows.append(
                    {
                        "app": app,
                        "index": index,
                        "crash": count,
                        "delay": delay,
                        "gap": round(gap, 3),
                        "expected": None if expected is None else round(expected, 3),
                        "ok": ok,
                    }
                )
                if not ok:
                    if next_count != count + 1:
                        problems.append(f"{app}#{index}: crash count went {count} -> {next_count}")
                    else:
                        problems.append(
                            f"{app}#{index}: after crash {count} the next came {gap:.1f} s later, "
                            f"expected {expected if expected is None else round(expected, 1)} s"
                        )
    details = {"gaps": rows, "tolerance": spec.tolerance, "crashes_seen": seen}
    if seen < spec.min_crashes:
        return CheckResult(
            "crash_backoff",
            UNKNOWN,
            f"saw {seen} crashes of one instance, fewer than min_crashes {spec.min_crashes}",
            details,
        )
    schedule = ", ".join(f"{r['gap']:g}" for r in rows[:8])
    if problems:
        return CheckResult("crash_backoff", FAIL, f"{len(problems)} gaps off schedule; first: {problems[0]}", details)
    return CheckResult(
        "crash_backoff",
        PASS,
        f"{len(rows)} restart gaps follow 0, 0, 30, 60, 120 ... s plus the run time (gaps {schedule} ...)",
        details,
    )


# --- drain -------------------------------------------------------------------------------------------


def check_drain_capacity(
    samples: Sequence[Sample], drains: Sequence[Mapping[str, Any]], left: Mapping[str, int] | None = None
) -> CheckResult:
    """While a cell drains, no app that was fully running drops below
    desired - 1; by the end the drained cells run nothing (`left`: instances
    still running on each drained cell)."""
    if not drains:
        return CheckResult("drain_capacity", UNKNOWN, "no drain happened", {})
    start = min(d["t"] for d in drains)
    before = [s for s in samples if s.t <= start]
    during = [s for s in samples if s.t >= start]
    if not before or not during:
        return CheckResult("drain_capacity", UNKNOWN, "no samples around the drain", {})
    full = {app for app, (desired, running) in before[-1].apps.items() if desired and running >= desired}
    worst: dict[str, tuple[int, int, float]] = {}
    for s in during:
        for app in full:
            desired, running = s.apps.get(app, (0, 0))
            if desired and desired == before[-1].apps[app][0]:
                short = desired - running
                if app not in worst or short > worst[app][0] - worst[app][1]:
                    worst[app] = (desired, running, s.t)
    below = {app: w for app, w in worst.items() if w[1] < w[0] - 1}
    moved = sum(int(d.get("moving", 0)) for d in drains)
    details: dict[str, Any] = {
        "drained": [d.get("cell") for d in drains],
        "instances_moved": moved,
        "apps_watched": len(full),
        "samples": len(during),
        "lowest": {app: {"desired": d, "running": r, "t": t} for app, (d, r, t) in sorted(worst.items())},
        "left_on_drained_cells": dict(left or {}),
        "emptied_at": {
            str(d.get("cell")): next((s.t for s in during if s.cells.get(str(d.get("cell")), 1) == 0), None)
            for d in drains
        },
    }
    stranded = {cell: n for cell, n in (left or {}).items() if n}
    if moved == 0:
        return CheckResult("drain_capacity", UNKNOWN, "the drained cell ran no instances", details)
    if below:
        app, (d, r, t) = sorted(below.items())[0]
        return CheckResult(
            "drain_capacity",
            FAIL,
            f"{len(below)} apps fell below desired - 1 during the drain (first: {app} {r}/{d} at t={t:g})",
            details,
        )
    if stranded:
        cell, n = sorted(stranded.items())[0]
        return CheckResult(
            "drain_capacity", FAIL, f"the evacuation never finished: {cell} still runs {n} instances", details
        )
    dips = sum(1 for d, r, _ in worst.values() if r < d)
    emptied = ", ".join(f"{c} empty at t={t:g}" for c, t in details["emptied_at"].items() if t is not None)
    return CheckResult(
        "drain_capacity",
        PASS,
        f"{moved} instances moved off {', '.join(str(c) for c in details['drained'])}"
        + (f" ({emptied})" if emptied else "")
        + f"; {len(full)} apps never below desired - 1 ({dips} dipped by one)",
        details,
    )


# --- the three views ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Views:
    """What CC_DB, the BBS and the cells each say, read at one quiet moment."""

    apps: Mapping[str, tuple[str, str]]  # CC_DB: app guid -> (name, STARTED | STOPPED)
    expected: Mapping[str, DesiredLRP]  # CC_DB: the desired LRP each started app should have
    desired: Sequence[DesiredLRP]  # the BBS's desired LRPs
    actuals: Sequence[ActualLRP]  # the BBS's actual LRPs
    containers: Sequence[ContainerInfo]  # every cell's containers
    unreachable: Sequence[str] = ()  # cells that did not answer


def disagreements(views: Views) -> list[str]:
    """Every way the three views differ, in words (empty: they agree)."""
    problems: list[str] = []
    by_app: dict[str, list[DesiredLRP]] = {}
    lrp: DesiredLRP | None
    for lrp in views.desired:
        by_app.setdefault(lrp.app_guid, []).append(lrp)
    lrps = {lrp.process_guid: lrp for lrp in views.desired}
    # CC_DB against the BBS: what should run.
    for app_guid, want in sorted(views.expected.items(), key=lambda kv: kv[1].app_name):
        name = want.app_name
        have = by_app.get(app_guid, [])
        if not have:
            problems.append(f"{name}: started in CC_DB, but the BBS desires no LRP for it")
            continue
        if len(have) > 1:
            problems.append(
                f"{name}: the BBS desires {len(have)} LRPs for it ({', '.join(x.process_guid for x in have)})"
            )
        lrp = next((x for x in have if x.process_guid == want.process_guid), None)
        if lrp is None:
            problems.append(
                f"{name}: the BBS runs an old version ({have[0].process_guid}, CC_DB's is {want.process_guid})"
            )
            lrp = have[0]
        for field, what in (
            ("instances", "instances"),
            ("memory_mb", "MB of memory"),
            ("disk_mb", "MB of disk"),
        ):
            if getattr(lrp, field) != getattr(want, field):
                problems.append(f"{name}: CC_DB wants {getattr(want, field)} {what}, the BBS {getattr(lrp, field)}")
        if lrp.droplet_key != want.droplet_key:
            problems.append(
                f"{name}: the BBS runs droplet {_short(lrp.droplet_key)}, CC_DB's current one is {_short(want.droplet_key)}"
            )
        for field in (
            "start_command",
            "health_check_type",
            "health_check_http_endpoint",
            "health_check_timeout_s",
            "env",
            "rootfs",
        ):
            if getattr(lrp, field) != getattr(want, field):
                problems.append(f"{name}: the BBS's {field} differs from CC_DB's")
    for app_guid, have in sorted(by_app.items(), key=lambda kv: kv[1][0].app_name):
        if app_guid in views.expected:
            continue
        name, state = views.apps.get(app_guid, (have[0].app_name, "DELETED"))
        what = {"DELETED": "deleted", "STOPPED": "stopped"}.get(state, "not staged")
        for lrp in have:
            problems.append(f"{name}: the BBS desires {lrp.process_guid} for an app that is {what} in CC_DB")
    # The BBS's actual LRPs against the cells' containers: what does run.
    on_cells: dict[tuple[str, int], list[ContainerInfo]] = {}
    for c in views.containers:
        on_cells.setdefault((c.process_guid, c.index), []).append(c)
    placed = {}
    for a in views.actuals:
        lrp = lrps.get(a.process_guid)
        name = lrp.app_name if lrp is not None else a.process_guid
        if lrp is None:
            problems.append(f"{name}#{a.index}: the BBS has an actual LRP with no desired LRP")
            continue
        if a.index >= lrp.instances:
            problems.append(f"{name}#{a.index}: the BBS keeps an actual LRP past its {lrp.instances} instances")
        if a.state in (ActualLRPState.RUNNING, ActualLRPState.CLAIMED) and a.cell_id is not None:
            placed[(a.process_guid, a.index)] = a
            if a.cell_id in views.unreachable:
                continue
            here = [c for c in on_cells.get((a.process_guid, a.index), []) if c.cell_id == a.cell_id]
            if not here:
                problems.append(f"{name}#{a.index}: the BBS says it runs on {a.cell_id}, which holds no such container")
            elif a.state is ActualLRPState.RUNNING and a.instance_guid and here[0].instance_guid != a.instance_guid:
                problems.append(
                    f"{name}#{a.index}: {a.cell_id} runs instance {here[0].instance_guid}, the BBS knows {a.instance_guid}"
                )
    for (process_guid, index), held in sorted(on_cells.items()):
        lrp = lrps.get(process_guid)
        name = lrp.app_name if lrp is not None else process_guid
        cells = sorted(c.cell_id for c in held)
        if len(held) > 1:
            problems.append(f"{name}#{index}: one instance on {len(held)} cells ({', '.join(cells)})")
        if lrp is None or index >= lrp.instances:
            problems.append(f"{name}#{index}: a container on {', '.join(cells)} that nobody desires")
            continue
        actual = placed.get((process_guid, index))
        for c in held:
            if actual is None or actual.cell_id != c.cell_id:
                if len(held) == 1:
                    problems.append(f"{name}#{index}: {c.cell_id} runs it, but the BBS does not know it there")
            if c.droplet_key is not None and c.droplet_key != lrp.droplet_key:
                problems.append(
                    f"{name}#{index}: {c.cell_id} runs droplet {_short(c.droplet_key)}, the LRP's is {_short(lrp.droplet_key)}"
                )
            if c.memory_mb != lrp.memory_mb:
                problems.append(
                    f"{name}#{index}: {c.cell_id}'s container has {c.memory_mb} MB, the LRP {lrp.memory_mb} MB"
                )
    return problems


def _short(key: str | None) -> str:
    return "(none)" if key is None else key[:12]


def check_views_agree(
    found: Sequence[str], *, agreed_at: float | None, since: float, within: float, apps: int, error: str | None = None
) -> CheckResult:
    """After the heal, CC_DB, the BBS and the cells agree about every app
    (which run, how many instances, with which memory, disk and droplet),
    and nothing runs that nobody desires."""
    details = {"agreed_at": agreed_at, "bound": within, "apps": apps, "disagreements": list(found[:50])}
    if error is not None:
        return CheckResult("views_agree", UNKNOWN, f"could not read the views: {error}", details)
    if agreed_at is None:
        return CheckResult(
            "views_agree",
            FAIL,
            f"{len(found)} disagreements between CC_DB, the BBS and the cells {within:g} s after healing "
            f"(first: {found[0] if found else '?'})",
            details,
        )
    return CheckResult(
        "views_agree",
        PASS,
        f"CC_DB, the BBS and the cells agree about all {apps} apps ({agreed_at - since:.1f} s after healing)",
        details,
    )
