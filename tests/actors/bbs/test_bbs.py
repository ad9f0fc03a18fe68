"""The BBS's recovery mechanisms, through real actors: convergence, presence,
task rejections, crash backoff."""

from __future__ import annotations

import pytest

from actors.auctioneer.simulation import AppSpec, Cluster
from actors.bbs.actor import BBSConfig
from actors.cell.actor import CellActor, CellConfig
from protocol.lrp import DesiredLRP, TaskDefinition
from protocol.messages import Converge, DesireLRP, DesireTask, GetActualLRPs, ListTasks, PerformResult
from protocol.states import ActualLRPState, HealthCheckType, TaskState

pytestmark = pytest.mark.anyio


async def actuals(system, process_guid):
    return await system.ask("bbs", GetActualLRPs(process_guid))


async def test_an_unplaceable_instance_stays_unclaimed_with_its_reason_until_convergence_places_it(system):
    cluster = await Cluster.start(system, cells=1, zones=1, memory_mb=100)
    cluster.desire([AppSpec("big", 2, 60)])
    await cluster.wait_placed(2)
    first = await actuals(system, "big")
    assert first[0].state in (ActualLRPState.CLAIMED, ActualLRPState.RUNNING)
    assert first[1].state is ActualLRPState.UNCLAIMED
    assert first[1].placement_error == "insufficient resources: memory"
    CellActor.start(CellConfig("cell-2", zone="z1", memory_mb=100, cell_index=2), name="cell-2")
    await system.clock.advance(1)
    await system.ask("bbs", Converge("test"))
    await system.clock.advance(1)
    later = await actuals(system, "big")
    assert later[1].state in (ActualLRPState.CLAIMED, ActualLRPState.RUNNING)
    assert later[1].cell_id == "cell-2"


async def test_instances_on_a_cell_that_stops_heartbeating_are_replaced_elsewhere(system):
    cluster = await Cluster.start(
        system, cells=3, zones=1, memory_mb=100, bbs=BBSConfig(convergence_interval=30, presence_ttl=15)
    )
    cluster.desire([AppSpec("web", 6, 1)])
    await cluster.wait_placed(6)
    await system.clock.advance(5)
    victim = "cell-1"
    on_victim = [a.index for a in await actuals(system, "web") if a.cell_id == victim]
    assert on_victim
    system.pause(victim)  # no heartbeats, no answers
    await system.clock.advance(25)
    after = await actuals(system, "web")
    assert all(a.cell_id != victim for a in after)
    assert all(a.state is ActualLRPState.RUNNING for a in after)


async def test_a_killed_cell_comes_back_empty_and_its_instances_run_elsewhere(system):
    cluster = await Cluster.start(system, cells=2, zones=1, memory_mb=100)
    cluster.desire([AppSpec("web", 4, 1)])
    await cluster.wait_placed(4)
    await system.clock.advance(2)
    # The cells supervisor is absent in this harness: kill, then start a new one.
    system.kill("cell-1")
    await system.clock.advance(0)
    CellActor.start(cluster.cell_configs[0], name="cell-1")  # the restarted cell: new incarnation
    await system.clock.advance(10)
    after = await actuals(system, "web")
    assert sum(a.state is ActualLRPState.RUNNING for a in after) == 4


class RefusingCell(CellActor):
    """A cell whose state always changed between bid and commit (for tasks)."""

    def _perform(self, message):
        return PerformResult(rejected_lrps=(), rejected_tasks=tuple(message.tasks))


async def test_a_task_refused_three_times_fails(system):
    await Cluster.start(system, cells=1, zones=1, memory_mb=4096, cell_class=RefusingCell)
    task = TaskDefinition("task-1", 256, 256, "cflinuxfs4")
    await system.ask("bbs", DesireTask(task))
    await system.clock.advance(5)
    (book,) = [t for t in await system.ask("bbs", ListTasks()) if t.task_guid == "task-1"]
    assert book.state is TaskState.FAILED
    assert book.rejections == 3
    assert "rejected 3 times" in book.failure_reason


