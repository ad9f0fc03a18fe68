"""The report of a sweep: what its seeds found, side by side.

`seed_row` reads what a sweep keeps of one seed's report; `build_summary`
makes `sweep.json` of the rows (a function of the seeds' reports only, in
seed order: the same seeds give the same bytes whatever ran them, on how
many workers, in which order); `print_summary` is what the terminal shows;
`write_sweep_report` writes `sweep.json`, `distributions.svg` and
`report.html`. Wall-clock figures go to `wall.json` beside them, as a
single run's do.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from actors.cli.render import table
from actors.experiments.seeds import format_seeds

__all__ = [
    "FIGURES",
    "build_summary",
    "distribution",
    "distributions_svg",
    "exit_code",
    "print_summary",
    "seed_row",
    "write_json",
    "write_sweep_report",
]

#: The distributions a sweep reports: (key of a seed's row, label).
FIGURES = (
    ("time_to_recover", "time to recover (s)"),
    ("commands_failed", "commands failed"),
    ("messages_dropped", "messages dropped"),
)
VERDICTS = ("valid", "invalid", "unknown")
#: On the terminal, per failing check: this many repeat commands (sweep.json has them all).
SHOWN_PER_CHECK = 10
SHOWN_SEEDS = 20


def seed_row(report: Mapping[str, Any]) -> dict[str, Any]:
    """What a sweep keeps of one seed's report."""
    pushes = report["pushes"]
    return {
        "seed": report["seed"],
        "verdict": report["verdict"],
        "failing": [
            {"check": c["name"], "status": c["status"], "summary": c["summary"]}
            for c in report["checks"]
            if c["status"] != "pass"
        ],
        "time_to_recover": report["recovery"].get("time_to_recover"),
        "commands_failed": pushes["total"] - pushes["succeeded"],
        "messages_dropped": report["statistics"]["dropped"],
        "reproduce": report["reproduce"],
        "folder": report["folder"],
    }


def _percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest rank: a value some seed really had."""
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def distribution(values: Sequence[float | None]) -> dict[str, Any]:
    """Seeds with a figure, and its min, p50, p90, p99, max and mean; `none`: seeds without one."""
    got = sorted(v for v in values if v is not None)
    out: dict[str, Any] = {"seeds": len(got), "none": len(values) - len(got)}
    if got:
        out.update(
            min=got[0],
            p50=_percentile(got, 0.5),
            p90=_percentile(got, 0.9),
            p99=_percentile(got, 0.99),
            max=got[-1],
            mean=round(sum(got) / len(got), 3),
        )
    return out


def build_summary(
    *,
    experiment: str,
    source: str,
    digest: str,
    seeds: Sequence[int],
    rows: Mapping[int, dict[str, Any]],
    problems: Mapping[int, str],
    folder: str,
) -> dict[str, Any]:
    """`sweep.json`: every seed's verdict and figures, what failed and where, the distributions."""
    finished = [rows[s] for s in seeds if s in rows]
    not_run = [{"seed": s, "problem": problems[s]} for s in seeds if s in problems and s not in rows]
    counts = {v: sum(1 for r in finished if r["verdict"] == v) for v in VERDICTS}
    failing: dict[tuple[str, str], list[int]] = {}
    for r in finished:
        for c in r["failing"]:
            failing.setdefault((c["check"], c["status"]), []).append(r["seed"])
    order = {"fail": 0, "unknown": 1}
    checks = [
        {
            "check": name,
            "status": status,
            "seeds": found,
            "reproduce": {str(s): rows[s]["reproduce"] for s in found},
        }
        for (name, status), found in sorted(failing.items(), key=lambda kv: (order.get(kv[0][1], 2), kv[0][0]))
    ]
    if counts["invalid"]:
        verdict = "invalid"
    elif counts["unknown"] or not_run or len(finished) < len(seeds):
        verdict = "unknown"
    else:
        verdict = "valid"
    return {
        "experiment": experiment,
        "file": source,
        "file_sha256": digest,
        "seeds": format_seeds(seeds),
        "planned": len(seeds),
        "finished": len(finished),
        "complete": len(finished) == len(seeds),
        "verdict": verdict,
        "exit_code": exit_code(verdict),
        "verdicts": counts,
        "failing_checks": checks,
        "not_run": not_run,
        "distributions": {key: distribution([r[key] for r in finished]) for key, _ in FIGURES},
        "folder": folder,
        "results": finished,
    }


