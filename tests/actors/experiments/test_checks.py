"""The checks judge recorded data; each can pass, and each can fail."""

from __future__ import annotations

import pytest

from actors.experiments.checks import (
    CheckResult,
    check_apps_intact,
    check_blobs,
    check_crash_backoff,
    check_drain_capacity,
    check_pushes_end,
    check_recovery,
    check_retries,
    verdict,
)
from actors.experiments.record import CommandRecord, Sample
from actors.experiments.schema import BackoffCheck, Checks


def cmd(seq: int, outcome: str, error: str | None = None, line: str = "", retry_of: int | None = None) -> CommandRecord:
    return CommandRecord(
        seq, "push", f"app-{seq}", ["push", f"app-{seq}"], 0.0, 5.0, None, outcome, error, line, retry_of
    )


def sample(t: float, apps: dict[str, tuple[int, int]], cells: dict[str, int] | None = None) -> Sample:
    return Sample(
        t=t,
        desired=sum(d for d, _ in apps.values()),
        running=sum(r for _, r in apps.values()),
        bbs_running=0,
        starting=0,
        crashed=0,
        unclaimed=0,
        apps=apps,
        stats={},
        cells=cells or {},
    )


def test_the_verdict_is_invalid_on_any_failure_else_unknown_on_any_doubt_else_valid():
    ok, bad, doubt = (CheckResult("a", s, "") for s in ("pass", "fail", "unknown"))
    assert verdict([ok, ok]) == "valid"
    assert verdict([ok, doubt]) == "unknown"
    assert verdict([doubt, bad, ok]) == "invalid"


# --- pushes -------------------------------------------------------------------------------


def test_pushes_that_end_in_success_or_a_named_error_pass():
    records = [cmd(1, "succeeded"), cmd(2, "failed", "StagingError", "Error staging application: StagingError - x")]
    result = check_pushes_end(records, Checks(pushes_end=True))
    assert result.status == "pass"
    assert result.details["failed"] == {"StagingError": 1}


def test_a_hung_push_fails_the_check():
    result = check_pushes_end([cmd(1, "succeeded"), cmd(2, "hung", line="no answer")], Checks(pushes_end=True))
    assert result.status == "fail"
    assert "1 never ended (first: push app-2)" in result.summary


def test_a_failure_without_a_named_error_fails_the_check():
    result = check_pushes_end([cmd(1, "failed", None, "Unexpected error: KeyError")], Checks(pushes_end=True))
    assert result.status == "fail" and "without a named error" in result.summary


def test_a_named_error_outside_expect_failures_fails_the_check():
    checks = Checks(pushes_end=True, expect_failures=("StagingError",))
    result = check_pushes_end([cmd(1, "failed", "AskTimeout", "AskTimeout - x")], checks)
    assert result.status == "fail" and "not in expect_failures" in result.summary


def test_too_few_successes_fail_min_succeeded():
    records = [cmd(1, "succeeded"), cmd(2, "failed", "StagingError", "x"), cmd(3, "failed", "StagingError", "x")]
    assert check_pushes_end(records, Checks(min_succeeded=0.5)).status == "fail"
    assert check_pushes_end(records, Checks(min_succeeded=0.3)).status == "pass"


def test_pushes_interrupted_by_the_kill_are_not_hung():
    result = check_pushes_end([cmd(1, "succeeded"), cmd(2, "interrupted")], Checks(min_succeeded=1.0))
    assert result.status == "pass" and "1 interrupted by the kill" in result.summary


def test_interrupted_pushes_must_succeed_when_run_again():
    good = [cmd(1, "interrupted"), cmd(2, "succeeded", retry_of=1)]
    bad = [cmd(1, "interrupted"), cmd(2, "failed", "StagingError", "boom", retry_of=1)]
    assert check_retries(good).status == "pass"
    assert check_retries(bad).status == "fail"
    assert check_retries([cmd(1, "succeeded")]).status == "unknown"


# --- recovery --------------------------------------------------------------------------------


def app(name: str, desired: int, running: int) -> dict:
    return {"name": name, "desired": desired, "running": running, "ok": desired == running}


def test_recovery_within_the_bound_passes_and_says_how_long_it_took():
    result = check_recovery(healed_at=60, within=120, recovered_at=75.5, final=[app("a", 3, 3)])
    assert result.status == "pass"
    assert result.details["time_to_recover"] == 15.5


def test_no_recovery_within_the_bound_fails_naming_an_app_short_of_instances():
    result = check_recovery(healed_at=60, within=120, recovered_at=None, final=[app("a", 3, 3), app("b", 3, 1)])
    assert result.status == "fail"
    assert "b: 1/3 running" in result.summary


