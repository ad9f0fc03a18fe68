"""What the CLI prints, laid out as cf v8 lays it out. Pure functions of data.

Tables follow cf's `util/ui` rules: every column but the last is padded to
its widest cell plus three spaces, the last is never padded (so a line whose
last cell is empty keeps the padding before it), and a key/value table is the
same with two columns. Times are the local time zone's, in cf's formats.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from protocol.lrp import InstanceInfo
from protocol.snapshots import CellStatistics
from protocol.units import format_bytes

__all__ = [
    "app_summary",
    "apps_table",
    "cells_table",
    "events_table",
    "iso",
    "key_values",
    "log_time",
    "mermaid",
    "table",
    "uploaded_time",
]

PADDING = 3
MB = 1024 * 1024
NO_INSTANCES = "There are no running instances of this process."
# Event data keys cf v8 describes, in its order (actor/v7action/event.go).
_EVENT_KEYS = (
    "index",
    "reason",
    "cell_id",
    "instance",
    "exit_description",
    "exit_status",
    "recursive",
    "disk_quota",
    "instances",
    "memory",
    "state",
    "command",
    "environment_json",
    # What the Diego sync repaired (audit.app.process.sync, the platform's own).
    "repair",
    "was",
    "why",
)
# CC_DB's column names in an update's request, as Cloud Controller names them.
_EVENT_NAMES = {"memory_mb": "memory", "disk_mb": "disk_quota", "env": "environment_json", "memory_in_mb": "memory"}

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


def _local(moment: datetime | float) -> datetime:
    when = moment if isinstance(moment, datetime) else datetime.fromtimestamp(moment, UTC)
    return when.astimezone()  # the machine's zone, as cf prints


def iso(ts: float) -> str:
    """An instance's `since`: RFC 3339 in UTC."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def uploaded_time(moment: datetime | float | None) -> str:
    """`last uploaded:` as cf shows it (``Tue 02 Jan 15:04:05 UTC 2024``, local time)."""
    if moment is None:
        return ""
    return _local(moment).strftime("%a %d %b %H:%M:%S %Z %Y")


def log_time(moment: datetime | float) -> str:
    """cf's log and event timestamps: ``2006-01-02T15:04:05.00-0700``, local time."""
    when = _local(moment)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 10000:02d}" + when.strftime("%z")


def table(rows: Iterable[Sequence[Any]], *, prefix: str = "", padding: int = PADDING) -> list[str]:
    """cf's non-wrapping table (the first row is the header, if any)."""
    cells = [[str(c) for c in row] for row in rows]
    cells = [row for row in cells if row]
    if not cells:
        return []
    columns = max(len(row) for row in cells)
    widths = [0] * columns
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell) + padding)
    lines = []
    for row in cells:
        parts = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append(prefix + "".join(parts))
    return lines


def key_values(rows: Iterable[Sequence[str]]) -> list[str]:
    """cf's key/value table (a row with no cells is left out)."""
    return table(rows)


# --- cf app, and the summary that ends push, start, restart, restage, scale ------------------------


def _instance_row(inst: InstanceInfo | None, index: int, now: float) -> list[str]:
    if inst is None or inst.state == "DOWN":
        details = inst.details if inst is not None else ""
        return [f"#{index}", "down", iso(now), "0.0%", "0B of 0B", "0B of 0B", "0B/s of 0B/s", "", details, "-"]
    running = inst.state == "RUNNING"
    used_mem = inst.memory_usage_mb if running else 0
    used_disk = min(inst.disk_usage_mb, inst.disk_quota_mb) if running else 0
    return [
        f"#{index}",
        inst.state.lower(),
        iso(inst.since),
        "0.0%",
        f"{format_bytes(used_mem * MB)} of {format_bytes(inst.memory_quota_mb * MB)}",
        f"{format_bytes(used_disk * MB)} of {format_bytes(inst.disk_quota_mb * MB)}",
        "0B/s of unlimited",
        "",
        inst.details,
        "true" if running else "false",
    ]


def instance_rows(app: Any, instances: Sequence[InstanceInfo], now: float) -> list[list[str]]:
    """One row per instance index: `max(desired, reported)` of them, as Cloud
    Controller's stats list them (an index nothing runs is down)."""
    by_index = {i.index: i for i in instances}
    if app.state.value == "STOPPED":
        return [_instance_row(None, n, now) for n in range(app.instances)]
    count = max([app.instances, *(i + 1 for i in by_index)])
    return [_instance_row(by_index.get(n), n, now) for n in range(count)]


def _buildpack_table(droplet: Any) -> list[str]:
    from protocol.buildpacks import BUILDPACK_VERSIONS

    names = list(droplet.buildpacks or ())
    if not names:
        return []
    rows: list[list[str]] = [["name", "version", "detect output", "buildpack name"]]
    for n, name in enumerate(names):
        detect = droplet.detected_buildpack or "" if n == len(names) - 1 else ""
        rows.append([name, BUILDPACK_VERSIONS.get(name, ""), detect, name.removesuffix("_buildpack")])
    return table(rows, prefix="\t")