def exit_code(verdict: str) -> int:
    return {"valid": 0, "invalid": 1, "unknown": 2}[verdict]


# --- the terminal -------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _seed_list(seeds: Sequence[int]) -> str:
    shown = ", ".join(str(s) for s in seeds[:SHOWN_SEEDS])
    return shown + (f", ... ({len(seeds) - SHOWN_SEEDS} more)" if len(seeds) > SHOWN_SEEDS else "")


def print_summary(summary: Mapping[str, Any], wall: Mapping[str, Any], out: Callable[[str], None]) -> None:
    """The verdict counts, each failing check with its seeds and the command
    that repeats each, the distributions, and where the report is."""
    head = f"sweep {summary['experiment']} (seeds {summary['seeds']}): {summary['verdict'].upper()}"
    if wall.get("interrupted"):
        head += f" (interrupted: {summary['finished']} of {summary['planned']} seeds finished)"
    out(head)
    for line in table([("verdict", "seeds"), *((v, summary["verdicts"][v]) for v in VERDICTS)], prefix="  "):
        out(line)
    if summary["failing_checks"]:
        out("failing checks:")
        checks = [
            (
                c["check"],
                c["status"],
                f"{len(c['seeds'])} seed{'s' if len(c['seeds']) != 1 else ''}: {_seed_list(c['seeds'])}",
            )
            for c in summary["failing_checks"]
        ]
        for line, c in zip(table(checks, prefix="  "), summary["failing_checks"], strict=True):
            out(line)
            for seed in c["seeds"][:SHOWN_PER_CHECK]:
                out(f"    {c['reproduce'][str(seed)]}")
            if len(c["seeds"]) > SHOWN_PER_CHECK:
                out(f"    ... and {len(c['seeds']) - SHOWN_PER_CHECK} more (sweep.json lists every one)")
    if summary["not_run"]:
        out("not run:")
        for p in summary["not_run"]:
            out(f"  seed {p['seed']}: {p['problem']}")
    if summary["finished"]:
        out("distributions:")
        rows: list[tuple[str, ...]] = [("figure", "seeds", "min", "p50", "p90", "p99", "max", "mean")]
        for key, label in FIGURES:
            d = summary["distributions"][key]
            rows.append(
                (label, str(d["seeds"]), *(_fmt(d.get(k)) for k in ("min", "p50", "p90", "p99", "max", "mean")))
            )
        for line in table(rows, prefix="  "):
            out(line)
        none = summary["distributions"]["time_to_recover"]["none"]
        if none:
            out(f"  ({none} seed{'s' if none != 1 else ''} with no time to recover: not recovered, or not checked)")
    rate = summary["finished"] and wall.get("ran") and wall["ran"] / max(wall["wall_seconds"], 1e-9)
    done = f"{summary['finished']} of {summary['planned']} seeds"
    line = f"{done} in {wall['wall_seconds']:.1f} s of wall time on {wall['workers']}"
    if wall.get("resumed"):
        line += f" ({wall['resumed']} reported before, skipped)"
    if rate:
        line += f", {rate:.2f} seeds/s"
    out(line)
    if wall.get("workers_lost"):
        n = wall["workers_lost"]
        out(
            f"{n} worker{'s' if n != 1 else ''} lost mid-sweep; seeds run again: {format_seeds(wall['retried']) or 'none'}"
        )
    folder = Path(summary["folder"])
    out(f"report: {folder / 'sweep.json'}, {folder / 'report.html'}, {folder / 'distributions.svg'}")
    if not summary["complete"]:
        out(f"resume: {wall['resume']}")


