"""Convergence planning: what the BBS must do to bring actual LRPs back in
line with the desired ones, as a pure function of its books and the time.

Like the auctioneer's `schedule`, `plan_convergence` decides and changes
nothing; the `bbs` actor carries the plan out (and auctions what it says).
Diego's rules (section 5 of the design notes):

- a desired index with no actual LRP gets one, to be auctioned;
- an UNCLAIMED actual is auctioned again once its last request is older
  than the auction grace (a request or its outcome was lost);
- an actual CLAIMED or RUNNING on a cell that is no longer present is lost:
  UNCLAIMED, auctioned again;
- a claim that never turned RUNNING within the health-check timeout plus the
  claim grace is taken back (stopped on its cell) and auctioned again;
- a CRASHED actual whose backoff is over is restarted;
- an evacuating actual whose replacement was not placed within the grace
  gets its replacement auctioned again;
- actuals past the desired instance count, and those of LRPs no longer
  desired, are retired;
- PENDING tasks whose auction request is older than the grace are
  requested again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from actors.bbs.books import ActualEntry, TaskEntry
from protocol.lrp import DesiredLRP
from protocol.states import ActualLRPState, TaskState

__all__ = ["ConvergencePlan", "plan_convergence"]

Key = tuple[str, int]  # (process_guid, index)


@dataclass(frozen=True, slots=True)
class ConvergencePlan:
    """What one convergence run must do, by the actual LRPs' keys."""

    create: tuple[Key, ...] = ()  # missing: a new actual LRP, auctioned
    auction: tuple[Key, ...] = ()  # UNCLAIMED, its request lost: auctioned again
    cell_lost: tuple[Key, ...] = ()  # on a cell no longer present: unclaimed, auctioned
    claim_expired: tuple[Key, ...] = ()  # never came up: stopped, unclaimed, auctioned
    restart: tuple[Key, ...] = ()  # CRASHED, backoff over: auctioned
    replace: tuple[Key, ...] = ()  # evacuating, replacement lost: auctioned again
    retire: tuple[Key, ...] = ()  # past the instance count
    undesired: tuple[str, ...] = ()  # process guids with actuals but no desired LRP
    tasks: tuple[str, ...] = ()  # PENDING tasks to request again

    @property
    def to_auction(self) -> int:
        return len(self.create + self.auction + self.cell_lost + self.claim_expired + self.restart + self.replace)


def plan_convergence(
    desired: Mapping[str, DesiredLRP],
    actuals: Mapping[str, Mapping[int, ActualEntry]],
    tasks: Mapping[str, TaskEntry],
    present: Mapping[str, object],
    *,
    now: float,
    auction_grace: float,
    claim_grace: float,
) -> ConvergencePlan:
    """The plan for the books as they stand at `now` (see the module docstring)."""
    create: list[Key] = []
    auction: list[Key] = []
    cell_lost: list[Key] = []
    claim_expired: list[Key] = []
    restart: list[Key] = []
    replace: list[Key] = []
    retire: list[Key] = []
    for process_guid, lrp in desired.items():
        book = actuals.get(process_guid, {})
        for index in range(lrp.instances):
            key = (process_guid, index)
            actual = book.get(index)
            if actual is None:
                create.append(key)
                continue
            state = actual.state
            if state is ActualLRPState.UNCLAIMED:
                if actual.requested_at is None or now - actual.requested_at >= auction_grace:
                    auction.append(key)
            elif state in (ActualLRPState.CLAIMED, ActualLRPState.RUNNING) and actual.cell_id not in present:
                cell_lost.append(key)
            elif state is ActualLRPState.CLAIMED and actual.claimed_at is not None:
                if now - actual.claimed_at > lrp.health_check_timeout_s + claim_grace:
                    claim_expired.append(key)
            elif state is ActualLRPState.CRASHED and actual.next_restart_at is not None:
                if now >= actual.next_restart_at:
                    restart.append(key)
            elif actual.evacuating and (
                actual.replacement_requested_at is None or now - actual.replacement_requested_at >= auction_grace
            ):
                replace.append(key)
        retire.extend((process_guid, index) for index in book if index >= lrp.instances)
    undesired = tuple(pg for pg in actuals if pg not in desired)
    pending = tuple(
        guid
        for guid, task in tasks.items()
        if task.state is TaskState.PENDING and (task.requested_at is None or now - task.requested_at >= auction_grace)
    )
    return ConvergencePlan(
        tuple(create),
        tuple(auction),
        tuple(cell_lost),
        tuple(claim_expired),
        tuple(restart),
        tuple(replace),
        tuple(retire),
        undesired,
        pending,
    )
