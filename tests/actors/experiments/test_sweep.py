"""Sweeps: an experiment over many seeds, on local worker processes and on a
Dask cluster, each seed's report byte for byte its single run's; failing
seeds named with the command that repeats them; a worker killed mid-seed,
Ctrl-C and --resume losing nothing; bad input refused by name, nothing written.

Every sweep here runs a small experiment (two pushes, two stops whose
RemoveDesiredLRP may be lost, Cloud Controller's sync switched off) whose
verdict depends on the seed: about half its seeds are INVALID.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actors.experiments import runner, sweep
from actors.experiments.pool import SeedStarted, WorkerLost
from actors.experiments.sweep_worker import REPORT_FILES, SeedResult, WorkerSetup

ROOT = Path(__file__).resolve().parents[3]
SEEDS = range(1, 21)
SAME_BYTES = ("report.json", "timeline.svg", "report.html")  # wall.json holds the wall time

TINY = """
name = "tiny"
description = "Two apps pushed and stopped while stops may be lost; no sync to repair it."
seed = 1
duration = 40

[platform]
cells = 2
zones = 1
break = "sync"

[[workload]]
at = 0
action = "push"
app = "web-{{i}}"
count = 2
every = 1
path = "{examples}/static"
instances = 1
memory = "32M"

[[workload]]
at = 15
action = "stop"
app = "web-{{i}}"
count = 2
every = 1

[[faults]]
at = 10
action = "drop"
type = "RemoveDesiredLRP"
probability = 0.5
duration = 10

[heal]
at = 20