async def test_a_crashing_instance_restarts_with_diegos_backoff(system):
    await Cluster.start(system, cells=1, zones=1, memory_mb=1000)
    lrp = DesiredLRP(
        process_guid="crashy",
        app_guid="crashy",
        app_name="crashy",
        instances=1,
        memory_mb=10,
        disk_mb=1,
        droplet_key=None,
        start_command="./app",
        health_check_type=HealthCheckType.PROCESS,
        env=(("MF_CRASH_AFTER_SECONDS", "1"),),
    )
    system.tell("bbs", DesireLRP(lrp))
    crash_times: list[tuple[int, float]] = []
    last = 0
    for _ in range(600):
        await system.clock.advance(1)
        (a,) = await actuals(system, "crashy")
        if a.crash_count != last:
            crash_times.append((a.crash_count, system.clock.monotonic()))
            last = a.crash_count
        if last >= 6:
            break
    gaps = [round(b[1] - a[1]) for a, b in zip(crash_times, crash_times[1:], strict=False)]
    # Each life lasts 1 s; crashes 1-2 restart at once, then 30, 60, 120 s waits.
    assert gaps[:5] == [1, 1, 31, 61, 121], crash_times
    (a,) = await actuals(system, "crashy")
    assert a.state in (ActualLRPState.CRASHED, ActualLRPState.UNCLAIMED, ActualLRPState.CLAIMED, ActualLRPState.RUNNING)


async def test_a_draining_cells_instances_are_replaced_before_they_stop(system):
    cluster = await Cluster.start(system, cells=3, zones=1, memory_mb=100)
    cluster.desire([AppSpec("web", 3, 1)])
    await cluster.wait_placed(3)
    await system.clock.advance(2)
    victim = next(a.cell_id for a in await actuals(system, "web"))
    from protocol.messages import EvacuateCell

    moving = await system.ask("bbs", EvacuateCell(victim))
    assert moving >= 1
    # Replacements start first: the old instances keep running meanwhile.
    mid = await actuals(system, "web")
    assert sum(a.state is ActualLRPState.RUNNING for a in mid) == 3
    await system.clock.advance(5)
    after = await actuals(system, "web")
    assert all(a.cell_id != victim and a.state is ActualLRPState.RUNNING for a in after)
    cell = system.actor(victim)
    assert cell.statistics().instances == 0


async def test_a_cell_fetches_every_app_it_won_in_one_ask_and_logs_each_instances_start_in_order(system):
    from protocol.messages import GetDesiredLRP, GetDesiredLRPs, RecentLogs

    asked: list[object] = []

    def watch(envelope, receiver):
        if receiver == "bbs" and isinstance(envelope[0], GetDesiredLRP | GetDesiredLRPs):
            asked.append(envelope[0])

    system.seam.add_observer(watch)
    cluster = await Cluster.start(system, cells=1, zones=1, memory_mb=1000)
    cluster.desire([AppSpec("a", 2, 10), AppSpec("b", 1, 10), AppSpec("c", 3, 10)], startup_seconds=1.0)
    await cluster.wait_running(6)
    assert [type(m) for m in asked] == [GetDesiredLRPs]
    assert sorted(asked[0].process_guids) == ["a", "b", "c"]
    lines = [line.text for line in await system.ask("loggregator", RecentLogs("c", 100))]
    starts = [t for t in lines if "creating container" in t]
    assert len(starts) == 3
    # Each instance's lines come in the order Diego's rep logs them.
    expected = [
        "creating container",
        "successfully created container",
        "Starting health monitoring",
        "Starting app with command",
        "Container became healthy",
    ]
    positions = [next(i for i, t in enumerate(lines) if e in t) for e in expected]
    assert positions == sorted(positions)
    assert sum("Container became healthy" in t for t in lines) == 3


async def test_the_bbs_answers_several_desired_lrps_in_the_order_asked(system):
    from protocol.messages import GetDesiredLRPs

    cluster = await Cluster.start(system, cells=1, zones=1, memory_mb=1000)
    cluster.desire([AppSpec("a", 1, 10), AppSpec("b", 1, 10)])
    await cluster.wait_placed(2)
    got = await system.ask("bbs", GetDesiredLRPs(("b", "nope", "a")))
    assert [None if lrp is None else lrp.process_guid for lrp in got] == ["b", None, "a"]


