"""The knobs of a simulated app instance: the `MF_*` environment variables
that say how it behaves once a cell starts it.

Instances never execute their start command. What an instance does — how
long it takes to become healthy, how much memory it uses, whether and when it
crashes — is a model chosen by the app's environment variables, so a user
sets it in ``manifest.yml`` (``env:``) or with ``cf set-env``:

===========================  ========  ====================================================
knob                         default   meaning
===========================  ========  ====================================================
MF_STARTUP_SECONDS           1.0       seconds from start until the app answers its health
                                       check (port/http checks; a process check passes at
                                       once)
MF_STARTUP_JITTER_SECONDS    0         up to this many seconds more, drawn per start
MF_MEMORY_MB                 32        memory used while running; over the app's memory
                                       quota the instance is killed at startup (exit 137,
                                       out of memory)
MF_DISK_MB                   60        disk used (shown capped at the disk quota)
MF_CRASH_AFTER_SECONDS       unset     crash after running (healthy) this long; unset:
                                       never crashes on its own
MF_CRASH_JITTER_SECONDS      0         up to this many seconds more, drawn per start
MF_EXIT_STATUS               1         exit status reported when it crashes (0-255)
MF_HEALTHY                   true      false: the health check never passes, so the
                                       instance is killed at the health-check timeout and
                                       counts as a crash (no effect with a process check)
MF_HTTP_STATUS               200       status the app answers an http health check with;
                                       anything but 200 fails the check
MF_CRASH_PROBABILITY         0         chance (0-1), per start, of crashing while starting
===========================  ========  ====================================================

Booleans accept true/false, yes/no, on/off, 1/0. An empty value means unset.
Other ``MF_*`` names are not knobs: `unknown_knobs` lists them so the platform
can warn about typos.

Cloud Controller checks them at push (a bad value is refused by name); the
cell plans each start from them (`actors.cell.instance_model`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

__all__ = ["KNOBS", "InstanceKnobs", "unknown_knobs"]

KNOBS = (
    "MF_STARTUP_SECONDS",
    "MF_STARTUP_JITTER_SECONDS",
    "MF_MEMORY_MB",
    "MF_DISK_MB",
    "MF_CRASH_AFTER_SECONDS",
    "MF_CRASH_JITTER_SECONDS",
    "MF_EXIT_STATUS",
    "MF_HEALTHY",
    "MF_HTTP_STATUS",
    "MF_CRASH_PROBABILITY",
)

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


@dataclass(frozen=True, slots=True)
class InstanceKnobs:
    """The knob values of an app's instances; see the module docstring."""

    startup_seconds: float = 1.0
    startup_jitter_seconds: float = 0.0
    memory_mb: float = 32.0
    disk_mb: float = 60.0
    crash_after_seconds: float | None = None
    crash_jitter_seconds: float = 0.0
    exit_status: int = 1
    healthy: bool = True
    http_status: int = 200
    crash_probability: float = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        """Read the knobs from an app's environment; bad values raise `ValueError`."""

        def get(name: str) -> str | None:
            value = env.get(name)
            if value is None or not str(value).strip():
                return None
            return str(value).strip()

        kwargs: dict[str, Any] = {}
        for name, field, low in (
            ("MF_STARTUP_SECONDS", "startup_seconds", 0.0),
            ("MF_STARTUP_JITTER_SECONDS", "startup_jitter_seconds", 0.0),
            ("MF_DISK_MB", "disk_mb", 0.0),
            ("MF_CRASH_AFTER_SECONDS", "crash_after_seconds", 0.0),
            ("MF_CRASH_JITTER_SECONDS", "crash_jitter_seconds", 0.0),
        ):
            if (raw := get(name)) is not None:
                kwargs[field] = _number(name, raw, low=low)
        if (raw := get("MF_MEMORY_MB")) is not None:
            kwargs["memory_mb"] = _number("MF_MEMORY_MB", raw, low=0.0, low_open=True)
        if (raw := get("MF_CRASH_PROBABILITY")) is not None:
            kwargs["crash_probability"] = _number("MF_CRASH_PROBABILITY", raw, low=0.0, high=1.0)
        if (raw := get("MF_EXIT_STATUS")) is not None:
            kwargs["exit_status"] = _integer("MF_EXIT_STATUS", raw, 0, 255)
        if (raw := get("MF_HTTP_STATUS")) is not None:
            kwargs["http_status"] = _integer("MF_HTTP_STATUS", raw, 100, 599)
        if (raw := get("MF_HEALTHY")) is not None:
            if raw.lower() in _TRUE:
                kwargs["healthy"] = True
            elif raw.lower() in _FALSE:
                kwargs["healthy"] = False
            else:
                raise ValueError(f"MF_HEALTHY must be true or false, got {raw!r}")
        return cls(**kwargs)


def unknown_knobs(env: Mapping[str, str]) -> list[str]:
    """``MF_*`` names in `env` that are not knobs (likely typos), sorted."""
    return sorted(k for k in env if k.startswith("MF_") and k not in KNOBS)


def _number(name: str, raw: str, *, low: float, high: float | None = None, low_open: bool = False) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {raw!r}")
    if value < low or (low_open and value == low):
        raise ValueError(f"{name} must be {'above' if low_open else 'at least'} {low:g}, got {raw!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be at most {high:g}, got {raw!r}")
    return value


def _integer(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}, got {raw!r}")
    return value
