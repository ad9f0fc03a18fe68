"""The block cf v8 prints before applying a manifest: the manifest as cf
re-serialises it (its key order, flags applied, `default-route: true` added
where neither `no-route` nor `random-route` is set), each line marked
against what Cloud Controller has: ``+`` added, ``-`` removed, two spaces
unchanged.

Cloud Controller's diff rules are kept: a new app is diffed against nothing
(every key is added), top-level `memory` and `disk-quota` are never diffed,
and `default-route` (which it never reports back) is always an addition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from protocol.records import AppRecord

__all__ = ["diff_lines", "displayed_manifest"]

#: cf's order of the keys it knows (its manifest struct); other keys follow, sorted.
KEY_ORDER = (
    "name",
    "disk-quota",
    "docker",
    "health-check-type",
    "health-check-http-endpoint",
    "timeout",
    "instances",
    "path",
    "processes",
    "memory",
    "no-route",
    "random-route",
    "default-route",
    "stack",
    "log-rate-limit-per-second",
    "lifecycle",
)
_NEVER_DIFFED = frozenset({"memory", "disk-quota", "path"})


def _plain(value: Any) -> Any:
    """Frozen manifest data back to plain YAML data."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def displayed_manifest(entry: Mapping[str, Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    """One app's manifest entry as cf shows it: flags over the entry, then
    `default-route`, keys in cf's order."""
    data = {str(k): _plain(v) for k, v in entry.items()}
    data.update({k: v for k, v in flags.items() if v is not None})
    if not data.get("no-route") and not data.get("random-route"):
        data["default-route"] = True
    known = [k for k in KEY_ORDER if k in data]
    rest = sorted(k for k in data if k not in KEY_ORDER)
    return {k: data[k] for k in [*known, *rest]}


def _current(app: AppRecord) -> dict[str, Any]:
    """What Cloud Controller would report of an existing app, in manifest keys."""
    shown: dict[str, Any] = {
        "name": app.name,
        "instances": app.instances,
        "stack": app.stack,
        "health-check-type": app.health_check_type.value,
        "routes": [{"route": r} for r in app.routes],
    }
    if app.buildpacks:
        shown["buildpacks"] = list(app.buildpacks)
    if app.command:
        shown["command"] = app.command
    if app.health_check_http_endpoint:
        shown["health-check-http-endpoint"] = app.health_check_http_endpoint
    if app.health_check_timeout is not None:
        shown["timeout"] = app.health_check_timeout
    if app.env:
        shown["env"] = dict(app.env)
    return shown


def _lines_of(key: str, value: Any) -> list[str]:
    text = yaml.safe_dump({key: value}, default_flow_style=False, sort_keys=False, allow_unicode=True, width=10**6)
    return text.rstrip("\n").split("\n")


def _same(key: str, new: Any, old: Any) -> bool:
    if key in ("instances", "timeout"):
        try:
            return int(new) == int(old)
        except (TypeError, ValueError):
            return False
    if key == "env" and isinstance(new, Mapping) and isinstance(old, Mapping):
        return {k: str(v) for k, v in new.items()} == {k: str(v) for k, v in old.items()}
    return bool(new == old)


def _app_lines(shown: Mapping[str, Any], app: AppRecord | None) -> list[str]:
    current = _current(app) if app is not None else {}
    lines: list[str] = []
    for n, (key, value) in enumerate(shown.items()):
        lead = "- " if n == 0 else "  "
        block = _lines_of(key, value)
        if key == "default-route":
            marker = "+ "
        elif key in _NEVER_DIFFED or (app is not None and key in current and _same(key, value, current[key])):
            marker = "  "
        elif app is not None and key in current:
            for i, line in enumerate(_lines_of(key, current[key])):
                lines.append("- " + (lead if i == 0 else "  ") + line)
            marker = "+ "
        else:
            marker = "+ " if app is None or key != "name" else "  "
        for i, line in enumerate(block):
            lines.append(marker + (lead if i == 0 else "  ") + line)
    return lines


def diff_lines(apps: Sequence[tuple[Mapping[str, Any], AppRecord | None]]) -> list[str]:
    """The block after ``Updating with these attributes...``."""
    lines = ["  ---", "  applications:"]
    for shown, app in apps:
        lines += _app_lines(shown, app)
    return lines
