"""Diego's auction rules for one cell and one piece of work: the score (lower
wins), what a cell lacks, whether it is compatible at all, the order work is
placed in, and the wording of placement failures. Pure functions.

Every score goes through `resource_score_from_values`, `lrp_score_from_values`
and `task_score_from_values`, in that one order of float operations, so that
any two schedulers built on them see identical floats and break ties alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from protocol.auction import AuctionConfig, CellState, LRPStartRequest, TaskRequest, Work

__all__ = [
    "INSTANCE_PENALTY",
    "ROOTFS_MISMATCH",
    "compatible_cells",
    "insufficient_resources",
    "lrp_score",
    "lrp_score_from_values",
    "matches_placement_tags",
    "matches_rootfs",
    "matches_volume_drivers",
    "placement_tag_mismatch",
    "resource_problems",
    "resource_score",
    "resource_score_from_values",
    "sort_work",
    "task_score",
    "task_score_from_values",
    "volume_driver_mismatch",
]

INSTANCE_PENALTY = 1000
"""Added per instance of the same app (or per task) already on the cell: it
makes spreading outweigh any difference in free resources."""

ROOTFS_MISMATCH = "found no compatible cell for required rootfs"


# --- scores ------------------------------------------------------------------


def resource_score_from_values(
    available_memory_mb: int,
    total_memory_mb: int,
    available_disk_mb: int,
    total_disk_mb: int,
    available_containers: int,
    total_containers: int,
    starting_containers: int,
    memory_mb: int,
    disk_mb: int,
    starting_container_weight: float,
) -> float:
    """The resource score from raw numbers (what `resource_score` computes)."""
    return (
        (1 - (available_memory_mb - memory_mb) / total_memory_mb)
        + (1 - (available_disk_mb - disk_mb) / total_disk_mb)
        + (1 - (available_containers - 1) / total_containers)
    ) / 3 + starting_container_weight * starting_containers


def lrp_score_from_values(resource: float, instances: int, cell_index: int, bin_pack_first_fit_weight: float) -> float:
    """An LRP score from its resource score and the cell's instances of the app."""
    return resource + INSTANCE_PENALTY * instances + bin_pack_first_fit_weight * cell_index


def task_score_from_values(resource: float, task_count: int) -> float:
    """A task score from its resource score and the cell's task count."""
    return resource + INSTANCE_PENALTY * task_count


def resource_score(cell: CellState, memory_mb: int, disk_mb: int, starting_container_weight: float) -> float:
    """How full `cell` would be after taking the work: the mean used fraction of
    memory, disk and containers, plus a penalty per container still starting."""
    return resource_score_from_values(
        cell.available_memory_mb,
        cell.total_memory_mb,
        cell.available_disk_mb,
        cell.total_disk_mb,
        cell.available_containers,
        cell.total_containers,
        cell.starting_containers,
        memory_mb,
        disk_mb,
        starting_container_weight,
    )


def lrp_score(cell: CellState, lrp: LRPStartRequest, config: AuctionConfig) -> float:
    """Score of `cell` for one LRP instance (lower wins); feasibility is not checked."""
    resource = resource_score(cell, lrp.memory_mb, lrp.disk_mb, config.starting_container_weight)
    return lrp_score_from_values(
        resource,
        cell.lrp_counts.get(lrp.process_guid, 0),
        cell.cell_index,
        config.bin_pack_first_fit_weight,
    )


def task_score(cell: CellState, task: TaskRequest, config: AuctionConfig) -> float:
    """Score of `cell` for a task (lower wins); feasibility is not checked."""
    resource = resource_score(cell, task.memory_mb, task.disk_mb, config.starting_container_weight)
    return task_score_from_values(resource, cell.task_count)


def resource_problems(cell: CellState, memory_mb: int, disk_mb: int) -> frozenset[str]:
    """What `cell` lacks for the work: a subset of {"memory", "disk", "containers"}.
    Empty means the work fits."""
    problems = []
    if cell.available_memory_mb < memory_mb:
        problems.append("memory")
    if cell.available_disk_mb < disk_mb:
        problems.append("disk")
    if cell.available_containers < 1:
        problems.append("containers")
    return frozenset(problems)


