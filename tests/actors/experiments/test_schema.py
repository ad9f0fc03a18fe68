"""Reading experiment files: what a file may say, and a named error for anything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.experiments.runner import main
from actors.experiments.schema import InvalidExperiment, load_experiment
from actors.experiments.workload import command_argv

SHIPPED = sorted((Path(__file__).resolve().parents[3] / "experiments").glob("*.toml"))

MINIMAL = 'name = "tiny"\nduration = 10\n'


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_experiment_file_reads_cleanly(path):
    exp = load_experiment(path)
    assert exp.name == path.stem
    assert exp.description


def test_a_minimal_file_gets_the_defaults(tmp_path):
    exp = load_experiment(write(tmp_path, MINIMAL))
    assert (exp.name, exp.duration, exp.seed, exp.heal_time) == ("tiny", 10.0, 0, 10.0)
    assert exp.platform.cells == 4 and exp.workload == () and exp.faults == ()


def test_yaml_files_are_read_too(tmp_path):
    text = """
name: tiny
duration: 30
workload:
  - {at: 1, action: push, app: "a-{i}", count: 2, every: 5, path: app, instances: 2}
faults:
  - {at: 5, action: drop, probability: 0.5, duration: 10}
heal: {at: 20}
checks: {pushes_end: true, recover_within: 30}
"""
    exp = load_experiment(write(tmp_path, text, "exp.yaml"))
    assert exp.workload[0].times_and_apps() == [(1.0, "a-1"), (6.0, "a-2")]
    assert exp.faults[0].options == {"probability": 0.5}
    assert exp.heal_time == 20.0 and exp.checks.pushes_end


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (MINIMAL + "colour = 'red'\n", "the file: unknown key 'colour'"),
        ("duration = 10\n", "the file: name is required"),
        ('name = "x"\nduration = "long"\n', "duration must be a number, not the string 'long'"),
        (MINIMAL + "[platform]\ncells = 0\n", "[platform]: cells must be at least 1"),
        (MINIMAL + "[platform]\nbreak = 'gravity'\n", "unknown break 'gravity'"),
        (MINIMAL + "[[faults]]\naction = 'kil-cells'\n", "[[faults]] #1: unknown action 'kil-cells'"),
        (MINIMAL + "[[faults]]\naction = 'drop'\nprobabilty = 0.2\n", "unknown drop option 'probabilty'"),
        (MINIMAL + "[[faults]]\naction = 'drop'\nprobability = 2\n", "probability must be at most 1"),
        (MINIMAL + "[[faults]]\naction = 'drain'\nduration = 5\n", "duration does not apply to drain"),
        (MINIMAL + "[[faults]]\naction = 'kill-cells'\n", "kill-cells takes either fraction or count"),
        (MINIMAL + "[[faults]]\naction = 'partition'\ngroups = [['bbs']]\n", "partition needs groups"),
        (MINIMAL + "[[faults]]\naction = 'drain'\ncell = 'cell-9'\n", "no cell 'cell-9' on a platform of 4 cells"),
        (MINIMAL + "[[workload]]\naction = 'deploy'\n", "[[workload]] #1: unknown action 'deploy'"),
        (MINIMAL + "[[workload]]\naction = 'scale'\npath = 'x'\n", "unknown scale option 'path'"),
        (MINIMAL + "[[workload]]\naction = 'push'\napp = 'web'\ncount = 3\n", "needs '{i}' to name 3 apps"),
        (MINIMAL + "[checks]\nrecover_witin = 5\n", "[checks]: unknown check 'recover_witin'"),
        (MINIMAL + "[checks]\nexpect_failures = 'StagingError'\n", "expect_failures must be a list"),
        (MINIMAL + "[checks]\nretry_interrupted = true\n", "retry_interrupted needs a kill-platform fault"),
        ('name = "x"\nduration = 10\n[platform\n', "not valid TOML"),
        # Numbers that are no numbers, or absurd ones: refused before anything runs.
        ('name = "x"\nduration = nan\n', "duration must be a finite number, not nan"),
        ('name = "x"\nduration = inf\n', "duration must be a finite number, not inf"),
        ('name = "x"\nduration = 1e308\n', "duration must be at most 86400"),
        (MINIMAL + "[[faults]]\naction = 'crash-storm'\nat = nan\nfraction = 0.5\n", "at must be a finite number"),
        (MINIMAL + "[[faults]]\naction = 'drop'\nprobability = nan\n", "probability must be a finite number"),
        (MINIMAL + "sample_every = 0.00001\n", "sample_every 1e-05 takes 1000000 samples; at most 100000"),
        (MINIMAL + "[[workload]]\naction = 'scale'\ncount = 100000000\napp = 'a-{i}'\n", "count must be at most 10000"),
        (MINIMAL + "[platform]\ncells = 1000000\n", "cells must be at most 10000"),
        (MINIMAL + "[platform]\ncells = 2\nzones = 10\n", "zones must be at most 2"),
        (MINIMAL + "[[faults]]\naction = 'kill-cells'\nfraction = 0.0\n", "fraction must be above 0"),
        # Names that name nothing on the platform the file describes.
        (MINIMAL + "[[faults]]\naction = 'kill'\nactor = 'nosuchactor'\n", "actor 'nosuchactor' names no actor"),
        (MINIMAL + "[[faults]]\naction = 'pause'\nactor = 'cell-99'\n", "actor 'cell-99' names no actor"),
        (MINIMAL + "[[faults]]\naction = 'pause'\nactor = 'cell-*'\n", "must be one actor's name, not a pattern"),
        (MINIMAL + "[[faults]]\naction = 'kill'\nactor = 'platform'\n", "use kill-platform"),
        (
            MINIMAL + "[[faults]]\naction = 'partition'\ngroups = [['zone:z9'], ['auctioneer']]\n",
            "'zone:z9' is no zone of this platform (zone:z1 .. zone:z2)",
        ),
        (MINIMAL + "[[faults]]\naction = 'drop'\nto = 'nobody'\n", "to 'nobody' names no actor"),
        (MINIMAL + "[[faults]]\naction = 'drop'\ntype = 'NoSuchMessage'\n", "type 'NoSuchMessage' matches no message"),
        (MINIMAL + "[[faults]]\naction = 'blob-fail'\nops = 'nosuch.op'\n", "ops 'nosuch.op' matches no operation"),
        # Times the run would skip, and lasting faults nothing would heal.
        (MINIMAL + "[[faults]]\naction = 'kill'\nactor = 'bbs'\nat = 11\n", "comes after the run ends (10)"),
        (
            MINIMAL + "[[workload]]\naction = 'push'\napp = 'a-{i}'\ncount = 3\nevery = 6\n",
            "(at 12) comes after the run ends",
        ),
        (MINIMAL + "[heal]\nat = 4\n[[faults]]\naction = 'drop'\nto = 'bbs'\nat = 5\n", "starts at or after the heal"),
    ],
)
def test_a_malformed_file_is_a_named_error_saying_where(tmp_path, text, says):
    with pytest.raises(InvalidExperiment) as caught:
        load_experiment(write(tmp_path, text))
    assert says in str(caught.value)
    assert str(caught.value).startswith(f"InvalidExperiment - {tmp_path / 'exp.toml'}: ")


def test_a_malformed_file_exits_2_with_the_error_and_starts_nothing(tmp_path, capsys):
    path = write(tmp_path, MINIMAL + "[[faults]]\naction = 'explode'\n")
    results = tmp_path / "results"

    code = main([str(path), "--results", str(results)])

    err = capsys.readouterr().err
    assert code == 2
    assert "InvalidExperiment - " in err and "unknown action 'explode'" in err
    assert err.rstrip().endswith("FAILED")
    assert not results.exists()


def test_a_file_that_is_not_text_exits_2_with_a_named_error(tmp_path, capsys):
    path = tmp_path / "bin.toml"
    path.write_bytes(bytes(range(128, 256)) * 2)

    assert main([str(path)]) == 2

    err = capsys.readouterr().err
    assert "InvalidExperiment - " in err and "not UTF-8" in err and "Traceback" not in err


def test_faults_that_name_real_things_read_cleanly(tmp_path):
    text = MINIMAL + (
        "[platform]\ncells = 6\nzones = 3\n"
        "[[faults]]\naction = 'pause'\nactor = 'cell-6'\nduration = 2\n"
        "[[faults]]\naction = 'kill'\nactor = 'components'\n"
        "[[faults]]\naction = 'partition'\ngroups = [['zone:z3'], ['cell-1', 'b*s']]\nduration = 2\n"
        "[[faults]]\naction = 'drop'\nfrom = 'cell-*'\nto = 'bbs'\ntype = '*LRP*'\nduration = 2\n"
        "[[faults]]\naction = 'db-fail'\nops = 'ccdb.w*'\nduration = 2\n"
        "[[faults]]\naction = 'kill'\nactor = 'bbs'\nat = 10\n"  # after the heal (the end): it heals itself
    )
    exp = load_experiment(write(tmp_path, text))
    assert [f.action for f in exp.faults] == ["pause", "kill", "partition", "drop", "db-fail", "kill"]


def test_a_missing_file_or_a_strange_extension_exits_2(tmp_path, capsys):
    assert main([str(tmp_path / "nope.toml")]) == 2
    assert "no such experiment file" in capsys.readouterr().err
    assert main([str(write(tmp_path, MINIMAL, "exp.json"))]) == 2
    assert "ends in .toml, .yml or .yaml" in capsys.readouterr().err


def test_workload_entries_become_cf_command_lines(tmp_path):
    exp = load_experiment(
        write(
            tmp_path,
            MINIMAL
            + "[[workload]]\naction = 'push'\napp = 'w-{i}'\ncount = 2\npath = 'apps/py'\ninstances = 3\nmemory = 128\n"
            + "buildpack = 'python'\nno_route = true\n"
            + "[[workload]]\naction = 'scale'\napp = 'w-1'\ninstances = 5\n"
            + "[[workload]]\naction = 'delete'\napp = 'w-2'\n",
        )
    )
    push, scale, delete = exp.workload
    assert command_argv(exp, push, "w-2") == [
        "push",
        "w-2",
        "-p",
        str(tmp_path / "apps" / "py"),
        "-i",
        "3",
        "-m",
        "128M",
        "-b",
        "python",
        "--no-route",
    ]
    assert command_argv(exp, scale, "w-1") == ["scale", "w-1", "-i", "5", "-f"]
    assert command_argv(exp, delete, "w-2") == ["delete", "w-2", "-f"]
