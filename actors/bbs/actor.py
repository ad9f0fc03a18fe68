"""The `bbs` actor: Diego's bulletin board — desired and actual LRPs, tasks,
cell presences — and the convergence that keeps actual equal to desired.

What it owns:

- desired LRPs (from Cloud Controller) and one actual LRP per desired index;
- tasks (staging): PENDING -> RUNNING -> COMPLETED, retried when a cell
  refuses them and failed after three refusals;
- cell presences with a TTL: a cell that stops heartbeating is gone, its
  instances are replaced at once;
- convergence every `convergence_interval` (and when a cell disappears):
  missing instances are created and auctioned, UNCLAIMED ones re-auctioned,
  extra ones retired, stale claims reclaimed;
- crash restarts with Diego's backoff (`actors.bbs.backoff`);
- evacuation: a draining cell's instances are replaced first, then stopped.

It never picks cells itself: placement is the auctioneer's. Failures to
place are results (`placement_error`), shown to users as DOWN with details.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import structlog

from actors.bbs.backoff import next_crash_count, restart_delay
from actors.runtime import AsyncioActor
from actors.runtime.delivery import current_trace
from protocol.auction import LRPStartRequest, TaskRequest
from protocol.lrp import ActualLRP, CellPresence, DesiredLRP, TaskDefinition, TaskSnapshot
from protocol.messages import (
    AuctionOutcome,
    BBSStarted,
    BBSSnapshot,
    CancelTask,
    CellSync,
    Converge,
    DesireLRP,
    DesireTask,
    EvacuateCell,
    GetActualLRPs,
    GetDesiredLRP,
    GetTask,
    ListDesiredLRPs,
    Heartbeat,
    InstanceCrashed,
    InstanceStarted,
    InstanceStopped,
    ListActualLRPs,
    ListCells,
    ListTasks,
    ProcessCrashed,
    RemoveDesiredLRP,
    RequestAuctions,
    SetDraining,
    StagingCompleted,
    StopInstance,
    SyncNow,
    TaskCompleted,
    UpdateDesiredLRP,
)
from protocol.states import ActualLRPState, TaskState

__all__ = ["BBS", "BBSConfig"]

log = structlog.get_logger("minifoundry.bbs")

MAX_TASK_REJECTIONS = 3
_TASK_DONE = (TaskState.SUCCEEDED, TaskState.FAILED)


@dataclasses.dataclass(frozen=True, slots=True)
class BBSConfig:
    convergence_interval: float = 30.0
    presence_ttl: float = 15.0
    presence_check_interval: float = 5.0
    # A claim that never turns RUNNING (a lost Perform or report) is taken
    # back after this long plus the app's health-check timeout.
    claim_grace: float = 60.0
    # Work sent to the auctioneer with no outcome after this long is resent.
    auction_grace: float = 30.0
    # A restarted BBS has empty books: for this long it auctions nothing,
    # while the cells report what they run and Cloud Controller's sync
    # desires the apps again, so running instances are adopted, not doubled.
    recovery_window: float = 10.0


class _Tick:
    """Timer: check presences."""


class _ConvergeTick:
    """Timer: periodic convergence."""


class _RecoveryOver:
    """Timer: a restarted BBS's books are rebuilt; converge."""


@dataclasses.dataclass(frozen=True, slots=True)
class _RestartCrashed:
    process_guid: str
    index: int
    crash_count: int


class _Actual:
    """The BBS's mutable book entry for one instance index."""

    __slots__ = (
        "process_guid",
        "index",
        "instance_guid",
        "cell_id",
        "state",
        "since",
        "crash_count",
        "crash_reason",
        "placement_error",
        "memory_usage_mb",
        "disk_usage_mb",
        "requested_at",
        "claimed_at",
        "running_since",
        "next_restart_at",
        "evacuating",
        "replacement_requested_at",
    )

    def __init__(self, process_guid: str, index: int, since: float) -> None:
        self.process_guid = process_guid
        self.index = index
        self.instance_guid: str | None = None
        self.cell_id: str | None = None
        self.state = ActualLRPState.UNCLAIMED
        self.since = since  # wall-clock (epoch) seconds, for display
        self.crash_count = 0
        self.crash_reason = ""
        self.placement_error = ""
        self.memory_usage_mb = 0.0
        self.disk_usage_mb = 0.0
        self.requested_at: float | None = None
        self.claimed_at: float | None = None
        self.running_since: float | None = None
        self.next_restart_at: float | None = None
        self.evacuating = False
        self.replacement_requested_at: float | None = None

    def snapshot(self) -> ActualLRP:
        return ActualLRP(
            process_guid=self.process_guid,
            index=self.index,
            instance_guid=self.instance_guid,
            cell_id=self.cell_id,
            state=self.state,
            since=self.since,
            crash_count=self.crash_count,
            crash_reason=self.crash_reason,
            placement_error=self.placement_error,
            memory_usage_mb=self.memory_usage_mb,
            disk_usage_mb=self.disk_usage_mb,
            next_restart_at=self.next_restart_at,
            evacuating=self.evacuating,
        )