[checks]
pushes_end = true
views_agree = true
views_within = 10
recover_within = 30
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("experiment") / "tiny.toml"
    path.write_text(TINY.format(examples=ROOT / "examples"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def singles(tiny, tmp_path_factory) -> Path:
    """Seeds 1-20 run one by one, each as `run.py experiment FILE --seed N
    --results r/tiny-sweep` runs it: the folder a sweep into `r` must equal."""
    work = tmp_path_factory.mktemp("singles")
    with contextlib.chdir(work), contextlib.redirect_stdout(None):
        for seed in SEEDS:
            runner.main([str(tiny), "--seed", str(seed), "--results", "r/tiny-sweep"])
    return work / "r" / "tiny-sweep"


def single_report(singles: Path, seed: int) -> dict:
    return json.loads((singles / f"tiny-{seed}" / "report.json").read_text())


def assert_same_as_single_runs(swept: Path, singles: Path, seeds) -> None:
    for seed in seeds:
        for name in SAME_BYTES:
            got = (swept / f"tiny-{seed}" / name).read_bytes()
            assert got == (singles / f"tiny-{seed}" / name).read_bytes(), f"seed {seed}: {name} differs"
        assert (swept / f"tiny-{seed}" / "wall.json").is_file()
        assert sorted(p.name for p in (swept / f"tiny-{seed}").iterdir()) == sorted(REPORT_FILES)
    assert not list(swept.glob(".*partial*")), "a half-written seed was left behind"


def run_sweep(tiny: Path, where: Path, *args: str, on_event=None) -> tuple[int, list[str]]:
    lines: list[str] = []
    with contextlib.chdir(where):
        code = sweep.main(
            [str(tiny), *args, "--results", "r"],
            setup=WorkerSetup(log_file=str(where / "experiment.log")),
            on_event=on_event,
            out=lines.append,
        )
    return code, lines


def children(pid: int) -> list[int]:
    """Every live descendant of `pid` (read from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def gone(pids: list[int], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(Path(f"/proc/{p}").exists() for p in pids)


# --- the local pool -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def swept_locally(tiny, singles, tmp_path_factory) -> tuple[int, list[str], Path]:
    """Seeds 1-20 swept on two local workers: the exit code, what it printed, the sweep's folder."""
    where = tmp_path_factory.mktemp("local")
    code, lines = run_sweep(tiny, where, "--seeds", "1-20", "--workers", "2")
    return code, lines, where / "r" / "tiny-sweep"


def test_a_sweep_on_two_local_workers_gives_every_seed_its_single_runs_report(singles, swept_locally):
    code, lines, swept = swept_locally

    assert_same_as_single_runs(swept, singles, SEEDS)
    verdicts = {s: single_report(singles, s)["verdict"] for s in SEEDS}
    assert "invalid" in verdicts.values() and "valid" in verdicts.values()
    assert code == 1  # some seed is INVALID
    assert lines[0] == "Running tiny over seeds 1-20 on 2 local workers..."
    summary = json.loads((swept / "sweep.json").read_text())
    assert summary["verdicts"] == {v: list(verdicts.values()).count(v) for v in ("valid", "invalid", "unknown")}
    assert [r["seed"] for r in summary["results"]] == list(SEEDS)
    assert summary["complete"] and summary["exit_code"] == 1
    for figure in ("time_to_recover", "commands_failed", "messages_dropped"):
        assert summary["distributions"][figure]["seeds"] == 20
    page = (swept / "report.html").read_text()
    assert "<svg" in page and 'href="tiny-4/report.html"' in page
    assert (swept / "distributions.svg").read_text().startswith("<svg")


def test_a_failing_seed_is_in_the_summary_with_the_command_that_repeats_it(tiny, singles, swept_locally):
    code, lines, _ = swept_locally

    invalid = [s for s in SEEDS if single_report(singles, s)["verdict"] == "invalid"]
    assert len(invalid) > 10 and code == 1
    # As each failing seed finishes, a line with what failed and how to repeat it...
    live = [line for line in lines if line.startswith("seed ")]
    assert sorted(live) == sorted(
        f"seed {s}: INVALID (views_agree fail): {single_report(singles, s)['reproduce']}" for s in invalid
    )
    # ...and at the end the summary, each failing check with its seeds and their commands (the first ten).
    assert lines[1 + len(live)] == "sweep tiny (seeds 1-20): INVALID"
    at = lines.index("failing checks:")
    head = lines[at + 1].split()
    assert head[:3] == ["views_agree", "fail", str(len(invalid))]
    assert lines[at + 1].endswith(": " + ", ".join(map(str, invalid)))
    repeats = lines[at + 2 : at + 12]
    assert repeats == [f"    {single_report(singles, s)['reproduce']}" for s in invalid[:10]]
    assert repeats[0] == f"    python run.py experiment {tiny} --seed {invalid[0]}"
    assert lines[at + 12] == f"    ... and {len(invalid) - 10} more (sweep.json lists every one)"
    assert any(line.startswith("  messages dropped") for line in lines)
    assert lines[-1] == "report: r/tiny-sweep/sweep.json, r/tiny-sweep/report.html, r/tiny-sweep/distributions.svg"


def test_a_local_worker_killed_mid_seed_costs_a_retry_and_loses_nothing(tiny, singles, tmp_path):
    killed: list[SeedStarted] = []
    events: list[object] = []

    def kill_the_worker_of_seed_3(event):
        events.append(event)
        if isinstance(event, SeedStarted) and event.seed == 3 and not killed:
            os.kill(event.worker, signal.SIGKILL)  # mid-seed: it has just begun
            killed.append(event)

    code, _ = run_sweep(tiny, tmp_path, "--seeds", "1-8", "--workers", "2", on_event=kill_the_worker_of_seed_3)

    swept = tmp_path / "r" / "tiny-sweep"
    assert killed
    lost = [e for e in events if isinstance(e, WorkerLost)]
    assert [(e.worker, e.seeds, e.given_up) for e in lost] == [(killed[0].worker, (3,), False)]
    results = [e.seed for e in events if isinstance(e, SeedResult)]
    assert sorted(results) == list(range(1, 9))  # each once: none missing, none doubled
    assert_same_as_single_runs(swept, singles, range(1, 9))
    wall = json.loads((swept / "wall.json").read_text())
    assert wall["workers_lost"] == 1 and wall["retried"] == [3]
    assert json.loads((swept / "sweep.json").read_text())["finished"] == 8
    assert code == 1


def test_ctrl_c_ends_a_sweep_with_the_summary_of_what_finished_and_resume_runs_the_rest(tiny, singles, tmp_path):
    argv = [sys.executable, str(ROOT / "run.py"), "--data-dir", str(tmp_path / "dd"), "experiment", str(tiny)]
    argv += ["--seeds", "1-8", "--workers", "1", "--results", "r"]
    # Its own session, as a terminal's foreground job: Ctrl-C goes to the whole group.
    proc = subprocess.Popen(
        argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    swept = tmp_path / "r" / "tiny-sweep"
    try:
        deadline = time.monotonic() + 60
        while not (swept / "tiny-1").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        workers = children(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert proc.returncode == 130, err
    assert workers and gone(workers)  # the worker, and multiprocessing's resource tracker
    lines = out.splitlines()
    summary = json.loads((swept / "sweep.json").read_text())
    done = summary["finished"]
    assert 1 <= done < 8 and not summary["complete"]
    assert lines[0] == "Running tiny over seeds 1-8 on 1 local worker..."
    assert f"sweep tiny (seeds 1-8): {summary['verdict'].upper()} (interrupted: {done} of 8 seeds finished)" in lines
    resume = f"resume: python run.py experiment {tiny} --seeds 1-8 --workers 1 --results r --resume"
    assert lines[-1] == resume
    assert_same_as_single_runs(swept, singles, [r["seed"] for r in summary["results"]])
    assert sorted(p.name for p in swept.iterdir() if p.name.startswith("tiny-")) == [
        f"tiny-{r['seed']}" for r in sorted(summary["results"], key=lambda r: f"tiny-{r['seed']}")
    ]

    started: list[int] = []
    code, lines = run_sweep(
        tiny,
        tmp_path,
        "--seeds",
        "1-8",
        "--workers",
        "1",
        "--resume",
        on_event=lambda e: started.append(e.seed) if isinstance(e, SeedStarted) else None,
    )

    assert sorted(started) == [s for s in range(1, 9) if s not in {r["seed"] for r in summary["results"]}]
    assert lines[0] == f"Running tiny over seeds 1-8 on 1 local worker ({done} reported before: skipped)..."
    assert_same_as_single_runs(swept, singles, range(1, 9))
    after = json.loads((swept / "sweep.json").read_text())
    assert after["complete"] and after["finished"] == 8
    assert json.loads((swept / "wall.json").read_text())["resumed"] == done
    assert code == 1


def test_resume_trusts_only_whole_seed_folders(tiny, singles, tmp_path):
    run_sweep(tiny, tmp_path, "--seeds", "1-3", "--workers", "1")
    swept = tmp_path / "r" / "tiny-sweep"
    (swept / "tiny-2" / "timeline.svg").unlink()  # as if cut short
    (swept / "tiny-3" / "report.json").write_text('{"seed": 3, "verd')
    (swept / ".tiny-1.partial-x").mkdir()  # what a killed driver leaves behind
    (swept / ".tiny-1.partial-x" / "report.json").write_text("{}")
    started: list[int] = []

    code, lines = run_sweep(
        tiny,
        tmp_path,
        "--resume",
        "--workers",
        "1",
        on_event=lambda e: started.append(e.seed) if isinstance(e, SeedStarted) else None,
    )

    assert sorted(started) == [2, 3]
    assert lines[0] == "Running tiny over seeds 1-3 on 1 local worker (1 reported before: skipped)..."
    assert_same_as_single_runs(swept, singles, [1, 2, 3])
    assert code == json.loads((swept / "sweep.json").read_text())["exit_code"]


# --- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--seeds", "1-"], "InvalidSeeds"),
        (["--seeds", "5-1"], "InvalidSeeds"),
        (["--seeds", "abc"], "InvalidSeeds"),
        (["--seeds", "0"], "InvalidSeeds"),
        (["--seeds", "1-99999999"], "InvalidSeeds"),
        (["--seeds", "1-5", "--workers", "0"], "InvalidSweep"),
        (["--seeds", "1-5", "--seed", "3"], "InvalidSweep"),
        (["--seeds", "1-5", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "InvalidSweep"),
        (["--workers", "2"], "InvalidSweep"),
        (["--seeds", "1-5", "--scheduler", "tcp://127.0.0.1:1"], "SchedulerUnreachable"),
        (["--seeds", "1-5", "--scheduler", "not-an-address"], "SchedulerUnreachable"),
        (["--seeds", "1-5", "--resume"], "NothingToResume"),
    ],
)
def test_bad_input_is_refused_by_name_with_exit_2_and_nothing_written(tiny, tmp_path, capsys, args, error):
    code, lines = run_sweep(tiny, tmp_path, *args)

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"{error} - ") and err.endswith("FAILED\n")
    assert lines == []
    assert not (tmp_path / "r").exists()


def test_resume_refuses_a_sweep_whose_experiment_file_has_changed(tiny, tmp_path, capsys):
    folder = tmp_path / "r" / "tiny-sweep"
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps({"seeds": "1-3", "file_sha256": "another file"}))

    code, _ = run_sweep(tiny, tmp_path, "--resume")

    assert code == 2
    assert capsys.readouterr().err.startswith("ResumeMismatch - ")
    assert sorted(p.name for p in folder.iterdir()) == ["sweep.json"]


def test_the_command_line_sends_seeds_to_a_sweep_and_a_seed_to_a_single_run():
    assert sweep.is_sweep(["f.toml", "--seeds", "1-3"])
    assert sweep.is_sweep(["f.toml", "--seeds=1-3"])
    assert sweep.is_sweep(["f.toml", "--resume"])
    assert not sweep.is_sweep(["f.toml", "--seed", "3", "--results", "r"])


# --- a Dask cluster ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.CRITICAL
    ) as running:
        yield running