# --- the files ------------------------------------------------------------------------------------------


def write_json(path: Path, data: Any) -> None:
    """Whole or not at all: a temporary file, renamed."""
    _write_atomic(path, (json.dumps(data, indent=2, default=str) + "\n").encode())


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_sweep_report(summary: Mapping[str, Any], wall: Mapping[str, Any], folder: Path) -> None:
    write_json(folder / "sweep.json", summary)
    write_json(folder / "wall.json", wall)
    svg = distributions_svg(summary)
    _write_atomic(folder / "distributions.svg", (svg + "\n").encode())
    _write_atomic(folder / "report.html", _html(summary, svg).encode())


# --- the picture ------------------------------------------------------------------------------------------

PANEL_W, PANEL_H = 320, 240
TOP, BOTTOM, SIDE = 48, 40, 28
BAR = "#5b8e7d"
MAX_BAR = 40


def _bins(values: Sequence[float]) -> list[tuple[float, float, int]]:
    """(low, high, count): one bin per value for whole numbers up to 30 apart, else 20 alike."""
    lo, hi = min(values), max(values)
    if all(float(v).is_integer() for v in values) and hi - lo <= 30:
        edges = [lo + i for i in range(int(hi - lo) + 2)]
    else:
        step = (hi - lo) / 20 or 1.0
        edges = [lo + i * step for i in range(21)]
    counts = [0] * (len(edges) - 1)
    for v in values:
        i = min(len(counts) - 1, int((v - lo) / (edges[1] - edges[0])))
        counts[i] += 1
    return [(edges[i], edges[i + 1], n) for i, n in enumerate(counts)]


