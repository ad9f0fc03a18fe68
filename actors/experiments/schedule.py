"""Turning `[[faults]]` entries into calls on the platform's `Faults`.

Each entry becomes one call of the Faults API (the same one the REPL's fault
commands use); what it did (the cells it killed, the rule it added) goes to
the recording, and a timed fault's end is put on the timeline.

Two conventions keep experiments honest:

- `from = "*"` and `to = "*"` (the defaults) mean every platform component:
  not the experimenter (the runner's own commands enter as the user and are
  not the platform's messages to lose), and not the supervisors (a crashed
  actor telling its supervisor is process-local, not a network message; lose
  it and the crashed component is never restarted).
- group members `zone:z1` stand for the cells of that zone.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from actors.experiments.schema import Experiment, FaultStep
from actors.runtime import Supervisor
from actors.runtime.delivery import EXTERNAL

if TYPE_CHECKING:
    from actors.experiments.record import Recording
    from actors.platform import Platform

__all__ = ["apply_fault", "describe_fault", "running_by_cell"]


def describe_fault(step: FaultStep) -> str:
    if step.label:
        return step.label
    o = step.options
    a = step.action
    if a == "kill-cells":
        return f"kill {o['count']} cells" if "count" in o else f"kill {o['fraction']:.0%} of cells"
    if a in ("kill", "pause", "resume"):
        return f"{a} {o['actor']}"
    if a == "drain":
        return f"drain {o.get('cell', 'busiest cell')}"
    if a == "partition":
        arrow = " -/-> " if o.get("one_way") else " | "
        return "partition " + arrow.join(",".join(g) for g in o["groups"])
    if a in ("drop", "duplicate", "delay", "reorder"):
        p = o.get("probability", 1.0)
        text = f"{a} {p:.0%}" if p < 1 else a
        if a in ("delay", "reorder"):
            text += f" {o['seconds']:g}s"
        src, dst = o.get("from", "*"), o.get("to", "*")
        if (src, dst) != ("*", "*"):
            text += f" {src}->{dst}"
        if o.get("type"):
            text += f" {o['type']}"
        return text
    if a in ("blob-fail", "db-fail"):
        p = o.get("probability", 1.0)
        return f"{a} {o.get('ops', 'all')}" + (f" {p:.0%}" if p < 1 else "")
    if a in ("blob-slow", "db-slow"):
        return f"{a} {o.get('ops', 'all')} +{o['seconds']:g}s"
    if a == "crash-storm":
        return f"crash storm {o['fraction']:.0%}"
    if a == "corrupt-blob":
        return f"corrupt a {o.get('kind', 'blob')}"
    if a == "kill-platform":
        return "SIGKILL the platform"
    return a


def _zone_cells(exp: Experiment, zone: str) -> list[str]:
    zones = max(1, exp.platform.zones)
    return [f"cell-{i}" for i in range(1, exp.platform.cells + 1) if f"z{(i - 1) % zones + 1}" == zone]


def _expand(exp: Experiment, names: tuple[str, ...] | list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        if name.startswith("zone:"):
            out += _zone_cells(exp, name[5:])
        else:
            out.append(name)
    return out


def _platform_actors(platform: Platform) -> frozenset[str]:
    """The components: every named actor but the user and the supervisors."""
    system = platform.system
    return frozenset(n for n in system.names() if n != EXTERNAL and not isinstance(system.actor(n), Supervisor))


def running_by_cell(platform: Platform) -> dict[str, int]:
    """Instances running on each live cell, from its statistics (no message sent)."""
    counts: dict[str, int] = {}
    for name in platform.system.names():
        if re.fullmatch(r"cell-\d+", name):
            actor = platform.system.actor(name)
            if actor is not None:
                counts[name] = actor.statistics().running  # type: ignore[attr-defined]
    return counts


async def apply_fault(
    platform: Platform, exp: Experiment, step: FaultStep, recording: Recording, t: float
) -> dict[str, Any]:
    """Inject one fault now; return what was done (also recorded)."""
    faults = platform.faults
    o = step.options
    a = step.action
    entry: dict[str, Any] = {"t": round(t, 3), "action": a, "label": describe_fault(step), "duration": step.duration}
    if a == "kill-cells":
        victims = await faults.kill_cells(fraction=o.get("fraction"), count=o.get("count"))
        entry["victims"] = victims
        entry["label"] += f" ({', '.join(victims)})"
        if step.duration is not None and victims:
            # Down for a while: the restarted cells are cut off from every
            # other actor (their own timers still tick) until the time is up.
            others = sorted(_platform_actors(platform) - set(victims))
            entry["rule"] = faults.partition([victims, others], duration=step.duration)
    elif a == "kill":
        entry["ok"] = faults.kill(o["actor"])
    elif a == "pause":
        entry["ok"] = faults.pause(o["actor"])
    elif a == "resume":
        entry["ok"] = faults.resume(o["actor"])
    elif a == "drain":
        cell = o.get("cell")
        if cell is None:
            by_cell = running_by_cell(platform)
            cell = max(sorted(by_cell, key=lambda c: int(c.split("-")[1])), key=lambda c: by_cell[c], default="cell-1")
        entry["cell"] = cell
        entry["label"] = f"drain {cell}"
        entry["moving"] = await faults.drain(cell)
    elif a == "partition":
        groups = [_expand(exp, g) for g in o["groups"]]
        entry["groups"] = groups
        entry["rule"] = faults.partition(groups, one_way=bool(o.get("one_way")), duration=step.duration)
    elif a in ("drop", "duplicate", "delay", "reorder"):
        src = o.get("from", "*")
        sender: Any = _platform_actors(platform) if src == "*" else frozenset(_expand(exp, [src]))
        dst = o.get("to", "*")
        receiver: Any = _platform_actors(platform) if dst == "*" else frozenset(_expand(exp, [dst]))
        rule = faults.message_fault(
            a,
            sender=sender,
            receiver=receiver,
            message_type=o.get("type", "*"),
            probability=o.get("probability", 1.0),
            delay=o.get("seconds", 0.0),
            duration=step.duration,
            label=describe_fault(step),
        )
        entry["rule"] = rule.rule_id
    elif a in ("blob-fail", "db-fail", "blob-slow", "db-slow"):
        store = a.split("-")[0]
        add = faults.blob_fault if store == "blob" else faults.db_fault
        ops = o.get("ops", "blob.*" if store == "blob" else "ccdb.*")
        if a.endswith("fail"):
            storage_rule = add(ops, probability=o.get("probability", 1.0), duration=step.duration)
        else:
            storage_rule = add(ops, delay=o["seconds"], fail=False, duration=step.duration)
        entry["rule"] = storage_rule.rule_id
    elif a == "corrupt-blob":
        entry["key"] = await faults.corrupt_blob(o.get("key"), kind=o.get("kind"))
        if entry["key"] is None:
            # Nothing was corrupted: the run would test nothing it meant to.
            what = f"blob {o['key']}" if o.get("key") else f"{o.get('kind') or 'blob'} is stored"
            raise LookupError(f"no {what} to corrupt at {t:g} s")
    elif a == "crash-storm":
        entry["crashed"] = await faults.crash_storm(o["fraction"])
    else:  # kill-platform is the runner's own business
        raise ValueError(f"apply_fault cannot do {a}")
    recording.fault(entry)
    details = {k: v for k, v in entry.items() if k not in ("t", "action", "label", "duration")}
    recording.event(
        t, "fault", entry["label"], action=a, until=(t + step.duration) if step.duration else None, **details
    )
    return entry