# --- constraints ---------------------------------------------------------------


def matches_rootfs(cell: CellState, rootfs: str) -> bool:
    """Whether `cell` provides the stack. A ``docker://...`` rootfs needs a cell
    that lists ``docker`` among its providers (any image then fits)."""
    if rootfs in cell.rootfs_providers:
        return True
    return rootfs.startswith("docker:") and "docker" in cell.rootfs_providers


def matches_volume_drivers(cell: CellState, volume_drivers: frozenset[str]) -> bool:
    """Whether `cell` has every requested volume driver."""
    return volume_drivers <= cell.volume_drivers


def matches_placement_tags(cell: CellState, placement_tags: frozenset[str]) -> bool:
    """Whether the tags fit: the cell's required tags are all requested, and every
    requested tag is one the cell has (required or optional)."""
    return cell.required_tags <= placement_tags and placement_tags <= (cell.required_tags | cell.optional_tags)


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f'"{name}"' for name in sorted(names))


def volume_driver_mismatch(volume_drivers: frozenset[str]) -> str:
    """Failure reason when no cell with the stack has all the volume drivers."""
    return f"found no compatible cell with volume drivers {_quoted(volume_drivers)}"


def placement_tag_mismatch(placement_tags: frozenset[str]) -> str:
    """Failure reason when no cell with the stack and drivers accepts the tags."""
    if not placement_tags:
        return "found no compatible cell with no placement tags"
    return f"found no compatible cell with placement tag(s) {_quoted(placement_tags)}"


def compatible_cells(cells: Sequence[CellState], work: Work) -> tuple[tuple[int, ...], str | None]:
    """Positions in `cells` that satisfy the work's constraints, filtered in
    Diego's order (rootfs, then volume drivers, then placement tags). When none
    is left, the reason names the first constraint that emptied the list."""
    with_rootfs = [i for i, cell in enumerate(cells) if matches_rootfs(cell, work.rootfs)]
    if not with_rootfs:
        return (), ROOTFS_MISMATCH
    with_drivers = [i for i in with_rootfs if matches_volume_drivers(cells[i], work.volume_drivers)]
    if not with_drivers:
        return (), volume_driver_mismatch(work.volume_drivers)
    with_tags = tuple(i for i in with_drivers if matches_placement_tags(cells[i], work.placement_tags))
    if not with_tags:
        return (), placement_tag_mismatch(work.placement_tags)
    return with_tags, None


def insufficient_resources(problem_sets: Iterable[frozenset[str]]) -> str:
    """Failure reason when no compatible cell fits: what every one of them
    lacked, or, when they lacked different things, everything any lacked."""
    common: frozenset[str] | None = None
    union: set[str] = set()
    for problems in problem_sets:
        common = problems if common is None else common & problems
        union |= problems
    named = common or frozenset(union)
    return "insufficient resources: " + ", ".join(sorted(named))


# --- order -------------------------------------------------------------------


def _by_memory_descending(work: Work) -> int:
    return -work.memory_mb


def sort_work(lrps: Iterable[LRPStartRequest], tasks: Iterable[TaskRequest] = ()) -> tuple[Work, ...]:
    """The order Diego places a batch in: every index-0 LRP (so each app gets one
    instance before any app gets a second), then tasks, then the other LRP
    indexes; larger memory first within each, arrival order among equals.
    Repeats (same process guid and index, same task guid) keep the first."""
    seen_lrps: set[tuple[str, int]] = set()
    first: list[LRPStartRequest] = []
    rest: list[LRPStartRequest] = []
    for lrp in lrps:
        key = (lrp.process_guid, lrp.index)
        if key in seen_lrps:
            continue
        seen_lrps.add(key)
        (first if lrp.index == 0 else rest).append(lrp)
    seen_tasks: set[str] = set()
    unique_tasks: list[TaskRequest] = []
    for task in tasks:
        if task.task_guid not in seen_tasks:
            seen_tasks.add(task.task_guid)
            unique_tasks.append(task)
    return (
        *sorted(first, key=_by_memory_descending),
        *sorted(unique_tasks, key=_by_memory_descending),
        *sorted(rest, key=_by_memory_descending),
    )