async def test_instances_of_two_conversations_started_in_one_step_log_every_line(system):
    # A cell starting instances of two pushes at once sends each push's
    # lines in their own message (its conversation); none is lost between.
    from actors.runtime.delivery import current_trace
    from protocol.messages import RecentLogs

    cluster = await Cluster.start(system, cells=1, zones=1, memory_mb=1000)
    for app, trace in (("a", "push-a"), ("b", "push-b"), ("c", "push-c")):
        token = current_trace.set(trace)
        try:
            cluster.desire([AppSpec(app, 2, 10)], startup_seconds=1.0)
        finally:
            current_trace.reset(token)
    await cluster.wait_running(6)
    for app in ("a", "b", "c"):
        lines = [line.text for line in await system.ask("loggregator", RecentLogs(app, 100))]
        for expected in ("creating container", "successfully created container", "Starting health monitoring"):
            assert sum(expected in t for t in lines) == 2, (app, expected, lines)


async def _a_cell_and_its_log_messages(system):
    """A one-cell cluster's cell, and the log messages it sends as (trace, message)."""
    from protocol.messages import LogLine, LogLines

    cluster = await Cluster.start(system, cells=1, zones=1, memory_mb=1000)
    cell = system.lookup(cluster.cell_configs[0].cell_id)._actor
    sent: list[tuple[object, object]] = []
    system.seam.add_observer(
        lambda envelope, receiver: (
            sent.append((envelope[3], envelope[0])) if isinstance(envelope[0], LogLine | LogLines) else None
        )
    )
    return cell, sent


async def test_a_cells_held_lines_under_a_new_conversation_start_a_new_message_and_none_is_lost(system):
    # The cell holds the lines of one step and sends one message per run of
    # lines under the same trace; the line that starts a new run is kept.
    from actors.runtime.delivery import current_trace
    from protocol.messages import LogLine, LogLines, RecentLogs

    cell, sent = await _a_cell_and_its_log_messages(system)
    with cell._batched_logs():
        for trace, texts in (("t1", ["one", "two"]), ("t2", ["three", "four"]), ("t1", ["five"])):
            token = current_trace.set(trace)
            try:
                for text in texts:
                    cell._log("app", "CELL", "0", text)
            finally:
                current_trace.reset(token)
    await system.ask("loggregator", RecentLogs("app", 1))  # the tells above are handled
    assert [(trace, type(m)) for trace, m in sent] == [("t1", LogLines), ("t2", LogLines), ("t1", LogLine)]
    lines = [line.text for line in await system.ask("loggregator", RecentLogs("app", 100))]
    assert lines == ["one", "two", "three", "four", "five"]


async def test_instances_started_in_one_step_are_planned_each_when_their_start_draws_and_once_when_not(system):
    cluster = await Cluster.start(system, cells=1, zones=1, memory_mb=1000)
    cluster.desire([AppSpec("steady", 4, 10)], startup_seconds=1.0)
    await cluster.wait_running(4)
    cell = system.lookup(cluster.cell_configs[0].cell_id)._actor
    plans = [i.plan for i in cell.instances.values() if i.process_guid == "steady"]
    assert len(plans) == 4 and all(p is plans[0] for p in plans)  # one plan, shared (frozen)
    # With a startup jitter, each start draws its own delay.
    env = (("MF_MEMORY_MB", "5"), ("MF_STARTUP_SECONDS", "1"), ("MF_STARTUP_JITTER_SECONDS", "5"))
    jittery = DesiredLRP(
        process_guid="jittery",
        app_guid="jittery",
        app_name="jittery",
        instances=4,
        memory_mb=10,
        disk_mb=10,
        droplet_key=None,
        start_command="./app",
        health_check_type=HealthCheckType.PORT,
        env=env,
    )
    system.tell("bbs", DesireLRP(jittery))
    await cluster.wait_running(8)
    delays = {i.plan.healthy_after for i in cell.instances.values() if i.process_guid == "jittery"}
    assert len(delays) == 4 and all(1.0 <= d <= 6.0 for d in delays)


def _watch_started(system):
    from protocol.messages import InstancesStarted, InstanceStarted

    reports: list[tuple[object, object]] = []
    system.seam.add_observer(
        lambda envelope, receiver: (
            reports.append((envelope[3], envelope[0]))
            if receiver == "bbs" and isinstance(envelope[0], InstanceStarted | InstancesStarted)
            else None
        )
    )
    return reports


def _shape(reports):
    from protocol.messages import InstancesStarted

    return [(trace, type(m).__name__, len(m.rows) if isinstance(m, InstancesStarted) else 1) for trace, m in reports]


