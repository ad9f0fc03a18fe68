"""What an auction round works on and what it hands back: the work to place
(LRP starts, tasks), the state each cell bids with, the auctioneer's weights,
and the round's results. Types only; the rules live in `actors.auctioneer`."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from protocol.frozen import fast_init

__all__ = [
    "AuctionConfig",
    "AuctionResults",
    "CellState",
    "FrozenCounts",
    "LRPStartRequest",
    "Placement",
    "PlacementError",
    "PlacementErrorKind",
    "PlacementFailure",
    "TaskRequest",
    "Work",
]


class FrozenCounts(Mapping[str, int]):
    """An immutable, hashable ``process_guid -> instances`` map; zero counts are dropped."""

    __slots__ = ("_counts", "_hash")

    def __init__(self, counts: Mapping[str, int] | Iterable[tuple[str, int]] = ()) -> None:
        items = counts.items() if isinstance(counts, Mapping) else counts
        kept: dict[str, int] = {}
        for guid, count in items:
            if count < 0:
                raise ValueError(f"negative instance count {count} for {guid!r}")
            if count:
                kept[guid] = count
        self._counts = kept
        self._hash: int | None = None

    def __getitem__(self, guid: str) -> int:
        return self._counts[guid]

    def get(self, guid: str, default: int = 0) -> int:  # type: ignore[override]
        # Mapping.get goes through __getitem__ and an exception; this is hot.
        return self._counts.get(guid, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._counts.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenCounts):
            return self._counts == other._counts
        if isinstance(other, Mapping):
            return self._counts == {k: v for k, v in other.items() if v}
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenCounts({self._counts!r})"

    def incremented(self, guid: str) -> FrozenCounts:
        """A copy with one more instance of `guid`."""
        counts = dict(self._counts)
        counts[guid] = counts.get(guid, 0) + 1
        return FrozenCounts(counts)


def _as_frozenset(obj: object, name: str) -> None:
    # Callers hand in sets and lists; frozensets keep the messages hashable.
    value = getattr(obj, name)
    if type(value) is not frozenset:
        if isinstance(value, str):
            raise TypeError(f"{name} must be a set of strings, not a string")
        object.__setattr__(obj, name, frozenset(value))


def _check_request(obj: LRPStartRequest | TaskRequest) -> None:
    if obj.memory_mb < 0 or obj.disk_mb < 0:
        raise ValueError("memory_mb and disk_mb must not be negative")
    _as_frozenset(obj, "placement_tags")
    _as_frozenset(obj, "volume_drivers")


@fast_init
@dataclass(frozen=True, slots=True)
class LRPStartRequest:
    """Start one instance (index) of a desired LRP; each index is its own auction."""

    process_guid: str
    index: int
    memory_mb: int
    disk_mb: int
    rootfs: str = "cflinuxfs4"
    placement_tags: frozenset[str] = frozenset()
    volume_drivers: frozenset[str] = frozenset()
    domain: str = "cf-apps"

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError(f"index must not be negative, got {self.index}")
        _check_request(self)


@fast_init
@dataclass(frozen=True, slots=True)
class TaskRequest:
    """Run one task (a staging task or `cf run-task`) on some cell."""

    task_guid: str
    memory_mb: int
    disk_mb: int
    rootfs: str = "cflinuxfs4"
    placement_tags: frozenset[str] = frozenset()
    volume_drivers: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        _check_request(self)


Work = LRPStartRequest | TaskRequest


@dataclass(frozen=True, slots=True)
class CellState:
    """What a cell reports when the auctioneer fetches its state in a bid round."""

    cell_id: str
    zone: str
    rootfs_providers: frozenset[str]
    volume_drivers: frozenset[str]
    required_tags: frozenset[str]
    optional_tags: frozenset[str]
    total_memory_mb: int
    total_disk_mb: int
    total_containers: int
    available_memory_mb: int
    available_disk_mb: int
    available_containers: int
    # containers created but not yet running: each makes the cell a worse bid
    starting_containers: int
    # process_guid -> instances on the cell; any mapping or iterable of pairs
    # is accepted and stored as a FrozenCounts, so the state stays hashable
    lrp_counts: Mapping[str, int] = field(default_factory=FrozenCounts)
    task_count: int = 0
    evacuating: bool = False
    cell_index: int = 0

    def __post_init__(self) -> None:
        # Scores divide by the totals.
        if self.total_memory_mb <= 0 or self.total_disk_mb <= 0 or self.total_containers <= 0:
            raise ValueError(f"cell {self.cell_id!r}: totals must be positive")
        if self.starting_containers < 0 or self.task_count < 0:
            raise ValueError(f"cell {self.cell_id!r}: counts must not be negative")
        for name in ("rootfs_providers", "volume_drivers", "required_tags", "optional_tags"):
            _as_frozenset(self, name)
        if not isinstance(self.lrp_counts, FrozenCounts):
            object.__setattr__(self, "lrp_counts", FrozenCounts(self.lrp_counts))


@dataclass(frozen=True, slots=True)
class AuctionConfig:
    """The auctioneer's weights; a `starting_container_count_maximum` of 0 means no limit."""

    starting_container_weight: float = 0.25
    bin_pack_first_fit_weight: float = 0.0
    starting_container_count_maximum: int = 0


@fast_init
@dataclass(frozen=True, slots=True)
class Placement:
    """Work that won a cell in this round, with the winning score."""

    work: Work
    cell_id: str
    score: float


class PlacementErrorKind(enum.Enum):
    """Why work was not placed, by kind (Diego's placement errors)."""

    INSUFFICIENT_RESOURCES = "InsufficientResources"
    NO_COMPATIBLE_CELL = "NoCompatibleCell"
    CELLS_UNREACHABLE = "CellCommunicationError"
    REJECTED = "Rejected"  # the winning cell refused it at commit


@dataclass(frozen=True, slots=True)
class PlacementError:
    """A failed placement as data: its kind, and Diego's wording as the message
    (``insufficient resources: memory``)."""

    kind: PlacementErrorKind
    message: str

    def __str__(self) -> str:
        return self.message

    @property
    def code(self) -> str:
        """The Cloud Foundry error a staging task failed by this reports as."""
        if self.kind in (PlacementErrorKind.INSUFFICIENT_RESOURCES, PlacementErrorKind.NO_COMPATIBLE_CELL):
            return self.kind.value
        return "StagingError"


@dataclass(frozen=True, slots=True)
class PlacementFailure:
    """Work no cell could take this round, and why."""

    work: Work
    error: PlacementError

    @property
    def reason(self) -> str:
        """Diego's wording of why."""
        return self.error.message


@dataclass(frozen=True, slots=True)
class AuctionResults:
    """One round's outcome; `deferred` work was not attempted (starting-container limit)."""

    placed: tuple[Placement, ...] = ()
    failed: tuple[PlacementFailure, ...] = ()
    deferred: tuple[Work, ...] = ()
