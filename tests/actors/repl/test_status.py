"""What `status` and `serve`'s status line say, from snapshots."""

from __future__ import annotations

from actors.repl.status import format_duration, serve_line, status_lines
from protocol.snapshots import AppInstances, BBSStatistics, InstanceCounts, TaskCounts

STATS = {
    "sent": 1200,
    "delivered": 1190,
    "dropped": 3,
    "duplicated": 1,
    "delayed": 0,
    "dead_letters": 2,
    "actors": 14,
    "uptime": 3725.0,
}
SNAPSHOT = BBSStatistics(
    apps=(
        AppInstances("g1", "g1-name", "g1-v1", 2, InstanceCounts(running=2)),
        AppInstances("g2", "g2-name", "g2-v1", 1, InstanceCounts(crashed=1)),
    ),
    cells=("cell-1", "cell-2"),
    tasks=TaskCounts(pending=1, succeeded=4),
    convergence_runs=0,
    auctions_requested=0,
)


def test_status_shows_actors_mailboxes_messages_uptime_and_apps_running_versus_desired():
    lines = status_lines(STATS, {"bbs": 3, "cli": 0, "cell-1": 1}, SNAPSHOT, {"g1": "hello", "g2": "crashloop"})
    text = "\n".join(lines)
    assert "uptime:       1h 2m 5s" in text
    assert "actors:       14 running" in text
    assert "mailboxes:    bbs 3, cell-1 1" in text
    assert "1,200 sent, 1,190 delivered, 3 dropped, 1 duplicated, 2 dead letters" in text
    assert "apps:         2 started, 2 of 3 instances running, 1 crashed" in text
    assert "   crashloop   0/1 running, 1 crashed" in lines
    assert "   hello       2/2 running" in lines
    assert "tasks:        1 pending, 0 running" in text


def test_status_says_when_uptime_is_compressed_platform_time():
    lines = status_lines({**STATS, "speed": 10.0}, {}, SNAPSHOT, {})
    assert lines[0] == "uptime:       1h 2m 5s of platform time (--speed 10)"


def test_status_shows_only_the_deepest_mailboxes():
    depths = {f"cell-{i}": i for i in range(1, 10)}
    mailboxes = next(line for line in status_lines(STATS, depths, SNAPSHOT, {}, top=3) if line.startswith("mailboxes"))
    assert mailboxes == "mailboxes:    cell-9 9, cell-8 8, cell-7 7 (+6 more)"


def test_status_says_so_when_the_bbs_does_not_answer():
    assert "apps:         (the BBS did not answer)" in status_lines(STATS, {}, None, {})


def test_serve_line_counts_apps_instances_cells_and_messages():
    line = serve_line(STATS, SNAPSHOT, now=0)
    assert line.endswith("apps 2 started, instances 2/3 running, cells 2, messages 1,190 delivered, 2 dead letters")


def test_durations_read_as_a_person_would_say_them():
    assert [format_duration(s) for s in (0, 59.9, 61, 3600, 90061)] == ["0s", "59s", "1m 1s", "1h 0m 0s", "1d 1h 1m"]
