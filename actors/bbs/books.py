"""The BBS's books: its mutable records of desired LRPs, actual LRPs (one per
desired index), tasks and cell presences, with the by-app and by-cell
indexes the handlers need. Only the `bbs` actor holds a `Books`; everyone
else sees the frozen snapshots in `protocol.lrp` and `protocol.snapshots`."""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from protocol.lrp import ActualLRP, CellPresence, DesiredLRP, TaskDefinition, TaskSnapshot
from protocol.snapshots import AppInstances, BBSStatistics, InstanceCounts, TaskCounts
from protocol.states import ActualLRPState, TaskState

_state_of = attrgetter("state")

__all__ = ["ActualEntry", "Books", "CellEntry", "TaskEntry"]


class ActualEntry:
    """The BBS's mutable book entry for one instance index."""

    __slots__ = (
        "cell_id",
        "claimed_at",
        "crash_count",
        "crash_reason",
        "disk_usage_mb",
        "evacuating",
        "index",
        "instance_guid",
        "memory_usage_mb",
        "next_restart_at",
        "placement_error",
        "process_guid",
        "replacement_requested_at",
        "requested_at",
        "running_since",
        "since",
        "state",
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


class TaskEntry:
    __slots__ = (
        "cell_id",
        "created_at",
        "definition",
        "failed",
        "failure_reason",
        "rejections",
        "requested_at",
        "result",
        "state",
        "trace",
        "updated_at",
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


class CellEntry:
    __slots__ = ("first_seen", "last_seen", "presence")

    def __init__(self, presence: CellPresence, now: float) -> None:
        self.presence = presence
        self.last_seen = now
        self.first_seen = now


class Books:
    """Everything the BBS knows, indexed."""

    def __init__(self) -> None:
        self.desired: dict[str, DesiredLRP] = {}
        self.by_app: dict[str, str] = {}  # app_guid -> process_guid of its desired LRP
        self.actuals: dict[str, dict[int, ActualEntry]] = {}
        self.tasks: dict[str, TaskEntry] = {}
        self.cells: dict[str, CellEntry] = {}
        # Actual LRPs by the cell they are on: a cell's sync, loss or
        # evacuation touches its own instances, not every instance there is.
        self.on_cell: dict[str, dict[tuple[str, int], ActualEntry]] = {}

    def assign(self, actual: ActualEntry, cell_id: str | None) -> None:
        """Put an actual LRP on a cell (or on none); the only writer of cell_id."""
        old = actual.cell_id
        if old == cell_id:
            return
        key = (actual.process_guid, actual.index)
        if old is not None:
            on_old = self.on_cell.get(old)
            if on_old is not None:
                on_old.pop(key, None)
                if not on_old:
                    del self.on_cell[old]
        actual.cell_id = cell_id
        if cell_id is not None:
            self.on_cell.setdefault(cell_id, {})[key] = actual

    def actuals_on(self, cell_id: str) -> list[ActualEntry]:
        return list(self.on_cell.get(cell_id, {}).values())

    def statistics(self, *, convergence_runs: int, auctions_requested: int, recovering: bool) -> BBSStatistics:
        apps = []
        failures = 0
        for process_guid, lrp in self.desired.items():
            book = self.actuals.get(process_guid, {})
            counts = InstanceCounts.of(map(_state_of, book.values()))
            apps.append(AppInstances(lrp.app_guid, lrp.app_name, process_guid, lrp.instances, counts))
            if counts.unclaimed:
                failures += sum(1 for a in book.values() if a.state is ActualLRPState.UNCLAIMED and a.placement_error)
        return BBSStatistics(
            apps=tuple(apps),
            cells=tuple(sorted(self.cells)),
            tasks=TaskCounts.of(t.state for t in self.tasks.values()),
            convergence_runs=convergence_runs,
            auctions_requested=auctions_requested,
            recovering=recovering,
            placement_failures=failures,
        )
