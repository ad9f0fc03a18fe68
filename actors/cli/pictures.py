"""`cf trace APP --svg FILE` / `--html FILE`: the push's sequence diagram as a
picture a person can open, with no network and no script.

    write_picture(deliveries, mermaid_text, Path("push.svg"), "svg")

The SVG is drawn from the recorded deliveries: one column (lifeline) per
actor, one arrow per delivery in order, labelled `step. label` as in the
Mermaid text, runs of identical arrows folded into one (`x N`), asks drawn
solid with a filled head and tells dashed with an open one, and a band per
seed step down the left edge. The HTML page embeds that SVG and the Mermaid
source. Participants are in the Mermaid diagram's order when it names them.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actors.cli.render import STEP_NAMES
from protocol.errors import PathNotFound

__all__ = ["arrows", "html_page", "participants", "svg", "write_picture"]

_COLUMN = 150  # px between lifelines
_ROW = 26  # px per arrow
_LEFT = 70  # room for the step bands
_TOP = 70  # title and participant boxes
_BOX_W = 132
_BOX_H = 30
_FONT = "font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"
_BANDS = ("#f3f6fb", "#ffffff")
_HALO = 'stroke="#ffffff" stroke-width="3" paint-order="stroke"'  # labels stay legible over lifelines


def participants(deliveries: Sequence[dict[str, Any]], mermaid_text: str = "") -> list[str]:
    """Actor names left to right: the Mermaid text's order, then any others
    in the order they first appear."""
    named = re.findall(r"^\s*participant\s+\S+\s+as\s+(.+?)\s*$", mermaid_text, flags=re.MULTILINE)
    order = list(dict.fromkeys(named))
    for d in deliveries:
        for name in (d["sender"], d["receiver"]):
            if name not in order:
                order.append(name)
    return order


def arrows(deliveries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Deliveries as arrows: the step in progress carried forward (a step
    never goes back, so the bands keep the seed's order), and runs of
    identical arrows folded (the same rules as the Mermaid text)."""
    step = 1
    folded: list[dict[str, Any]] = []
    for d in deliveries:
        if d.get("step") is not None:
            step = max(step, int(d["step"]))
        arrow = {
            "sender": d["sender"],
            "receiver": d["receiver"],
            "label": str(d["label"]),
            "step": step,
            "ask": bool(d.get("ask")),
            "count": 1,
        }
        last = folded[-1] if folded else None
        if last is not None and all(last[k] == arrow[k] for k in ("sender", "receiver", "label", "step", "ask")):
            last["count"] += 1
        else:
            folded.append(arrow)
    return folded


def _title(mermaid_text: str) -> str:
    found = re.search(r"^\s*title\s+(.+?)\s*$", mermaid_text, flags=re.MULTILINE)
    return found.group(1) if found else "sequence diagram"