async def test_instances_healthy_together_reach_the_bbs_in_one_message_each_booked_as_if_alone(system):
    # A cell starting many instances in one step reports them together, in
    # the conversation that started them; the BBS books each as a lone
    # InstanceStarted would (RUNNING on that cell, with the container's guid
    # and usage). A lone instance still sends InstanceStarted.
    from actors.runtime.delivery import current_trace
    from protocol.messages import InstancesStarted, ListContainers

    reports = _watch_started(system)
    cluster = await Cluster.start(system, cells=1, zones=1, memory_mb=1000)
    running = 0
    for app, count, trace in (("a", 3, "push-a"), ("b", 1, "push-b"), ("c", 2, "push-c")):
        token = current_trace.set(trace)
        try:
            cluster.desire([AppSpec(app, count, 10)], startup_seconds=1.0)
        finally:
            current_trace.reset(token)
        running += count
        await cluster.wait_running(running)
    assert _shape(reports) == [
        ("push-a", "InstancesStarted", 3),
        ("push-b", "InstanceStarted", 1),
        ("push-c", "InstancesStarted", 2),
    ]
    cell_id = cluster.cell_configs[0].cell_id
    containers = {(c.process_guid, c.index): c for c in await system.ask(cell_id, ListContainers())}
    for app, count in (("a", 3), ("b", 1), ("c", 2)):
        books = await actuals(system, app)
        assert sorted(a.index for a in books) == list(range(count))
        for a in books:
            assert a.state is ActualLRPState.RUNNING and a.cell_id == cell_id
            assert a.instance_guid == containers[(app, a.index)].instance_guid
            assert a.memory_usage_mb > 0
    batch = next(m for _, m in reports if isinstance(m, InstancesStarted))
    assert [(r.process_guid, r.index, r.cell_id) for r in batch.reports] == [
        ("a", 0, cell_id),
        ("a", 1, cell_id),
        ("a", 2, cell_id),
    ]


async def test_instances_of_two_conversations_healthy_in_one_step_are_reported_in_one_message_each(system):
    from actors.cell.actor import _HealthyMany
    from protocol.messages import RecentLogs

    reports = _watch_started(system)
    cluster = await Cluster.start(system, cells=1, zones=1, memory_mb=1000)
    cluster.desire([AppSpec("x", 2, 10), AppSpec("y", 2, 10)], stay_starting=True)
    await cluster.wait_placed(4)
    cell = system.lookup(cluster.cell_configs[0].cell_id)._actor
    instances = sorted(cell.instances.values(), key=lambda i: (i.process_guid, i.index))
    traces = {"x": "push-x", "y": "push-y"}  # one object each, as a Perform's trace is
    for instance in instances:
        instance.trace = traces[instance.process_guid]
    cell._on_healthy_many(_HealthyMany(tuple(i.guid for i in instances)))
    await system.ask("bbs", GetActualLRPs("x"))  # the reports above are handled
    assert _shape(reports) == [("push-x", "InstancesStarted", 2), ("push-y", "InstancesStarted", 2)]
    for app in ("x", "y"):
        assert all(a.state is ActualLRPState.RUNNING for a in await actuals(system, app))
        lines = [line.text for line in await system.ask("loggregator", RecentLogs(app, 100))]
        assert sum("Container became healthy" in t for t in lines) == 2


async def test_a_cells_lines_logged_together_go_as_one_at_a_time_would(system):
    # `_logs` (several lines in one call) sends what `_log`, line by line, sends:
    # held in a step, one message per run of one conversation; else each alone.
    from actors.runtime.delivery import current_trace
    from protocol.messages import LogLine, LogLines, RecentLogs

    cell, sent = await _a_cell_and_its_log_messages(system)
    with cell._batched_logs():
        for trace, lines in (("t1", [("CELL", "one"), ("APP", "two")]), ("t2", [("CELL", "three")])):
            token = current_trace.set(trace)
            try:
                cell._logs("app", "0", *lines)
            finally:
                current_trace.reset(token)
    cell._logs("app", "1", ("CELL", "four"), ("APP", "five"))
    await system.ask("loggregator", RecentLogs("app", 1))
    assert [(trace, type(m)) for trace, m in sent] == [
        ("t1", LogLines),
        ("t2", LogLine),
        (None, LogLine),
        (None, LogLine),
    ]
    got = [
        (line.source_type, line.source_instance, line.text)
        for line in await system.ask("loggregator", RecentLogs("app", 100))
    ]
    assert got == [
        ("CELL", "0", "one"),
        ("APP", "0", "two"),
        ("CELL", "0", "three"),
        ("CELL", "1", "four"),
        ("APP", "1", "five"),
    ]
