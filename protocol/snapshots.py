"""Read models: frozen snapshots of a component's state, in the style of
anyio's `statistics()`.

A component hands these out in reply to a message (`BBSSnapshot`,
`CellInfo`, `AuctioneerStats`, `blobs.TakeInventory`) and, for observers
that must not send messages (an experiment's sampler), from a public
`statistics()` method. Nobody reads another actor's fields.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from protocol.states import ActualLRPState, TaskState

__all__ = [
    "AppInstances",
    "AuctionStatistics",
    "BBSStatistics",
    "BlobInventoryReport",
    "CellStatistics",
    "CliStatistics",
    "InstanceCounts",
    "TaskCounts",
]


@dataclass(frozen=True, slots=True)
class InstanceCounts:
    """Actual LRPs by state: RUNNING, starting (CLAIMED), CRASHED, and the rest (UNCLAIMED)."""

    running: int = 0
    starting: int = 0
    crashed: int = 0
    unclaimed: int = 0

    @classmethod
    def of(cls, states: Iterable[ActualLRPState]) -> InstanceCounts:
        """Count a collection of actual LRP states (the one place that does)."""
        counted = Counter(states)  # counted in C: the BBS counts every instance it books
        running = counted[ActualLRPState.RUNNING]
        starting = counted[ActualLRPState.CLAIMED]
        crashed = counted[ActualLRPState.CRASHED]
        return cls(running, starting, crashed, counted.total() - running - starting - crashed)

    def __add__(self, other: InstanceCounts) -> InstanceCounts:
        return InstanceCounts(
            self.running + other.running,
            self.starting + other.starting,
            self.crashed + other.crashed,
            self.unclaimed + other.unclaimed,
        )

    @property
    def total(self) -> int:
        return self.running + self.starting + self.crashed + self.unclaimed


@dataclass(frozen=True, slots=True)
class AppInstances:
    """One desired LRP as the BBS books it: its app, how many are desired, in which states."""

    app_guid: str
    app_name: str
    process_guid: str
    desired: int
    counts: InstanceCounts


@dataclass(frozen=True, slots=True)
class TaskCounts:
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0

    @classmethod
    def of(cls, states: Iterable[TaskState]) -> TaskCounts:
        counts = dict.fromkeys(TaskState, 0)
        for state in states:
            counts[state] += 1
        return cls(
            counts[TaskState.PENDING], counts[TaskState.RUNNING], counts[TaskState.SUCCEEDED], counts[TaskState.FAILED]
        )


@dataclass(frozen=True, slots=True)
class BBSStatistics:
    """The BBS at one moment: every desired LRP's instances, the present cells, the tasks."""

    apps: tuple[AppInstances, ...]
    cells: tuple[str, ...]
    tasks: TaskCounts
    convergence_runs: int
    auctions_requested: int
    recovering: bool = False
    placement_failures: int = 0  # UNCLAIMED with a placement error (shown DOWN)

    def app(self, app_guid: str) -> AppInstances | None:
        return next((a for a in self.apps if a.app_guid == app_guid), None)

    @property
    def busy(self) -> int:
        """Instances starting and tasks not yet finished: zero when the platform is settled."""
        return self.tasks.pending + self.tasks.running + sum(a.counts.starting for a in self.apps)


@dataclass(frozen=True, slots=True)
class CellStatistics:
    """One cell's usage and state, for `cf cells` and status lines."""

    cell_id: str
    zone: str
    state: str  # active | draining | unresponsive
    memory_used: int
    memory_total: int
    disk_used: int
    disk_total: int
    containers_used: int
    containers_total: int
    instances: int = 0
    running: int = 0
    starting: int = 0
    tasks: int = 0
    staged: int = 0
    # Bytes the cell's stagings hold in memory now (build trees, packages, droplets).
    staging_memory_held: int = 0


@dataclass(frozen=True, slots=True)
class CliStatistics:
    """The cli at one moment: commands running, log streams it follows."""

    commands: int
    subscriptions: int


@dataclass(frozen=True, slots=True)
class AuctionStatistics:
    """What Diego's auction simulation reports: rounds, placements, waits, attempts."""

    rounds: int
    placed: int
    failed: int
    rejected: int
    deferred: int
    cells_unreachable: int
    wait_min: float
    wait_mean: float
    wait_max: float
    attempts_min: int
    attempts_mean: float
    attempts_max: int
    failures_by_reason: tuple[tuple[str, int], ...] = ()
    last_round_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class BlobInventoryReport:
    """The blobs held against those CC_DB refers to."""

    held: int
    referenced: int
    orphans: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    corrupt: tuple[str, ...] = ()