def distributions_svg(summary: Mapping[str, Any]) -> str:
    """One histogram per figure, side by side: how many seeds had each value."""
    width = PANEL_W * len(FIGURES)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{PANEL_H}" viewBox="0 0 {width} {PANEL_H}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{width}" height="{PANEL_H}" fill="#ffffff"/>',
    ]
    for n, (key, label) in enumerate(FIGURES):
        x0 = n * PANEL_W + SIDE
        plot_w, plot_h = PANEL_W - 2 * SIDE, PANEL_H - TOP - BOTTOM
        values = [r[key] for r in summary["results"] if r[key] is not None]
        missing = len(summary["results"]) - len(values)
        title = escape(label) + (f" ({missing} without)" if missing else "")
        parts.append(f'<text x="{x0}" y="18" font-size="13" font-weight="bold">{title}</text>')
        parts.append(f'<line x1="{x0}" y1="{TOP + plot_h}" x2="{x0 + plot_w}" y2="{TOP + plot_h}" stroke="#444"/>')
        if not values:
            parts.append(f'<text x="{x0}" y="{TOP + plot_h / 2:.1f}" fill="#777">no seed has this figure</text>')
            continue
        bins = _bins(values)
        tallest = max(c for _, _, c in bins)
        whole = all(high - low == 1 for low, high, _ in bins)  # one bar per value
        bar_w = min(plot_w / len(bins), MAX_BAR)
        left = x0 + (plot_w - bar_w * len(bins)) / 2
        for i, (low, high, count) in enumerate(bins):
            x = left + i * bar_w
            if whole and len(bins) <= 12:
                parts.append(
                    f'<text x="{x + bar_w / 2:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle">{_fmt(low)}</text>'
                )
            if not count:
                continue
            h = plot_h * count / tallest
            span = _fmt(low) if whole else f"{_fmt(low)} to {_fmt(high)}"
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{TOP + plot_h - h:.1f}" width="{max(bar_w - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{BAR}"><title>{span}: {count} seed{"s" if count != 1 else ""}</title></rect>'
            )
            if len(bins) <= 30:
                parts.append(
                    f'<text x="{x + bar_w / 2:.1f}" y="{TOP + plot_h - h - 3:.1f}" text-anchor="middle" '
                    f'font-size="9" fill="#444">{count}</text>'
                )
        if not (whole and len(bins) <= 12):
            parts.append(f'<text x="{left:.1f}" y="{TOP + plot_h + 14}">{_fmt(min(values))}</text>')
            parts.append(
                f'<text x="{left + bar_w * len(bins):.1f}" y="{TOP + plot_h + 14}" text-anchor="end">'
                f"{_fmt(max(values))}</text>"
            )
        d = summary["distributions"][key]
        parts.append(
            f'<text x="{x0 + plot_w / 2:.1f}" y="{TOP + plot_h + 32}" text-anchor="middle" fill="#444">'
            f"{d['seeds']} seeds; p50 {_fmt(d.get('p50'))}, p90 {_fmt(d.get('p90'))}, max {_fmt(d.get('max'))}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


# --- the page ------------------------------------------------------------------------------------------------

_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 2em; color: #222; max-width: 1000px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
.verdict { padding: 0.2em 0.6em; border-radius: 4px; color: white; }
.valid { background: #2a9d8f; } .invalid { background: #bc4b51; } .unknown { background: #e9c46a; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; }
code { background: #f3f3f3; padding: 1px 4px; }
"""


def _table(rows: Sequence[Sequence[Any]], head: Sequence[str]) -> str:
    cells = "".join(f"<th>{escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _seed_link(summary: Mapping[str, Any], seed: int) -> str:
    return f'<a href="{escape(summary["experiment"])}-{seed}/report.html">{seed}</a>'


def _html(summary: Mapping[str, Any], svg: str) -> str:
    v = summary["verdict"]
    counts = _table([[summary["verdicts"][k] for k in VERDICTS] + [len(summary["not_run"])]], [*VERDICTS, "not run"])
    dist = _table(
        [
            (
                escape(label),
                *(
                    escape(_fmt(summary["distributions"][key].get(k)))
                    for k in ("seeds", "min", "p50", "p90", "p99", "max", "mean")
                ),
            )
            for key, label in FIGURES
        ],
        ("figure", "seeds", "min", "p50", "p90", "p99", "max", "mean"),
    )
    failing = (
        "".join(
            f"<h3>{escape(c['check'])} ({escape(c['status'])}): {len(c['seeds'])} seeds</h3><p>"
            + ", ".join(_seed_link(summary, s) for s in c["seeds"])
            + "</p><details><summary>Commands that repeat them</summary><pre>"
            + "\n".join(escape(c["reproduce"][str(s)]) for s in c["seeds"])
            + "</pre></details>"
            for c in summary["failing_checks"]
        )
        or "<p>None: every check passed on every seed that finished.</p>"
    )
    not_run = (
        "<h2>Not run</h2>"
        + _table([(p["seed"], escape(p["problem"])) for p in summary["not_run"]], ("seed", "problem"))
        if summary["not_run"]
        else ""
    )
    seeds = _table(
        [
            (
                _seed_link(summary, r["seed"]),
                f'<span class="verdict {r["verdict"]}">{r["verdict"]}</span>',
                escape(", ".join(c["check"] for c in r["failing"])),
                escape(_fmt(r["time_to_recover"])),
                r["commands_failed"],
                r["messages_dropped"],
            )
            for r in summary["results"]
        ],
        ("seed", "verdict", "checks not passed", "time to recover (s)", "commands failed", "messages dropped"),
    )
    done = (
        f"{summary['finished']} of {summary['planned']} seeds finished"
        if not summary["complete"]
        else f"{summary['planned']} seeds"
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{escape(summary["experiment"])} sweep (seeds {escape(summary["seeds"])}): {v}</title>
<style>{_CSS}</style></head><body>
<h1>{escape(summary["experiment"])}, seeds {escape(summary["seeds"])} <span class="verdict {v}">{v.upper()}</span></h1>
<p>{done} of <code>{escape(summary["file"])}</code>; each seed's own report is in its folder.</p>
<h2>Verdicts</h2>{counts}
<h2>Failing checks</h2>{failing}
{not_run}
<h2>Distributions</h2>{svg}
{dist}
<h2>Every seed</h2>{seeds}
</body></html>
"""
