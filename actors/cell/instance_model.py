"""Simulated app instances: how an instance behaves once a cell starts it.

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

Randomness comes only from the `random.Random` passed in, and a draw is made
only when a knob makes it matter (a jitter above 0, a probability strictly
between 0 and 1), so apps that use no random knob leave the platform's random
stream untouched.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

from protocol.states import HealthCheckType

__all__ = [
    "APP_PORT",
    "KNOBS",
    "OOM_EXIT_STATUS",
    "InstanceModel",
    "StartPlan",
    "go_duration",
    "unknown_knobs",
]

APP_PORT = 8080
OOM_EXIT_STATUS = 137

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
class StartPlan:
    """One start of one instance, decided when it starts. Times are seconds
    after the start; `None` means "never"."""

    healthy_after: float | None  # becomes RUNNING at this time
    crash_after: float | None  # becomes CRASHED at this time
    exit_status: int | None  # None when the platform killed it (health check)
    exit_description: str  # what `cf events` shows for the crash; "" if none

    @property
    def crashes(self) -> bool:
        return self.crash_after is not None


@dataclass(frozen=True, slots=True)
class InstanceModel:
    """How an app's instances behave; see the module docstring for the knobs."""

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
    def from_env(cls, env: Mapping[str, str]) -> InstanceModel:
        """Read the knobs from an app's environment; bad values raise `ValueError`."""

        def get(name: str) -> str | None:
            value = env.get(name)
            if value is None or not str(value).strip():
                return None
            return str(value).strip()

        kwargs: dict[str, object] = {}
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

    # --- pure pieces -----------------------------------------------------------

    def startup_delay(self, rng: random.Random) -> float:
        """Seconds from start until the app would answer a port/http check."""
        if self.startup_jitter_seconds > 0:
            return self.startup_seconds + rng.uniform(0.0, self.startup_jitter_seconds)
        return self.startup_seconds

    def crash_delay(self, rng: random.Random) -> float | None:
        """Seconds of healthy running before a crash; `None`: never crashes."""
        if self.crash_after_seconds is None:
            return None
        if self.crash_jitter_seconds > 0:
            return self.crash_after_seconds + rng.uniform(0.0, self.crash_jitter_seconds)
        return self.crash_after_seconds

    def crashes_during_startup(self, rng: random.Random) -> bool:
        """Does this start fail before the app is up (MF_CRASH_PROBABILITY)?"""
        if self.crash_probability <= 0.0:
            return False
        if self.crash_probability >= 1.0:
            return True
        return rng.random() < self.crash_probability

    def health_check_passes(self, check_type: HealthCheckType | str) -> bool:
        """Would this check ever pass, given time? (A process check always does.)"""
        check = HealthCheckType(check_type)
        if check is HealthCheckType.PROCESS:
            return True
        if not self.healthy:
            return False
        return check is HealthCheckType.PORT or self.http_status == 200

    def out_of_memory(self, memory_quota_mb: float) -> bool:
        return self.memory_mb > memory_quota_mb

    def memory_usage_mb(self, memory_quota_mb: float) -> float:
        """Memory shown for a running instance (never above its quota)."""
        return min(self.memory_mb, memory_quota_mb)

    def disk_usage_mb(self, disk_quota_mb: float) -> float:
        """Disk shown for a running instance (never above its quota)."""
        return min(self.disk_mb, disk_quota_mb)

    # --- one start, whole ------------------------------------------------------

    def plan_start(
        self,
        rng: random.Random,
        *,
        health_check_type: HealthCheckType | str = HealthCheckType.PORT,
        timeout_s: float = 60.0,
        memory_quota_mb: float = float("inf"),
        http_endpoint: str = "/",
    ) -> StartPlan:
        """Decide one start: when (if ever) it becomes healthy, and when (if
        ever) it crashes, with the exit status and description CF would show.

        Order of events: a startup crash (MF_CRASH_PROBABILITY) or out of
        memory ends the start before the app is up; otherwise the health check
        passes after the startup delay, unless it never can or the delay is
        longer than `timeout_s`, in which case the platform kills the instance
        at `timeout_s`; a healthy instance crashes MF_CRASH_AFTER_SECONDS later.
        """
        check = HealthCheckType(health_check_type)
        delay = self.startup_delay(rng)
        if self.crashes_during_startup(rng):
            at = delay * rng.random() if delay > 0 else 0.0
            return StartPlan(None, at, self.exit_status, _exited(self.exit_status))
        if self.out_of_memory(memory_quota_mb):
            return StartPlan(
                None, delay, OOM_EXIT_STATUS, f"{_exited(OOM_EXIT_STATUS)} (out of memory)"
            )
        if check is HealthCheckType.PROCESS:
            healthy_at = 0.0
        elif self.health_check_passes(check) and delay <= timeout_s:
            healthy_at = delay
        else:
            reason = self._never_healthy(check, timeout_s, delay, http_endpoint)
            return StartPlan(None, float(timeout_s), None, reason)
        crash = self.crash_delay(rng)
        if crash is None:
            return StartPlan(healthy_at, None, None, "")
        return StartPlan(healthy_at, healthy_at + crash, self.exit_status, _exited(self.exit_status))

    def _never_healthy(self, check: HealthCheckType, timeout_s: float, delay: float, endpoint: str) -> str:
        prefix = f"Instance never healthy after {go_duration(timeout_s)}"
        # An app still starting at the timeout is not listening yet.
        listening = self.healthy and delay <= timeout_s
        if check is HealthCheckType.HTTP and listening:
            return (
                f"{prefix}: Failed to make HTTP request to '{endpoint}' on port {APP_PORT}: "
                f"received status code {self.http_status}"
            )
        if check is HealthCheckType.HTTP:
            return f"{prefix}: Failed to make HTTP request to '{endpoint}' on port {APP_PORT}: connection refused"
        return f"{prefix}: Failed to make TCP connection to port {APP_PORT}: connection refused"


def unknown_knobs(env: Mapping[str, str]) -> list[str]:
    """``MF_*`` names in `env` that are not knobs (likely typos), sorted."""
    return sorted(k for k in env if k.startswith("MF_") and k not in KNOBS)


def go_duration(seconds: float) -> str:
    """Seconds as Go prints a `time.Duration`: ``1m0s``, ``30s``, ``1.5s``, ``500ms``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{rest:g}s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def _exited(status: int) -> str:
    return f"APP/PROC/WEB: Exited with status {status}"


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
