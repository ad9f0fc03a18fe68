"""views_agree: CC_DB, the BBS and the cells must say the same thing after the
heal. Each kind of disagreement is named; a platform without Cloud
Controller's sync is caught by it; and runs that achieved nothing, or ran
concurrently, are not judged VALID."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actors.experiments.checks import Views, check_succeeded, disagreements
from actors.experiments.record import CommandRecord
from actors.experiments.runner import run_experiment
from actors.experiments.schema import Checks, ExperimentInUse, load_experiment, parse_experiment
from protocol.lrp import ActualLRP, ContainerInfo, DesiredLRP
from protocol.states import ActualLRPState

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]


def lrp(app: str = "a", version: str = "v1", **kw) -> DesiredLRP:
    fields = dict(
        process_guid=f"{app}-{version}",
        app_guid=app,
        app_name=f"app-{app}",
        instances=2,
        memory_mb=64,
        disk_mb=1024,
        droplet_key="d" * 64,
        start_command="python app.py",
    )
    fields.update(kw)
    return DesiredLRP(**fields)


def actual(index: int, cell: str, process_guid: str = "a-v1") -> ActualLRP:
    return ActualLRP(process_guid, index, f"i{index}", cell, ActualLRPState.RUNNING, 0.0)


def container(index: int, cell: str, process_guid: str = "a-v1", **kw) -> ContainerInfo:
    fields = dict(
        cell_id=cell,
        process_guid=process_guid,
        index=index,
        instance_guid=f"i{index}",
        state="running",
        memory_mb=64,
        disk_mb=1024,
        droplet_key="d" * 64,
    )
    fields.update(kw)
    return ContainerInfo(**fields)


def agreeing() -> Views:
    return Views(
        apps={"a": ("app-a", "STARTED")},
        expected={"a": lrp()},
        desired=[lrp()],
        actuals=[actual(0, "cell-1"), actual(1, "cell-2")],
        containers=[container(0, "cell-1"), container(1, "cell-2")],
    )


def test_views_that_agree_have_no_disagreement():
    assert disagreements(agreeing()) == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda v: dataclasses.replace(v, desired=[]), "the BBS desires no LRP"),
        (lambda v: dataclasses.replace(v, desired=[lrp(instances=3)]), "CC_DB wants 2 instances, the BBS 3"),
        (lambda v: dataclasses.replace(v, desired=[lrp(memory_mb=128)]), "CC_DB wants 64 MB of memory, the BBS 128"),
        (lambda v: dataclasses.replace(v, desired=[lrp(droplet_key="e" * 64)]), "the BBS runs droplet eeeeeeeeeeee"),
        (lambda v: dataclasses.replace(v, desired=[lrp(version="v0")]), "the BBS runs an old version"),
        (
            lambda v: dataclasses.replace(v, apps={"a": ("app-a", "STOPPED")}, expected={}),
            "for an app that is stopped in CC_DB",
        ),
        (lambda v: dataclasses.replace(v, apps={}, expected={}), "for an app that is deleted in CC_DB"),
        (
            lambda v: dataclasses.replace(v, containers=[*v.containers, container(1, "cell-3")]),
            "app-a#1: one instance on 2 cells (cell-2, cell-3)",
        ),
        (
            lambda v: dataclasses.replace(v, containers=[*v.containers, container(0, "cell-3", process_guid="z-v9")]),
            "z-v9#0: a container on cell-3 that nobody desires",
        ),
        (
            lambda v: dataclasses.replace(
                v, containers=[container(0, "cell-1", droplet_key="f" * 64), container(1, "cell-2")]
            ),
            "cell-1 runs droplet ffffffffffff",
        ),
        (
            lambda v: dataclasses.replace(v, containers=[container(0, "cell-1", memory_mb=32), container(1, "cell-2")]),
            "cell-1's container has 32 MB, the LRP 64 MB",
        ),
        (
            lambda v: dataclasses.replace(v, containers=[container(0, "cell-1")]),
            "runs on cell-2, which holds no such container",
        ),
    ],
)
def test_each_kind_of_disagreement_is_named(change, words):
    found = disagreements(change(agreeing()))

    assert any(words in problem for problem in found), found


def test_an_unreachable_cell_is_not_judged():
    views = dataclasses.replace(agreeing(), containers=[container(0, "cell-1")], unreachable=("cell-2",))

    assert disagreements(views) == []


def _record(outcome: str) -> CommandRecord:
    return CommandRecord(1, "push", "a", ["push", "a"], 0.0, 1.0, 1, outcome, "PathNotFound", "PathNotFound - x")


def test_a_workload_that_succeeded_at_nothing_is_unknown_and_one_that_fell_short_fails():
    assert check_succeeded([_record("failed")] * 3, Checks(min_succeeded_count=1)).status == "unknown"
    assert check_succeeded([_record("succeeded"), _record("failed")], Checks(min_succeeded_count=2)).status == "fail"
    assert check_succeeded([_record("succeeded")], Checks(min_succeeded_count=1)).status == "pass"
    assert check_succeeded([_record("failed")], Checks(min_succeeded_count=0)) is None


def test_min_succeeded_is_a_count_or_a_fraction_and_defaults_to_one_when_the_workload_pushes(tmp_path):
    base = {"name": "x", "duration": 10, "workload": [{"action": "push", "app": "a", "path": "."}]}

    assert parse_experiment(base, tmp_path / "x.toml").checks.min_succeeded_count == 1
    counted = parse_experiment({**base, "checks": {"min_succeeded": 3}}, tmp_path / "x.toml").checks
    assert (counted.min_succeeded_count, counted.min_succeeded) == (3, 0.0)
    share = parse_experiment({**base, "checks": {"min_succeeded": 0.5}}, tmp_path / "x.toml").checks
    assert (share.min_succeeded_count, share.min_succeeded) == (0, 0.5)
    assert parse_experiment({"name": "x", "duration": 10}, tmp_path / "x.toml").checks.min_succeeded_count == 0


# Pushes of a path that does not exist: every one fails, named.
_FAILING_PUSHES = """
duration = 30
[[workload]]
action = "push"
app = "web-{i}"
count = 2
path = "no/such/dir"
[checks]
pushes_end = true
recover_within = 10
"""


async def _run_text(tmp_path, name: str, text: str) -> dict:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'name = "{name}"\n' + text)
    return await run_experiment(load_experiment(path), 1, tmp_path)


def _floor(report: dict) -> dict:
    return next(c for c in report["checks"] if c["name"] == "min_succeeded")


async def test_a_workload_whose_pushes_all_fail_is_unknown_not_valid(tmp_path):
    report = await _run_text(tmp_path, "nothing", _FAILING_PUSHES)

    assert report["verdict"] == "unknown"
    assert _floor(report)["status"] == "unknown"


async def test_deletes_that_succeed_do_not_make_a_run_whose_pushes_all_failed_valid(tmp_path):
    # cf's delete of an app that does not exist says so and succeeds: the
    # floor must still see that not one push did.
    deletes = '[[workload]]\nat = 10\naction = "delete"\napp = "web-{i}"\ncount = 2\n'
    report = await _run_text(tmp_path, "nothing-deleted", _FAILING_PUSHES + deletes)

    ran = [c for c in report["pushes"]["records"] if c["action"] == "delete"]
    assert ran and all(c["outcome"] == "succeeded" for c in ran)
    assert report["verdict"] == "unknown"
    floor = _floor(report)
    assert floor["status"] == "unknown" and floor["summary"].startswith("0 of 2 pushes succeeded")


@pytest.mark.parametrize("name", ["lost-delete", "lost-stop", "reordered-scales", "lost-restage-start"])
async def test_with_the_sync_switched_off_views_agree_catches_the_drift(tmp_path, name):
    exp = load_experiment(ROOT / "experiments" / f"{name}.toml")
    broken = dataclasses.replace(exp, platform=dataclasses.replace(exp.platform, breaks=("sync",)))

    report = await run_experiment(broken, exp.seed, tmp_path)

    assert report["verdict"] == "invalid"
    views = next(c for c in report["checks"] if c["name"] == "views_agree")
    assert views["status"] == "fail" and views["details"]["disagreements"], views
    assert any(e["kind"] == "break" for e in report["timeline"])


async def test_with_the_sync_switched_off_a_killed_bbs_loses_every_app(tmp_path):
    exp = load_experiment(ROOT / "experiments" / "kill-bbs.toml")
    broken = dataclasses.replace(exp, platform=dataclasses.replace(exp.platform, breaks=("sync",)))

    report = await run_experiment(broken, exp.seed, tmp_path)

    assert report["verdict"] == "invalid"
    failed = {c["name"] for c in report["checks"] if c["status"] == "fail"}
    assert {"views_agree", "recover_within"} <= failed


async def test_message_loss_judges_leftovers_only_after_cloud_controllers_cleanup(tmp_path):
    exp = load_experiment(ROOT / "experiments" / "message-loss.toml")

    report = await run_experiment(exp, 3, tmp_path)  # a seed that once left a build STAGING

    assert report["verdict"] == "valid", [c for c in report["checks"] if c["status"] != "pass"]


def test_the_same_seed_gives_the_same_report_bytes_under_any_hash_seed(tmp_path):
    reports = []
    for hash_seed in ("1", "2"):
        results = tmp_path / f"h{hash_seed}"
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "run.py"),
                "--data-dir",
                str(tmp_path / "log"),
                "experiment",
                str(ROOT / "experiments" / "combined-faults.toml"),
                "--seed",
                "2",
                "--results",
                str(tmp_path / "same"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        reports.append((tmp_path / "same" / "combined-faults-2" / "report.json").read_bytes())
        results.mkdir()
    assert reports[0] == reports[1]
    assert b"wall_seconds" not in reports[0]
    wall = json.loads((tmp_path / "same" / "combined-faults-2" / "wall.json").read_text())
    assert wall["wall_seconds"] > 0


async def test_a_second_run_of_the_same_experiment_and_seed_is_refused_while_the_first_runs(tmp_path):
    import fcntl

    exp = load_experiment(ROOT / "experiments" / "lost-stop.toml")
    folder = tmp_path / f"{exp.name}-{exp.seed}"
    folder.mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / "data" / "keep").write_text("the first run's data")
    fd = os.open(folder / "run.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # the first run
    try:
        with pytest.raises(ExperimentInUse):
            await run_experiment(exp, exp.seed, tmp_path)
        assert (folder / "data" / "keep").read_text() == "the first run's data"  # nothing deleted
    finally:
        os.close(fd)


def test_with_pushes_in_the_workload_only_the_pushes_count_toward_the_floor():
    # A delete of an app that was never pushed succeeds, as cf's does.
    delete = CommandRecord(2, "delete", "a", ["delete", "a", "-f"], 1.0, 2.0, 0, "succeeded")
    pushes_failed = [_record("failed"), _record("failed"), delete, delete]

    result = check_succeeded(pushes_failed, Checks(min_succeeded_count=1))
    assert result.status == "unknown"
    assert result.summary.startswith("0 of 2 pushes succeeded")
    assert check_succeeded([delete], Checks(min_succeeded_count=1)).status == "pass"  # no pushes: every command
