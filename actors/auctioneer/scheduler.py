"""Diego's auction scheduler: which cell wins each LRP start and task of a
batch, given the cells' bids. Pure functions, no actors.

`schedule` is what the auctioneer runs. `schedule_reference` transcribes the
rules literally (every compatible cell scored for every piece of work) and is
the specification `schedule` is tested against; both return identical results,
ties included.

The rules, as both implement them:

* evacuating cells take no part (their starting containers do not count);
* work goes in `sort_work` order; with a starting-container maximum, only the
  first (maximum - containers already starting) items are attempted and the
  rest are deferred to the next round;
* constraints filter the cells (rootfs, volume drivers, placement tags); with
  no cell at all, the reason is "unable to communicate to compatible cells";
* an LRP spreads across zones: zones (those with a compatible cell) are ranked
  by how many instances of the app they hold on any of their cells, and
  consecutive zones with equal counts form one group; the first group holding
  a cell with room wins, at its lowest (score, position in `cells`);
* a task takes the lowest (score, position) among all compatible cells;
* no room anywhere fails with `insufficient resources: ...`;
* the winner's state is updated before the next item.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from actors.auctioneer.scoring import (
    INSTANCE_PENALTY,
    compatible_cells,
    insufficient_resources,
    lrp_score,
    lrp_score_from_values,
    resource_problems,
    resource_score_from_values,
    sort_work,
    task_score,
    task_score_from_values,
)
from protocol.auction import (
    AuctionConfig,
    AuctionResults,
    CellState,
    FrozenCounts,
    LRPStartRequest,
    Placement,
    PlacementError,
    PlacementErrorKind,
    PlacementFailure,
    TaskRequest,
    Work,
)

__all__ = ["NO_CELLS", "schedule", "schedule_reference"]

NO_CELLS = "unable to communicate to compatible cells"
_MISMATCH = PlacementErrorKind.NO_COMPATIBLE_CELL
_NO_ROOM = PlacementErrorKind.INSUFFICIENT_RESOURCES


def _unreachable(work: Work) -> PlacementFailure:
    return PlacementFailure(work, PlacementError(PlacementErrorKind.CELLS_UNREACHABLE, NO_CELLS))


_DEFAULT_CONFIG = AuctionConfig()


def _split_by_budget(
    work: tuple[Work, ...], live: Sequence[CellState], config: AuctionConfig
) -> tuple[tuple[Work, ...], tuple[Work, ...]]:
    maximum = config.starting_container_count_maximum
    if maximum <= 0:
        return work, ()
    budget = max(0, maximum - sum(cell.starting_containers for cell in live))
    return work[:budget], work[budget:]


# --- the reference -----------------------------------------------------------


def schedule_reference(
    cells: Sequence[CellState],
    lrps: Iterable[LRPStartRequest] = (),
    tasks: Iterable[TaskRequest] = (),
    config: AuctionConfig = _DEFAULT_CONFIG,
) -> AuctionResults:
    """Place the batch by scoring every compatible cell for every item."""
    state = [cell for cell in cells if not cell.evacuating]
    attempted, deferred = _split_by_budget(sort_work(lrps, tasks), state, config)
    placed: list[Placement] = []
    failed: list[PlacementFailure] = []
    for work in attempted:
        if not state:
            failed.append(_unreachable(work))
            continue
        candidates, mismatch = compatible_cells(state, work)
        if mismatch is not None:
            failed.append(PlacementFailure(work, PlacementError(_MISMATCH, mismatch)))
            continue
        if isinstance(work, LRPStartRequest):
            winner = _reference_lrp_winner(state, candidates, work, config)
        else:
            winner = _reference_best(state, candidates, work, config)
        if winner is None:
            problems = (resource_problems(state[i], work.memory_mb, work.disk_mb) for i in candidates)
            failed.append(PlacementFailure(work, PlacementError(_NO_ROOM, insufficient_resources(problems))))
            continue
        score, i = winner
        placed.append(Placement(work, state[i].cell_id, score))
        state[i] = _reserve(state[i], work)
    return AuctionResults(tuple(placed), tuple(failed), deferred)


def _reference_best(
    state: list[CellState], positions: Iterable[int], work: Work, config: AuctionConfig
) -> tuple[float, int] | None:
    best: tuple[float, int] | None = None
    for i in positions:
        cell = state[i]
        if resource_problems(cell, work.memory_mb, work.disk_mb):
            continue
        if isinstance(work, LRPStartRequest):
            score = lrp_score(cell, work, config)
        else:
            score = task_score(cell, work, config)
        if best is None or (score, i) < best:
            best = (score, i)
    return best


def _reference_lrp_winner(
    state: list[CellState], candidates: Sequence[int], lrp: LRPStartRequest, config: AuctionConfig
) -> tuple[float, int] | None:
    instances: dict[str, int] = {}
    for cell in state:
        instances[cell.zone] = instances.get(cell.zone, 0) + cell.lrp_counts.get(lrp.process_guid, 0)
    by_zone: dict[str, list[int]] = {}
    for i in candidates:
        by_zone.setdefault(state[i].zone, []).append(i)
    zones = sorted(by_zone, key=lambda zone: (instances[zone], zone))
    start = 0
    while start < len(zones):
        end = start
        group: list[int] = []
        while end < len(zones) and instances[zones[end]] == instances[zones[start]]:
            group.extend(by_zone[zones[end]])
            end += 1
        best = _reference_best(state, group, lrp, config)
        if best is not None:
            return best
        start = end
    return None


def _reserve(cell: CellState, work: Work) -> CellState:
    extra: dict[str, Any]
    if isinstance(work, LRPStartRequest):
        counts = cell.lrp_counts
        assert isinstance(counts, FrozenCounts)
        extra = {"lrp_counts": counts.incremented(work.process_guid)}
    else:
        extra = {"task_count": cell.task_count + 1}
    return dataclasses.replace(
        cell,
        available_memory_mb=cell.available_memory_mb - work.memory_mb,
        available_disk_mb=cell.available_disk_mb - work.disk_mb,
        available_containers=cell.available_containers - 1,
        starting_containers=cell.starting_containers + 1,
        **extra,
    )


# --- the fast one ------------------------------------------------------------
#
# Within a bucket of cells sharing zone, constraints-relevant attributes and
# totals, a cell's score for any request is (a request-only constant) + (a
# cell-only key), so one sorted list per bucket orders its cells for every
# request at once. The list holds (key, state..., position): cells in the same
# state sit together, and all but the first of them can be skipped because
# they score identically from a later position. Cells already holding the
# app's instances are left out of the list query: when an app is on few cells
# they are scored directly, else they are queried the same way through the
# app's own sorted lists (`_OccupiedIndex`, its instance penalty in the key),
# kept for the few apps placed last. Keys are floats computed differently from scores, so the query
# does not trust their order to the last bit: it keeps every cell whose key is
# within a tolerance of the first feasible one and compares their real scores.


class _Bucket:
    __slots__ = ("lrp_entries", "positions", "sig", "task_entries", "zone")

    def __init__(self, zone: str, sig: int) -> None:
        self.zone = zone
        self.sig = sig
        self.positions: list[int] = []
        self.lrp_entries: list[tuple] = []
        self.task_entries: list[tuple] | None = None


class _OccupiedIndex:
    """One app's occupied cells, sorted per bucket like `_Bucket.lrp_entries`
    but keyed with the app's instance penalty included, so the cells that
    already hold the app are queried as the empty ones are, not scored one
    by one. Kept up to date by `_Round._reserve` while it is cached."""

    __slots__ = ("by_bucket", "entry_of", "max_count")

    def __init__(self) -> None:
        self.by_bucket: dict[int, list[tuple]] = {}
        self.entry_of: dict[int, tuple] = {}
        self.max_count = 0


# An app on more cells than this gets an `_OccupiedIndex`; a few are kept.
_INDEX_OVER = 32
_INDEXES_KEPT = 4


class _Compatible:
    """The cells one set of constraints allows, precomputed per round."""

    __slots__ = ("buckets", "buckets_by_zone", "mismatch", "positions", "sigs", "zones")

    def __init__(self, positions: tuple[int, ...], mismatch: str | None) -> None:
        self.positions = positions
        self.mismatch = mismatch
        self.sigs: frozenset[int] = frozenset()
        self.zones: list[str] = []
        self.buckets_by_zone: dict[str, list[_Bucket]] = {}
        self.buckets: list[_Bucket] = []


_MASK_PROBLEMS = {
    mask: frozenset(name for bit, name in ((1, "memory"), (2, "disk"), (4, "containers")) if mask & bit)
    for mask in range(8)
}


class _Round:
    """One round's working copy of the live cells, indexed for winner queries."""

    def __init__(self, live: list[CellState], config: AuctionConfig, work: Sequence[Work]) -> None:
        work_count = len(work)
        self.cells = live
        self.n = n = len(live)
        self.ws = config.starting_container_weight
        self.wbp = wbp = config.bin_pack_first_fit_weight
        self.ids = [cell.cell_id for cell in live]
        self.zone = [cell.zone for cell in live]
        self.mt = [cell.total_memory_mb for cell in live]
        self.dt = [cell.total_disk_mb for cell in live]
        self.ct = [cell.total_containers for cell in live]
        self.ma = [cell.available_memory_mb for cell in live]
        self.da = [cell.available_disk_mb for cell in live]
        self.ca = [cell.available_containers for cell in live]
        self.sc = [cell.starting_containers for cell in live]
        self.tc = [cell.task_count for cell in live]
        self.ix = [cell.cell_index for cell in live]
        # With no bin-pack weight the cell index does not change the score,
        # so it must not split otherwise identical cells.
        self.ix_state = self.ix if wbp else [0] * n

        sig_ids: dict[tuple, int] = {}
        self.sig = [
            sig_ids.setdefault(
                (
                    cell.rootfs_providers,
                    cell.volume_drivers,
                    cell.required_tags,
                    cell.optional_tags,
                ),
                len(sig_ids),
            )
            for cell in live
        ]

        # Instances already on each cell, for the apps of this batch only:
        # from each cell's counts of those apps when they are few, else from
        # one walk of every cell's counts.
        guids = {w.process_guid for w in work if isinstance(w, LRPStartRequest)}
        self.occupied: dict[str, dict[int, int]] = {}
        self.zone_instances: dict[str, dict[str, int]] = {}
        if guids:
            pairs = sum(len(cell.lrp_counts) for cell in live)
            ordered = sorted(guids)  # a repeatable order of insertion
            for p, cell in enumerate(live):
                counts = cell.lrp_counts
                if len(guids) * n < pairs:
                    held = [(g, counts.get(g, 0)) for g in ordered]
                else:
                    held = [(g, c) for g, c in counts.items() if g in guids]
                for guid, count in held:
                    if not count:
                        continue
                    self.occupied.setdefault(guid, {})[p] = count
                    per_zone = self.zone_instances.setdefault(guid, {})
                    per_zone[cell.zone] = per_zone.get(cell.zone, 0) + count
        # Occupied-cell indexes (`_OccupiedIndex`) of the apps placed last.
        self.occupied_index: dict[str, _OccupiedIndex] = {}
        self._placing = ""
        self.work_count = work_count

        self.slack = self._tolerance_slack(work_count)
        # No cell claims more free than it has: free-fraction parts of scores
        # are then never negative (what the occupied-cell floor relies on).
        self.bounded = all(
            self.ma[p] <= self.mt[p] and self.da[p] <= self.dt[p] and self.ca[p] <= self.ct[p] for p in range(n)
        )

        buckets: dict[tuple, _Bucket] = {}
        self.bucket_of: list[_Bucket] = []
        for p in range(n):
            key = (self.zone[p], self.sig[p], self.mt[p], self.dt[p], self.ct[p])
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = _Bucket(self.zone[p], self.sig[p])
            bucket.positions.append(p)
            self.bucket_of.append(bucket)
        self.buckets = list(buckets.values())
        self.bucket_index = {id(b): i for i, b in enumerate(self.buckets)}
        self.bucket_id = [self.bucket_index[id(b)] for b in self.bucket_of]
        self.lrp_entry = [self._lrp_entry(p) for p in range(n)]
        for bucket in self.buckets:
            bucket.lrp_entries = sorted(self.lrp_entry[p] for p in bucket.positions)
        self.task_entry: list[tuple] | None = None

        self.compatible: dict[tuple, _Compatible] = {}
        # (constraints, memory, disk) that found no room: cells only ever lose
        # room within a round, so such work can never fit later in it either.
        self.no_room: dict[tuple, tuple[int, str]] = {}
        self.placements = 0

    def _tolerance_slack(self, work_count: int) -> float:
        # Scores and keys are sums of terms whose size is bounded by |key| plus
        # the free fractions (when weights are not negative); their rounding
        # errors are ~1e-16 of that size, far inside a 1e-9 relative tolerance.
        n = self.n
        fractions = max(
            (
                (abs(self.ma[p]) / self.mt[p] + abs(self.da[p]) / self.dt[p] + abs(self.ca[p]) / self.ct[p]) / 3
                for p in range(n)
            ),
            default=0.0,
        )
        slack = 16.0 + 4.0 * fractions
        self.cancelling_terms = self.ws < 0 or self.wbp < 0 or min(self.ix, default=0) < 0
        if self.cancelling_terms:
            # Terms of opposite signs can cancel: bound them outright.
            slack += abs(self.ws) * (max(self.sc, default=0) + work_count)
            slack += abs(self.wbp) * max((abs(i) for i in self.ix), default=0)
            slack += INSTANCE_PENALTY * (max(self.tc, default=0) + work_count)
        return slack

    # entries: (key, state..., position); a score is (request constant) + key.

    def _free_fractions(self, p: int) -> float:
        return (self.ma[p] / self.mt[p] + self.da[p] / self.dt[p] + self.ca[p] / self.ct[p]) / 3

    def _lrp_entry(self, p: int) -> tuple:
        key = (self.ws * self.sc[p] + self.wbp * self.ix[p]) - self._free_fractions(p)
        return (key, self.ma[p], self.da[p], self.ca[p], self.sc[p], self.ix_state[p], p)

    def _occupied_entry(self, p: int, count: int) -> tuple:
        key = (self.ws * self.sc[p] + self.wbp * self.ix[p]) - self._free_fractions(p) + INSTANCE_PENALTY * count
        return (key, self.ma[p], self.da[p], self.ca[p], self.sc[p], self.ix_state[p], count, p)

    def _occupied_index(self, guid: str, occupied: dict[int, int]) -> _OccupiedIndex:
        index = self.occupied_index.get(guid)
        if index is not None:
            return index
        index = _OccupiedIndex()
        for p, count in occupied.items():
            entry = self._occupied_entry(p, count)
            index.entry_of[p] = entry
            index.by_bucket.setdefault(self.bucket_id[p], []).append(entry)
            index.max_count = max(index.max_count, count)
        for entries in index.by_bucket.values():
            entries.sort()
        if len(self.occupied_index) >= _INDEXES_KEPT:
            del self.occupied_index[next(iter(self.occupied_index))]
        self.occupied_index[guid] = index
        return index

    def _reindex(self, p: int, guid: str | None) -> None:
        """Cell `p` changed (and holds one more of `guid`): move its entries."""
        if not self.occupied_index:
            return
        bucket = self.bucket_id[p]
        for indexed, index in self.occupied_index.items():
            old = index.entry_of.get(p)
            if old is None and indexed != guid:
                continue
            entries = index.by_bucket.setdefault(bucket, [])
            if old is not None:
                del entries[bisect_left(entries, old)]
            count = self.occupied[indexed][p]
            index.max_count = max(index.max_count, count)
            entry = index.entry_of[p] = self._occupied_entry(p, count)
            insort(entries, entry)

    def _task_entry(self, p: int) -> tuple:
        key = (INSTANCE_PENALTY * self.tc[p] + self.ws * self.sc[p]) - self._free_fractions(p)
        return (key, self.tc[p], self.ma[p], self.da[p], self.ca[p], self.sc[p], p)

    def _resource(self, p: int, m: int, d: int) -> float:
        return resource_score_from_values(
            self.ma[p],
            self.mt[p],
            self.da[p],
            self.dt[p],
            self.ca[p],
            self.ct[p],
            self.sc[p],
            m,
            d,
            self.ws,
        )

    def _unoccupied_lrp_score(self, p: int, m: int, d: int) -> float:
        return lrp_score_from_values(self._resource(p, m, d), 0, self.ix[p], self.wbp)

    def _task_score(self, p: int, m: int, d: int) -> float:
        return task_score_from_values(self._resource(p, m, d), self.tc[p])

    def _scan(
        self,
        entries: list[tuple],
        skip: dict[int, int],
        m: int,
        d: int,
        score: Callable[[int, int, int], float],
        slack: float | None = None,
    ) -> tuple[float, int]:
        """Lowest (score, position) among the bucket's cells with room that are
        not in `skip`; position -1 if none."""
        ma, da, ca, n = self.ma, self.da, self.ca, self.n
        if slack is None:
            slack = self.slack
        best_score = 0.0
        best_p = -1
        limit: float | None = None
        i = 0
        size = len(entries)
        while i < size:
            entry = entries[i]
            key = entry[0]
            if limit is not None and key > limit:
                break
            p = entry[-1]
            if ma[p] < m or da[p] < d or ca[p] < 1:
                if i + 1 < size and entries[i + 1][0] == key:
                    i = bisect_right(entries, entry[:-1] + (n,), i + 1)
                else:
                    i += 1
                continue
            if p in skip:
                i += 1
                continue
            s = score(p, m, d)
            if best_p < 0 or s < best_score or (s == best_score and p < best_p):
                best_score, best_p = s, p
            if limit is None:
                limit = key + 1e-9 * (abs(key) + slack)
            # Past the cells in this one's state (they share its key).
            if i + 1 < size and entries[i + 1][0] == key:
                i = bisect_right(entries, entry[:-1] + (n,), i + 1)
            else:
                i += 1
        return best_score, best_p

    def _compatible(self, work: Work) -> _Compatible:
        constraints = (work.rootfs, work.volume_drivers, work.placement_tags)
        found = self.compatible.get(constraints)
        if found is None:
            positions, mismatch = compatible_cells(self.cells, work)
            found = _Compatible(positions, mismatch)
            found.sigs = frozenset(self.sig[p] for p in positions)
            for bucket in self.buckets:
                if bucket.sig in found.sigs:
                    found.buckets.append(bucket)
                    found.buckets_by_zone.setdefault(bucket.zone, []).append(bucket)
            found.zones = sorted(found.buckets_by_zone)
            self.compatible[constraints] = found
        return found

    def _no_room_reason(self, compatible: _Compatible, m: int, d: int) -> str:
        memo_key = (id(compatible), m, d)
        memo = self.no_room.get(memo_key)
        if memo is not None and memo[0] == self.placements:
            return memo[1]
        ma, da, ca = self.ma, self.da, self.ca
        masks = {(ma[p] < m) | ((da[p] < d) << 1) | ((ca[p] < 1) << 2) for p in compatible.positions}
        reason = insufficient_resources(_MASK_PROBLEMS[mask] for mask in masks)
        self.no_room[memo_key] = (self.placements, reason)
        return reason

    def _known_no_room(self, compatible: _Compatible, m: int, d: int) -> bool:
        return (id(compatible), m, d) in self.no_room

    def place(self, work: Work) -> Placement | PlacementFailure:
        compatible = self._compatible(work)
        if compatible.mismatch is not None:
            return PlacementFailure(work, PlacementError(_MISMATCH, compatible.mismatch))
        m, d = work.memory_mb, work.disk_mb
        if self._known_no_room(compatible, m, d):
            return PlacementFailure(work, PlacementError(_NO_ROOM, self._no_room_reason(compatible, m, d)))
        if isinstance(work, LRPStartRequest):
            score, p = self._lrp_winner(work, compatible, m, d)
        else:
            score, p = self._task_winner(compatible, m, d)
        if p < 0:
            return PlacementFailure(work, PlacementError(_NO_ROOM, self._no_room_reason(compatible, m, d)))
        self._reserve(p, work)
        return Placement(work, self.ids[p], score)

    def _lrp_winner(self, lrp: LRPStartRequest, compatible: _Compatible, m: int, d: int) -> tuple[float, int]:
        if self.task_entry is not None:
            # Tasks come as one run in the order; their index is done with.
            self.task_entry = None
            for bucket in self.buckets:
                bucket.task_entries = None
        guid = lrp.process_guid
        self._placing = guid
        occupied = self.occupied.get(guid, {})
        per_zone = self.zone_instances.get(guid)
        zones = compatible.zones
        if not per_zone:
            return self._lrp_best_in(zones, compatible, occupied, m, d, all_zones=True)
        # `zones` is sorted by name and the sort is stable: (instances, name).
        ranked = sorted(zones, key=lambda zone: per_zone.get(zone, 0))
        start = 0
        while start < len(ranked):
            instances = per_zone.get(ranked[start], 0)
            end = start + 1
            while end < len(ranked) and per_zone.get(ranked[end], 0) == instances:
                end += 1
            score, p = self._lrp_best_in(
                ranked[start:end],
                compatible,
                occupied,
                m,
                d,
                all_zones=(end - start == len(ranked)),
            )
            if p >= 0:
                return score, p
            start = end
        return 0.0, -1

    def _lrp_best_in(
        self,
        group: list[str],
        compatible: _Compatible,
        occupied: dict[int, int],
        m: int,
        d: int,
        all_zones: bool,
    ) -> tuple[float, int]:
        best_score = 0.0
        best_p = -1
        scan = self._scan
        unoccupied_score = self._unoccupied_lrp_score
        index = self.occupied_index.get(self._placing) if len(occupied) > _INDEX_OVER else None
        for zone in group:
            for bucket in compatible.buckets_by_zone[zone]:
                if index is not None:
                    held = index.by_bucket.get(self.bucket_index[id(bucket)])
                    if held is not None and len(held) == len(bucket.positions):
                        continue  # every cell of it holds the app
                s, p = scan(bucket.lrp_entries, occupied, m, d, unoccupied_score)
                if p >= 0 and (best_p < 0 or s < best_score or (s == best_score and p < best_p)):
                    best_score, best_p = s, p
        if len(occupied) > _INDEX_OVER:
            s, p = self._best_occupied(group, compatible, occupied, m, d)
            if p >= 0 and (best_p < 0 or s < best_score or (s == best_score and p < best_p)):
                best_score, best_p = s, p
        elif occupied and not (
            # Every occupied cell scores at least one instance penalty (its
            # other terms are never negative here): with a clearly better
            # empty cell found, none of them can win or tie.
            best_p >= 0
            and self.bounded
            and not self.cancelling_terms
            and INSTANCE_PENALTY - best_score > 1e-9 * (INSTANCE_PENALTY + abs(best_score) + 16.0)
        ):
            in_group = None if all_zones else set(group)
            ma, da, ca, zone_of, sig, sigs = (
                self.ma,
                self.da,
                self.ca,
                self.zone,
                self.sig,
                compatible.sigs,
            )
            ws, wbp, sc, ix = self.ws, self.wbp, self.sc, self.ix
            for p, instances in occupied.items():
                if ma[p] < m or da[p] < d or ca[p] < 1 or sig[p] not in sigs:
                    continue
                if in_group is not None and zone_of[p] not in in_group:
                    continue
                if best_p >= 0 and self.bounded:
                    # A score is its free-fraction part (never below 0) plus
                    # these terms: a cell they already put clearly above the
                    # best cannot win, nor tie, and need not be scored.
                    floor = INSTANCE_PENALTY * instances + ws * sc[p] + wbp * ix[p]
                    if floor - best_score > 1e-9 * (abs(floor) + abs(best_score) + 16.0):
                        continue
                s = lrp_score_from_values(self._resource(p, m, d), instances, ix[p], wbp)
                if best_p < 0 or s < best_score or (s == best_score and p < best_p):
                    best_score, best_p = s, p
        return best_score, best_p

    def _best_occupied(
        self, group: list[str], compatible: _Compatible, occupied: dict[int, int], m: int, d: int
    ) -> tuple[float, int]:
        """Lowest (score, position) among the group's cells holding the app."""
        guid = self._placing
        index = self._occupied_index(guid, occupied)
        slack = self.slack
        if self.cancelling_terms:
            slack += INSTANCE_PENALTY * (index.max_count + self.work_count)
        ix, wbp, resource = self.ix, self.wbp, self._resource

        def score(p: int, m: int, d: int) -> float:
            return lrp_score_from_values(resource(p, m, d), occupied[p], ix[p], wbp)

        best_score = 0.0
        best_p = -1
        no_skip: dict[int, int] = {}
        bucket_ids = self.bucket_index
        for zone in group:
            for bucket in compatible.buckets_by_zone[zone]:
                entries = index.by_bucket.get(bucket_ids[id(bucket)])
                if not entries:
                    continue
                s, p = self._scan(entries, no_skip, m, d, score, slack)
                if p >= 0 and (best_p < 0 or s < best_score or (s == best_score and p < best_p)):
                    best_score, best_p = s, p
        return best_score, best_p

    def _task_winner(self, compatible: _Compatible, m: int, d: int) -> tuple[float, int]:
        if self.task_entry is None:
            self.task_entry = [self._task_entry(p) for p in range(self.n)]
            for bucket in self.buckets:
                bucket.task_entries = sorted(self.task_entry[p] for p in bucket.positions)
        best_score = 0.0
        best_p = -1
        no_skip: dict[int, int] = {}
        for bucket in compatible.buckets:
            assert bucket.task_entries is not None
            s, p = self._scan(bucket.task_entries, no_skip, m, d, self._task_score)
            if p >= 0 and (best_p < 0 or s < best_score or (s == best_score and p < best_p)):
                best_score, best_p = s, p
        return best_score, best_p

    def _reserve(self, p: int, work: Work) -> None:
        bucket = self.bucket_of[p]
        entries = bucket.lrp_entries
        del entries[bisect_left(entries, self.lrp_entry[p])]
        task_entries = bucket.task_entries
        if task_entries is not None:
            assert self.task_entry is not None
            del task_entries[bisect_left(task_entries, self.task_entry[p])]

        self.ma[p] -= work.memory_mb
        self.da[p] -= work.disk_mb
        self.ca[p] -= 1
        self.sc[p] += 1
        if isinstance(work, LRPStartRequest):
            guid = work.process_guid
            occupied = self.occupied.setdefault(guid, {})
            occupied[p] = occupied.get(p, 0) + 1
            per_zone = self.zone_instances.setdefault(guid, {})
            per_zone[self.zone[p]] = per_zone.get(self.zone[p], 0) + 1
        else:
            self.tc[p] += 1
        self.placements += 1

        entry = self.lrp_entry[p] = self._lrp_entry(p)
        insort(entries, entry)
        self._reindex(p, work.process_guid if isinstance(work, LRPStartRequest) else None)
        if task_entries is not None:
            assert self.task_entry is not None
            entry = self.task_entry[p] = self._task_entry(p)
            insort(task_entries, entry)


