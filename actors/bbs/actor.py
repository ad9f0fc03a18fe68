"""The `bbs` actor: Diego's bulletin board — desired and actual LRPs, tasks,
cell presences — and the convergence that keeps actual equal to desired.

What it does with its books (`actors.bbs.books`):

- desired LRPs (from Cloud Controller) and one actual LRP per desired index;
- tasks (staging): PENDING -> RUNNING -> COMPLETED, retried when a cell
  refuses them and failed after three refusals;
- cell presences with a TTL: a cell that stops heartbeating is gone, its
  instances are replaced at once;
- convergence every `convergence_interval` (and when a cell disappears),
  planned by `actors.bbs.convergence`;
- crash restarts with Diego's backoff (`actors.bbs.backoff`);
- evacuation: a draining cell's instances are replaced first, then stopped;
- after a restart (its books are memory only), recovery: for a window it
  auctions nothing while the cells report what they run and Cloud
  Controller's sync desires the apps again, so running instances are
  adopted rather than started twice.

It never picks cells itself: placement is the auctioneer's. Failures to
place are results (`placement_error`), shown to users as DOWN with details.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import structlog

from actors.bbs.backoff import next_crash_count, restart_delay
from actors.bbs.books import ActualEntry, Books, CellEntry, TaskEntry
from actors.bbs.convergence import plan_convergence
from actors.runtime import AsyncioActor, handles
from actors.runtime.delivery import current_trace
from protocol.auction import LRPStartRequest, PlacementError, PlacementErrorKind, TaskRequest
from protocol.errors import StagingError
from protocol.lrp import ActualLRP, CellPresence, DesiredLRP, StagingFailure, TaskDefinition, TaskSnapshot
from protocol.messages import (
    AuctionOutcome,
    BBSSnapshot,
    BBSStarted,
    CancelTask,
    CellSync,
    Converge,
    DesireLRP,
    DesireTask,
    EvacuateCell,
    GetActualLRPs,
    GetDesiredLRP,
    GetDesiredLRPs,
    GetTask,
    Heartbeat,
    InstanceCrashed,
    InstancesStarted,
    InstanceStarted,
    InstanceStopped,
    ListActualLRPs,
    ListCells,
    ListDesiredLRPs,
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
from protocol.snapshots import BBSStatistics
from protocol.states import ActualLRPState, TaskState

__all__ = ["BBS", "BBSConfig"]

log = structlog.get_logger("minifoundry.bbs")

MAX_TASK_REJECTIONS = 3
_TASK_DONE = (TaskState.SUCCEEDED, TaskState.FAILED)
_PLACED = (ActualLRPState.CLAIMED, ActualLRPState.RUNNING)


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
    # Switched off only to prove that the checks catch a platform without it.
    convergence_enabled: bool = True


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


def _staging_failure(text: str) -> StagingFailure:
    return StagingFailure.of(StagingError(f"Staging error: {text}"))


def _placement_failure(error: PlacementError) -> StagingFailure:
    """A staging task no cell could take, as the named error its build fails with."""
    if error.code == "StagingError":
        return _staging_failure(error.message)
    return StagingFailure(error.code, error.message)


class BBS(AsyncioActor):
    default_name = "bbs"

    def __init__(self, config: BBSConfig | None = None, *, name: str = "bbs") -> None:
        super().__init__(name=name)
        self.config = config or BBSConfig()
        self.books = Books()
        self._traces: dict[str, Any] = {}  # process_guid -> trace of the desire
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

    def statistics(self) -> BBSStatistics:
        """A frozen snapshot of the books (for observers that send no messages)."""
        return self.books.statistics(
            convergence_runs=self.convergence_runs,
            auctions_requested=self.auctions_requested,
            recovering=self.recovering,
        )

    @handles(BBSSnapshot)
    def _snapshot(self, _message: BBSSnapshot) -> BBSStatistics:
        return self.statistics()

    # --- the books' entries ----------------------------------------------------------------

    def _new_actual(self, process_guid: str, index: int, now: float | None = None) -> ActualEntry:
        """A new book entry (`now`: the platform's time, if the caller has it);
        a recovering BBS adopts a container a cell reported for it."""
        actual = ActualEntry(process_guid, index, self.clock.now() if now is None else now)
        reported = self._reported.pop((process_guid, index), None) if self._reported else None
        if reported is not None:
            cell_id, instance_guid, running = reported
            self._adopt(actual, cell_id, instance_guid, running)
        return actual

    def _adopt(self, actual: ActualEntry, cell_id: str, instance_guid: str, running: bool) -> None:
        """Take into the books an instance a cell runs (or is starting) that we
        did not know of: a report we never got, or books lost in a restart."""
        now = self.clock.monotonic()
        actual.state = ActualLRPState.RUNNING if running else ActualLRPState.CLAIMED
        self.books.assign(actual, cell_id)
        actual.instance_guid = instance_guid
        actual.since = self.clock.now()
        if running:
            actual.running_since = now
        else:
            actual.claimed_at = now
        actual.placement_error = ""
        actual.requested_at = None

    def _unclaim(self, actual: ActualEntry) -> None:
        """Back to UNCLAIMED: it runs nowhere now."""
        actual.state = ActualLRPState.UNCLAIMED
        self.books.assign(actual, None)
        actual.instance_guid = None
        actual.since = self.clock.now()

    def _forget(self, actual: ActualEntry, reason: str) -> None:
        """An actual LRP leaves the books: stop it where it runs, unindex it."""
        self._stop_on_cell(actual, reason)
        self.books.assign(actual, None)

    def _stop_on_cell(self, actual: ActualEntry, reason: str) -> None:
        if actual.cell_id is not None and actual.state in _PLACED:
            self.system.tell(
                actual.cell_id,
                StopInstance(actual.process_guid, actual.index, actual.instance_guid or "", reason),
            )

    def _retire_extras(self, process_guid: str) -> None:
        lrp = self.books.desired.get(process_guid)
        book = self.books.actuals.get(process_guid, {})
        limit = lrp.instances if lrp is not None else 0
        for index in [i for i in book if i >= limit]:
            self._forget(book.pop(index), "scaled down")

    # --- desired LRPs ----------------------------------------------------------------------

    @handles(DesireLRP)
    def _desire_lrp(self, message: DesireLRP) -> None:
        lrp = message.lrp
        books = self.books
        previous = books.by_app.get(lrp.app_guid)
        if previous is not None and previous != lrp.process_guid:
            # One web process per app: a newer version replaces the old one,
            # even when its desirer forgot it (a restarted Cloud Controller).
            self._remove_desired(RemoveDesiredLRP(previous))
        books.by_app[lrp.app_guid] = lrp.process_guid
        books.desired[lrp.process_guid] = lrp
        self._traces[lrp.process_guid] = current_trace.get()
        book = books.actuals.setdefault(lrp.process_guid, {})
        now = self.clock.now()
        for index in range(lrp.instances):
            if index not in book:
                book[index] = self._new_actual(lrp.process_guid, index, now)
        self._retire_extras(lrp.process_guid)
        self._request_lrps([a for a in book.values() if a.state is ActualLRPState.UNCLAIMED])
        log.info("desired-lrp-created", process_guid=lrp.process_guid, instances=lrp.instances)

    @handles(UpdateDesiredLRP)
    def _update_desired(self, message: UpdateDesiredLRP) -> bool:
        lrp = self.books.desired.get(message.process_guid)
        if lrp is None:
            return False
        lrp = dataclasses.replace(lrp, instances=message.instances)
        self.books.desired[lrp.process_guid] = lrp
        book = self.books.actuals.setdefault(lrp.process_guid, {})
        new = []
        for index in range(lrp.instances):
            if index not in book:
                book[index] = actual = self._new_actual(lrp.process_guid, index)
                if actual.state is ActualLRPState.UNCLAIMED:
                    new.append(actual)
        self._retire_extras(lrp.process_guid)
        self._request_lrps(new)
        return True

    @handles(RemoveDesiredLRP)
    def _remove_desired(self, message: RemoveDesiredLRP) -> bool:
        books = self.books
        lrp = books.desired.pop(message.process_guid, None)
        if lrp is not None and books.by_app.get(lrp.app_guid) == message.process_guid:
            del books.by_app[lrp.app_guid]
        self._traces.pop(message.process_guid, None)
        for actual in books.actuals.pop(message.process_guid, {}).values():
            self._forget(actual, "desired LRP removed")
        return lrp is not None

    @handles(GetActualLRPs)
    def _get_actuals(self, message: GetActualLRPs) -> tuple[ActualLRP, ...]:
        book = self.books.actuals.get(message.process_guid, {})
        return tuple(book[i].snapshot() for i in sorted(book))

    @handles(ListActualLRPs)
    def _list_actuals(self, _message: ListActualLRPs) -> tuple[ActualLRP, ...]:
        actuals = self.books.actuals
        return tuple(actuals[pg][i].snapshot() for pg in actuals for i in sorted(actuals[pg]))

    @handles(GetDesiredLRP)
    def _get_desired(self, message: GetDesiredLRP) -> DesiredLRP | None:
        return self.books.desired.get(message.process_guid)

    @handles(GetDesiredLRPs)
    def _get_desired_many(self, message: GetDesiredLRPs) -> tuple[DesiredLRP | None, ...]:
        desired = self.books.desired
        return tuple(desired.get(guid) for guid in message.process_guids)

    @handles(ListDesiredLRPs)
    def _list_desired(self, message: ListDesiredLRPs) -> tuple[DesiredLRP, ...]:
        desired = self.books.desired.values()
        return tuple(lrp for lrp in desired if message.app_guid is None or lrp.app_guid == message.app_guid)

    # --- auctions --------------------------------------------------------------------------

    def _request_lrps(self, actuals: Iterable[ActualEntry]) -> None:
        if self.recovering:
            return  # auctioned when the books are rebuilt (_recovery_over)
        now = self.clock.monotonic()
        by_trace: dict[Any, list[LRPStartRequest]] = {}
        desired = self.books.desired
        guid: str | None = None
        lrp: DesiredLRP | None = None
        requests: list[LRPStartRequest] = []
        for actual in actuals:
            if actual.process_guid != guid:
                # Actuals come app by app: look each app up once.
                guid = actual.process_guid
                lrp = desired.get(guid)
                if lrp is not None:
                    requests = by_trace.setdefault(self._traces.get(guid), [])
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
            requests.append(request)
        for trace, requests in by_trace.items():
            self.auctions_requested += len(requests)
            token = current_trace.set(trace)
            try:
                self.system.tell("auctioneer", RequestAuctions(lrps=tuple(requests)))
            finally:
                current_trace.reset(token)

    def _request_task(self, task: TaskEntry) -> None:
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

    @handles(AuctionOutcome)
    def _auction_outcome(self, message: AuctionOutcome) -> None:
        now = self.clock.monotonic()
        actuals = self.books.actuals
        for request, cell_id in message.placed_lrps:
            actual = actuals.get(request.process_guid, {}).get(request.index)
            if actual is None:
                continue  # no longer desired: the cell finds no desired LRP and drops it
            if actual.evacuating:
                actual.placement_error = ""
                continue  # the replacement is on its way; the old one still runs
            if actual.state is ActualLRPState.UNCLAIMED:
                actual.state = ActualLRPState.CLAIMED
                self.books.assign(actual, cell_id)
                actual.claimed_at = now
                actual.since = self.clock.now()
                actual.placement_error = ""
                actual.requested_at = None
        for request, error in message.failed_lrps:
            actual = actuals.get(request.process_guid, {}).get(request.index)
            if actual is None:
                continue
            if actual.evacuating:
                actual.replacement_requested_at = None
                continue
            if actual.state is ActualLRPState.UNCLAIMED:
                actual.placement_error = error.message
                actual.requested_at = None
                log.info(
                    "lrp-placement-failed", process_guid=request.process_guid, index=request.index, reason=error.message
                )
        for task_request, cell_id in message.placed_tasks:
            task = self.books.tasks.get(task_request.task_guid)
            if task is not None and task.state is TaskState.PENDING:
                task.state = TaskState.RUNNING
                task.cell_id = cell_id
                task.updated_at = now
                task.requested_at = None
        for task_request, error in message.failed_tasks:
            task = self.books.tasks.get(task_request.task_guid)
            if task is None or task.state is not TaskState.PENDING:
                continue
            task.requested_at = None
            if error.kind is PlacementErrorKind.REJECTED:
                task.rejections += 1
                if task.rejections >= MAX_TASK_REJECTIONS:
                    self._complete_task(task, failure=_staging_failure(f"task was rejected {task.rejections} times"))
                else:
                    self._request_task(task)
            else:
                self._complete_task(task, failure=_placement_failure(error))

    # --- instance reports from cells ------------------------------------------------------

    @handles(InstanceStarted)
    def _instance_started(self, message: InstanceStarted) -> None:
        self._started(
            message.process_guid,
            message.index,
            message.instance_guid,
            message.cell_id,
            message.memory_usage_mb,
            message.disk_usage_mb,
            self.clock.monotonic(),
            self.clock.now(),
        )

    @handles(InstancesStarted)
    def _instances_started(self, message: InstancesStarted) -> None:
        """Each row as if it came alone, in order (one time for them all: they
        came in one message)."""
        now, since, cell_id, started = self.clock.monotonic(), self.clock.now(), message.cell_id, self._started
        for process_guid, index, instance_guid, memory, disk in message.rows:
            started(process_guid, index, instance_guid, cell_id, memory, disk, now, since)

    def _started(
        self,
        process_guid: str,
        index: int,
        instance_guid: str,
        cell_id: str,
        memory_usage_mb: float,
        disk_usage_mb: float,
        now: float,
        since: float,
    ) -> None:
        """A cell reports an instance RUNNING (`now`: monotonic; `since`: wall time)."""
        lrp = self.books.desired.get(process_guid)
        actual = self.books.actuals.get(process_guid, {}).get(index)
        if lrp is None or actual is None:
            if self.recovering:
                # Maybe desired again soon (Cloud Controller's sync): hold it.
                self._reported[(process_guid, index)] = (cell_id, instance_guid, True)
                return
            self.system.tell(
                cell_id,
                StopInstance(process_guid, index, instance_guid, "not desired"),
            )
            return
        if actual.state is ActualLRPState.RUNNING and actual.cell_id != cell_id:
            if actual.evacuating:
                # The replacement is up: now the evacuating one may stop.
                old_cell, old_guid = actual.cell_id, actual.instance_guid
                if old_cell is not None:
                    self.system.tell(old_cell, StopInstance(process_guid, index, old_guid or "", "evacuated"))
                actual.evacuating = False
                actual.replacement_requested_at = None
            else:
                # A second instance for the same index (a lost reply made the
                # auction run twice): keep the first.
                self.system.tell(
                    cell_id,
                    StopInstance(process_guid, index, instance_guid, "duplicate"),
                )
                return
        actual.state = ActualLRPState.RUNNING
        self.books.assign(actual, cell_id)
        actual.instance_guid = instance_guid
        actual.since = since
        actual.running_since = now
        actual.placement_error = ""
        actual.memory_usage_mb = memory_usage_mb
        actual.disk_usage_mb = disk_usage_mb
        actual.next_restart_at = None
        actual.requested_at = None

    @handles(InstanceCrashed)
    def _instance_crashed(self, message: InstanceCrashed) -> None:
        now = self.clock.monotonic()
        lrp = self.books.desired.get(message.process_guid)
        actual = self.books.actuals.get(message.process_guid, {}).get(message.index)
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
        self.books.assign(actual, None)
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

    @handles(_RestartCrashed)
    def _restart_crashed(self, message: _RestartCrashed) -> None:
        actual = self.books.actuals.get(message.process_guid, {}).get(message.index)
        if actual is None or actual.state is not ActualLRPState.CRASHED or actual.crash_count != message.crash_count:
            return
        actual.state = ActualLRPState.UNCLAIMED
        actual.next_restart_at = None
        actual.since = self.clock.now()
        self._request_lrps([actual])

    @handles(InstanceStopped)
    def _instance_stopped(self, message: InstanceStopped) -> None:
        actual = self.books.actuals.get(message.process_guid, {}).get(message.index)
        if actual is None or actual.instance_guid != message.instance_guid or actual.cell_id != message.cell_id:
            return
        # Stopped under us (not retired by us): it must run somewhere again.
        self._unclaim(actual)
        self._request_lrps([actual])

    # --- tasks ------------------------------------------------------------------------------

    @handles(DesireTask)
    def _desire_task(self, message: DesireTask) -> TaskSnapshot:
        d = message.task
        existing = self.books.tasks.get(d.task_guid)
        if existing is not None:
            return existing.snapshot()  # desiring twice (a retried request) is harmless
        task = self.books.tasks[d.task_guid] = TaskEntry(d, self.clock.monotonic(), current_trace.get())
        cell_id = self._tasks_reported.pop(d.task_guid, None)
        if cell_id is not None:
            task.state = TaskState.RUNNING  # a cell already runs it (books lost in a restart)
            task.cell_id = cell_id
        else:
            self._request_task(task)
        return task.snapshot()

    @handles(GetTask)
    def _get_task(self, message: GetTask) -> TaskDefinition | None:
        task = self.books.tasks.get(message.task_guid)
        if task is None or task.state in _TASK_DONE:
            return None
        return task.definition

    @handles(ListTasks)
    def _list_tasks(self, _message: ListTasks) -> tuple[TaskSnapshot, ...]:
        return tuple(t.snapshot() for t in self.books.tasks.values())

    @handles(CancelTask)
    def _cancel_task(self, message: CancelTask) -> bool:
        task = self.books.tasks.get(message.task_guid)
        if task is None or task.state in _TASK_DONE:
            return False
        if task.cell_id is not None:
            self.system.tell(task.cell_id, CancelTask(message.task_guid))
        self._complete_task(task, failure=_staging_failure("task was cancelled"), notify=False)
        return True

    @handles(TaskCompleted)
    def _task_completed(self, message: TaskCompleted) -> None:
        task = self.books.tasks.get(message.task_guid)
        if task is None and message.definition is not None:
            # A task these books lost (a restart): its callback still hears.
            task = TaskEntry(message.definition, self.clock.monotonic(), current_trace.get())
            self.books.tasks[message.task_guid] = task
            task.state = TaskState.RUNNING
            task.cell_id = message.cell_id
            self._tasks_reported.pop(message.task_guid, None)
        if task is None or task.state in _TASK_DONE:
            return  # duplicate report
        task.result = message.result
        self._complete_task(task, failure=message.failure)

    def _complete_task(self, task: TaskEntry, *, failure: StagingFailure | None, notify: bool = True) -> None:
        task.state = TaskState.FAILED if failure is not None else TaskState.SUCCEEDED
        task.failed = failure is not None
        task.failure_reason = failure.build_error if failure is not None else ""
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
                        result=None if failure is not None else task.result,
                        failure=failure,
                    ),
                )
            finally:
                current_trace.reset(token)
        # Completed tasks are kept briefly for inspection, then forgotten.
        tasks = self.books.tasks
        if len(tasks) > 10_000:
            for guid in [g for g, t in tasks.items() if t.state in _TASK_DONE][:5_000]:
                del tasks[guid]

    # --- cells ------------------------------------------------------------------------------

    @handles(Heartbeat)
    def _heartbeat(self, message: Heartbeat) -> None:
        presence = message.presence
        now = self.clock.monotonic()
        cells = self.books.cells
        known = cells.get(presence.cell_id)
        if known is None:
            cells[presence.cell_id] = CellEntry(presence, now)
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

    @handles(ListCells)
    def _list_cells(self, _message: ListCells) -> tuple[CellPresence, ...]:
        return tuple(c.presence for c in self.books.cells.values())

    @handles(_Tick)
    def _tick(self, _message: _Tick) -> None:
        self.tell_self_later(self.config.presence_check_interval, _Tick())
        now = self.clock.monotonic()
        ttl = self.config.presence_ttl
        for cell_id in [cid for cid, c in self.books.cells.items() if now - c.last_seen > ttl]:
            log.warning("cell-disappeared", cell_id=cell_id)
            self._cell_lost(cell_id, keep_presence=False)

    def _cell_lost(self, cell_id: str, *, keep_presence: bool) -> None:
        if not keep_presence:
            self.books.cells.pop(cell_id, None)
        lost: list[ActualEntry] = []
        for actual in self.books.actuals_on(cell_id):
            if actual.state in _PLACED:
                self._unclaim(actual)
                actual.running_since = None
                actual.evacuating = False
                lost.append(actual)
        for task in list(self.books.tasks.values()):
            if task.cell_id == cell_id and task.state is TaskState.RUNNING:
                self._complete_task(task, failure=_staging_failure("cell disappeared before completion"))
        if lost:
            log.info("instances-lost-with-cell", cell_id=cell_id, count=len(lost))
        if self.config.convergence_enabled:
            self._request_lrps(lost)

    @handles(CellSync)
    def _cell_sync(self, message: CellSync) -> None:
        """Reconcile the books with what a cell says really runs there."""
        cell = self.books.cells.get(message.cell_id)
        if cell is None or cell.presence.incarnation != message.incarnation:
            return
        now = self.clock.monotonic()
        there: set[tuple[str, int]] = set()
        for process_guid, index, guid, running in message.instances:
            there.add((process_guid, index))
            actual = self.books.actuals.get(process_guid, {}).get(index)
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
        lost: list[ActualEntry] = []
        for actual in self.books.actuals_on(message.cell_id):
            if (actual.process_guid, actual.index) in there:
                continue
            changed_at = actual.claimed_at if actual.state is ActualLRPState.CLAIMED else actual.running_since
            if changed_at is not None and now - changed_at > grace:
                self._unclaim(actual)
                lost.append(actual)
        running_tasks = set(message.tasks)
        for task_guid in message.tasks:
            task = self.books.tasks.get(task_guid)
            if task is None:
                if self.recovering:
                    self._tasks_reported[task_guid] = message.cell_id
            elif task.state is TaskState.PENDING:
                task.state = TaskState.RUNNING  # its auction outcome was lost
                task.cell_id = message.cell_id
                task.updated_at = now
                task.requested_at = None
        for task in list(self.books.tasks.values()):
            if (
                task.cell_id == message.cell_id
                and task.state is TaskState.RUNNING
                and task.definition.task_guid not in running_tasks
                and now - task.updated_at > grace
            ):
                self._complete_task(task, failure=_staging_failure("task vanished from its cell"))
        if lost and self.config.convergence_enabled:
            self._request_lrps(lost)

    @handles(EvacuateCell)
    def _evacuate(self, message: EvacuateCell) -> int:
        """Drain a cell: auction a replacement for each instance it runs; the
        old instance stops when its replacement is RUNNING."""
        self.system.tell(message.cell_id, SetDraining(True))
        cell = self.books.cells.get(message.cell_id)
        if cell is not None:
            cell.presence = dataclasses.replace(cell.presence, draining=True)
        moving: list[ActualEntry] = []
        claimed: list[ActualEntry] = []
        now = self.clock.monotonic()
        for actual in self.books.actuals_on(message.cell_id):
            if actual.state is ActualLRPState.RUNNING:
                actual.evacuating = True
                actual.replacement_requested_at = now
                moving.append(actual)
            elif actual.state is ActualLRPState.CLAIMED:
                self._stop_on_cell(actual, "evacuated")
                actual.state = ActualLRPState.UNCLAIMED
                self.books.assign(actual, None)
                actual.since = self.clock.now()
                claimed.append(actual)
        self._request_lrps(moving + claimed)
        log.info("cell-evacuating", cell_id=message.cell_id, instances=len(moving))
        return len(moving)

    # --- convergence ------------------------------------------------------------------------

    @handles(_ConvergeTick)
    def _converge_tick(self, _message: _ConvergeTick) -> None:
        self.tell_self_later(self.config.convergence_interval, _ConvergeTick())
        if self.config.convergence_enabled and not self.recovering:
            self._converge("timer")

    @handles(_RecoveryOver)
    def _recovery_over(self, _message: _RecoveryOver) -> None:
        """The books are rebuilt: stop what nobody desired again, auction the rest."""
        self.recovering = False
        for (process_guid, index), (cell_id, guid, _) in sorted(self._reported.items()):
            self.system.tell(cell_id, StopInstance(process_guid, index, guid, "not desired"))
        stopped = len(self._reported)
        self._reported.clear()
        self._tasks_reported.clear()
        log.info("bbs-recovered", desired=len(self.books.desired), stopped=stopped)
        self._converge("recovered")

    @handles(Converge)
    def _converge_now(self, message: Converge) -> int:
        return self._converge(message.reason)

    def _converge(self, reason: str) -> int:
        """Carry out `plan_convergence`'s plan for the books as they stand now."""
        books = self.books
        now = self.clock.monotonic()
        plan = plan_convergence(
            books.desired,
            books.actuals,
            books.tasks,
            books.cells,
            now=now,
            auction_grace=self.config.auction_grace,
            claim_grace=self.config.claim_grace,
        )

        def entry(key: tuple[str, int]) -> ActualEntry:
            return books.actuals[key[0]][key[1]]

        to_auction: list[ActualEntry] = []
        for process_guid, index in plan.create:
            actual = books.actuals.setdefault(process_guid, {})[index] = ActualEntry(
                process_guid, index, self.clock.now()
            )
            to_auction.append(actual)
        to_auction += [entry(key) for key in plan.auction]
        for key in plan.cell_lost:
            actual = entry(key)
            self._unclaim(actual)
            to_auction.append(actual)
        for key in plan.claim_expired:
            actual = entry(key)
            self._stop_on_cell(actual, "claim expired")
            actual.state = ActualLRPState.UNCLAIMED
            books.assign(actual, None)
            actual.since = self.clock.now()
            to_auction.append(actual)
        for key in plan.restart:
            actual = entry(key)
            actual.state = ActualLRPState.UNCLAIMED
            actual.next_restart_at = None
            to_auction.append(actual)
        for key in plan.replace:
            actual = entry(key)
            actual.replacement_requested_at = now
            to_auction.append(actual)
        for process_guid, index in plan.retire:
            self._forget(books.actuals[process_guid].pop(index), "extra instance")
        retired = len(plan.retire)
        for process_guid in plan.undesired:
            for actual in books.actuals.pop(process_guid).values():
                self._forget(actual, "not desired")
                retired += 1
        for task_guid in plan.tasks:
            self._request_task(books.tasks[task_guid])
        # In the books' order (desired LRPs as desired, indices ascending), so
        # auctions are requested in an order that depends on nothing else.
        position = {process_guid: n for n, process_guid in enumerate(books.desired)}
        to_auction.sort(key=lambda a: (position.get(a.process_guid, len(position)), a.index))
        self._request_lrps(to_auction)
        self.convergence_runs += 1
        log.info(
            "convergence-finished",
            reason=reason,
            auctioned=len(to_auction),
            created=len(plan.create),
            retired=retired,
            tasks=len(plan.tasks),
        )
        return len(to_auction)
