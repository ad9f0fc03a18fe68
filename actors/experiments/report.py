"""The report of a run: a JSON document, a picture and a page.

`build_report` gathers what the run recorded and what the checks found;
`write_report` puts `report.json`, `timeline.svg` and `report.html` in the
run's folder; `print_summary` is what the terminal shows, ending with the
command that repeats the run.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from actors.experiments.checks import CheckResult
from actors.experiments.picture import timeline_svg
from actors.experiments.record import Recording, Sample
from actors.experiments.schema import Experiment
from actors.experiments.workload import summarize

__all__ = ["build_report", "print_summary", "write_report"]

STAT_KEYS = ("sent", "delivered", "dropped", "duplicated", "delayed", "dead_letters")


def _statistics(samples: Sequence[Sample], child_samples: int | None) -> dict[str, int]:
    """Message counts of the run; across a SIGKILL, both processes' added
    (the first `child_samples` samples are the killed process's)."""
    total = dict.fromkeys(STAT_KEYS, 0)
    if not samples:
        return total
    segments = [samples]
    if child_samples is not None:
        segments = [samples[:child_samples], samples[child_samples:]]
    for segment in segments:
        if segment:
            for key in STAT_KEYS:
                total[key] += int(segment[-1].stats.get(key, 0))
    return total


def _app_series(samples: Sequence[Sample]) -> dict[str, list[list[float]]]:
    """Per app, [t, desired, running] whenever either changed."""
    series: dict[str, list[list[float]]] = {}
    last: dict[str, tuple[int, int]] = {}
    for s in samples:
        for app in set(last) | set(s.apps):
            now = tuple(s.apps.get(app, (0, 0)))
            if last.get(app) != now:
                series.setdefault(app, []).append([s.t, now[0], now[1]])
                last[app] = now  # type: ignore[assignment]
    return dict(sorted(series.items()))


def _shortfall(samples: Sequence[Sample]) -> dict[str, Any] | None:
    """The deepest drop of running instances below desired, and when it was made good."""
    worst = None
    for n, s in enumerate(samples):
        short = s.desired - s.running
        if short > 0 and (worst is None or short > worst[0]):
            worst = (short, n)
    if worst is None:
        return None
    short, n = worst
    restored = next((s.t for s in samples[n:] if s.running >= s.desired), None)
    return {"instances": short, "at": samples[n].t, "restored_at": restored}


def _deepest_mailboxes(samples: Sequence[Sample]) -> dict[str, dict[str, float]]:
    """Per actor, the longest queue a sample saw (10 or more), and when."""
    deepest: dict[str, dict[str, float]] = {}
    for s in samples:
        for actor, depth in s.queued.items():
            if actor not in deepest or depth > deepest[actor]["depth"]:
                deepest[actor] = {"depth": depth, "t": s.t}
    return dict(sorted(deepest.items(), key=lambda kv: -kv[1]["depth"]))


def build_report(
    exp: Experiment,
    seed: int,
    recording: Recording,
    results: Sequence[CheckResult],
    verdict: str,
    *,
    extra: dict[str, Any],
    wall_seconds: float,
    source: str,
) -> dict[str, Any]:
    samples = recording.samples
    child_samples = (extra.get("child") or {}).get("samples")
    recover = next((r for r in results if r.name == "recover_within"), None)
    p = exp.platform
    return {
        "experiment": exp.name,
        "description": exp.description,
        "file": source,
        "seed": seed,
        "verdict": verdict,
        "exit_code": {"valid": 0, "invalid": 1, "unknown": 2}[verdict],
        "reproduce": f"python run.py experiment {shlex.quote(source)} --seed {seed}",
        "platform": {
            "cells": p.cells,
            "zones": p.zones,
            "cell_memory_mb": p.cell_memory_mb,
            "cell_disk_mb": p.cell_disk_mb,
            "cell_containers": p.cell_containers,
            "breaks": list(p.breaks),
        },
        "duration": exp.duration,
        "platform_seconds": max([s.t for s in samples] + [e["t"] for e in recording.timeline] + [0.0]),
        "wall_seconds": round(wall_seconds, 3),
        "checks": [r.as_dict() for r in results],
        "pushes": {**summarize(recording.commands), "records": [c.as_dict() for c in recording.commands]},
        "recovery": {
            "healed_at": exp.heal_time,
            "bound": exp.checks.recover_within,
            "recovered_at": recover.details.get("recovered_at") if recover else None,
            "time_to_recover": recover.details.get("time_to_recover") if recover else None,
            "largest_shortfall": _shortfall(samples),
        },
        "apps": extra.get("apps", []),
        "blobs": extra.get("blobs"),
        "crashes": extra.get("crashes"),
        "child": extra.get("child"),
        "statistics": _statistics(samples, child_samples),
        "deepest_mailboxes": _deepest_mailboxes(samples),
        "faults": recording.faults,
        "timeline": recording.timeline,
        "samples": [{k: v for k, v in s.as_dict().items() if k not in ("apps",)} for s in samples],
        "app_series": _app_series(samples),
    }


#: What differs between two runs of one seed: wall time, the child's pid. It
#: goes to `wall.json`, so `report.json` repeats byte for byte.
VOLATILE = ("wall_seconds",)


def write_report(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stable = {k: v for k, v in report.items() if k not in VOLATILE}
    (out / "report.json").write_text(json.dumps(stable, indent=2, default=str) + "\n", encoding="utf-8")
    volatile = {k: report[k] for k in VOLATILE if k in report}
    (out / "wall.json").write_text(json.dumps(volatile, indent=2, default=str) + "\n", encoding="utf-8")
    svg = timeline_svg(stable)
    (out / "timeline.svg").write_text(svg + "\n", encoding="utf-8")
    (out / "report.html").write_text(_html(stable, svg), encoding="utf-8")


def print_summary(report: dict[str, Any], out: Callable[[str], None]) -> None:
    out(f"experiment {report['experiment']} (seed {report['seed']}): {report['verdict'].upper()}")
    width = max([len(c["name"]) for c in report["checks"]] + [8])
    for c in report["checks"]:
        out(f"  {c['name'].ljust(width)}  {c['status'].ljust(7)}  {c['summary']}")
    s = report["statistics"]
    out(
        f"messages: sent {s['sent']}, delivered {s['delivered']}, dropped {s['dropped']}, "
        f"duplicated {s['duplicated']}, delayed {s['delayed']}, dead letters {s['dead_letters']}"
    )
    queues = report.get("deepest_mailboxes") or {}
    if queues:
        out(
            "deepest mailboxes: "
            + ", ".join(f"{a} {q['depth']:g} at t={q['t']:g}" for a, q in list(queues.items())[:3])
        )
    gap = report["recovery"].get("largest_shortfall")
    if gap:
        back = f"made good at t={gap['restored_at']:g}" if gap["restored_at"] is not None else "never made good"
        noun = "instance" if gap["instances"] == 1 else "instances"
        out(f"largest shortfall: {gap['instances']} {noun} below desired at t={gap['at']:g}, {back}")
    out(f"platform time {report['platform_seconds']:g} s in {report['wall_seconds']:.1f} s of wall time")
    folder = Path(report.get("folder", ""))
    out(f"report: {folder / 'report.json'}, {folder / 'report.html'}, {folder / 'timeline.svg'}")
    out(f"reproduce: {report['reproduce']}")


# --- the page ---------------------------------------------------------------------------------------

_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 2em; color: #222; max-width: 1000px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
.verdict { padding: 0.2em 0.6em; border-radius: 4px; color: white; }
.valid { background: #2a9d8f; } .invalid { background: #bc4b51; } .unknown { background: #e9c46a; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; }
.pass { color: #2a9d8f; font-weight: bold; } .fail { color: #bc4b51; font-weight: bold; } .unknown-s { color: #b08900; font-weight: bold; }
code { background: #f3f3f3; padding: 1px 4px; }
"""


def _table(rows: Sequence[Sequence[Any]], head: Sequence[str]) -> str:
    cells = "".join(f"<th>{escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _html(report: dict[str, Any], svg: str) -> str:
    v = report["verdict"]
    checks = _table(
        [
            (
                escape(c["name"]),
                f'<span class="{c["status"] if c["status"] != "unknown" else "unknown-s"}">{c["status"]}</span>',
                escape(c["summary"]),
            )
            for c in report["checks"]
        ],
        ("check", "result", "what it found"),
    )
    p = report["pushes"]
    failed = ", ".join(f"{escape(k)}: {n}" for k, n in sorted(p["failed"].items())) or "none"
    pushes = (
        f"<p>{p['total']} commands: {p['succeeded']} succeeded; failed by error: {failed}; "
        f"{p['hung']} hung; {p['interrupted']} interrupted.</p>"
    )
    problem_rows = [
        (
            escape(r["action"]),
            escape(r["app"]),
            f"{r['started']:g}",
            "" if r["ended"] is None else f"{r['ended']:g}",
            escape(r["outcome"]),
            escape(r["error_line"]),
        )
        for r in p["records"]
        if r["outcome"] != "succeeded"
    ]
    if problem_rows:
        pushes += _table(problem_rows[:200], ("command", "app", "started", "ended", "outcome", "error"))
    apps = report.get("apps") or []
    apps_html = (
        _table(
            [
                (escape(a["name"]), a["desired"], a["running"], a.get("bbs_running", ""), "yes" if a["ok"] else "no")
                for a in apps
            ],
            ("app", "desired", "running on cells", "running per BBS", "whole"),
        )
        if apps
        else "<p>(not checked)</p>"
    )
    rec = report["recovery"]
    gap = rec.get("largest_shortfall")
    gap_html = (
        f"<p>Largest shortfall: {gap['instances']} instances below desired at {gap['at']:g} s, "
        + (f"made good at {gap['restored_at']:g} s.</p>" if gap["restored_at"] is not None else "never made good.</p>")
        if gap
        else ""
    )
    recovery = gap_html + (
        f"<p>Healed at {rec['healed_at']:g} s; "
        + (
            f"recovered at {rec['recovered_at']:g} s ({rec['time_to_recover']:g} s after healing; bound {rec['bound']:g} s).</p>"
            if rec.get("recovered_at") is not None
            else "not recovered within the bound.</p>"
            if rec.get("bound") is not None
            else "recovery not checked.</p>"
        )
    )
    series = report.get("app_series") or {}
    if series:
        rows = [
            (escape(name), " &nbsp; ".join(f"{t:g}s: {r}/{d}" for t, d, r in points)) for name, points in series.items()
        ]
        apps_html += (
            "<details><summary>Running / desired per app over time (at each change)</summary>"
            + _table(rows, ("app", "running / desired"))
            + "</details>"
        )
    blobs = report.get("blobs")
    blobs_html = (
        f"<p>{blobs.get('referenced', 0)} blobs referenced by CC_DB, {blobs.get('held', 0)} held; "
        f"missing: {len(blobs.get('missing', []))}, corrupt: {len(blobs.get('corrupt', []))}, "
        f"orphaned: {len(blobs.get('orphans', []))}.</p>"
        if blobs
        else "<p>(not checked)</p>"
    )
    s = report["statistics"]
    stats = _table([[s[k] for k in STAT_KEYS]], [k.replace("_", " ") for k in STAT_KEYS])
    queues = report.get("deepest_mailboxes") or {}
    if queues:
        stats += (
            "<p>Deepest mailboxes seen: "
            + ", ".join(f"{escape(a)} {q['depth']:g} at {q['t']:g} s" for a, q in queues.items())
            + ".</p>"
        )
    timeline = _table(
        [(f"{e['t']:g}", escape(e["kind"]), escape(e["text"])) for e in report["timeline"]],
        ("t (s)", "kind", "event"),
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{escape(report["experiment"])} (seed {report["seed"]}): {v}</title>
<style>{_CSS}</style></head><body>
<h1>{escape(report["experiment"])} <span class="verdict {v}">{v.upper()}</span></h1>
<p>{escape(report["description"])}</p>
<p>Seed {report["seed"]}; repeat it with <code>{escape(report["reproduce"])}</code>.
Platform time {report["platform_seconds"]:g} s.</p>
{svg}
<h2>Checks</h2>{checks}
<h2>Commands</h2>{pushes}
<h2>Apps after healing</h2>{recovery}{apps_html}
<h2>Blob store and CC_DB</h2>{blobs_html}
<h2>Messages</h2>{stats}
<h2>Timeline</h2>{timeline}
</body></html>
"""