@pytest.fixture
def client(cluster):
    """The test's own client of the cluster (the sweep has its own)."""
    import distributed

    with distributed.Client(cluster, set_as_default=False) as connected:
        yield connected


def test_a_sweep_on_a_dask_cluster_gives_every_seed_its_single_runs_report(
    tiny, singles, swept_locally, cluster, tmp_path
):
    code, lines = run_sweep(tiny, tmp_path, "--seeds", "1-20", "--scheduler", cluster.scheduler_address)

    swept = tmp_path / "r" / "tiny-sweep"
    assert code == 1
    assert_same_as_single_runs(swept, singles, SEEDS)
    # The sweep's own summary too: the same seeds give the same bytes, whatever ran them.
    assert (swept / "sweep.json").read_bytes() == (swept_locally[2] / "sweep.json").read_bytes()
    assert lines[0] == f"Running tiny over seeds 1-20 on the Dask cluster at {cluster.scheduler_address} (2 workers)..."
    # Each worker logged as run.py logs: JSON lines, the seed bound to each.
    events = [json.loads(line) for line in (tmp_path / "experiment.log").read_text().splitlines()]
    finished = [e for e in events if e["event"] == "sweep-seed-finished"]
    assert sorted(e["seed"] for e in finished) == list(SEEDS)


