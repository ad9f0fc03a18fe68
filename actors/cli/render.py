"""What the CLI prints, shaped like the cf CLI's output. Pure functions of data."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from protocol.lrp import InstanceInfo
from protocol.snapshots import CellStatistics
from protocol.units import format_mb

__all__ = [
    "app_summary",
    "apps_table",
    "cells_table",
    "events_table",
    "iso",
    "mermaid",
    "table",
]

# The order participants appear in a trace: the seed's picture, left to right.
_PARTICIPANT_ORDER = (
    "user",
    "cli",
    "cloud_controller",
    "ccdb",
    "blobstore",
    "bbs",
    "auctioneer",
)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cf_time(ts: float | datetime | None) -> str:
    if ts is None:
        return ""
    moment = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    return moment.astimezone(UTC).strftime("%a %d %b %H:%M:%S UTC %Y")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, indent: str = "") -> list[str]:
    """Columns separated by three spaces, as the cf CLI aligns them."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append((indent + "   ".join(cells)).rstrip())
    return lines


def _instance_rows(instances: Sequence[InstanceInfo]) -> list[list[str]]:
    rows = []
    for inst in instances:
        state = inst.state.lower()
        memory = f"{format_mb(inst.memory_usage_mb)} of {format_mb(inst.memory_quota_mb)}"
        disk = f"{format_mb(inst.disk_usage_mb)} of {format_mb(inst.disk_quota_mb)}"
        rows.append([f"#{inst.index}", state, iso(inst.since), "0.0%", memory, disk, inst.details])
    return rows


def app_summary(app: Any, droplet: Any, instances: Sequence[InstanceInfo]) -> list[str]:
    """`cf app APP`'s body (also printed at the end of a push)."""
    running = sum(1 for i in instances if i.state == "RUNNING")
    buildpacks = ""
    if droplet is not None:
        buildpacks = ", ".join(_short(b) for b in (droplet.buildpacks or (droplet.detected_buildpack,)))
    lines = [
        f"name:              {app.name}",
        f"requested state:   {app.state.value.lower()}",
        f"routes:            {', '.join(app.routes)}",
        f"last uploaded:     {cf_time(app.last_uploaded_at)}",
        f"stack:             {app.stack}",
        f"buildpacks:        {buildpacks}",
        "",
        "type:            web",
        f"instances:       {running}/{app.instances}",
        f"memory usage:    {format_mb(app.memory_mb)}",
        f"start command:   {app.command or (droplet.start_command if droplet is not None else '')}",
    ]
    if app.state.value == "STOPPED" or not instances:
        lines.append("There are no running instances of this process." if app.state.value == "STARTED" else "")
        if lines[-1] == "":
            lines.pop()
        return lines
    lines += table(["  ", "state", "since", "cpu", "memory", "disk", "details"], _instance_rows(instances))
    return lines


def _short(buildpack: str) -> str:
    return buildpack.removesuffix("_buildpack")


def apps_table(apps: Sequence[tuple[Any, Sequence[InstanceInfo]]]) -> list[str]:
    rows = []
    for app, instances in apps:
        running = sum(1 for i in instances if i.state == "RUNNING")
        rows.append([app.name, app.state.value.lower(), f"web:{running}/{app.instances}", ", ".join(app.routes)])
    return table(["name", "requested state", "processes", "routes"], rows)


def events_table(events: Sequence[Any]) -> list[str]:
    rows = []
    for e in events:
        rows.append([e.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.00+0000"), e.type, e.actor, _describe(e)])
    return table(["time", "event", "actor", "description"], rows)


def _describe(event: Any) -> str:
    md = event.metadata or {}
    if event.type == "audit.app.process.crash":
        parts = [f"index: {md.get('index')}", "reason: CRASHED", f"cell_id: {md.get('cell_id')}"]
        if md.get("exit_description"):
            parts.append(f"exit_description: {md['exit_description']}")
        return ", ".join(parts)
    if event.type == "audit.app.process.scale":
        req = md.get("request", {})
        parts = [f"{k}: {v}" for k, v in req.items() if v is not None]
        return ", ".join(parts)
    if event.type == "audit.app.update":
        req = md.get("request", {})
        return ", ".join(f"{k}: {v}" for k, v in sorted(req.items()))
    if event.type == "audit.app.droplet.create":
        return ""
    return ""


def cells_table(cells: Sequence[CellStatistics]) -> list[str]:
    rows = []
    for c in cells:
        rows.append(
            [
                c.cell_id,
                c.zone,
                c.state,
                f"{format_mb(c.memory_used)} of {format_mb(c.memory_total)}",
                f"{format_mb(c.disk_used)} of {format_mb(c.disk_total)}",
                f"{c.containers_used}/{c.containers_total}",
                f"{c.running}/{c.instances}",
                str(c.tasks),
            ]
        )
    return table(["cell", "zone", "state", "memory", "disk", "containers", "instances running", "tasks"], rows)


def _mermaid_id(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def mermaid(deliveries: Sequence[dict[str, Any]], *, title: str = "") -> str:
    """The seed's sequence diagram, drawn from what was delivered.

    Each arrow is labelled with its seed step; a delivery with no step of
    its own belongs to the step in progress. Runs of identical arrows are
    folded into one (`x N`). Asks are solid arrows, tells open ones.
    """
    names: list[str] = []
    for d in deliveries:
        for name in (d["sender"], d["receiver"]):
            if name not in names:
                names.append(name)

    def order(name: str) -> tuple[int, str]:
        if name in _PARTICIPANT_ORDER:
            return (_PARTICIPANT_ORDER.index(name), "")
        if name.startswith("cell-"):
            suffix = name[5:]
            return (len(_PARTICIPANT_ORDER), suffix.zfill(6))
        if name == "loggregator":
            return (len(_PARTICIPANT_ORDER) + 1, "")
        return (len(_PARTICIPANT_ORDER) + 2, name)

    lines = ["sequenceDiagram"]
    if title:
        lines.append(f"    title {title}")
    for name in sorted(names, key=order):
        lines.append(f"    participant {_mermaid_id(name)} as {name}")
    step = 1
    folded: list[tuple[str, str, str, int, bool, int]] = []
    for d in deliveries:
        if d["step"] is not None:
            step = max(1, int(d["step"]))
        key = (d["sender"], d["receiver"], d["label"], step, bool(d.get("ask")))
        if folded and folded[-1][:5] == key:
            folded[-1] = (*key, folded[-1][5] + 1)
        else:
            folded.append((*key, 1))
    for sender, receiver, label, s, ask, count in folded:
        arrow = "->>" if ask else "-)"
        times = f" x{count}" if count > 1 else ""
        lines.append(f"    {_mermaid_id(sender)}{arrow}{_mermaid_id(receiver)}: {s}. {label}{times}")
    return "\n".join(lines) + "\n"


def steps_in_order(deliveries: Sequence[dict[str, Any]]) -> list[int]:
    """The seed steps in the order each first appears (for checks and tests)."""
    seen: list[int] = []
    for d in deliveries:
        s = d.get("step")
        if s is not None and s not in seen:
            seen.append(s)
    return seen
