from __future__ import annotations

import random
from pathlib import Path

import pytest

from actors.cell.instance_model import KNOBS, InstanceModel, StartPlan, go_duration, unknown_knobs
from actors.manifest import load_manifest
from protocol.states import HealthCheckType

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_no_knobs_give_the_defaults():
    model = InstanceModel.from_env({})
    assert model == InstanceModel()
    assert (model.startup_seconds, model.memory_mb, model.disk_mb) == (1.0, 32.0, 60.0)
    assert model.crash_after_seconds is None
    assert (model.exit_status, model.healthy, model.http_status, model.crash_probability) == (1, True, 200, 0.0)


def test_every_knob_is_read_from_the_env():
    env = {
        "MF_STARTUP_SECONDS": "2.5",
        "MF_STARTUP_JITTER_SECONDS": "1",
        "MF_MEMORY_MB": "128",
        "MF_DISK_MB": "200",
        "MF_CRASH_AFTER_SECONDS": "30",
        "MF_CRASH_JITTER_SECONDS": "5",
        "MF_EXIT_STATUS": "3",
        "MF_HEALTHY": "no",
        "MF_HTTP_STATUS": "503",
        "MF_CRASH_PROBABILITY": "0.25",
        "UNRELATED": "ignored",
    }
    assert InstanceModel.from_env(env) == InstanceModel(2.5, 1.0, 128.0, 200.0, 30.0, 5.0, 3, False, 503, 0.25)
    assert set(env) - {"UNRELATED"} == set(KNOBS)


def test_an_empty_knob_value_means_unset():
    assert InstanceModel.from_env({"MF_CRASH_AFTER_SECONDS": "", "MF_HEALTHY": "  "}) == InstanceModel()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MF_STARTUP_SECONDS", "soon"),
        ("MF_STARTUP_SECONDS", "-1"),
        ("MF_STARTUP_SECONDS", "nan"),
        ("MF_MEMORY_MB", "0"),
        ("MF_DISK_MB", "inf"),
        ("MF_CRASH_AFTER_SECONDS", "-5"),
        ("MF_EXIT_STATUS", "256"),
        ("MF_EXIT_STATUS", "1.5"),
        ("MF_HEALTHY", "maybe"),
        ("MF_HTTP_STATUS", "99"),
        ("MF_CRASH_PROBABILITY", "1.5"),
    ],
)
def test_an_invalid_knob_value_raises_value_error_naming_the_knob(name, value):
    with pytest.raises(ValueError, match=name):
        InstanceModel.from_env({name: value})


def test_unknown_mf_names_are_listed_as_likely_typos():
    assert unknown_knobs({"MF_CRASH_AFTER": "3", "MF_HEALTHY": "true", "PATH": "/bin"}) == ["MF_CRASH_AFTER"]


def test_the_example_manifests_set_the_knobs_they_promise():
    crashloop = load_manifest(EXAMPLES / "crashloop" / "manifest.yml").apps[0]
    slowstart = load_manifest(EXAMPLES / "slowstart" / "manifest.yml").apps[0]
    assert InstanceModel.from_env(crashloop.env_dict).crash_after_seconds == 3.0
    assert InstanceModel.from_env(slowstart.env_dict).startup_seconds == 20.0


# --- randomness ---------------------------------------------------------------------------


def test_knobs_without_randomness_draw_nothing_from_the_rng():
    rng = random.Random(7)
    state = rng.getstate()
    model = InstanceModel(crash_after_seconds=10.0)
    model.plan_start(rng)
    assert model.startup_delay(rng) == 1.0
    assert model.crash_delay(rng) == 10.0
    assert rng.getstate() == state


@pytest.mark.parametrize(
    ("knobs", "draws"),
    [
        ({}, False),
        ({"crash_after_seconds": 10.0}, False),
        ({"crash_jitter_seconds": 3.0}, False),  # no crash to jitter
        ({"startup_jitter_seconds": 0.5}, True),
        ({"crash_after_seconds": 10.0, "crash_jitter_seconds": 3.0}, True),
        ({"crash_probability": 0.5}, True),
        ({"crash_probability": 1.0, "startup_seconds": 2.0}, True),
    ],
)
def test_a_model_says_whether_a_start_draws_from_the_generator(knobs, draws):
    # Cells plan an app's starts once per step when no start draws: that is
    # right only if `draws` is False exactly when plan_start leaves the
    # generator as it was, whatever the health check.
    model = InstanceModel(**knobs)
    assert model.draws is draws
    for check in HealthCheckType:
        for seed in range(20):
            rng = random.Random(seed)
            state = rng.getstate()
            model.plan_start(rng, health_check_type=check, timeout_s=60.0)
            if not draws:
                assert rng.getstate() == state
    if draws:
        states = set()
        for seed in range(20):
            rng = random.Random(seed)
            model.plan_start(rng)
            states.add(rng.getstate() != random.Random(seed).getstate())
        assert states == {True}


def test_jitter_stays_in_range_and_is_reproducible_by_seed():
    model = InstanceModel(
        startup_seconds=2.0, startup_jitter_seconds=1.0, crash_after_seconds=5.0, crash_jitter_seconds=2.0
    )
    delays = [model.startup_delay(random.Random(seed)) for seed in range(50)]
    assert all(2.0 <= d <= 3.0 for d in delays) and len(set(delays)) > 1
    assert all(5.0 <= model.crash_delay(random.Random(seed)) <= 7.0 for seed in range(50))
    assert model.plan_start(random.Random(3)) == model.plan_start(random.Random(3))


