"""Diego's auction simulation scenarios (cloudfoundry/auction `simulation/`),
run through real bid rounds between a real BBS, auctioneer and cell actors:
1 MB instances on 100 MB cells in 2 zones."""

from __future__ import annotations

from collections import Counter

import pytest

from actors.auctioneer.simulation import AppSpec, Cluster, spread_ok
from protocol.auction import AuctionConfig

pytestmark = pytest.mark.anyio


def per_cell(cluster: Cluster) -> list[int]:
    return [sum(apps.values()) for apps in cluster.placements().values()]


@pytest.mark.parametrize(("apps", "cells"), [(8, 4), (40, 10), (200, 20), (800, 40)])
async def test_a_cold_start_of_single_instance_apps_lands_within_one_of_the_mean(system, apps, cells):
    cluster = await Cluster.start(system, cells=cells, zones=2, memory_mb=100)
    cluster.desire([AppSpec(f"app-{i}", 1, 1) for i in range(apps)])
    counts = await cluster.wait_placed(apps)
    assert counts["placed"] == apps
    assert spread_ok(per_cell(cluster), 1.0), per_cell(cluster)


async def test_a_deploy_onto_mostly_preloaded_cells_spreads_within_one_of_the_mean(system):
    preloaded = {i: frozenset({"preload"}) for i in range(1, 96)}
    cluster = await Cluster.start(system, cells=100, zones=2, memory_mb=100, optional_tags=preloaded)
    # 95 cells preloaded with 50 instances each (the tag keeps them off cells
    # 96-100); as in Diego's simulation, the containers are still starting.
    cluster.desire(
        [AppSpec(f"pre-{i}", 50, 1, placement_tags=frozenset({"preload"})) for i in range(95)], stay_starting=True
    )
    await cluster.wait_placed(95 * 50)
    before = per_cell(cluster)
    # Zone spreading per app puts z2's 47 preloaded cells one above z1's 48.
    assert all(49 <= n <= 51 for n in before[:95]) and before[95:] == [0] * 5
    cluster.desire([AppSpec(f"app-{i}", 1, 1) for i in range(1000)], stay_starting=True)
    counts = await cluster.wait_placed(95 * 50 + 1000)
    assert counts["placed"] == 95 * 50 + 1000
    assert spread_ok(per_cell(cluster), 1.0), per_cell(cluster)


async def test_one_apps_instances_split_equally_across_zones_even_with_one_zone_preloaded(system):
    # Odd cells are zone z1; preload only them.
    z1 = {i: frozenset({"z1-load"}) for i in range(1, 21, 2)}
    cluster = await Cluster.start(system, cells=20, zones=2, memory_mb=100, optional_tags=z1)
    cluster.desire([AppSpec(f"load-{i}", 10, 2, placement_tags=frozenset({"z1-load"})) for i in range(20)])
    await cluster.wait_placed(200)
    cluster.desire([AppSpec("web", 40, 1)])
    await cluster.wait_placed(240)
    zones: Counter[str] = Counter()
    for config in cluster.cell_configs:
        zones[config.zone] += cluster.placements()[config.cell_id].get("web", 0)
    assert zones == {"z1": 20, "z2": 20}


async def test_bin_pack_first_fit_fills_the_lowest_indexed_cells_first(system):
    cluster = await Cluster.start(
        system, cells=4, zones=2, memory_mb=100, auction=AuctionConfig(bin_pack_first_fit_weight=100.0)
    )
    cluster.desire([AppSpec(f"app-{i}", 1, 1) for i in range(150)])
    await cluster.wait_placed(150)
    assert per_cell(cluster) == [100, 50, 0, 0]


async def test_a_full_cell_places_exactly_fifty_one_and_fails_thirty_one(system):
    cluster = await Cluster.start(system, cells=1, zones=1, memory_mb=100)
    cluster.desire([AppSpec(f"small-{i}", 1, 1) for i in range(80)] + [AppSpec("big", 2, 50)])
    counts = await cluster.wait_placed(82)
    assert counts["placed"] == 51
    assert counts["failed"] == 31
    placed = cluster.placements()["cell-1"]
    assert placed.get("big") == 1
    failures = await cluster.failures()
    assert ("big", 1) in failures and ("big", 0) not in failures
    assert set(failures.values()) == {"insufficient resources: memory"}
    stats = await cluster.auction_stats()
    assert stats.placed == 51 and stats.failed == 31


async def test_each_auction_records_its_wait_time_and_attempts(system):
    cluster = await Cluster.start(system, cells=4, zones=2, memory_mb=100)
    cluster.desire([AppSpec(f"app-{i}", 2, 1) for i in range(10)])
    await cluster.wait_placed(20)
    stats = await cluster.auction_stats()
    assert stats.rounds >= 1
    assert stats.attempts_min == 1 and stats.attempts_max >= 1
    assert stats.wait_max >= stats.wait_min >= 0


async def test_constraints_apply_through_real_rounds_and_failures_carry_diegos_wording(system):
    cluster = await Cluster.start(
        system,
        cells=4,
        zones=2,
        memory_mb=100,
        optional_tags={1: frozenset({"gpu"})},
        volume_drivers={2: frozenset({"nfs"})},
    )
    cluster.desire(
        [
            AppSpec("tagged", 2, 1, placement_tags=frozenset({"gpu"})),
            AppSpec("nfs-app", 1, 1, volume_drivers=frozenset({"nfs"})),
            AppSpec("no-such-tag", 1, 1, placement_tags=frozenset({"tpu"})),
            AppSpec("no-such-driver", 1, 1, volume_drivers=frozenset({"smb"})),
        ]
    )
    await cluster.wait_placed(5)
    placed = cluster.placements()
    assert placed["cell-1"].get("tagged") == 2
    assert placed["cell-2"].get("nfs-app") == 1
    failures = await cluster.failures()
    assert failures[("no-such-tag", 0)] == 'found no compatible cell with placement tag(s) "tpu"'
    assert failures[("no-such-driver", 0)].startswith("found no compatible cell with volume drivers")


def test_the_auctioneers_tally_of_a_round_is_the_tally_of_each_item_in_turn():
    import random

    from actors.auctioneer.actor import AuctionStats

    rng = random.Random(4)
    rounds = [[(rng.uniform(0, 30), rng.randint(1, 4)) for _ in range(rng.randint(0, 50))] for _ in range(8)]
    one_by_one, by_round = AuctionStats(), AuctionStats()
    for items in rounds:
        for waited, attempts in items:
            # What a running tally does, item after item.
            s = one_by_one
            s.finished += 1
            s.wait_min, s.wait_max, s.wait_sum = min(s.wait_min, waited), max(s.wait_max, waited), s.wait_sum + waited
            s.attempts_min, s.attempts_max = min(s.attempts_min, attempts), max(s.attempts_max, attempts)
            s.attempts_sum += attempts
        by_round.record_many([w for w, _ in items], [a for _, a in items])
    assert by_round.snapshot() == one_by_one.snapshot()  # to the last bit of the wait sum
    assert by_round.finished == sum(len(r) for r in rounds)