def svg(deliveries: Sequence[dict[str, Any]], mermaid_text: str = "") -> str:
    """A self-contained SVG sequence diagram of the deliveries."""
    names = participants(deliveries, mermaid_text)
    rows = arrows(deliveries)
    x_of = {name: _LEFT + _COLUMN // 2 + i * _COLUMN for i, name in enumerate(names)}
    width = _LEFT + max(1, len(names)) * _COLUMN + 20
    first_row = _TOP + _BOX_H + 20
    steps = list(dict.fromkeys(r["step"] for r in rows))
    legend_lines = [steps[i : i + 4] for i in range(0, len(steps), 4)]
    height = first_row + len(rows) * _ROW + _BOX_H + 70 + 16 * len(legend_lines)
    e = html.escape
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{e(_title(mermaid_text))}">',
        f"<title>{e(_title(mermaid_text))}</title>",
        "<defs>",
        '<marker id="ask" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#1f2937"/></marker>',
        '<marker id="tell" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10" fill="none" stroke="#1f2937" stroke-width="1.5"/></marker>',
        "</defs>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{width // 2}" y="28" text-anchor="middle" style="{_FONT}; font-size: 16px; font-weight: bold" '
        f'fill="#111827">{e(_title(mermaid_text))}</text>',
    ]
    # Step bands: one per run of arrows in the same seed step.
    start = 0
    band = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i]["step"] != rows[start]["step"]:
            y = first_row + start * _ROW - _ROW // 2
            h = (i - start) * _ROW
            out.append(f'<rect x="0" y="{y}" width="{width}" height="{h}" fill="{_BANDS[band % 2]}"/>')
            out.append(
                f'<text x="10" y="{y + 16}" style="{_FONT}; font-size: 12px; font-weight: bold" fill="#4b5563">'
                f"step {rows[start]['step']}</text>"
            )
            band += 1
            start = i
    bottom = first_row + len(rows) * _ROW
    for name, x in x_of.items():
        out.append(
            f'<line x1="{x}" y1="{_TOP + _BOX_H}" x2="{x}" y2="{bottom + 10}" stroke="#9ca3af" stroke-dasharray="4 4"/>'
        )
        for y in (_TOP, bottom + 10):
            out.append(
                f'<rect x="{x - _BOX_W // 2}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="4" '
                'fill="#e0e7ff" stroke="#4338ca"/>'
            )
            out.append(
                f'<text x="{x}" y="{y + 20}" text-anchor="middle" style="{_FONT}; font-size: 12px" '
                f'fill="#1e1b4b">{e(name)}</text>'
            )
    for i, arrow in enumerate(rows):
        y = first_row + i * _ROW
        x1, x2 = x_of[arrow["sender"]], x_of[arrow["receiver"]]
        kind = "ask" if arrow["ask"] else "tell"
        dash = "" if arrow["ask"] else ' stroke-dasharray="6 3"'
        times = f" x{arrow['count']}" if arrow["count"] > 1 else ""
        text = e(f"{arrow['step']}. {arrow['label']}{times}")
        if x1 == x2:  # to itself: a small loop to the right
            out.append(
                f'<path d="M{x1},{y - 6} h 28 v 12 h -26" fill="none" stroke="#1f2937"{dash} marker-end="url(#{kind})"/>'
            )
            out.append(f'<text x="{x1 + 34}" y="{y + 4}" style="{_FONT}; font-size: 11px" fill="#111827">{text}</text>')
            continue
        out.append(
            f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#1f2937" stroke-width="1.2"{dash} '
            f'marker-end="url(#{kind})"/>'
        )
        out.append(
            f'<text x="{(x1 + x2) // 2}" y="{y - 4}" text-anchor="middle" style="{_FONT}; font-size: 11px" '
            f'fill="#111827" {_HALO}>{text}</text>'
        )
    legend_y = height - 16 - 16 * len(legend_lines)
    out.append(
        f'<text x="{_LEFT}" y="{legend_y}" style="{_FONT}; font-size: 11px" fill="#4b5563">'
        "solid arrow: ask (a reply comes back)   dashed arrow: tell   x N: N identical deliveries in a row</text>"
    )
    # The legend of the seed's steps this conversation went through.
    for n, group in enumerate(legend_lines, 1):
        text = "   ".join(f"step {s}: {STEP_NAMES.get(s, '')}" for s in group)
        out.append(
            f'<text x="{_LEFT}" y="{legend_y + 16 * n}" style="{_FONT}; font-size: 11px" fill="#4b5563">{e(text)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def html_page(deliveries: Sequence[dict[str, Any]], mermaid_text: str = "") -> str:
    """A page with the SVG inline and the Mermaid source below it."""
    title = html.escape(_title(mermaid_text))
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n"
        "<style>\n"
        "body { font-family: system-ui, sans-serif; margin: 2em; color: #111827; }\n"
        ".diagram { overflow-x: auto; border: 1px solid #e5e7eb; padding: 0.5em; }\n"
        "pre { background: #f9fafb; border: 1px solid #e5e7eb; padding: 1em; overflow-x: auto; }\n"
        "</style>\n</head>\n<body>\n"
        f"<h1>{title}</h1>\n"
        f"<p>{len(deliveries)} deliveries between {len(participants(deliveries, mermaid_text))} actors, "
        "labelled with the seed's 12 steps of <code>cf push</code>.</p>\n"
        f'<div class="diagram">\n{svg(deliveries, mermaid_text)}</div>\n'
        "<h2>Mermaid source</h2>\n"
        f'<pre class="mermaid-source">{html.escape(mermaid_text)}</pre>\n'
        "</body>\n</html>\n"
    )


def write_picture(
    deliveries: Sequence[dict[str, Any]], mermaid_text: str, path: str | os.PathLike[str], kind: str
) -> Path:
    """Write the diagram as `kind` ("svg" or "html") to `path`, whole or not at all."""
    if kind == "svg":
        text = svg(deliveries, mermaid_text)
    elif kind == "html":
        text = html_page(deliveries, mermaid_text)
    else:
        raise ValueError(f"unknown picture kind {kind!r}: svg or html")
    target = Path(path)
    # Where the user said, or a named error: no folder is made for it.
    if target.is_dir():
        raise PathNotFound(f"{target} is a folder: name a file, such as {target / ('push.' + kind)}")
    if not target.parent.is_dir():
        raise PathNotFound(f"There is no folder {target.parent} to write {target.name} in")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # a picture to share, not a secret (mkstemp made it 0600)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
