"""The `auctioneer` actor: batches work and places it by bid rounds with cells.

A round, as Diego's auctioneer runs it:

1. fetch the state of every present cell in parallel, each with its own
   deadline; cells that time out, answer with the wrong id or are
   evacuating are left out of this round;
2. take the batch — work that arrived during the fetch joins it — with
   duplicates removed;
3. schedule (`actors.auctioneer.scheduler.schedule`: Diego's order,
   constraints, scores and zone spreading);
4. commit: each winning cell is asked to perform its work and may refuse
   some; refused and unplaced work goes back to the BBS as a result.

The auctioneer never retries on its own: the BBS does (convergence for LRPs,
up to three rejections for tasks). Work held back by the starting-container
limit stays in the batch for the next round.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import operator
from collections import Counter
from itertools import chain, repeat
from typing import Any

import structlog

from actors.auctioneer.scheduler import schedule
from actors.runtime import AsyncioActor, handles
from actors.runtime.delivery import current_trace
from actors.runtime.errors import AskTimeout
from protocol.auction import (
    AuctionConfig,
    CellState,
    LRPStartRequest,
    PlacementError,
    PlacementErrorKind,
    TaskRequest,
)
from protocol.messages import AuctioneerStats, AuctionOutcome, FetchCellState, ListCells, Perform, RequestAuctions
from protocol.snapshots import AuctionStatistics

__all__ = ["AuctionStats", "AuctioneerActor", "AuctioneerConfig"]

log = structlog.get_logger("minifoundry.auctioneer")


@dataclasses.dataclass(frozen=True, slots=True)
class AuctioneerConfig:
    auction: AuctionConfig = AuctionConfig()
    cell_state_timeout: float = 1.0  # per cell, platform seconds
    perform_timeout: float = 5.0


@dataclasses.dataclass(slots=True)
class AuctionStats:
    """The auctioneer's running tally; `snapshot()` is what it hands out."""

    rounds: int = 0
    placed: int = 0
    failed: int = 0
    rejected: int = 0
    deferred: int = 0
    cells_unreachable: int = 0
    wait_min: float = float("inf")
    wait_max: float = 0.0
    wait_sum: float = 0.0
    attempts_min: int = 1 << 30
    attempts_max: int = 0
    attempts_sum: int = 0
    finished: int = 0
    last_round_seconds: float = 0.0
    failures_by_reason: dict[str, int] = dataclasses.field(default_factory=dict)

    def record(self, waited: float, attempts: int) -> None:
        self.record_many([waited], [attempts])

    def record_many(self, waits: list[float], attempts: list[int]) -> None:
        """Work that finished: how long each waited and in how many rounds."""
        if not waits:
            return
        self.finished += len(waits)
        self.wait_min = min(self.wait_min, min(waits))
        self.wait_max = max(self.wait_max, max(waits))
        # Added one by one, in order, as a running total does.
        self.wait_sum = functools.reduce(operator.add, waits, self.wait_sum)
        self.attempts_min = min(self.attempts_min, min(attempts))
        self.attempts_max = max(self.attempts_max, max(attempts))
        self.attempts_sum += sum(attempts)

    def snapshot(self) -> AuctionStatistics:
        n = max(self.finished, 1)
        return AuctionStatistics(
            rounds=self.rounds,
            placed=self.placed,
            failed=self.failed,
            rejected=self.rejected,
            deferred=self.deferred,
            cells_unreachable=self.cells_unreachable,
            wait_min=0.0 if self.finished == 0 else self.wait_min,
            wait_mean=self.wait_sum / n,
            wait_max=self.wait_max,
            attempts_min=0 if self.finished == 0 else self.attempts_min,
            attempts_mean=self.attempts_sum / n,
            attempts_max=self.attempts_max,
            failures_by_reason=tuple(sorted(self.failures_by_reason.items())),
            last_round_seconds=self.last_round_seconds,
        )


Key = tuple[str, int] | str  # (process_guid, index) for an LRP, task_guid for a task
_VARIED = object()  # "the work's traces are not known to be one": look each up
REJECTED = PlacementError(PlacementErrorKind.REJECTED, "rejected")


