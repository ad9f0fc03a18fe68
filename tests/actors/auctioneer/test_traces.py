"""Which conversation a round's messages belong to: each cell's Perform and
the round's outcome carry the traces of the work they are about, whether the
round's work all came from one conversation or from several."""

from __future__ import annotations

import pytest

from actors.auctioneer.simulation import AppSpec, Cluster
from actors.runtime.delivery import current_trace
from protocol.messages import AuctionOutcome, Perform

pytestmark = pytest.mark.anyio


def _traces_of(names: set[str]) -> object:
    traces = sorted(f"push-{name}" for name in names)
    return traces[0] if len(traces) == 1 else tuple(traces)


async def _round(system, apps: list[tuple[str, int]], cells: int):
    sent: list[tuple[object, object]] = []
    system.seam.add_observer(
        lambda envelope, receiver: (
            sent.append((envelope[3], envelope[0])) if isinstance(envelope[0], Perform | AuctionOutcome) else None
        )
    )
    cluster = await Cluster.start(system, cells=cells, zones=1, memory_mb=1000)
    for name, count in apps:
        token = current_trace.set(f"push-{name}")
        try:
            cluster.desire([AppSpec(name, count, 10)], startup_seconds=1.0)
        finally:
            current_trace.reset(token)
    await cluster.wait_placed(sum(count for _, count in apps))
    return sent


@pytest.mark.parametrize(
    "apps",
    [[("a", 6)], [("a", 3), ("b", 2), ("c", 1)]],
    ids=["one conversation", "three conversations"],
)
async def test_each_perform_and_the_outcome_carry_the_traces_of_their_own_work(system, apps):
    sent = await _round(system, apps, cells=3)
    performs = [(trace, m) for trace, m in sent if isinstance(m, Perform)]
    outcomes = [(trace, m) for trace, m in sent if isinstance(m, AuctionOutcome)]
    assert performs and len(outcomes) == 1
    for trace, perform in performs:
        assert trace == _traces_of({w.process_guid for w in perform.lrps})
        # each item's own conversation, when the message carries several
        own = [f"push-{w.process_guid}" for w in perform.lrps]
        assert list(perform.traces) == ([] if len(set(own)) == 1 else own)
    if len(apps) > 1:
        assert any(perform.traces for _, perform in performs)
    trace, outcome = outcomes[0]
    assert trace == _traces_of({w.process_guid for w, _ in outcome.placed_lrps})
    assert len(outcome.placed_lrps) == sum(count for _, count in apps)
