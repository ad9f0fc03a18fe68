"""Running experiments end to end: the shipped ones pass, a broken recovery
is caught, a seed repeats its run exactly, and the report says it all."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from actors.experiments.runner import EXIT_CODES, main, run_experiment
from actors.experiments.schema import load_experiment

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted((ROOT / "experiments").glob("*.toml"))


def comparable(report: dict) -> dict:
    """A report without what may differ between two runs of one seed."""
    return {k: v for k, v in report.items() if k not in ("wall_seconds", "folder", "child")}


async def _run_broken(name: str, mechanism: str, folder: Path) -> dict:
    """Run a shipped experiment on its own seed with `mechanism` switched off."""
    exp = load_experiment(ROOT / "experiments" / f"{name}.toml")
    broken = dataclasses.replace(exp, platform=dataclasses.replace(exp.platform, breaks=(mechanism,)))
    return await run_experiment(broken, exp.seed, folder)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
async def test_every_shipped_experiment_passes(path, tmp_path):
    exp = load_experiment(path)

    report = await run_experiment(exp, exp.seed, tmp_path)

    failing = [c for c in report["checks"] if c["status"] != "pass"]
    assert report["verdict"] == "valid", json.dumps(failing, indent=1)
    assert len(report["checks"]) >= 2
    folder = tmp_path / f"{exp.name}-{exp.seed}"
    for name in ("report.json", "timeline.svg", "report.html"):
        assert (folder / name).is_file()


async def test_with_convergence_switched_off_killing_cells_is_invalid(tmp_path):
    report = await _run_broken("kill-cells", "convergence", tmp_path)

    assert report["verdict"] == "invalid"
    recover = next(c for c in report["checks"] if c["name"] == "recover_within")
    assert recover["status"] == "fail"
    assert recover["details"]["short_at_end"], recover
    assert any(e["kind"] == "break" for e in report["timeline"])


async def test_with_supervision_links_switched_off_killing_supervisors_is_invalid(tmp_path):
    report = await _run_broken("kill-supervisors", "links", tmp_path)

    # The killed cells' supervisor leaves its cells running under their names:
    # every new one fails to start them, and the components restart without end.
    assert report["verdict"] == "invalid"
    pushes = next(c for c in report["checks"] if c["name"] == "pushes_end")
    assert pushes["status"] == "fail", pushes
    assert any(e["kind"] == "break" for e in report["timeline"])


async def test_the_same_seed_repeats_the_same_run(tmp_path):
    exp = load_experiment(ROOT / "experiments" / "message-loss.toml")

    first = await run_experiment(exp, 7, tmp_path / "first")
    second = await run_experiment(exp, 7, tmp_path / "second")
    other = await run_experiment(exp, 8, tmp_path / "other")

    assert first["statistics"]["dropped"] > 0
    assert comparable(first) == comparable(second)  # every drop, every placement, every figure
    assert first["statistics"] != other["statistics"]  # and the seed is what decides them


async def test_killed_cells_are_chosen_by_the_seed(tmp_path):
    exp = load_experiment(ROOT / "experiments" / "kill-cells.toml")
    victims = []
    for n in range(2):
        report = await run_experiment(exp, 3, tmp_path / str(n))
        victims.append([f["victims"] for f in report["faults"] if f["action"] == "kill-cells"])
    assert victims[0] == victims[1] and victims[0][0]


async def test_a_push_that_never_ends_is_reported_hung_and_the_run_invalid(tmp_path):
    path = tmp_path / "stuck.toml"
    path.write_text(
        f"""