class AuctioneerActor(AsyncioActor):
    default_name = "auctioneer"

    def __init__(self, config: AuctioneerConfig | None = None, *, name: str = "auctioneer") -> None:
        super().__init__(name=name)
        self.config = config or AuctioneerConfig()
        self._lrps: dict[tuple[str, int], LRPStartRequest] = {}
        self._tasks: dict[str, TaskRequest] = {}
        self._trace: dict[Key, Any] = {}
        # Every trace the waiting work has (or had: a duplicate request that
        # replaced one may leave a trace no work has). One trace there means
        # all the work has it, and a round need not look each item's up.
        self._pending_traces: set[Any] = set()
        self._first_seen: dict[Key, float] = {}
        self._attempts: Counter[Key] = Counter()
        self._round: asyncio.Task[None] | None = None
        self.stats = AuctionStats()

    @handles(AuctioneerStats)
    def _statistics(self, _message: AuctioneerStats) -> AuctionStatistics:
        return self.statistics()

    def statistics(self) -> AuctionStatistics:
        return self.stats.snapshot()

    @handles(RequestAuctions)
    def _enqueue(self, message: RequestAuctions) -> None:
        now = self.clock.monotonic()
        trace = current_trace.get()
        # Thousands of requests at once: each step below is one C-level pass.
        lrp_keys = [(lrp.process_guid, lrp.index) for lrp in message.lrps]
        task_keys = [task.task_guid for task in message.tasks]
        self._lrps.update(zip(lrp_keys, message.lrps, strict=True))  # a duplicate replaces, never doubles
        self._tasks.update(zip(task_keys, message.tasks, strict=True))
        keys = lrp_keys + task_keys
        self._trace.update(dict.fromkeys(keys, trace))
        self._pending_traces.add(trace)
        first_seen = self._first_seen
        if first_seen:
            keys = [key for key in keys if key not in first_seen]
        first_seen.update(dict.fromkeys(keys, now))
        if self._round is None or self._round.done():
            self._round = self.spawn(self._run_rounds(), name="auctioneer:rounds")

    async def _run_rounds(self) -> None:
        while self._lrps or self._tasks:
            progressed = await self._one_round()
            if not progressed:
                # Only deferred work is left (starting-container limit):
                # give starting containers time to come up.
                await self.clock.sleep(1.0)

    def _traces(self, keys: Any, shared: Any = _VARIED) -> Any:
        """The conversation(s) of this work: one trace, a sorted tuple of
        them, or None; `shared`, when it is not _VARIED, is the one trace
        all of it is known to have."""
        if shared is not _VARIED:
            return shared
        traces = set(map(self._trace.get, keys))
        traces.discard(None)
        if not traces:
            return None
        if len(traces) == 1:
            return next(iter(traces))
        return tuple(sorted(traces, key=str))

    async def _one_round(self) -> bool:
        started = self.clock.monotonic()
        step = 7 if self._tasks else 11
        token = current_trace.set(self._traces(chain(self._lrps, self._tasks), _shared(self._pending_traces)))
        try:
            cells = await self._fetch_cells(step)
        finally:
            current_trace.reset(token)
        # Take the batch now: whatever arrived while we fetched joins it.
        lrps, self._lrps = self._lrps, {}
        tasks, self._tasks = self._tasks, {}
        shared = _shared(self._pending_traces)
        self._pending_traces = set()
        results = schedule(cells, lrps.values(), tasks.values(), self.config.auction)
        self._attempts.update(chain(lrps, tasks))
        # Deferred work waits for the next round.
        for work in results.deferred:
            key: Key
            if isinstance(work, LRPStartRequest):
                key = lrp_key = (work.process_guid, work.index)
                self._lrps[lrp_key] = work
            else:
                key = work.task_guid
                self._tasks[key] = work
            self._pending_traces.add(self._trace.get(key) if shared is _VARIED else shared)
        by_cell: dict[str, tuple[list[LRPStartRequest], list[TaskRequest]]] = {}
        for placement in results.placed:
            entry = by_cell.setdefault(placement.cell_id, ([], []))
            if isinstance(placement.work, LRPStartRequest):
                entry[0].append(placement.work)
            else:
                entry[1].append(placement.work)
        refused = await self._commit(by_cell, shared)
        placed_lrps: list[tuple[LRPStartRequest, str]] = []
        placed_tasks: list[tuple[TaskRequest, str]] = []
        failed_lrps: list[tuple[LRPStartRequest, PlacementError]] = []
        failed_tasks: list[tuple[TaskRequest, PlacementError]] = []
        for placement in results.placed:
            work = placement.work
            if id(work) in refused:
                reason = refused[id(work)]
                (failed_lrps if isinstance(work, LRPStartRequest) else failed_tasks).append((work, reason))  # type: ignore[arg-type]
            elif isinstance(work, LRPStartRequest):
                placed_lrps.append((work, placement.cell_id))
            else:
                placed_tasks.append((work, placement.cell_id))
        for failure in results.failed:
            work = failure.work
            (failed_lrps if isinstance(work, LRPStartRequest) else failed_tasks).append((work, failure.error))  # type: ignore[arg-type]
        now = self.clock.monotonic()
        stats = self.stats
        stats.rounds += 1
        stats.placed += len(placed_lrps) + len(placed_tasks)
        failures = [error for _, error in failed_lrps] + [error for _, error in failed_tasks]
        stats.failed += sum(1 for e in failures if e.kind is not PlacementErrorKind.REJECTED)
        stats.rejected += sum(1 for e in failures if e.kind is PlacementErrorKind.REJECTED)
        stats.deferred += len(results.deferred)
        for error in failures:
            if error.kind is not PlacementErrorKind.REJECTED:
                stats.failures_by_reason[error.message] = stats.failures_by_reason.get(error.message, 0) + 1
        finished_keys: list[Key] = [(w.process_guid, w.index) for w, _ in placed_lrps]
        finished_keys += [w.task_guid for w, _ in placed_tasks]
        n = len(finished_keys)
        waits = [now - first for first in map(self._first_seen.pop, finished_keys, repeat(now, n))]
        stats.record_many(waits, list(map(self._attempts.pop, finished_keys, repeat(1, n))))
        outcome_keys: list[Key] = finished_keys + [(w.process_guid, w.index) for w, _ in failed_lrps]
        outcome_keys += [w.task_guid for w, _ in failed_tasks]
        token = current_trace.set(self._traces(outcome_keys, shared))
        try:
            self.system.tell(
                "bbs",
                AuctionOutcome(
                    placed_lrps=tuple(placed_lrps),
                    placed_tasks=tuple(placed_tasks),
                    failed_lrps=tuple(failed_lrps),
                    failed_tasks=tuple(failed_tasks),
                    step=step,
                ),
            )
        finally:
            current_trace.reset(token)
        _pop_all(self._trace, outcome_keys)
        stats.last_round_seconds = self.clock.monotonic() - started
        log.info(
            "auction-round-finished",
            cells=len(cells),
            placed=len(placed_lrps) + len(placed_tasks),
            failed=len(failed_lrps) + len(failed_tasks),
            deferred=len(results.deferred),
        )
        return bool(results.placed or results.failed)

    async def _fetch_cells(self, step: int) -> list[CellState]:
        try:
            presences = await self.ask("bbs", ListCells(step=step), timeout=self.config.cell_state_timeout * 5)
        except (AskTimeout, Exception) as exc:  # noqa: BLE001 - a failed fetch is "no cells"
            log.warning("fetching-cells-failed", error=repr(exc))
            return []
        wanted = [p for p in presences if not p.draining]
        # One round: the same ask to every cell at once, one deadline for it
        # (`ActorSystem.request_all`); a cell no longer registered by name
        # answers nothing (unreachable).
        system = self.system
        refs = [system.lookup(p.cell_id) for p in wanted]
        present = [ref for ref in refs if ref is not None]
        asked = system.request_all(present, FetchCellState(step=step), timeout=self.config.cell_state_timeout)
        answers = iter(await asyncio.gather(*asked, return_exceptions=True))
        replies = [None if ref is None else next(answers) for ref in refs]
        cells: list[CellState] = []
        unreachable = 0
        for presence, reply in zip(wanted, replies, strict=True):
            if not isinstance(reply, CellState):
                unreachable += 1
                continue
            if reply.cell_id != presence.cell_id or reply.evacuating:
                continue  # wrong id (a stale registration) or draining
            cells.append(reply)
        self.stats.cells_unreachable += unreachable
        cells.sort(key=lambda c: (c.cell_index, c.cell_id))
        return cells

    async def _commit(
        self, by_cell: dict[str, tuple[list[LRPStartRequest], list[TaskRequest]]], shared: Any = _VARIED
    ) -> dict[int, PlacementError]:
        """Send each winner its work; return refused work (by id) with the
        error. `shared`: the one trace all the work has, if known."""
        refused: dict[int, PlacementError] = {}

        async def perform(cell_id: str, lrps: list[LRPStartRequest], tasks: list[TaskRequest]) -> None:
            traces: tuple[Any, ...] = ()
            if shared is _VARIED:
                keys: list[Key] = [(w.process_guid, w.index) for w in lrps] + [t.task_guid for t in tasks]
                token = current_trace.set(self._traces(keys))
                traces = tuple(map(self._trace.get, keys))
                if len(set(traces)) == 1:
                    traces = ()  # one conversation: the message's trace is every item's
            else:
                token = current_trace.set(shared)
            try:
                ref = self.system.lookup(cell_id)
                if ref is None:
                    raise AskTimeout(f"{cell_id} is gone")
                result = await ref.request(
                    Perform(lrps=tuple(lrps), tasks=tuple(tasks), traces=traces),
                    timeout=self.config.perform_timeout,
                )
            except Exception as exc:  # noqa: BLE001 - the cell is unreachable: its work failed
                log.warning("perform-failed", cell_id=cell_id, error=repr(exc))
                lost = PlacementError(PlacementErrorKind.CELLS_UNREACHABLE, f"failed to communicate with {cell_id}")
                for work in [*lrps, *tasks]:
                    refused[id(work)] = lost
                return
            finally:
                current_trace.reset(token)
            for work in result.rejected_lrps:
                refused[id(_same(lrps, work))] = REJECTED
            for work in result.rejected_tasks:
                refused[id(_same(tasks, work))] = REJECTED

        await asyncio.gather(*(perform(cid, lr, ts) for cid, (lr, ts) in by_cell.items()))
        return refused


def _shared(traces: set[Any]) -> Any:
    """The one trace of work whose traces are among `traces`, or _VARIED."""
    return next(iter(traces)) if len(traces) == 1 else _VARIED


def _pop_all(book: dict[Any, Any], keys: list[Any]) -> None:
    """Remove `keys` from `book` (those it has): one pass of `map`, no Python call per key."""
    for _ in map(book.pop, keys, repeat(None, len(keys))):
        pass


def _same(candidates: list[Any], work: Any) -> Any:
    """The object we sent that equals `work` (replies may be copies)."""
    for candidate in candidates:
        if candidate is work:
            return candidate
    for candidate in candidates:
        if candidate == work:
            return candidate
    return work