def schedule(
    cells: Sequence[CellState],
    lrps: Iterable[LRPStartRequest] = (),
    tasks: Iterable[TaskRequest] = (),
    config: AuctionConfig = _DEFAULT_CONFIG,
) -> AuctionResults:
    """Place the batch; same results as `schedule_reference`, without scoring
    every cell for every item."""
    live = [cell for cell in cells if not cell.evacuating]
    attempted, deferred = _split_by_budget(sort_work(lrps, tasks), live, config)
    placed: list[Placement] = []
    failed: list[PlacementFailure] = []
    if not live:
        failed.extend(_unreachable(work) for work in attempted)
        return AuctionResults((), tuple(failed), deferred)
    round_ = _Round(live, config, attempted)
    for work in attempted:
        outcome = round_.place(work)
        if isinstance(outcome, Placement):
            placed.append(outcome)
        else:
            failed.append(outcome)
    return AuctionResults(tuple(placed), tuple(failed), deferred)


def _benchmark_cluster(
    instances: int, cell_count: int, zones: int, seed: int = 1
) -> tuple[list[CellState], list[LRPStartRequest]]:
    """A deploy like Cloud Foundry's 2016 scale test: apps of 1-25 instances of
    32 MB, 128 MB or 1 GB (1 GB disk each) onto empty, identical cells."""
    import random

    rng = random.Random(seed)
    # Room for about twice the mix's mean use: ~400 MB and 1 GB disk per instance.
    per_cell = -(-instances // cell_count)
    memory = max(8 * 1024, per_cell * 800)
    disk = max(16 * 1024, per_cell * 2048)
    containers = max(100, per_cell * 4)
    cells = [
        CellState(
            cell_id=f"cell-{i}",
            zone=f"z{i % zones}",
            rootfs_providers=frozenset({"cflinuxfs4"}),
            volume_drivers=frozenset(),
            required_tags=frozenset(),
            optional_tags=frozenset(),
            total_memory_mb=memory,
            total_disk_mb=disk,
            total_containers=containers,
            available_memory_mb=memory,
            available_disk_mb=disk,
            available_containers=containers,
            starting_containers=0,
            cell_index=i // zones,
        )
        for i in range(cell_count)
    ]
    lrps: list[LRPStartRequest] = []
    app = 0
    while len(lrps) < instances:
        count = min(rng.randint(1, 25), instances - len(lrps))
        memory_mb = rng.choice((32, 128, 1024))
        lrps.extend(LRPStartRequest(f"app-{app}", index, memory_mb, 1024) for index in range(count))
        app += 1
    rng.shuffle(lrps)
    return cells, lrps


if __name__ == "__main__":
    import argparse
    import statistics
    import time

    parser = argparse.ArgumentParser(description="time `schedule` on a synthetic deploy")
    parser.add_argument("instances", type=int, nargs="?", default=25_000)
    parser.add_argument("cells", type=int, nargs="?", default=100)
    parser.add_argument("--zones", type=int, default=3)
    parser.add_argument("--reference", action="store_true", help="also time schedule_reference and compare")
    args = parser.parse_args()

    cells, lrps = _benchmark_cluster(args.instances, args.cells, args.zones)
    started = time.process_time()
    results = schedule(cells, lrps)
    elapsed = time.process_time() - started
    per_cell: dict[str, int] = {}
    for placement in results.placed:
        per_cell[placement.cell_id] = per_cell.get(placement.cell_id, 0) + placement.work.memory_mb
    used = list(per_cell.values())
    print(
        f"schedule: {len(lrps)} instances on {len(cells)} cells in {args.zones} zones: "
        f"{elapsed:.2f} s CPU, {len(lrps) / elapsed:,.0f} placements/s; "
        f"placed {len(results.placed)}, failed {len(results.failed)}; "
        f"memory per cell stddev/mean {statistics.pstdev(used) / statistics.mean(used):.3f}"
    )
    if args.reference:
        started = time.process_time()
        reference = schedule_reference(cells, lrps)
        elapsed = time.process_time() - started
        print(f"schedule_reference: {elapsed:.2f} s CPU; identical: {reference == results}")