def app_summary(
    app: Any, droplet: Any, instances: Sequence[InstanceInfo], *, now: float, start_command: bool = False
) -> list[str]:
    """`cf app APP`'s body (push shows it with the start command)."""
    lines = key_values(
        [
            ["name:", app.name],
            ["requested state:", app.state.value.lower()],
            ["routes:", ", ".join(app.routes)],
            ["last uploaded:", uploaded_time(droplet.created_at) if droplet is not None else ""],
            ["stack:", app.stack if droplet is not None else ""],
            ["buildpacks:", ""],
        ]
    )
    if droplet is not None:
        lines += _buildpack_table(droplet)
    web_command = app.command or (droplet.start_command if droplet is not None else None)
    rows = instance_rows(app, instances, now)
    running = sum(1 for r in rows if r[1] == "running")
    lines += _process("web", f"{running}/{len(rows)}", app.memory_mb, web_command if start_command else None)
    if rows:
        header = ["", "state", "since", "cpu", "memory", "disk", "logging", "cpu entitlement", "details", "ready"]
        lines += table([header, *rows])
    else:
        lines.append(NO_INSTANCES)
    others = dict(droplet.process_types) if droplet is not None else {}
    for kind in sorted(k for k in others if k != "web"):
        lines += _process(kind, "0/0", 1024, others[kind] if start_command else None)
        lines.append(NO_INSTANCES)
    return lines


def _process(kind: str, counts: str, memory_mb: int, command: str | None) -> list[str]:
    rows = [["type:", kind], ["sidecars:", ""], ["instances:", counts], ["memory usage:", f"{memory_mb}M"]]
    if command:
        rows.append(["start command:", command])
    return ["", *key_values(rows)]


def process_counts(app: Any, droplet: Any, instances: Sequence[InstanceInfo]) -> str:
    """`cf apps`'s processes cell: ``web:1/2``, then the droplet's other process types."""
    by_index = {i.index: i for i in instances}
    if app.state.value == "STOPPED":
        parts = [f"web:0/{app.instances}"]
    else:
        total = max([app.instances, *(i + 1 for i in by_index)])
        running = sum(1 for i in instances if i.state == "RUNNING")
        parts = [f"web:{running}/{total}"]
    others = dict(droplet.process_types) if droplet is not None else {}
    parts += [f"{kind}:0/0" for kind in sorted(k for k in others if k != "web")]
    return ", ".join(parts)


def apps_table(apps: Sequence[tuple[Any, Any, Sequence[InstanceInfo]]]) -> list[str]:
    rows: list[list[str]] = [["name", "requested state", "processes", "routes"]]
    for app, droplet, instances in apps:
        rows.append([app.name, app.state.value.lower(), process_counts(app, droplet, instances), ", ".join(app.routes)])
    return table(rows)


# --- events -----------------------------------------------------------------------------------------


def _event_value(key: str, value: Any) -> str:
    if key == "environment_json":
        return "[PRIVATE DATA HIDDEN]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return "[" + " ".join(str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(value.items())) + "]"
    return str(value)


def describe_event(metadata: Any) -> str:
    data = dict(metadata or {})
    if isinstance(data.get("request"), dict):
        data = dict(data["request"])
    named = {_EVENT_NAMES.get(k, k): v for k, v in data.items() if v is not None}
    return ", ".join(f"{k}: {_event_value(k, named[k])}" for k in _EVENT_KEYS if k in named)


def events_table(events: Sequence[Any]) -> list[str]:
    rows: list[list[str]] = [["time", "event", "actor", "description"]]
    for e in events:
        rows.append([log_time(e.time), e.type, e.actor, describe_event(e.metadata)])
    return table(rows)


# --- cells (the platform's own command, in cf's table style) --------------------------------------------


def cells_table(cells: Sequence[CellStatistics]) -> list[str]:
    rows: list[list[str]] = [["cell", "zone", "state", "memory", "disk", "containers", "instances running", "tasks"]]
    for c in cells:
        rows.append(
            [
                c.cell_id,
                c.zone,
                c.state,
                f"{format_bytes(c.memory_used * MB)} of {format_bytes(c.memory_total * MB)}",
                f"{format_bytes(c.disk_used * MB)} of {format_bytes(c.disk_total * MB)}",
                f"{c.containers_used}/{c.containers_total}",
                f"{c.running}/{c.instances}",
                str(c.tasks),
            ]
        )
    return table(rows)


# --- cf trace ----------------------------------------------------------------------------------------


def _mermaid_id(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


STEP_NAMES = {
    1: "push",
    2: "create the app",
    3: "store its metadata",
    4: "match resources, upload bits",
    5: "store the package",
    6: "create a build",
    7: "bid for a staging cell",
    8: "stream staging logs",
    9: "store the droplet",
    10: "staging result",
    11: "desire the LRP, bid for cells",
    12: "instances running",
}


def mermaid(deliveries: Sequence[dict[str, Any]], *, title: str = "") -> str:
    """The seed's sequence diagram, drawn from what was delivered.

    Each arrow is labelled with its seed step; a delivery with no step of
    its own belongs to the step in progress, and a step never goes back, so
    the bands stay in order. Runs of identical arrows are folded into one
    (`x N`). Asks are solid arrows, tells open ones. A note names each
    step as it begins (the legend).
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

    ordered = sorted(names, key=order)
    lines = ["sequenceDiagram"]
    if title:
        lines.append(f"    title {title}")
    for name in ordered:
        lines.append(f"    participant {_mermaid_id(name)} as {name}")
    step = 1
    folded: list[tuple[str, str, str, int, bool, int]] = []
    for d in deliveries:
        if d["step"] is not None:
            step = max(step, int(d["step"]))
        key = (d["sender"], d["receiver"], d["label"], step, bool(d.get("ask")))
        if folded and folded[-1][:5] == key:
            folded[-1] = (*key, folded[-1][5] + 1)
        else:
            folded.append((*key, 1))
    shown_step = 0
    first, last = (_mermaid_id(ordered[0]), _mermaid_id(ordered[-1])) if ordered else ("", "")
    for sender, receiver, label, s, ask, count in folded:
        if s != shown_step and ordered:
            lines.append(f"    Note over {first},{last}: step {s}: {STEP_NAMES.get(s, '')}".rstrip())
            shown_step = s
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
