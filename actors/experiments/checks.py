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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from actors.bbs.backoff import restart_delay
from actors.experiments.record import CommandRecord, Sample
from actors.experiments.schema import BackoffCheck, Checks

__all__ = [
    "CheckResult",
    "check_apps_intact",
    "check_blobs",
    "check_crash_backoff",
    "check_drain_capacity",
    "check_pushes_end",
    "check_recovery",
    "check_retries",
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
    details = {
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
    summary = (
        f"{total} commands: {len(succeeded)} succeeded, failed: {failures}; {len(hung)} hung"
        + (f", {len(interrupted)} interrupted by the kill" if interrupted else "")
    )
    if total == 0:
        return CheckResult("pushes_end", UNKNOWN, "no commands ran", details)
    problems = []
    if hung:
        problems.append(f"{len(hung)} never ended (first: {details['hung'][0]})")
    if unnamed:
        problems.append(f"{len(unnamed)} failed without a named error (first: {details['unnamed'][0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} failed with an error not in expect_failures (first: {details['unexpected'][0]})")
    if rate < checks.min_succeeded:
        problems.append(f"only {rate:.0%} succeeded, below min_succeeded {checks.min_succeeded:.0%}")
    if problems:
        return CheckResult("pushes_end", FAIL, summary + " -- " + "; ".join(problems), details)
    return CheckResult("pushes_end", PASS, summary, details)


def check_retries(records: Sequence[CommandRecord]) -> CheckResult:
    """Commands the kill interrupted, run again after the restart, succeed."""
    retries = [r for r in records if r.retry_of is not None]
    interrupted = [r for r in records if r.outcome == "interrupted"]
    details = {
        "interrupted": len(interrupted),
        "retried": [f"{r.action} {r.app}: {r.outcome}" + (f" ({r.error_line})" if r.error_line else "") for r in retries],
    }
    if not interrupted:
        return CheckResult("retry_interrupted", UNKNOWN, "the kill interrupted no command: nothing to retry", details)
    bad = [r for r in retries if r.outcome != "succeeded"]
    summary = f"{len(retries)} interrupted commands run again after the restart: {len(retries) - len(bad)} succeeded"
    if bad or len(retries) < len(interrupted):
        why = f"first failure: {bad[0].app}: {bad[0].error_line}" if bad else f"{len(interrupted) - len(retries)} not retried"
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
    short = [a for a in apps if not a["ok"]]
    details = {
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


def check_blobs(inventory: Mapping[str, Any], *, orphans_swept_at: float | None, orphans_first: int, within: float) -> CheckResult:
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
            "apps_intact", FAIL, f"{summary}; {len(broken)} not intact (first: {first['name']}: {first['problems'][0]})", details
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
                for a, b in zip(series, series[1:])
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
            "crash_backoff", UNKNOWN, f"saw {seen} crashes of one instance, fewer than min_crashes {spec.min_crashes}", details
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
    details = {
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
            "drain_capacity", FAIL, f"{len(below)} apps fell below desired - 1 during the drain (first: {app} {r}/{d} at t={t:g})", details
        )
    if stranded:
        cell, n = sorted(stranded.items())[0]
        return CheckResult("drain_capacity", FAIL, f"the evacuation never finished: {cell} still runs {n} instances", details)
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