name = "stuck"
duration = 20
[[workload]]
at = 5
action = "push"
app = "web"
path = "{ROOT / "examples" / "static"}"
[[faults]]
at = 1
action = "pause"
actor = "cli"           # the user's own CLI freezes: nothing answers the push
duration = 200
[heal]
at = 300
[checks]
pushes_end = true
push_deadline = 60
"""
    )

    report = await run_experiment(load_experiment(path), 0, tmp_path)

    assert report["verdict"] == "invalid"
    assert report["pushes"]["hung"] == 1
    check = next(c for c in report["checks"] if c["name"] == "pushes_end")
    assert check["status"] == "fail" and "1 never ended (first: push web)" in check["summary"]


async def test_a_run_that_cannot_decide_is_unknown(tmp_path):
    exp = load_experiment(ROOT / "experiments" / "crash-loop.toml")
    short = dataclasses.replace(exp, duration=60.0)  # too short to see nine crashes

    report = await run_experiment(short, exp.seed, tmp_path)

    assert report["verdict"] == "unknown"
    assert report["exit_code"] == EXIT_CODES["unknown"] == 2
    assert next(c for c in report["checks"] if c["name"] == "crash_backoff")["status"] == "unknown"


def _experiment(tmp_path: Path, text: str):
    path = tmp_path / "exp.toml"
    path.write_text(text, encoding="utf-8")
    return load_experiment(path)


PUSH = f'''
[[workload]]
action = "push"
at = 25
app = "web"
path = "{ROOT / "examples" / "static"}"
memory = "64M"
'''


async def test_overlapping_pauses_of_one_actor_hold_it_until_the_last_ends(tmp_path):
    exp = _experiment(
        tmp_path,
        'name = "overlap"\nduration = 120\n[heal]\nat = 100\n'
        + PUSH
        + '[[faults]]\naction = "pause"\nactor = "cloud_controller"\nat = 10\nduration = 10\n'
        + '[[faults]]\naction = "pause"\nactor = "cloud_controller"\nat = 15\nduration = 60\n',
    )

    report = await run_experiment(exp, 1, tmp_path)

    [push] = report["pushes"]["records"]
    # The first pause's end (at 20) does not resume what the second holds
    # until 75: the push at 25 finds Cloud Controller still paused.
    assert (push["started"], push["ended"], push["error"]) == (25.0, 55.0, "AskTimeout"), json.dumps(push)


async def test_a_pause_ended_by_a_resume_does_not_end_a_later_pause(tmp_path):
    exp = _experiment(
        tmp_path,
        'name = "pause-resume-pause"\nduration = 60\n[heal]\nat = 40\n'
        + PUSH.replace("at = 25", "at = 12")
        + '[[faults]]\naction = "pause"\nactor = "cloud_controller"\nat = 1\nduration = 10\n'
        + '[[faults]]\naction = "resume"\nactor = "cloud_controller"\nat = 5\n'
        + '[[faults]]\naction = "pause"\nactor = "cloud_controller"\nat = 7\nduration = 10\n',
    )

    report = await run_experiment(exp, 1, tmp_path)

    [push] = report["pushes"]["records"]
    # The first pause's end (at 11) is not the second's: Cloud Controller
    # takes the push at 12 only when the second ends, at 17; a push takes
    # 5 s here, so it ends at 22 (at 17 if the first pause's end resumed it).
    assert push["outcome"] == "succeeded" and push["ended"] >= 21, json.dumps(push)


async def test_a_corruption_that_finds_nothing_to_corrupt_makes_the_run_unknown(tmp_path):
    exp = _experiment(
        tmp_path,
        'name = "nothing-to-corrupt"\nduration = 60\n'
        + PUSH
        + '[[faults]]\naction = "corrupt-blob"\nat = 30\nkey = "no-such-key"\n',
    )

    report = await run_experiment(exp, 1, tmp_path)

    assert report["verdict"] == "unknown"
    faults = next(c for c in report["checks"] if c["name"] == "faults")
    assert faults["status"] == "unknown" and "no blob no-such-key to corrupt" in faults["summary"]


async def test_a_recovery_check_that_judges_no_app_is_unknown(tmp_path):
    exp = _experiment(
        tmp_path,
        'name = "judges-nothing"\nduration = 60\n[checks]\nrecover_within = 30\nrecover_apps = "zzz-*"\n' + PUSH,
    )

    report = await run_experiment(exp, 1, tmp_path)

    recover = next(c for c in report["checks"] if c["name"] == "recover_within")
    assert recover["status"] == "unknown" and "judged nothing" in recover["summary"]
    assert report["verdict"] == "unknown"


async def test_the_report_holds_checks_commands_recovery_blobs_messages_and_a_timeline(tmp_path):
    exp = load_experiment(ROOT / "experiments" / "kill-cells.toml")

    report = await run_experiment(exp, exp.seed, tmp_path)

    assert report["reproduce"] == f"python run.py experiment {exp.path} --seed {exp.seed}"
    assert report["pushes"]["total"] == 20 and len(report["pushes"]["records"]) == 20
    assert set(report["statistics"]) == {"sent", "delivered", "dropped", "duplicated", "delayed", "dead_letters"}
    assert report["statistics"]["dropped"] > 0  # the killed cell was cut off
    assert report["recovery"]["healed_at"] == 90 and report["recovery"]["time_to_recover"] is not None
    assert report["recovery"]["largest_shortfall"]["restored_at"] is not None
    assert report["blobs"]["missing"] == [] and report["blobs"]["referenced"] > 0
    kinds = [e["kind"] for e in report["timeline"]]
    assert kinds.index("workload") < kinds.index("fault") < kinds.index("heal") < kinds.index("end")
    assert report["samples"][-1]["running"] == report["samples"][-1]["desired"] == 60
    assert "web-1" in report["app_series"]
    folder = tmp_path / f"{exp.name}-{exp.seed}"
    svg = (folder / "timeline.svg").read_text()
    assert svg.startswith("<svg") and "kill 10% of cells (cell-" in svg
    html = (folder / "report.html").read_text()
    assert "<svg" in html and "VALID" in html and report["reproduce"] in html


def test_main_prints_the_verdict_and_the_seed_that_repeats_it(tmp_path, capsys):
    code = main([str(ROOT / "experiments" / "drain-cell.toml"), "--seed", "5", "--results", str(tmp_path)])

    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("experiment drain-cell (seed 5): VALID")
    assert "drain_capacity" in out and "messages: sent " in out
    assert out.rstrip().endswith(
        "reproduce: python run.py experiment " + str(ROOT / "experiments" / "drain-cell.toml") + " --seed 5"
    )
    assert (tmp_path / "drain-cell-5" / "report.json").is_file()


def test_run_py_dispatches_experiments_and_exits_2_on_a_bad_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nduration = 5\n[[faults]]\naction = "meteor"\n')

    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--data-dir", str(tmp_path), "experiment", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2
    assert "InvalidExperiment - " in done.stderr and "unknown action 'meteor'" in done.stderr
    assert "Traceback" not in done.stderr
