from __future__ import annotations

import pytest

from actors.bbs.backoff import next_crash_count, restart_at, restart_delay, should_restart


@pytest.mark.parametrize(
    ("crash_count", "delay"),
    [
        (1, 0.0),
        (2, 0.0),
        (3, 30.0),
        (4, 60.0),
        (5, 120.0),
        (6, 240.0),
        (7, 480.0),
        (8, 960.0),
        (9, 960.0),
        (50, 960.0),
        (199, 960.0),
        (200, None),
        (201, None),
        (10**9, None),
    ],
)
def test_restart_delay_follows_diegos_schedule(crash_count, delay):
    assert restart_delay(crash_count) == delay


def test_the_delay_never_exceeds_sixteen_minutes():
    assert max(restart_delay(c) for c in range(1, 200)) == 16 * 60


@pytest.mark.parametrize("crash_count", [0, -1])
def test_a_crash_count_below_one_is_refused(crash_count):
    with pytest.raises(ValueError):
        restart_delay(crash_count)


def test_a_crash_soon_after_starting_adds_to_the_count():
    assert next_crash_count(0, 1.0) == 1
    assert next_crash_count(4, 299.0) == 5


def test_a_crash_after_running_more_than_five_minutes_starts_the_count_again():
    assert next_crash_count(150, 301.0) == 1


def test_exactly_five_minutes_of_running_does_not_reset_the_count():
    assert next_crash_count(3, 300.0) == 4


def test_a_negative_previous_count_is_refused():
    with pytest.raises(ValueError):
        next_crash_count(-1, 0.0)


def test_should_restart_until_the_two_hundredth_crash():
    assert should_restart(1) and should_restart(199)
    assert not should_restart(200)


def test_restart_at_adds_the_delay_to_the_crash_time():
    assert restart_at(1000.0, 1) == 1000.0
    assert restart_at(1000.0, 4) == 1060.0
    assert restart_at(1000.0, 200) is None
