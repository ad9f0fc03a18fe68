"""Simulated app instances: how an instance behaves once a cell starts it.

Instances never execute their start command: what an instance does is a
model chosen by the app's `MF_*` environment variables, the knobs
`protocol.knobs` lists and documents (Cloud Controller checks them at push;
this module plans each start from them).

Randomness comes only from the `random.Random` passed in, and a draw is made
only when a knob makes it matter (a jitter above 0, a probability strictly
between 0 and 1), so apps that use no random knob leave the platform's random
stream untouched.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from protocol.knobs import KNOBS, InstanceKnobs, unknown_knobs
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
class InstanceModel(InstanceKnobs):
    """How an app's instances behave: the knobs, and what one start does with them."""

    # --- pure pieces -----------------------------------------------------------

    @property
    def draws(self) -> bool:
        """Does a start draw from the generator? If not, every start of the
        app with the same health check plans the same (`plan_start` is pure)."""
        return (
            self.startup_jitter_seconds > 0
            or self.crash_probability > 0
            or (self.crash_after_seconds is not None and self.crash_jitter_seconds > 0)
        )

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
        check = _check_type(check_type)
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
        check = _check_type(health_check_type)
        delay = self.startup_delay(rng)
        if self.crashes_during_startup(rng):
            at = delay * rng.random() if delay > 0 else 0.0
            return StartPlan(None, at, self.exit_status, _exited(self.exit_status))
        if self.out_of_memory(memory_quota_mb):
            return StartPlan(None, delay, OOM_EXIT_STATUS, f"{_exited(OOM_EXIT_STATUS)} (out of memory)")
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


def _check_type(value: HealthCheckType | str) -> HealthCheckType:
    # A member as it is (the cells' desired LRPs hold members): the enum's
    # own lookup costs a Python call for every instance started.
    return value if type(value) is HealthCheckType else HealthCheckType(value)


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
