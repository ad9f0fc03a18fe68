"""What `status` prints and the line `serve` writes now and then.

Pure functions of snapshots: the runtime's `statistics()` and
`mailbox_depths()`, the BBS's `BBSStatistics`, and app names from
Cloud Controller. `gather()` collects those from a running platform.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from protocol.messages import BBSSnapshot, ListApps
from protocol.snapshots import BBSStatistics

__all__ = ["format_duration", "gather", "serve_line", "status_lines"]


def format_duration(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _instance_totals(snapshot: BBSStatistics | None) -> dict[str, int]:
    totals = {"apps": 0, "desired": 0, "running": 0, "starting": 0, "crashed": 0, "unclaimed": 0}
    for app in snapshot.apps if snapshot is not None else ():
        totals["apps"] += 1
        totals["desired"] += app.desired
        for key in ("running", "starting", "crashed", "unclaimed"):
            totals[key] += getattr(app.counts, key)
    return totals


def status_lines(
    stats: Mapping[str, Any],
    depths: Mapping[str, int],
    snapshot: BBSStatistics | None,
    app_names: Mapping[str, str],
    *,
    top: int = 5,
) -> list[str]:
    """`status`: actors, mailboxes, message counts, uptime, apps running vs desired."""
    busy = sorted(((d, n) for n, d in depths.items() if d > 0), key=lambda x: (-x[0], x[1]))
    if busy:
        shown = ", ".join(f"{name} {depth}" for depth, name in busy[:top])
        more = f" (+{len(busy) - top} more)" if len(busy) > top else ""
        mailboxes = f"{shown}{more}"
    else:
        mailboxes = "all empty"
    speed = stats.get("speed", 1.0)
    clock = f" of platform time (--speed {speed:g})" if speed != 1.0 else ""
    lines = [
        f"uptime:       {format_duration(stats.get('uptime', 0.0))}{clock}",
        f"actors:       {stats.get('actors', len(depths))} running",
        f"mailboxes:    {mailboxes}",
        "messages:     "
        f"{stats.get('sent', 0):,} sent, {stats.get('delivered', 0):,} delivered, "
        f"{stats.get('dropped', 0):,} dropped, {stats.get('duplicated', 0):,} duplicated, "
        f"{stats.get('dead_letters', 0):,} dead letters",
    ]
    if snapshot is None:
        lines.append("apps:         (the BBS did not answer)")
        return lines
    totals = _instance_totals(snapshot)
    lines.append(
        f"apps:         {totals['apps']} started, {totals['running']} of {totals['desired']} instances running"
        + (f", {totals['starting']} starting" if totals["starting"] else "")
        + (f", {totals['crashed']} crashed" if totals["crashed"] else "")
        + (f", {totals['unclaimed']} unplaced" if totals["unclaimed"] else "")
    )
    rows = []
    for app in snapshot.apps:
        name = app_names.get(app.app_guid, app.app_name)
        detail = [f"{app.counts.running}/{app.desired} running"]
        for key, word in (("starting", "starting"), ("crashed", "crashed"), ("unclaimed", "unplaced")):
            if getattr(app.counts, key):
                detail.append(f"{getattr(app.counts, key)} {word}")
        rows.append((name, ", ".join(detail)))
    width = max((len(name) for name, _ in rows), default=0)
    for name, shown in sorted(rows):
        lines.append(f"   {name.ljust(width)}   {shown}")
    lines.append(f"tasks:        {snapshot.tasks.pending} pending, {snapshot.tasks.running} running")
    lines.append(f"cells:        {len(snapshot.cells)} present")
    return lines


def serve_line(stats: Mapping[str, Any], snapshot: BBSStatistics | None, *, now: float | None = None) -> str:
    """One line for `serve`'s stdout: apps, instances, cells, messages."""
    clock = time.strftime("%H:%M:%S", time.localtime(time.time() if now is None else now))
    messages = f"messages {stats.get('delivered', 0):,} delivered, {stats.get('dead_letters', 0):,} dead letters"
    if snapshot is None:
        return f"[{clock}] the BBS did not answer; {messages}"
    totals = _instance_totals(snapshot)
    return (
        f"[{clock}] apps {totals['apps']} started, "
        f"instances {totals['running']}/{totals['desired']} running, "
        f"cells {len(snapshot.cells)}, {messages}"
    )


async def gather(platform: Any, *, with_names: bool = True, timeout: float = 5.0) -> dict[str, Any]:
    """What `status_lines` needs, from a running platform. Parts that do not
    answer in time are left out rather than failing the whole status."""
    system = platform.system
    snapshot = None
    names: dict[str, str] = {}
    try:
        snapshot = await system.ask("bbs", BBSSnapshot(), timeout=timeout)
    except Exception:  # noqa: BLE001 - a missing BBS is shown, not raised
        snapshot = None
    if with_names and snapshot:
        try:
            for app, _ in await system.ask("cloud_controller", ListApps(), timeout=timeout):
                names[app.guid] = app.name
        except Exception:  # noqa: BLE001 - guids stand in for names
            pass
    stats = dict(system.statistics())
    stats["speed"] = getattr(platform.clock, "speed", 1.0)
    return {
        "stats": stats,
        "depths": system.mailbox_depths(),
        "snapshot": snapshot,
        "names": names,
    }