def test_falling_short_again_by_the_end_fails():
    assert check_recovery(healed_at=0, within=10, recovered_at=5, final=[app("a", 2, 1)]).status == "fail"


def test_recovery_only_judges_the_apps_it_is_told_to():
    final = [app("steady", 2, 2), app("crashy", 1, 0)]
    assert check_recovery(healed_at=0, within=10, recovered_at=1, final=final, pattern="steady").status == "pass"


# --- blobs and apps ----------------------------------------------------------------------------


def test_blobs_all_present_and_no_orphans_pass():
    inv = {"referenced": 3, "held": 3, "missing": [], "corrupt": [], "orphans": []}
    assert check_blobs(inv, orphans_swept_at=None, orphans_first=0, within=10).status == "pass"


@pytest.mark.parametrize("kind", ["missing", "corrupt", "orphans"])
def test_a_missing_corrupt_or_orphaned_blob_fails(kind):
    inv = {"referenced": 3, "held": 3, "missing": [], "corrupt": [], "orphans": [], kind: ["ab" * 32]}
    result = check_blobs(inv, orphans_swept_at=None, orphans_first=0, within=10)
    assert result.status == "fail"
    assert f"1 {'orphaned' if kind == 'orphans' else kind}" in result.summary


def test_an_inventory_that_could_not_be_taken_is_unknown():
    assert check_blobs({"error": "down"}, orphans_swept_at=None, orphans_first=0, within=1).status == "unknown"


def test_an_app_left_mid_flight_is_not_intact():
    apps = [
        {"name": "a", "droplet": "d1", "problems": []},
        {"name": "b", "droplet": None, "problems": ["build 123 left STAGING"]},
    ]
    result = check_apps_intact(apps)
    assert result.status == "fail" and "b: build 123 left STAGING" in result.summary
    assert check_apps_intact(apps[:1]).status == "pass"


# --- crash backoff -------------------------------------------------------------------------------


def crashes(times: list[float]) -> dict:
    return {"crashy": [{"index": 0, "crash_count": n, "crash_timestamp": t} for n, t in enumerate(times, 1)]}


# run time 4 s: crashes 1 and 2 restart at once, then 30, 60, 120, 240 s.
ON_SCHEDULE = [0, 4, 8, 42, 106, 230, 474]


def test_restarts_on_diegos_schedule_pass():
    result = check_crash_backoff(crashes(ON_SCHEDULE), BackoffCheck(app="crashy", tolerance=1, min_crashes=7))
    assert result.status == "pass"
    assert [g["expected"] for g in result.details["gaps"]] == [4, 4, 34, 64, 124, 244]


def test_a_restart_that_ignores_the_backoff_fails():
    early = [0, 4, 8, 12, 16, 20, 24]  # restarted at once every time
    result = check_crash_backoff(crashes(early), BackoffCheck(app="crashy", tolerance=1, min_crashes=7))
    assert result.status == "fail"
    assert "after crash 3 the next came 4.0 s later, expected 34" in result.summary


def test_too_few_crashes_to_judge_is_unknown():
    result = check_crash_backoff(crashes(ON_SCHEDULE[:3]), BackoffCheck(app="crashy", min_crashes=5))
    assert result.status == "unknown"


# --- drain -----------------------------------------------------------------------------------------


DRAIN = [{"t": 10.0, "action": "drain", "cell": "cell-1", "moving": 2}]


def test_a_drain_that_keeps_capacity_and_empties_the_cell_passes():
    samples = [
        sample(9, {"a": (3, 3)}, {"cell-1": 2}),
        sample(11, {"a": (3, 3)}, {"cell-1": 1}),
        sample(12, {"a": (3, 2)}, {"cell-1": 0}),
        sample(13, {"a": (3, 3)}, {"cell-1": 0}),
    ]
    result = check_drain_capacity(samples, DRAIN, {"cell-1": 0})
    assert result.status == "pass"
    assert result.details["emptied_at"] == {"cell-1": 12}


def test_a_drain_that_stops_before_replacing_fails():
    samples = [sample(9, {"a": (3, 3)}), sample(11, {"a": (3, 1)}), sample(13, {"a": (3, 3)})]
    result = check_drain_capacity(samples, DRAIN, {"cell-1": 0})
    assert result.status == "fail" and "a 1/3 at t=11" in result.summary


def test_a_drain_that_never_finishes_fails():
    samples = [sample(9, {"a": (3, 3)}), sample(11, {"a": (3, 3)})]
    result = check_drain_capacity(samples, DRAIN, {"cell-1": 2})
    assert result.status == "fail" and "cell-1 still runs 2 instances" in result.summary


def test_no_drain_is_unknown():
    assert check_drain_capacity([sample(1, {})], []).status == "unknown"
