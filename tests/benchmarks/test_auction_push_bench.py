"""The auction and push benchmarks run end to end at small sizes and print
one JSON object (figures are never asserted: speed is a report)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "bench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_bench_auction_reports_placed_and_running_as_one_json_object():
    proc = _bench("auction", "--cells", "12", "--instances", "400", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    (result,) = report["results"]
    assert result["placed"] == result["running"] == 400
    assert result["failed"] == 0
    assert 0 < result["placed_s"] <= result["running_s"]
    assert result["peak_rss_mb"] > 0
    assert result["one_app"] is False


def test_bench_auction_one_app_places_every_instance():
    proc = _bench("auction", "--one-app", "--cells", "40", "--instances", "300", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    assert result["one_app"] is True and result["apps"] == 1
    assert result["running"] == 300


def test_bench_push_pushes_every_app_and_breaks_the_cpu_down(tmp_path):
    proc = _bench(
        "push",
        "--pushes",
        "6",
        "--concurrency",
        "3",
        "--clock",
        "virtual",
        "--sample-ms",
        "0.5",
        "--json",
        "-",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    (result,) = report["results"]
    assert result["clock"] == "virtual"
    assert result["failed"] == 0 and result["apps_in_ccdb"] == 6
    assert result["pushes_per_s"] > 0 and result["cpu_ms_per_push"] > 0
    parts = result["cpu_ms_per_push_by_component"]
    # CC_DB's thread is busy in every push; what the loop runs, small
    # stagings included, may fall between samples of so short a run, so the
    # parts are held to adding up to the whole rather than each named.
    assert {"ccdb", "unattributed"} <= set(parts)
    assert abs(sum(parts.values()) - result["cpu_ms_per_push"]) <= 0.05
    # Its data directory was beside the caller's, and is gone.
    assert list(tmp_path.iterdir()) == []


def test_bench_push_refuses_an_absurd_count():
    proc = _bench("push", "--pushes", "0")
    assert proc.returncode == 2
    assert "--pushes and --concurrency must be at least 1" in proc.stderr


def test_bench_api_prints_only_its_json_object_on_stdout():
    proc = _bench(
        "api",
        "--apps",
        "1",
        "--requests",
        "20",
        "--pushes",
        "1",
        "--concurrency",
        "1",
        "--oneshots",
        "2",
        "--json",
        "-",
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures["get_v3_apps_per_s"] > 0 and figures["pushes"] == 1
    assert "GET /v3/apps" in proc.stderr  # the readable report went to stderr


def test_bench_arguments_that_mean_nothing_are_usage_errors_before_any_run():
    import subprocess
    import sys
    from pathlib import Path

    run = Path(__file__).resolve().parents[2] / "run.py"
    for argv, says in (
        (["auction", "--cells", "0"], "argument --cells: must be at least 1"),
        (["push", "--cells", "0"], "argument --cells: must be at least 1"),
        (["push", "--speed", "0", "--clock", "real"], "argument --speed: must be a finite number above 0"),
        (["auction", "--json", "/nonexistent/dir/x.json"], "argument --json: no folder /nonexistent/dir"),
    ):
        done = subprocess.run([sys.executable, str(run), "bench", *argv], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, (argv, done.stderr)