def test_a_dask_worker_killed_mid_sweep_costs_a_retry_and_loses_nothing(tiny, singles, cluster, client, tmp_path):
    address, pid = next(iter(client.run(os.getpid).items()))
    held: list[list[str]] = []

    def kill_a_worker_after_the_first_result(event):
        if isinstance(event, SeedResult) and not held:
            held.append(client.processing(workers=[address])[address])
            os.kill(pid, signal.SIGKILL)  # mid-seed: it runs one, perhaps with the next queued

    code, lines = run_sweep(
        tiny,
        tmp_path,
        "--seeds",
        "1-8",
        "--scheduler",
        cluster.scheduler_address,
        on_event=kill_a_worker_after_the_first_result,
    )

    swept = tmp_path / "r" / "tiny-sweep"
    assert held and held[0], "the worker held no seed when it was killed"
    assert code == 1
    assert_same_as_single_runs(swept, singles, range(1, 9))
    summary = json.loads((swept / "sweep.json").read_text())
    assert summary["finished"] == 8 and summary["not_run"] == []
    wall = json.loads((swept / "wall.json").read_text())
    assert wall["workers_lost"] == 1
    held_seeds = sorted(int(key.split("-")[2]) for key in held[0])
    assert set(held_seeds) <= set(wall["retried"]), (held_seeds, wall["retried"])
    assert any(line.startswith(f"worker {address} was lost running seeds ") for line in lines)
