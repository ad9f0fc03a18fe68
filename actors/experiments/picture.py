"""The picture of a run: instances running against desired over platform
time, faults shaded as labelled bands, the heal and the recovery marked.

Plain SVG written by hand (no plotting library): `timeline_svg(report)`.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from actors.experiments.schema import TIMED_FAULTS

__all__ = ["timeline_svg"]

WIDTH, HEIGHT = 960, 380
LEFT, RIGHT, TOP, BOTTOM = 56, 20, 64, 56
BAND_COLOURS = ("#f4a259", "#bc4b51", "#8cb369", "#5b8e7d", "#9d4edd", "#e9c46a")


def _nice_step(span: float, ticks: int) -> float:
    raw = max(span, 1e-9) / ticks
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * power:
            return m * power
    return 10 * power


def _time_axis(end_t: float) -> tuple[float, str, float]:
    """One unit for the whole axis: (seconds per unit, its suffix, tick step in seconds)."""
    per, suffix = (60.0, "m") if end_t >= 600 else (1.0, "s")
    return per, suffix, _nice_step(end_t / per, 8) * per


def _anchor(x: float, width: float = 170) -> str:
    """Text that starts near the right edge is drawn leftwards, to stay inside."""
    return ' text-anchor="end"' if x > WIDTH - RIGHT - width else ""


def _shift(x: float, width: float = 170, gap: float = 3) -> float:
    return x - gap if x > WIDTH - RIGHT - width else x + gap


def _recovery_seen(samples: list[dict[str, Any]], since: float) -> float | None:
    """When the samples show running back at desired for good after `since`
    (the first fault): the sample after the last one short of desired."""
    short = [n for n, s in enumerate(samples) if s["t"] >= since and s.get("running", 0) < s.get("desired", 0)]
    if not short or short[-1] + 1 >= len(samples):
        return None
    return float(samples[short[-1] + 1]["t"])


def timeline_svg(report: dict[str, Any]) -> str:
    samples = report.get("samples", [])
    faults = report.get("faults", [])
    timeline = report.get("timeline", [])
    heal = report.get("recovery", {}).get("healed_at")
    end_t = max([s["t"] for s in samples] + [e["t"] for e in timeline] + [1.0])
    top_y = max([max(s["desired"], s["running"], s.get("bbs_running", 0)) for s in samples] + [1])
    top_y = math.ceil(top_y * 1.15) or 1
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + plot_w * (t / end_t)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top_y)

    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="18" font-size="14" font-weight="bold">{escape(report.get("experiment", ""))} '
        f"(seed {report.get('seed')}): {escape(report.get('verdict', '').upper())}</text>",
    ]
    # Fault bands and instants, labels staggered over three rows.
    for n, f in enumerate(faults):
        start = float(f["t"])
        if f.get("duration"):
            stop = start + float(f["duration"])
        elif f["action"] in TIMED_FAULTS:
            stop = float(heal) if heal is not None else end_t
        else:
            stop = None
        colour = BAND_COLOURS[n % len(BAND_COLOURS)]
        label_y = 34 + 11 * (n % 3)
        label = escape(f.get("label") or f["action"])
        start_x = x(start)
        if stop is not None and stop > start:
            parts.append(
                f'<rect x="{x(start):.1f}" y="{TOP}" width="{max(1.0, x(min(stop, end_t)) - x(start)):.1f}" height="{plot_h}" '
                f'fill="{colour}" fill-opacity="0.18"><title>{label} ({start:g}-{stop:g} s)</title></rect>'
            )
        else:
            parts.append(
                f'<line x1="{x(start):.1f}" y1="{TOP}" x2="{x(start):.1f}" y2="{TOP + plot_h}" stroke="{colour}" '
                f'stroke-width="2" stroke-dasharray="4 3"><title>{label} at {start:g} s</title></line>'
            )
        width = 6.2 * len(f.get("label") or f["action"])
        parts.append(
            f'<text x="{_shift(start_x, width, 2):.1f}" y="{label_y}" fill="{colour}"{_anchor(start_x, width)}>{label}</text>'
        )
    if heal is not None and heal <= end_t:
        hx = x(heal)
        parts.append(
            f'<line x1="{hx:.1f}" y1="{TOP}" x2="{hx:.1f}" y2="{TOP + plot_h}" stroke="#2a9d8f" stroke-width="2"/>'
            f'<text x="{_shift(hx, 40):.1f}" y="{TOP + 12}" fill="#2a9d8f"{_anchor(hx, 40)}>heal</text>'
        )
    # Recovery as it happened: where the running line meets desired for
    # good after the first fault (the check only looks from the heal on).
    first_fault = min((float(f["t"]) for f in faults), default=None)
    recovered = _recovery_seen(samples, first_fault) if first_fault is not None else None
    if recovered is None:
        recovered = report.get("recovery", {}).get("recovered_at")
    if recovered is not None:
        rx = x(recovered)
        parts.append(
            f'<line x1="{rx:.1f}" y1="{TOP}" x2="{rx:.1f}" y2="{TOP + plot_h}" stroke="#264653" '
            f'stroke-width="1" stroke-dasharray="2 2"><title>recovered at {recovered:g} s</title></line>'
            f'<text x="{_shift(rx, 70):.1f}" y="{TOP + 24}" fill="#264653"{_anchor(rx, 70)}>recovered</text>'
        )
    # Axes and grid, the time axis in one unit.
    per, suffix, step = _time_axis(end_t)
    t = 0.0
    while t <= end_t + 1e-9:
        tx = x(t)
        anchor = "end" if tx > WIDTH - RIGHT - 12 else ("start" if tx < LEFT + 1 else "middle")
        parts.append(
            f'<line x1="{tx:.1f}" y1="{TOP + plot_h}" x2="{tx:.1f}" y2="{TOP + plot_h + 4}" stroke="#333"/>'
            f'<text x="{tx:.1f}" y="{TOP + plot_h + 16}" text-anchor="{anchor}">{round(t / per, 6):g}{suffix}</text>'
        )
        t += step
    ystep = max(1, int(_nice_step(top_y, 5)))
    for v in range(0, top_y + 1, ystep):
        parts.append(
            f'<line x1="{LEFT}" y1="{y(v):.1f}" x2="{LEFT + plot_w}" y2="{y(v):.1f}" stroke="#e5e5e5"/>'
            f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v}</text>'
        )
    parts.append(
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#333"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#333"/>'
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 22}" text-anchor="middle">'
        f"platform time ({'minutes' if suffix == 'm' else 'seconds'})</text>"
        f'<text x="14" y="{TOP + plot_h / 2:.1f}" transform="rotate(-90 14 {TOP + plot_h / 2:.1f})" '
        'text-anchor="middle">instances</text>'
    )
    # The series, as steps (a value holds until the next sample).
    for key, colour, extra in (
        ("desired", "#1d3557", 'stroke-dasharray="6 4" stroke-width="2"'),
        ("bbs_running", "#e76f51", 'stroke-width="1" stroke-dasharray="1 2"'),
        ("running", "#2a9d8f", 'stroke-width="2.5"'),
    ):
        points: list[str] = []
        last = None
        for s in samples:
            if last is not None:
                points.append(f"{x(s['t']):.1f},{y(last):.1f}")
            last = s.get(key, 0)
            points.append(f"{x(s['t']):.1f},{y(last):.1f}")
        if points:
            parts.append(f'<polyline fill="none" stroke="{colour}" {extra} points="{" ".join(points)}"/>')
    drained = [str(f.get("cell")) for f in faults if f["action"] == "drain" and f.get("cell")]
    for cell in drained:
        points = []
        last = None
        for s in samples:
            value = s.get("cells", {}).get(cell)
            if value is None:
                continue
            if last is not None:
                points.append(f"{x(s['t']):.1f},{y(last):.1f}")
            last = value
            points.append(f"{x(s['t']):.1f},{y(last):.1f}")
        if points:
            parts.append(
                f'<polyline fill="none" stroke="#9d4edd" stroke-width="1.5" points="{" ".join(points)}">'
                f"<title>instances running on {escape(cell)}</title></polyline>"
            )
            parts.append(
                f'<text x="{LEFT + plot_w - 4}" y="{y((points and last) or 0) - 4:.1f}" text-anchor="end" fill="#9d4edd">on {escape(cell)}</text>'
            )
    legend = (
        ("#1d3557", "desired (BBS)", "6 4"),
        ("#2a9d8f", "running on cells", ""),
        ("#e76f51", "running per BBS", "1 2"),
    )
    lx = LEFT
    for colour, text, dash in legend:
        parts.append(
            f'<line x1="{lx}" y1="{HEIGHT - 8}" x2="{lx + 24}" y2="{HEIGHT - 8}" stroke="{colour}" stroke-width="2" '
            f'stroke-dasharray="{dash or "none"}"/><text x="{lx + 30}" y="{HEIGHT - 4}">{text}</text>'
        )
        lx += 170
    parts.append(
        f'<rect x="{lx}" y="{HEIGHT - 14}" width="24" height="10" fill="{BAND_COLOURS[0]}" fill-opacity="0.3"/>'
        f'<text x="{lx + 30}" y="{HEIGHT - 4}">fault in force</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)
