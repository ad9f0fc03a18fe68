"""Diego's crash restart policy, as pure functions the BBS calls.

An instance's crash count goes up by one per crash, but starts again from 1
when the instance had run for more than five minutes before crashing. The
first two crashes in a row restart at once; crash c >= 3 waits
30 s x 2^(c-3), at most 16 minutes; from the 200th crash on the instance is
left CRASHED and never restarted.

    crash:   1  2  3   4   5    6    7    8    9  ...  199  200
    delay:   0  0  30  60  120  240  480  960  960     960  never
"""

from __future__ import annotations

__all__ = [
    "BASE_DELAY_S",
    "CRASH_RESET_AFTER_S",
    "IMMEDIATE_RESTARTS",
    "MAX_DELAY_S",
    "MAX_RESTARTS",
    "next_crash_count",
    "restart_at",
    "restart_delay",
    "should_restart",
]

CRASH_RESET_AFTER_S = 5 * 60.0
IMMEDIATE_RESTARTS = 2
BASE_DELAY_S = 30.0
MAX_DELAY_S = 16 * 60.0
# From this crash count on, the instance is not restarted.
MAX_RESTARTS = 200


def next_crash_count(previous_count: int, ran_for_seconds: float) -> int:
    """The crash count after a crash, given the count before it and how long
    the instance ran (since its last start) before crashing."""
    if previous_count < 0:
        raise ValueError(f"crash count cannot be negative, got {previous_count}")
    if ran_for_seconds > CRASH_RESET_AFTER_S:
        return 1
    return previous_count + 1


def should_restart(crash_count: int) -> bool:
    return restart_delay(crash_count) is not None


def restart_delay(crash_count: int) -> float | None:
    """Seconds to wait before restarting after crash number `crash_count`
    (1 = first crash); `None`: never restart."""
    if crash_count < 1:
        raise ValueError(f"crash count starts at 1, got {crash_count}")
    if crash_count >= MAX_RESTARTS:
        return None
    if crash_count <= IMMEDIATE_RESTARTS:
        return 0.0
    doublings = crash_count - IMMEDIATE_RESTARTS - 1
    # Past 5 doublings the cap applies; stop there rather than build huge ints.
    if doublings >= 5:
        return MAX_DELAY_S
    return min(BASE_DELAY_S * 2**doublings, MAX_DELAY_S)


def restart_at(crashed_at: float, crash_count: int) -> float | None:
    """Clock time of the restart after a crash at `crashed_at`; `None`: never."""
    delay = restart_delay(crash_count)
    return None if delay is None else crashed_at + delay