class _Task:
    __slots__ = (
        "definition",
        "state",
        "cell_id",
        "rejections",
        "failed",
        "failure_reason",
        "result",
        "created_at",
        "updated_at",
        "requested_at",
        "trace",
    )

    def __init__(self, definition: TaskDefinition, now: float, trace: Any) -> None:
        self.definition = definition
        self.state = TaskState.PENDING
        self.cell_id: str | None = None
        self.rejections = 0
        self.failed = False
        self.failure_reason = ""
        self.result: Any = None
        self.created_at = now
        self.updated_at = now
        self.requested_at: float | None = None
        self.trace = trace

    def snapshot(self) -> TaskSnapshot:
        return TaskSnapshot(
            self.definition.task_guid,
            self.state,
            self.cell_id,
            self.rejections,
            self.failed,
            self.failure_reason,
            self.created_at,
            self.updated_at,
        )


class _Cell:
    __slots__ = ("presence", "last_seen", "first_seen")

    def __init__(self, presence: CellPresence, now: float) -> None:
        self.presence = presence
        self.last_seen = now
        self.first_seen = now


class BBS(AsyncioActor):
    default_name = "bbs"

    def __init__(self, config: BBSConfig | None = None, *, name: str = "bbs") -> None:
        super().__init__(name=name)
        self.config = config or BBSConfig()
        self.desired: dict[str, DesiredLRP] = {}
        self._by_app: dict[str, str] = {}  # app_guid -> process_guid of its desired LRP
        self.actuals: dict[str, dict[int, _Actual]] = {}
        self.tasks: dict[str, _Task] = {}
        self.cells: dict[str, _Cell] = {}
        # Actual LRPs by the cell they are on: a cell's sync, loss or
        # evacuation touches its own instances, not every instance there is.
        self._on_cell: dict[str, dict[tuple[str, int], _Actual]] = {}
        self._traces: dict[str, Any] = {}  # process_guid -> trace of the desire
        self.convergence_enabled = True
        self.convergence_runs = 0
        self.auctions_requested = 0
        self.recovering = False
        # While recovering: containers cells report for LRPs not (yet)
        # desired again, by (process_guid, index) -> (cell_id, instance_guid, running).
        self._reported: dict[tuple[str, int], tuple[str, str, bool]] = {}
        # Tasks cells say they run that this BBS does not know (yet).
        self._tasks_reported: dict[str, str] = {}

    def on_start(self) -> None:
        self.tell_self_later(self.config.presence_check_interval, _Tick())
        self.tell_self_later(self.config.convergence_interval, _ConvergeTick())
        if self.system.starts(self.actor_name) > 1:
            # Restarted in a running platform: the cells still run what the
            # last BBS placed. Rebuild the books before auctioning anything.
            self.recovering = True
            self.tell_self_later(self.config.recovery_window, _RecoveryOver())
            self.tell("cloud_controller", BBSStarted())
            log.warning("bbs-recovering", window=self.config.recovery_window)

    # --- dispatch ---------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        handler = _HANDLERS.get(type(message))
        if handler is None:
            return super().on_receive(message)
        return handler(self, message)

    # --- the by-cell index ------------------------------------------------------------------

    def _assign(self, actual: _Actual, cell_id: str | None) -> None:
        """Put an actual LRP on a cell (or on none); the only writer of cell_id."""
        old = actual.cell_id
        if old == cell_id:
            return
        key = (actual.process_guid, actual.index)
        if old is not None:
            on_old = self._on_cell.get(old)
            if on_old is not None:
                on_old.pop(key, None)
                if not on_old:
                    del self._on_cell[old]
        actual.cell_id = cell_id
        if cell_id is not None:
            self._on_cell.setdefault(cell_id, {})[key] = actual

    def _actuals_on(self, cell_id: str) -> list[_Actual]:
        return list(self._on_cell.get(cell_id, {}).values())

    def _forget(self, actual: _Actual, reason: str) -> None:
        """An actual LRP leaves the books: stop it where it runs, unindex it."""
        self._stop_on_cell(actual, reason)
        self._assign(actual, None)

    # --- desired LRPs ---------------------------------------------------------------------

    def _desire_lrp(self, message: DesireLRP) -> None:
        lrp = message.lrp
        previous = self._by_app.get(lrp.app_guid)
        if previous is not None and previous != lrp.process_guid:
            # One web process per app: a newer version replaces the old one,
            # even when its desirer forgot it (a restarted Cloud Controller).
            self._remove_desired(RemoveDesiredLRP(previous))
        self._by_app[lrp.app_guid] = lrp.process_guid
        self.desired[lrp.process_guid] = lrp
        self._traces[lrp.process_guid] = current_trace.get()
        book = self.actuals.setdefault(lrp.process_guid, {})
        for index in range(lrp.instances):
            if index not in book:
                book[index] = self._new_actual(lrp.process_guid, index)
        self._retire_extras(lrp.process_guid)
        self._request_lrps([a for a in book.values() if a.state is ActualLRPState.UNCLAIMED])
        log.info("desired-lrp-created", process_guid=lrp.process_guid, instances=lrp.instances)

    def _update_desired(self, message: UpdateDesiredLRP) -> bool:
        lrp = self.desired.get(message.process_guid)
        if lrp is None:
            return False
        lrp = dataclasses.replace(lrp, instances=message.instances)
        self.desired[lrp.process_guid] = lrp
        book = self.actuals.setdefault(lrp.process_guid, {})
        new = []
        for index in range(lrp.instances):
            if index not in book:
                book[index] = actual = self._new_actual(lrp.process_guid, index)
                if actual.state is ActualLRPState.UNCLAIMED:
                    new.append(actual)
        self._retire_extras(lrp.process_guid)
        self._request_lrps(new)
        return True

    def _remove_desired(self, message: RemoveDesiredLRP) -> bool:
        lrp = self.desired.pop(message.process_guid, None)
        if lrp is not None and self._by_app.get(lrp.app_guid) == message.process_guid:
            del self._by_app[lrp.app_guid]
        self._traces.pop(message.process_guid, None)
        book = self.actuals.pop(message.process_guid, {})
        for actual in book.values():
            self._forget(actual, "desired LRP removed")
        return lrp is not None

    def _new_actual(self, process_guid: str, index: int) -> _Actual:
        """A new book entry; a recovering BBS adopts a container a cell reported for it."""
        actual = _Actual(process_guid, index, self.clock.now())
        reported = self._reported.pop((process_guid, index), None)
        if reported is not None:
            cell_id, instance_guid, running = reported
            self._adopt(actual, cell_id, instance_guid, running)
        return actual

    def _adopt(self, actual: _Actual, cell_id: str, instance_guid: str, running: bool) -> None:
        """Take into the books an instance a cell runs (or is starting) that we
        did not know of: a report we never got, or books lost in a restart."""
        now = self.clock.monotonic()
        actual.state = ActualLRPState.RUNNING if running else ActualLRPState.CLAIMED
        self._assign(actual, cell_id)
        actual.instance_guid = instance_guid
        actual.since = self.clock.now()
        if running:
            actual.running_since = now
        else:
            actual.claimed_at = now
        actual.placement_error = ""
        actual.requested_at = None

    def _retire_extras(self, process_guid: str) -> None:
        lrp = self.desired.get(process_guid)
        book = self.actuals.get(process_guid, {})
        limit = lrp.instances if lrp is not None else 0
        for index in [i for i in book if i >= limit]:
            self._forget(book.pop(index), "scaled down")

    def _stop_on_cell(self, actual: _Actual, reason: str) -> None:
        if actual.cell_id is not None and actual.state in (ActualLRPState.CLAIMED, ActualLRPState.RUNNING):
            self.system.tell(
                actual.cell_id,
                StopInstance(actual.process_guid, actual.index, actual.instance_guid or "", reason),
            )

    def _get_actuals(self, message: GetActualLRPs) -> tuple[ActualLRP, ...]:
        book = self.actuals.get(message.process_guid, {})
        return tuple(book[i].snapshot() for i in sorted(book))

    # --- auctions ---------------------------------------------------------------------------

    def _request_lrps(self, actuals: Iterable[_Actual]) -> None:
        if self.recovering:
            return  # auctioned when the books are rebuilt (_recovery_over)
        now = self.clock.monotonic()
        by_trace: dict[Any, list[LRPStartRequest]] = {}
        for actual in actuals:
            lrp = self.desired.get(actual.process_guid)
            if lrp is None:
                continue
            actual.requested_at = now
            request = LRPStartRequest(
                process_guid=lrp.process_guid,
                index=actual.index,
                memory_mb=lrp.memory_mb,
                disk_mb=lrp.disk_mb,
                rootfs=lrp.rootfs,
                placement_tags=lrp.placement_tags,
                volume_drivers=lrp.volume_drivers,
                domain=lrp.domain,
            )
            by_trace.setdefault(self._traces.get(lrp.process_guid), []).append(request)
        for trace, requests in by_trace.items():
            self.auctions_requested += len(requests)
            token = current_trace.set(trace)
            try:
                self.system.tell("auctioneer", RequestAuctions(lrps=tuple(requests)))
            finally:
                current_trace.reset(token)

    def _request_task(self, task: _Task) -> None:
        if self.recovering:
            return
        d = task.definition
        task.requested_at = self.clock.monotonic()
        self.auctions_requested += 1
        token = current_trace.set(task.trace)
        try:
            self.system.tell(
                "auctioneer",
                RequestAuctions(tasks=(TaskRequest(d.task_guid, d.memory_mb, d.disk_mb, d.rootfs),)),
            )
        finally:
            current_trace.reset(token)

    def _auction_outcome(self, message: AuctionOutcome) -> None:
        now = self.clock.monotonic()
        for request, cell_id in message.placed_lrps:
            actual = self.actuals.get(request.process_guid, {}).get(request.index)
            if actual is None:
                continue  # no longer desired: the cell finds no desired LRP and drops it
            if actual.evacuating:
                actual.placement_error = ""
                continue  # the replacement is on its way; the old one still runs
            if actual.state is ActualLRPState.UNCLAIMED:
                actual.state = ActualLRPState.CLAIMED
                self._assign(actual, cell_id)
                actual.claimed_at = now
                actual.since = self.clock.now()
                actual.placement_error = ""
                actual.requested_at = None
        for request, reason in message.failed_lrps:
            actual = self.actuals.get(request.process_guid, {}).get(request.index)
            if actual is None:
                continue
            if actual.evacuating:
                actual.replacement_requested_at = None
                continue
            if actual.state is ActualLRPState.UNCLAIMED:
                actual.placement_error = reason
                actual.requested_at = None
                log.info(
                    "lrp-placement-failed", process_guid=request.process_guid, index=request.index, reason=reason
                )
        for request, cell_id in message.placed_tasks:
            task = self.tasks.get(request.task_guid)
            if task is not None and task.state is TaskState.PENDING:
                task.state = TaskState.RUNNING
                task.cell_id = cell_id
                task.updated_at = now
                task.requested_at = None
        for request, reason in message.failed_tasks:
            task = self.tasks.get(request.task_guid)
            if task is None or task.state is not TaskState.PENDING:
                continue
            task.requested_at = None
            if reason == "rejected":
                task.rejections += 1
                if task.rejections >= MAX_TASK_REJECTIONS:
                    self._complete_task(task, failed=True, reason=f"task was rejected {task.rejections} times")
                else:
                    self._request_task(task)
            else:
                self._complete_task(task, failed=True, reason=reason)

    # --- instance reports from cells ---------------------------------------------------

    def _instance_started(self, message: InstanceStarted) -> None:
        now = self.clock.monotonic()
        lrp = self.desired.get(message.process_guid)
        actual = self.actuals.get(message.process_guid, {}).get(message.index)
        if lrp is None or actual is None:
            if self.recovering:
                # Maybe desired again soon (Cloud Controller's sync): hold it.
                self._reported[(message.process_guid, message.index)] = (message.cell_id, message.instance_guid, True)
                return
            self.system.tell(
                message.cell_id,
                StopInstance(message.process_guid, message.index, message.instance_guid, "not desired"),
            )
            return
        if actual.state is ActualLRPState.RUNNING and actual.cell_id != message.cell_id:
            if actual.evacuating:
                # The replacement is up: now the evacuating one may stop.
                old_cell, old_guid = actual.cell_id, actual.instance_guid
                if old_cell is not None:
                    self.system.tell(
                        old_cell, StopInstance(message.process_guid, message.index, old_guid or "", "evacuated")
                    )
                actual.evacuating = False
                actual.replacement_requested_at = None
            else:
                # A second instance for the same index (a lost reply made the
                # auction run twice): keep the first.
                self.system.tell(
                    message.cell_id,
                    StopInstance(message.process_guid, message.index, message.instance_guid, "duplicate"),
                )
                return
        actual.state = ActualLRPState.RUNNING
        self._assign(actual, message.cell_id)
        actual.instance_guid = message.instance_guid
        actual.since = self.clock.now()
        actual.running_since = now
        actual.placement_error = ""
        actual.memory_usage_mb = message.memory_usage_mb
        actual.disk_usage_mb = message.disk_usage_mb
        actual.next_restart_at = None
        actual.requested_at = None

    def _instance_crashed(self, message: InstanceCrashed) -> None:
        now = self.clock.monotonic()
        lrp = self.desired.get(message.process_guid)
        actual = self.actuals.get(message.process_guid, {}).get(message.index)
        if lrp is None or actual is None:
            return
        if actual.cell_id != message.cell_id or (
            actual.instance_guid is not None and actual.instance_guid != message.instance_guid
        ):
            return  # a stale report about an instance already replaced
        if actual.evacuating:
            actual.evacuating = False
        count = next_crash_count(actual.crash_count, message.ran_for)
        actual.crash_count = count
        actual.crash_reason = message.exit_description
        actual.instance_guid = None
        self._assign(actual, None)
        actual.running_since = None
        actual.memory_usage_mb = 0.0
        actual.since = self.clock.now()
        delay = restart_delay(count)
        log.info(
            "instance-crashed",
            process_guid=message.process_guid,
            index=message.index,
            crash_count=count,
            restart_in=delay,
            reason=message.exit_description,
        )
        token = current_trace.set(self._traces.get(message.process_guid))
        try:
            self.system.tell(
                "cloud_controller",
                ProcessCrashed(
                    app_guid=lrp.app_guid,
                    process_guid=message.process_guid,
                    index=message.index,
                    instance_guid=message.instance_guid,
                    cell_id=message.cell_id,
                    exit_description=message.exit_description,
                    crash_count=count,
                    crash_timestamp=self.clock.now(),
                ),
            )
        finally:
            current_trace.reset(token)
        if delay is None:
            actual.state = ActualLRPState.CRASHED
            actual.next_restart_at = None
        elif delay == 0:
            actual.state = ActualLRPState.UNCLAIMED
            actual.next_restart_at = None
            self._request_lrps([actual])
        else:
            actual.state = ActualLRPState.CRASHED
            actual.next_restart_at = now + delay
            self.tell_self_later(delay, _RestartCrashed(message.process_guid, message.index, count))

    def _restart_crashed(self, message: _RestartCrashed) -> None:
        actual = self.actuals.get(message.process_guid, {}).get(message.index)
        if actual is None or actual.state is not ActualLRPState.CRASHED or actual.crash_count != message.crash_count:
            return
        actual.state = ActualLRPState.UNCLAIMED
        actual.next_restart_at = None
        actual.since = self.clock.now()
        self._request_lrps([actual])

    def _instance_stopped(self, message: InstanceStopped) -> None:
        actual = self.actuals.get(message.process_guid, {}).get(message.index)
        if actual is None or actual.instance_guid != message.instance_guid or actual.cell_id != message.cell_id:
            return
        # Stopped under us (not retired by us): it must run somewhere again.
        actual.state = ActualLRPState.UNCLAIMED
        self._assign(actual, None)
        actual.instance_guid = None
        actual.since = self.clock.now()
        self._request_lrps([actual])

    # --- tasks -----------------------------------------------------------------------------

    def _desire_task(self, message: DesireTask) -> TaskSnapshot:
        d = message.task
        existing = self.tasks.get(d.task_guid)
        if existing is not None:
            return existing.snapshot()  # desiring twice (a retried request) is harmless
        task = self.tasks[d.task_guid] = _Task(d, self.clock.monotonic(), current_trace.get())
        cell_id = self._tasks_reported.pop(d.task_guid, None)
        if cell_id is not None:
            task.state = TaskState.RUNNING  # a cell already runs it (books lost in a restart)
            task.cell_id = cell_id
        else:
            self._request_task(task)
        return task.snapshot()

    def _get_task(self, message: GetTask) -> TaskDefinition | None:
        task = self.tasks.get(message.task_guid)
        if task is None or task.state in _TASK_DONE:
            return None
        return task.definition

    def _cancel_task(self, message: CancelTask) -> bool:
        task = self.tasks.get(message.task_guid)
        if task is None or task.state in _TASK_DONE:
            return False
        if task.cell_id is not None:
            self.system.tell(task.cell_id, CancelTask(message.task_guid))
        self._complete_task(task, failed=True, reason="task was cancelled", notify=False)
        return True

    def _task_completed(self, message: TaskCompleted) -> None:
        task = self.tasks.get(message.task_guid)
        if task is None and message.definition is not None:
            # A task these books lost (a restart): its callback still hears.
            task = self.tasks[message.task_guid] = _Task(message.definition, self.clock.monotonic(), current_trace.get())
            task.state = TaskState.RUNNING
            task.cell_id = message.cell_id
            self._tasks_reported.pop(message.task_guid, None)
        if task is None or task.state in _TASK_DONE:
            return  # duplicate report
        task.result = message.result
        self._complete_task(task, failed=message.failed, reason=message.failure_reason, cause=message.cause)

    def _complete_task(self, task: _Task, *, failed: bool, reason: str, notify: bool = True, cause: str = "") -> None:
        task.state = TaskState.FAILED if failed else TaskState.SUCCEEDED
        task.failed = failed
        task.failure_reason = reason
        task.updated_at = self.clock.monotonic()
        d = task.definition
        if notify and d.staging is not None:
            token = current_trace.set(task.trace)
            try:
                self.system.tell(
                    d.callback,
                    StagingCompleted(
                        task_guid=d.task_guid,
                        build_guid=d.staging.build_guid,
                        result=None if failed else task.result,
                        error=reason if failed else "",
                        cause=cause,
                    ),
                )
            finally:
                current_trace.reset(token)
        # Completed tasks are kept briefly for inspection, then forgotten.
        if len(self.tasks) > 10_000:
            for guid in [g for g, t in self.tasks.items() if t.state in _TASK_DONE][:5_000]:
                del self.tasks[guid]

    # --- cells --------------------------------------------------------------------------------

    def _heartbeat(self, message: Heartbeat) -> None:
        presence = message.presence
        now = self.clock.monotonic()
        known = self.cells.get(presence.cell_id)
        if known is None:
            self.cells[presence.cell_id] = _Cell(presence, now)
            log.info("cell-appeared", cell_id=presence.cell_id, zone=presence.zone)
            # What does it run? (Nothing, at first boot; a restarted BBS needs to know.)
            self.system.tell(presence.cell_id, SyncNow())
            return
        if known.presence.incarnation != presence.incarnation:
            # The cell restarted: whatever ran there is gone.
            log.info("cell-restarted", cell_id=presence.cell_id)
            known.presence = presence
            known.last_seen = now
            self._cell_lost(presence.cell_id, keep_presence=True)
            return
        known.presence = presence
        known.last_seen = now

    def _list_cells(self, message: ListCells) -> tuple[CellPresence, ...]:
        return tuple(c.presence for c in self.cells.values())

    def _tick(self, message: _Tick) -> None:
        self.tell_self_later(self.config.presence_check_interval, _Tick())
        now = self.clock.monotonic()
        expired = [cid for cid, c in self.cells.items() if now - c.last_seen > self.config.presence_ttl]
        for cell_id in expired:
            log.warning("cell-disappeared", cell_id=cell_id)
            self._cell_lost(cell_id, keep_presence=False)

    def _cell_lost(self, cell_id: str, *, keep_presence: bool) -> None:
        if not keep_presence:
            self.cells.pop(cell_id, None)
        lost: list[_Actual] = []
        for actual in self._actuals_on(cell_id):
            if actual.state in (ActualLRPState.CLAIMED, ActualLRPState.RUNNING):
                actual.state = ActualLRPState.UNCLAIMED
                self._assign(actual, None)
                actual.instance_guid = None
                actual.running_since = None
                actual.evacuating = False
                actual.since = self.clock.now()
                lost.append(actual)
        for task in self.tasks.values():
            if task.cell_id == cell_id and task.state is TaskState.RUNNING:
                self._complete_task(task, failed=True, reason="cell disappeared before completion")
        if lost:
            log.info("instances-lost-with-cell", cell_id=cell_id, count=len(lost))
        if self.convergence_enabled:
            self._request_lrps(lost)

    def _cell_sync(self, message: CellSync) -> None:
        """Reconcile the books with what a cell says really runs there."""
        cell = self.cells.get(message.cell_id)
        if cell is None or cell.presence.incarnation != message.incarnation:
            return
        now = self.clock.monotonic()
        there: set[tuple[str, int]] = set()
        for process_guid, index, guid, running in message.instances:
            there.add((process_guid, index))
            actual = self.actuals.get(process_guid, {}).get(index)
            if actual is None:
                if self.recovering:
                    self._reported[(process_guid, index)] = (message.cell_id, guid, running)
                else:
                    self.system.tell(message.cell_id, StopInstance(process_guid, index, guid, "not desired"))
                continue
            if actual.cell_id == message.cell_id or actual.evacuating:
                if actual.cell_id == message.cell_id and running and actual.state is ActualLRPState.CLAIMED:
                    self._adopt(actual, message.cell_id, guid, True)  # its InstanceStarted was lost
                continue
            if actual.state is ActualLRPState.RUNNING:
                # Someone else runs this index; this one is a duplicate.
                self.system.tell(message.cell_id, StopInstance(process_guid, index, guid, "duplicate"))
            elif running or actual.state is ActualLRPState.UNCLAIMED:
                # A report we never got (a lost message, or books lost in a restart): adopt it.
                self._adopt(actual, message.cell_id, guid, running)
        grace = self.config.claim_grace
        lost: list[_Actual] = []
        for actual in self._actuals_on(message.cell_id):
            if (actual.process_guid, actual.index) in there:
                continue
            changed_at = actual.claimed_at if actual.state is ActualLRPState.CLAIMED else actual.running_since
            if changed_at is not None and now - changed_at > grace:
                actual.state = ActualLRPState.UNCLAIMED
                self._assign(actual, None)
                actual.instance_guid = None
                actual.since = self.clock.now()
                lost.append(actual)
        running_tasks = set(message.tasks)
        for task_guid in message.tasks:
            task = self.tasks.get(task_guid)
            if task is None:
                if self.recovering:
                    self._tasks_reported[task_guid] = message.cell_id
            elif task.state is TaskState.PENDING:
                task.state = TaskState.RUNNING  # its auction outcome was lost
                task.cell_id = message.cell_id
                task.updated_at = now
                task.requested_at = None
        for task in self.tasks.values():
            if (
                task.cell_id == message.cell_id
                and task.state is TaskState.RUNNING
                and task.definition.task_guid not in running_tasks
                and now - task.updated_at > grace
            ):
                self._complete_task(task, failed=True, reason="task vanished from its cell")
        if lost and self.convergence_enabled:
            self._request_lrps(lost)

    def _evacuate(self, message: EvacuateCell) -> int:
        """Drain a cell: auction a replacement for each instance it runs; the
        old instance stops when its replacement is RUNNING."""
        self.system.tell(message.cell_id, SetDraining(True))
        cell = self.cells.get(message.cell_id)
        if cell is not None:
            cell.presence = dataclasses.replace(cell.presence, draining=True)
        moving: list[_Actual] = []
        claimed: list[_Actual] = []
        now = self.clock.monotonic()
        for actual in self._actuals_on(message.cell_id):
            if actual.state is ActualLRPState.RUNNING:
                actual.evacuating = True
                actual.replacement_requested_at = now
                moving.append(actual)
            elif actual.state is ActualLRPState.CLAIMED:
                self._stop_on_cell(actual, "evacuated")
                actual.state = ActualLRPState.UNCLAIMED
                self._assign(actual, None)
                actual.since = self.clock.now()
                claimed.append(actual)
        self._request_lrps(moving + claimed)
        log.info("cell-evacuating", cell_id=message.cell_id, instances=len(moving))
        return len(moving)

    # --- convergence ----------------------------------------------------------------------

    def _converge_tick(self, message: _ConvergeTick) -> None:
        self.tell_self_later(self.config.convergence_interval, _ConvergeTick())
        if self.convergence_enabled and not self.recovering:
            self._converge("timer")

    def _recovery_over(self, message: _RecoveryOver) -> None:
        """The books are rebuilt: stop what nobody desired again, auction the rest."""
        self.recovering = False
        for (process_guid, index), (cell_id, guid, _) in sorted(self._reported.items()):
            self.system.tell(cell_id, StopInstance(process_guid, index, guid, "not desired"))
        stopped = len(self._reported)
        self._reported.clear()
        self._tasks_reported.clear()
        log.info("bbs-recovered", desired=len(self.desired), stopped=stopped)
        self._converge("recovered")

    def _converge_now(self, message: Converge) -> int:
        return self._converge(message.reason)

    def _converge(self, reason: str) -> int:
        now = self.clock.monotonic()
        grace = self.config.auction_grace
        present = self.cells
        to_auction: list[_Actual] = []
        created = retired = 0
        for process_guid, lrp in self.desired.items():
            book = self.actuals.setdefault(process_guid, {})
            for index in range(lrp.instances):
                actual = book.get(index)
                if actual is None:
                    book[index] = actual = _Actual(process_guid, index, self.clock.now())
                    created += 1
                    to_auction.append(actual)
                    continue
                state = actual.state
                if state is ActualLRPState.UNCLAIMED:
                    if actual.requested_at is None or now - actual.requested_at >= grace:
                        to_auction.append(actual)
                elif state in (ActualLRPState.CLAIMED, ActualLRPState.RUNNING) and actual.cell_id not in present:
                    actual.state = ActualLRPState.UNCLAIMED
                    self._assign(actual, None)
                    actual.instance_guid = None
                    actual.since = self.clock.now()
                    to_auction.append(actual)
                elif state is ActualLRPState.CLAIMED and actual.claimed_at is not None:
                    limit = lrp.health_check_timeout_s + self.config.claim_grace
                    if now - actual.claimed_at > limit:
                        self._stop_on_cell(actual, "claim expired")
                        actual.state = ActualLRPState.UNCLAIMED
                        self._assign(actual, None)
                        actual.since = self.clock.now()
                        to_auction.append(actual)
                elif state is ActualLRPState.CRASHED and actual.next_restart_at is not None:
                    if now >= actual.next_restart_at:
                        actual.state = ActualLRPState.UNCLAIMED
                        actual.next_restart_at = None
                        to_auction.append(actual)
                elif actual.evacuating and (
                    actual.replacement_requested_at is None or now - actual.replacement_requested_at >= grace
                ):
                    actual.replacement_requested_at = now
                    to_auction.append(actual)
            extras = [i for i in book if i >= lrp.instances]
            for index in extras:
                self._forget(book.pop(index), "extra instance")
                retired += 1
        for process_guid in [pg for pg in self.actuals if pg not in self.desired]:
            for actual in self.actuals.pop(process_guid).values():
                self._forget(actual, "not desired")
                retired += 1
        pending_tasks = [
            t
            for t in self.tasks.values()
            if t.state is TaskState.PENDING and (t.requested_at is None or now - t.requested_at >= grace)
        ]
        for task in pending_tasks:
            self._request_task(task)
        self._request_lrps(to_auction)
        self.convergence_runs += 1
        log.info(
            "convergence-finished",
            reason=reason,
            auctioned=len(to_auction),
            created=created,
            retired=retired,
            tasks=len(pending_tasks),
        )
        return len(to_auction)

    # --- introspection ------------------------------------------------------------------------

    def _snapshot(self, message: BBSSnapshot) -> dict[str, Any]:
        apps: dict[str, dict[str, int]] = {}
        for process_guid, lrp in self.desired.items():
            book = self.actuals.get(process_guid, {})
            counts = {"desired": lrp.instances, "running": 0, "starting": 0, "crashed": 0, "unclaimed": 0}
            for actual in book.values():
                if actual.state is ActualLRPState.RUNNING:
                    counts["running"] += 1
                elif actual.state is ActualLRPState.CLAIMED:
                    counts["starting"] += 1
                elif actual.state is ActualLRPState.CRASHED:
                    counts["crashed"] += 1
                else:
                    counts["unclaimed"] += 1
            apps[lrp.app_guid] = counts
        return {
            "apps": apps,
            "cells": sorted(self.cells),
            "tasks": {s.value: sum(1 for t in self.tasks.values() if t.state is s) for s in TaskState},
            "convergence_runs": self.convergence_runs,
            "auctions_requested": self.auctions_requested,
        }

    def _set_convergence(self, enabled: bool) -> None:
        self.convergence_enabled = enabled

    def _noop(self, message: Any) -> None:
        return None