def test_crash_probability_zero_never_crashes_and_one_always_does():
    rng = random.Random(1)
    assert not any(InstanceModel(crash_probability=0.0).crashes_during_startup(rng) for _ in range(100))
    assert all(InstanceModel(crash_probability=1.0).crashes_during_startup(rng) for _ in range(100))


def test_crash_probability_between_draws_from_the_given_rng():
    model = InstanceModel(crash_probability=0.5)
    outcomes = [model.crashes_during_startup(random.Random(seed)) for seed in range(200)]
    assert 60 < sum(outcomes) < 140
    assert outcomes == [model.crashes_during_startup(random.Random(seed)) for seed in range(200)]


def test_the_global_random_is_never_used(monkeypatch: pytest.MonkeyPatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("global random used")

    for name in ("random", "uniform", "randint", "choice", "gauss"):
        monkeypatch.setattr(random, name, refuse)
    model = InstanceModel(
        startup_jitter_seconds=1.0, crash_after_seconds=1.0, crash_jitter_seconds=1.0, crash_probability=0.5
    )
    for seed in range(20):
        model.plan_start(random.Random(seed))


# --- health checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "check", "passes"),
    [
        (InstanceModel(), "port", True),
        (InstanceModel(), "http", True),
        (InstanceModel(), "process", True),
        (InstanceModel(healthy=False), "port", False),
        (InstanceModel(healthy=False), "http", False),
        (InstanceModel(healthy=False), "process", True),
        (InstanceModel(http_status=500), "http", False),
        (InstanceModel(http_status=500), "port", True),
    ],
)
def test_health_check_passes_by_check_type(model, check, passes):
    assert model.health_check_passes(check) is passes
    assert model.health_check_passes(HealthCheckType(check)) is passes


# --- whole starts --------------------------------------------------------------------------


def test_a_default_instance_is_healthy_after_a_second_and_never_crashes():
    assert InstanceModel().plan_start(random.Random(0)) == StartPlan(1.0, None, None, "")


def test_crash_after_seconds_counts_from_when_the_instance_became_healthy():
    plan = InstanceModel(startup_seconds=2.0, crash_after_seconds=3.0, exit_status=4).plan_start(random.Random(0))
    assert plan == StartPlan(2.0, 5.0, 4, "APP/PROC/WEB: Exited with status 4")
    assert plan.crashes


def test_an_unhealthy_instance_is_killed_at_the_health_check_timeout():
    plan = InstanceModel(healthy=False).plan_start(random.Random(0), timeout_s=60)
    assert plan.healthy_after is None
    assert plan.crash_after == 60.0
    assert plan.exit_status is None
    assert plan.exit_description == (
        "Instance never healthy after 1m0s: Failed to make TCP connection to port 8080: connection refused"
    )


def test_a_start_slower_than_the_timeout_is_killed_at_the_timeout():
    plan = InstanceModel(startup_seconds=90).plan_start(random.Random(0), timeout_s=60)
    assert (plan.healthy_after, plan.crash_after) == (None, 60.0)


def test_a_slow_start_within_the_timeout_becomes_healthy():
    assert InstanceModel(startup_seconds=20).plan_start(random.Random(0), timeout_s=60).healthy_after == 20.0


def test_a_process_check_is_running_at_once_even_when_unhealthy():
    plan = InstanceModel(startup_seconds=90, healthy=False).plan_start(random.Random(0), health_check_type="process")
    assert plan == StartPlan(0.0, None, None, "")


def test_an_http_check_answered_with_500_fails_with_the_status_in_the_description():
    plan = InstanceModel(http_status=500).plan_start(
        random.Random(0), health_check_type=HealthCheckType.HTTP, timeout_s=30, http_endpoint="/health"
    )
    assert plan.crash_after == 30.0
    assert plan.exit_description == (
        "Instance never healthy after 30s: Failed to make HTTP request to '/health' on port 8080: "
        "received status code 500"
    )


def test_an_instance_over_its_memory_quota_is_killed_out_of_memory():
    plan = InstanceModel(memory_mb=300).plan_start(random.Random(0), memory_quota_mb=256)
    assert plan == StartPlan(None, 1.0, 137, "APP/PROC/WEB: Exited with status 137 (out of memory)")


def test_a_startup_crash_happens_before_the_instance_is_healthy():
    plan = InstanceModel(startup_seconds=4.0, crash_probability=1.0, exit_status=2).plan_start(random.Random(5))
    assert plan.healthy_after is None
    assert 0.0 <= plan.crash_after <= 4.0
    assert plan.exit_status == 2


def test_memory_and_disk_usage_never_show_above_the_quota():
    model = InstanceModel(memory_mb=300, disk_mb=2000)
    assert (model.memory_usage_mb(256), model.disk_usage_mb(1024)) == (256, 1024)
    assert InstanceModel().memory_usage_mb(256) == 32.0
    assert model.out_of_memory(256) and not model.out_of_memory(512)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(60, "1m0s"), (30, "30s"), (90, "1m30s"), (1.5, "1.5s"), (0.5, "500ms"), (0, "0s"), (3600, "1h0m0s")],
)
def test_durations_are_printed_as_go_prints_them(seconds, text):
    assert go_duration(seconds) == text


def test_the_knobs_module_documents_every_knob():
    import protocol.knobs

    assert protocol.knobs.__doc__ is not None
    assert [knob for knob in KNOBS if knob not in protocol.knobs.__doc__] == []
