"""The runtime benchmark runs end to end (figures are never asserted: speed is a report)."""

from __future__ import annotations

import json

import pykka
import pytest

from benchmarks.runtime import IMPLEMENTATIONS, WORKLOADS, main


def test_quick_run_writes_every_figure(tmp_path, capsys):
    out = tmp_path / "r.json"

    assert main(["--quick", "--json", str(out)]) == 0

    report = json.loads(out.read_text())
    assert set(report["workloads"]) == set(WORKLOADS) == {"tell", "tell_by_name", "ask", "ask_pykka_face", "bid_round"}
    # The by-name tell and pykka's ask are measured against the same floors.
    for row, floors in (("tell_by_name", "tell"), ("ask_pykka_face", "ask")):
        assert report["workloads"][row]["floors_of"] == floors
        assert (
            report["workloads"][row]["results"]["deque_floor"] == report["workloads"][floors]["results"]["deque_floor"]
        )
        assert report["workloads"][row]["results"]["ours"] != report["workloads"][floors]["results"]["ours"]
    for workload in WORKLOADS:
        data = report["workloads"][workload]
        assert data["path"]
        assert (
            set(data["results"])
            == set(IMPLEMENTATIONS)
            == {"ours", "ours_platform", "deque_floor", "bare_asyncio", "pykka_threads"}
        )
        for impl in IMPLEMENTATIONS:
            figures = data["results"][impl]
            assert figures["best"] > 0
            assert figures["median"] > 0
            assert len(figures["runs"]) == report["params"]["repeat"]
            assert all(v > 0 for v in figures["runs"])
        assert data["platform_vs_floor"] > 0
        assert data["ours_vs_floor"] > 0
        assert set(data["targets"]) >= {"floor_max", "floor_pass"}
    assert report["machine"]["cpu_count"]

    printed = capsys.readouterr().out
    assert "deque + waiter (floor)" in printed
    assert "as the platform runs it" in printed
    assert "PASS" in printed or "MISS" in printed


def test_leaves_nothing_running(tmp_path):
    import threading

    before = {t.ident for t in threading.enumerate()}
    main(["--quick", "--repeat", "1", "--json", str(tmp_path / "r.json")])

    import actors.runtime.system as system_module

    assert system_module._current is None  # our ActorSystem shut down
    assert pykka.ActorRegistry.get_all() == []
    extra = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert extra == []  # every pykka thread stopped


def test_json_alone_prints_one_object(capsys):
    assert main(["--quick", "--repeat", "1", "--no-pykka", "--json"]) == 0

    out = capsys.readouterr().out.strip()
    report = json.loads(out)  # nothing but the object on stdout
    assert report["bench"] == "runtime"
    assert report["machine"]["loop"] in ("asyncio", "uvloop")


def test_without_pykka_the_json_is_strict_and_leaves_pykka_out(capsys):
    assert main(["--quick", "--repeat", "1", "--no-pykka", "--json", "-"]) == 0

    text = capsys.readouterr().out
    report = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    for data in report["workloads"].values():
        assert "pykka_threads" not in data["results"]
        assert data["platform_over_pykka"] is None
        assert data["platform_vs_floor"] > 0