_HANDLERS: dict[type, Any] = {
    DesireLRP: BBS._desire_lrp,
    UpdateDesiredLRP: BBS._update_desired,
    RemoveDesiredLRP: BBS._remove_desired,
    GetActualLRPs: BBS._get_actuals,
    GetDesiredLRP: lambda self, m: self.desired.get(m.process_guid),
    ListDesiredLRPs: lambda self, m: tuple(
        lrp for lrp in self.desired.values() if m.app_guid is None or lrp.app_guid == m.app_guid
    ),
    ListActualLRPs: lambda self, m: tuple(
        self.actuals[pg][i].snapshot() for pg in self.actuals for i in sorted(self.actuals[pg])
    ),
    ListTasks: lambda self, m: tuple(t.snapshot() for t in self.tasks.values()),
    _RecoveryOver: BBS._recovery_over,
    AuctionOutcome: BBS._auction_outcome,
    InstanceStarted: BBS._instance_started,
    InstanceCrashed: BBS._instance_crashed,
    InstanceStopped: BBS._instance_stopped,
    _RestartCrashed: BBS._restart_crashed,
    DesireTask: BBS._desire_task,
    GetTask: BBS._get_task,
    CancelTask: BBS._cancel_task,
    TaskCompleted: BBS._task_completed,
    Heartbeat: BBS._heartbeat,
    ListCells: BBS._list_cells,
    CellSync: BBS._cell_sync,
    EvacuateCell: BBS._evacuate,
    Converge: BBS._converge_now,
    BBSSnapshot: BBS._snapshot,
    _Tick: BBS._tick,
    _ConvergeTick: BBS._converge_tick,
}
