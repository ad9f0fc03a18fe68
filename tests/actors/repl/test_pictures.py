"""`cf trace APP --svg/--html`: pictures drawn from the recorded deliveries."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from actors.cli.pictures import arrows, html_page, participants, write_picture
from actors.cli.render import mermaid

SVG = "{http://www.w3.org/2000/svg}"


def _d(seq, sender, receiver, label, step=None, ask=True):
    return {"seq": seq, "t": seq / 10, "sender": sender, "receiver": receiver, "label": label, "step": step, "ask": ask}


DELIVERIES = [
    _d(1, "user", "cli", "cf push hello", 1),
    _d(2, "cli", "cloud_controller", "CreateOrUpdateApp", 2),
    _d(3, "cloud_controller", "ccdb", "db.create_app", 3),
    _d(4, "cell-2", "loggregator", "LogLine", 8, ask=False),
    _d(5, "cell-2", "loggregator", "LogLine", 8, ask=False),
    _d(6, "cell-2", "loggregator", "LogLine", None, ask=False),
    _d(7, "loggregator", "loggregator", "_Flush", None, ask=False),
    _d(8, "cell-2", "bbs", "InstanceStarted & <done>", 12, ask=False),
]


def test_participants_follow_the_mermaid_diagrams_order():
    names = participants(DELIVERIES, mermaid(DELIVERIES, title="cf push hello"))
    assert names == ["user", "cli", "cloud_controller", "ccdb", "bbs", "cell-2", "loggregator"]


def test_identical_arrows_in_a_row_fold_and_carry_the_step_in_progress():
    folded = arrows(DELIVERIES)
    assert [(a["label"], a["step"], a["count"]) for a in folded][3:5] == [("LogLine", 8, 3), ("_Flush", 8, 1)]


def test_the_svg_has_a_column_per_actor_and_a_labelled_arrow_per_folded_delivery(tmp_path):
    (tmp_path / "out").mkdir()
    path = write_picture(DELIVERIES, mermaid(DELIVERIES, title="cf push hello"), tmp_path / "out" / "push.svg", "svg")
    root = ET.parse(path).getroot()  # well-formed XML, labels escaped
    assert root.tag == f"{SVG}svg"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts[0] == "cf push hello"
    for name in ("user", "cli", "cloud_controller", "ccdb", "bbs", "cell-2", "loggregator"):
        assert texts.count(name) == 2  # a box at the top and at the bottom of its lifeline
    assert "2. CreateOrUpdateApp" in texts
    assert "8. LogLine x3" in texts
    assert "12. InstanceStarted & <done>" in texts
    assert "step 8" in texts
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_the_html_page_embeds_the_svg_and_the_mermaid_source_and_loads_nothing(tmp_path):
    text = mermaid(DELIVERIES, title="cf push hello")
    path = write_picture(DELIVERIES, text, tmp_path / "push.html", "html")
    page = path.read_text()
    assert page.startswith("<!doctype html>")
    assert "<svg" in page and "sequenceDiagram" in page
    assert "cell_2-)loggregator: 8. LogLine x3" in page
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert page == html_page(DELIVERIES, text)


def test_no_half_written_picture_is_left_when_the_kind_is_unknown(tmp_path):
    try:
        write_picture(DELIVERIES, "", tmp_path / "x.png", "png")
    except ValueError as exc:
        assert "svg or html" in str(exc)
    assert list(tmp_path.iterdir()) == []


def test_steps_never_go_back_so_the_bands_keep_the_seeds_order_and_a_legend_names_them(tmp_path):
    late = [*DELIVERIES, _d(9, "cloud_controller", "ccdb", "db.update_app", 3)]  # a step-3 write during step 12
    folded = arrows(late)
    steps = [a["step"] for a in folded]
    assert steps == sorted(steps) and steps[-1] == 12
    text = mermaid(late, title="cf push hello")
    assert "cloud_controller->>ccdb: 12. db.update_app" in text
    notes = [line.strip() for line in text.splitlines() if line.strip().startswith("Note over")]
    assert notes == [
        "Note over user,loggregator: step 1: push",
        "Note over user,loggregator: step 2: create the app",
        "Note over user,loggregator: step 3: store its metadata",
        "Note over user,loggregator: step 8: stream staging logs",
        "Note over user,loggregator: step 12: instances running",
    ]
    root = ET.parse(write_picture(late, text, tmp_path / "p.svg", "svg")).getroot()
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert any(t and "step 12: instances running" in t for t in texts)


def _report(samples, faults, recovery):
    return {
        "experiment": "x",
        "seed": 1,
        "verdict": "valid",
        "samples": samples,
        "faults": faults,
        "timeline": [],
        "recovery": recovery,
    }


def test_the_timeline_keeps_one_time_unit_its_labels_inside_and_marks_recovery_where_it_happened():
    from actors.experiments.picture import WIDTH, timeline_svg

    samples = [{"t": float(t), "desired": 4, "running": 2 if 30 <= t < 70 else 4} for t in range(0, 1600, 10)]
    faults = [
        {"t": 30.0, "action": "kill-cells", "label": "kill the cells, a long label that reaches far"},
        {"t": 1580.0, "action": "drain", "label": "drain near the end of the run"},
    ]
    svg_text = timeline_svg(_report(samples, faults, {"healed_at": 90.0, "recovered_at": 90.0}))
    root = ET.fromstring(svg_text)
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.text and t.text[:1].isdigit()]
    units = {t[-1] for t in ticks if not t.isdigit()}
    assert units == {"m"}, ticks  # a 26-minute run: every tick in minutes
    for text in root.iter(f"{SVG}text"):
        x = float(text.get("x", "0"))
        assert 0 <= x <= WIDTH, (text.text, x)
        if text.get("text-anchor") != "end" and text.text and len(text.text) > 20:
            assert x + 6 * len(text.text) <= WIDTH + 10, text.text  # long labels near the edge run leftwards
    [line] = [
        g
        for g in root.iter(f"{SVG}line")
        if (g.find(f"{SVG}title") is not None and "recovered" in (g.find(f"{SVG}title").text or ""))
    ]
    assert line.find(f"{SVG}title").text == "recovered at 70 s"  # where running met desired, not at the heal


def test_a_picture_is_written_where_asked_or_not_at_all(tmp_path):
    import pytest

    from protocol.errors import PathNotFound

    text = mermaid(DELIVERIES, title="cf push hello")
    with pytest.raises(PathNotFound, match="There is no folder"):
        write_picture(DELIVERIES, text, tmp_path / "missing" / "push.svg", "svg")
    assert not (tmp_path / "missing").exists()
    with pytest.raises(PathNotFound, match="is a folder: name a file"):
        write_picture(DELIVERIES, text, tmp_path, "svg")
