import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.auctioneer.scheduler import NO_CELLS, schedule, schedule_reference
from protocol.auction import (
    AuctionConfig,
    AuctionResults,
    CellState,
    LRPStartRequest,
    Placement,
    PlacementError,
    PlacementErrorKind,
    PlacementFailure,
    TaskRequest,
)

both_schedulers = pytest.mark.parametrize("scheduler", [schedule, schedule_reference], ids=["fast", "reference"])


def no_room(*resources: str) -> PlacementError:
    return PlacementError(PlacementErrorKind.INSUFFICIENT_RESOURCES, "insufficient resources: " + ", ".join(resources))


def cell(
    cell_id: str,
    *,
    zone: str = "z1",
    memory: int = 100,
    disk: int = 100,
    containers: int = 100,
    used_memory: int = 0,
    used_disk: int = 0,
    used_containers: int | None = None,
    starting: int = 0,
    rootfs=("cflinuxfs4",),
    required=(),
    optional=(),
    lrp_counts=None,
    tasks: int = 0,
    evacuating: bool = False,
    index: int = 0,
) -> CellState:
    lrp_counts = lrp_counts or {}
    if used_containers is None:
        used_containers = sum(lrp_counts.values()) + tasks
    return CellState(
        cell_id=cell_id,
        zone=zone,
        rootfs_providers=frozenset(rootfs),
        volume_drivers=frozenset(),
        required_tags=frozenset(required),
        optional_tags=frozenset(optional),
        total_memory_mb=memory,
        total_disk_mb=disk,
        total_containers=containers,
        available_memory_mb=memory - used_memory,
        available_disk_mb=disk - used_disk,
        available_containers=containers - used_containers,
        starting_containers=starting,
        lrp_counts=lrp_counts,
        task_count=tasks,
        evacuating=evacuating,
        cell_index=index,
    )


def lrp(guid: str = "app", index: int = 0, memory: int = 1, disk: int = 1, **kwargs) -> LRPStartRequest:
    return LRPStartRequest(guid, index, memory, disk, **kwargs)


def app(guid: str, instances: int, memory: int = 1, disk: int = 1) -> list[LRPStartRequest]:
    return [lrp(guid, index, memory, disk) for index in range(instances)]


def task(guid: str = "task", memory: int = 1, disk: int = 1, **kwargs) -> TaskRequest:
    return TaskRequest(guid, memory, disk, **kwargs)


def winners(results: AuctionResults) -> list[str]:
    return [placement.cell_id for placement in results.placed]


def instances_per_cell(results: AuctionResults, cells: list[CellState]) -> dict[str, int]:
    counts = Counter(winners(results))
    return {c.cell_id: counts[c.cell_id] for c in cells}


# --- single decisions ----------------------------------------------------------


@both_schedulers
def test_an_lrp_goes_to_the_emptiest_cell(scheduler):
    cells = [
        cell("busy", used_memory=60),
        cell("idle", used_memory=10),
        cell("full-ish", used_memory=90),
    ]

    assert winners(scheduler(cells, [lrp()])) == ["idle"]


@both_schedulers
def test_the_placement_carries_the_winning_score(scheduler):
    cells = [cell("only", used_memory=50, used_disk=20, used_containers=10)]

    (placement,) = scheduler(cells, [lrp(memory=10, disk=10)]).placed

    assert placement.score == pytest.approx(((0.6) + (0.3) + (0.11)) / 3)


@both_schedulers
def test_instances_of_one_app_go_to_different_cells_before_doubling_up(scheduler):
    cells = [cell("c1"), cell("c2", used_memory=80), cell("c3")]

    results = scheduler(cells, app("web", 3))

    assert sorted(winners(results)) == ["c1", "c2", "c3"]


@both_schedulers
def test_a_cell_already_running_the_app_is_avoided_even_when_emptier(scheduler):
    cells = [
        cell("has-one", lrp_counts={"web": 1}),
        cell("crowded", used_memory=95, lrp_counts={"other": 40}),
    ]

    assert winners(scheduler(cells, [lrp("web", 1)])) == ["crowded"]


@both_schedulers
def test_a_cell_that_won_bids_worse_for_the_next_item(scheduler):
    cells = [cell("c1"), cell("c2")]

    results = scheduler(cells, [lrp("a"), lrp("b")])

    assert winners(results) == ["c1", "c2"]


@both_schedulers
def test_ties_go_to_the_cell_listed_first(scheduler):
    cells = [cell("x"), cell("y"), cell("z")]

    assert winners(scheduler(cells, [lrp()])) == ["x"]
    assert winners(scheduler(cells[::-1], [lrp()])) == ["z"]


@both_schedulers
def test_instances_spread_across_zones_before_filling_a_zone(scheduler):
    cells = [cell("a1", zone="a"), cell("a2", zone="a"), cell("b1", zone="b", used_memory=70)]

    results = scheduler(cells, app("web", 2))

    assert sorted(winners(results)) == ["a1", "b1"]


@both_schedulers
def test_zones_holding_equally_many_instances_compete_as_one_group(scheduler):
    # zone "a" sorts first by name, but "b"'s cell scores lower and both zones hold none
    cells = [cell("a1", zone="a", used_memory=50), cell("b1", zone="b")]

    assert winners(scheduler(cells, [lrp("web")])) == ["b1"]


@both_schedulers
def test_a_zone_without_room_gives_way_to_the_next_zone(scheduler):
    cells = [
        cell("a1", zone="a", lrp_counts={"web": 1}),
        cell("b1", zone="b", used_memory=100),
    ]

    assert winners(scheduler(cells, [lrp("web", 1)])) == ["a1"]


@both_schedulers
def test_instances_on_incompatible_cells_still_count_for_their_zone(scheduler):
    # Diego counts a zone's instances over all its cells, then filters cells.
    cells = [
        cell("a-gpu", zone="a", required={"gpu"}, lrp_counts={"web": 3}),
        cell("a-plain", zone="a"),
        cell("b-plain", zone="b", used_memory=60),
    ]

    assert winners(scheduler(cells, [lrp("web", 3)])) == ["b-plain"]


@both_schedulers
def test_the_bin_pack_weight_fills_low_index_cells_first(scheduler):
    cells = [cell("second", index=1), cell("first", index=0)]
    config = AuctionConfig(bin_pack_first_fit_weight=10.0)

    assert winners(scheduler(cells, [lrp("a"), lrp("b")], config=config)) == ["first", "first"]


@both_schedulers
def test_a_task_avoids_cells_already_running_tasks(scheduler):
    cells = [cell("has-task", tasks=1), cell("busy", used_memory=90)]

    assert winners(scheduler(cells, tasks=[task()])) == ["busy"]


@both_schedulers
def test_tasks_ignore_zones(scheduler):
    cells = [cell("a1", zone="a", lrp_counts={"web": 5}), cell("b1", zone="b", used_memory=50)]

    assert winners(scheduler(cells, tasks=[task()])) == ["a1"]


# --- what takes part -------------------------------------------------------------


@both_schedulers
def test_evacuating_cells_are_skipped(scheduler):
    cells = [cell("draining", evacuating=True), cell("busy", used_memory=90)]

    assert winners(scheduler(cells, [lrp()])) == ["busy"]


@both_schedulers
def test_with_no_cells_to_bid_every_item_fails_as_unreachable(scheduler):
    cells = [cell("draining", evacuating=True)]

    results = scheduler(cells, [lrp()], [task()])

    assert [f.reason for f in results.failed] == [NO_CELLS, NO_CELLS]
    assert NO_CELLS == "unable to communicate to compatible cells"


@both_schedulers
def test_the_starting_container_maximum_defers_work_beyond_it(scheduler):
    cells = [cell("c1", starting=1), cell("c2", starting=1)]
    config = AuctionConfig(starting_container_count_maximum=5)
    work = app("web", 6)

    results = scheduler(cells, work, config=config)

    assert [p.work.index for p in results.placed] == [0, 1, 2]
    assert results.deferred == tuple(work[3:])
    assert results.failed == ()


@both_schedulers
def test_attempts_that_fail_still_use_up_the_starting_container_budget(scheduler):
    cells = [cell("c1", memory=10)]
    config = AuctionConfig(starting_container_count_maximum=2)

    results = scheduler(cells, [lrp("huge", memory=50), lrp("a"), lrp("b")], config=config)

    assert [f.work.process_guid for f in results.failed] == ["huge"]
    assert [p.work.process_guid for p in results.placed] == ["a"]
    assert [w.process_guid for w in results.deferred] == ["b"]


@both_schedulers
def test_starting_containers_on_evacuating_cells_do_not_count_toward_the_maximum(scheduler):
    cells = [cell("draining", starting=10, evacuating=True), cell("c1")]
    config = AuctionConfig(starting_container_count_maximum=2)

    assert len(scheduler(cells, app("web", 3), config=config).placed) == 2


@both_schedulers
def test_cells_scoring_alike_up_to_rounding_tie_on_their_real_scores(scheduler):
    # Exactly equal scores whose cheaper, request-free keys differ in the last bit.
    first = cell("first", memory=10, disk=10, containers=10, used_memory=9, used_disk=2, used_containers=6)
    second = cell("second", memory=10, disk=10, containers=10, used_memory=2, used_disk=6, used_containers=9)

    assert winners(scheduler([first, second], [lrp(memory=0, disk=0)])) == ["first"]


@both_schedulers
def test_the_lower_real_score_wins_even_when_rounding_orders_cells_the_other_way(scheduler):
    x = cell("x", memory=96, disk=96, containers=96, used_memory=22, used_disk=26, used_containers=83)
    y = cell("y", memory=96, disk=96, containers=96, used_memory=83, used_disk=22, used_containers=26)

    assert winners(scheduler([x, y], [lrp(memory=8, disk=0)])) == ["y"]


# --- failures --------------------------------------------------------------------


@both_schedulers
def test_work_too_big_for_every_cell_fails_naming_what_every_cell_lacked(scheduler):
    cells = [cell("c1", memory=64, disk=2048), cell("c2", memory=64, disk=100)]

    results = scheduler(cells, [lrp(memory=128, disk=1024)])

    assert results.failed == (PlacementFailure(lrp(memory=128, disk=1024), no_room("memory")),)


@both_schedulers
def test_a_cell_out_of_containers_fails_work_for_containers(scheduler):
    cells = [cell("c1", containers=2, used_containers=2)]

    (failure,) = scheduler(cells, tasks=[task()]).failed

    assert failure.reason == "insufficient resources: containers"


@both_schedulers
def test_a_failure_names_what_the_cells_lacked_when_it_was_attempted(scheduler):
    cells = [cell("c1", memory=10, containers=2)]
    work = [lrp("big", 0, memory=50), lrp("a"), lrp("b"), lrp("big", 1, memory=50)]

    results = scheduler(cells, work)

    assert [(f.work, f.reason) for f in results.failed] == [
        (work[0], "insufficient resources: memory"),
        (work[3], "insufficient resources: containers, memory"),
    ]


@both_schedulers
def test_constraint_failures_come_before_resource_checks(scheduler):
    cells = [cell("c1", memory=10)]

    results = scheduler(cells, [lrp(memory=500, rootfs="cflinuxfs3"), lrp("tagged", placement_tags={"gpu"})])

    assert [f.reason for f in results.failed] == [
        "found no compatible cell for required rootfs",
        'found no compatible cell with placement tag(s) "gpu"',
    ]


@both_schedulers
def test_results_keep_the_order_work_was_attempted_in(scheduler):
    cells = [cell("c1", memory=100)]
    work = [
        lrp("a", 1, memory=10),
        lrp("b", 0, memory=60),
        lrp("c", 0, memory=50),
        lrp("a", 0, memory=10),
    ]

    results = scheduler(cells, work, [task("t", memory=40)])

    assert [p.work for p in results.placed] == [work[1], work[3], work[0]]
    assert [f.work for f in results.failed] == [work[2], task("t", memory=40)]


# --- Diego's simulation scenarios, at the level of the algorithm -------------------


def simulation_cells(count: int, zones: int = 2, **kwargs) -> list[CellState]:
    return [cell(f"cell-{i:03}", zone=f"z{i % zones}", **kwargs) for i in range(count)]


def single_instance_apps(count: int, prefix: str = "app") -> list[LRPStartRequest]:
    return [lrp(f"{prefix}-{i}") for i in range(count)]


@both_schedulers
@pytest.mark.parametrize(("apps", "cells"), [(8, 4), (40, 10), (200, 20), (800, 40)])
def test_a_cold_start_lands_within_one_of_the_mean_on_every_cell(scheduler, apps, cells):
    cluster = simulation_cells(cells)

    results = scheduler(cluster, single_instance_apps(apps))

    per_cell = instances_per_cell(results, cluster).values()
    assert len(results.placed) == apps
    assert max(per_cell) - apps / cells <= 1 and apps / cells - min(per_cell) <= 1


@both_schedulers
def test_a_deploy_onto_mostly_full_cells_spreads_within_one_of_the_mean(scheduler):
    preloaded = [
        cell(
            f"cell-{i:03}",
            zone=f"z{i % 2}",
            used_memory=50,
            used_disk=50,
            lrp_counts={f"old-{i}-{j}": 1 for j in range(50)},
        )
        for i in range(95)
    ]
    empty = [cell(f"cell-{i:03}", zone=f"z{i % 2}") for i in range(95, 100)]
    cluster = preloaded + empty

    results = scheduler(cluster, single_instance_apps(500))

    per_cell = instances_per_cell(results, cluster).values()
    assert len(results.placed) == 500
    assert max(per_cell) <= 5 + 1 and min(per_cell) >= 5 - 1


@both_schedulers
def test_one_app_splits_equally_across_zones_when_one_zone_is_busy_with_other_apps(scheduler):
    cluster = [cell(f"a{i}", zone="a", used_memory=70, lrp_counts={f"old-{i}": 1}) for i in range(5)]
    cluster += [cell(f"b{i}", zone="b") for i in range(5)]

    results = scheduler(cluster, app("web", 40))

    assert Counter(c[0] for c in winners(results)) == {"a": 20, "b": 20}


@both_schedulers
def test_one_app_evens_out_across_zones_when_one_zone_already_runs_some(scheduler):
    cluster = [cell(f"a{i}", zone="a", lrp_counts={"web": 2}) for i in range(5)]
    cluster += [cell(f"b{i}", zone="b") for i in range(5)]

    results = scheduler(cluster, [lrp("web", index) for index in range(10, 50)])

    assert Counter(c[0] for c in winners(results)) == {"a": 15, "b": 25}


@both_schedulers
def test_a_full_cell_places_the_big_app_first_and_fails_what_no_longer_fits(scheduler):
    cluster = [cell("only", memory=100, disk=100, containers=100)]
    big = app("big", 2, memory=50)

    results = scheduler(cluster, single_instance_apps(80) + big)

    assert len(results.placed) == 51
    assert len(results.failed) == 31
    assert big[0] in [p.work for p in results.placed]
    assert big[1] in [f.work for f in results.failed]
    assert {f.reason for f in results.failed} == {"insufficient resources: memory"}


# --- the fast scheduler agrees with the reference ----------------------------------

ZONES = ("z1", "z2", "z3")
GUIDS = ("a", "b", "c", "d")
TAGS = ("gpu", "ssd", "edge")


def subsets(items, weight_empty: int = 3):
    return st.one_of(*[st.just(frozenset())] * weight_empty, st.frozensets(st.sampled_from(items)))


@st.composite
def clusters(draw) -> list[CellState]:
    count = draw(st.integers(1, 10))
    # A few shapes shared by several cells, so that ties and shared buckets happen.
    shapes = draw(
        st.lists(
            st.tuples(st.sampled_from([64, 100, 128]), st.sampled_from([100, 256]), st.integers(1, 6)),
            min_size=1,
            max_size=3,
        )
    )
    # Cells that differ only by which resource is used score alike in exact
    # arithmetic and a rounding error apart in floats.
    permuted = draw(st.none() | st.tuples(st.sampled_from([10, 96, 100]), st.integers(1, 10), st.integers(1, 10)))
    cells = []
    for i in range(count):
        memory, disk, containers = draw(st.sampled_from(shapes))
        if permuted is not None:
            total, low, high = permuted
            memory = disk = containers = total
            available = draw(st.permutations([total - low, total - high, total]))
        else:
            available = [
                draw(st.one_of(st.just(memory), st.integers(0, memory).map(lambda v: v - v % 8))),
                draw(st.one_of(st.just(disk), st.just(disk), st.integers(0, disk).map(lambda v: v - v % 16))),
                draw(st.one_of(st.just(containers), st.integers(0, containers))),
            ]
        cells.append(
            CellState(
                cell_id=f"cell-{i}",
                zone=draw(st.sampled_from(ZONES)),
                rootfs_providers=draw(
                    st.sampled_from(
                        [frozenset({"cflinuxfs4"})] * 3
                        + [frozenset({"cflinuxfs3"}), frozenset({"cflinuxfs4", "docker"})]
                    )
                ),
                volume_drivers=draw(
                    st.sampled_from([frozenset({"nfs"})] * 3 + [frozenset(), frozenset({"nfs", "smb"})])
                ),
                required_tags=draw(subsets(TAGS, weight_empty=8)),
                optional_tags=draw(subsets(TAGS, weight_empty=2)),
                total_memory_mb=memory,
                total_disk_mb=disk,
                total_containers=containers,
                available_memory_mb=available[0],
                available_disk_mb=available[1],
                available_containers=available[2],
                starting_containers=draw(st.integers(0, 3)),
                lrp_counts=draw(st.dictionaries(st.sampled_from(GUIDS), st.integers(0, 3), max_size=2)),
                task_count=draw(st.integers(0, 2)),
                evacuating=draw(st.sampled_from([False] * 7 + [True])),
                cell_index=draw(st.integers(0, 3)),
            )
        )
    return cells


constraints = {
    "rootfs": st.sampled_from(["cflinuxfs4"] * 8 + ["cflinuxfs3", "docker:///busybox"]),
    "placement_tags": subsets(TAGS, weight_empty=8),
    "volume_drivers": subsets(("nfs",), weight_empty=4),
}

lrp_requests = st.builds(
    LRPStartRequest,
    process_guid=st.sampled_from(GUIDS),
    index=st.integers(0, 5),
    memory_mb=st.sampled_from([0, 8, 16, 32, 64]),
    disk_mb=st.sampled_from([0, 16, 32, 64]),
    **constraints,
)

task_requests = st.builds(
    TaskRequest,
    task_guid=st.sampled_from([f"t{i}" for i in range(8)]),
    memory_mb=st.sampled_from([0, 8, 16, 64]),
    disk_mb=st.sampled_from([0, 16, 64]),
    **constraints,
)

configs = st.builds(
    AuctionConfig,
    starting_container_weight=st.sampled_from([0.25, 0.25, 0.0, 1.0, 0.001, -0.5]),
    bin_pack_first_fit_weight=st.sampled_from([0.0, 0.0, 0.3, 2.0, -1.0]),
    starting_container_count_maximum=st.sampled_from([0] * 6 + [1, 5, 12, 20]),
)

agreement = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@agreement
@given(
    cells=clusters(),
    lrps=st.lists(lrp_requests, max_size=25),
    tasks=st.lists(task_requests, max_size=6),
    config=configs,
)
def test_the_fast_scheduler_places_exactly_like_the_reference(cells, lrps, tasks, config):
    assert schedule(cells, lrps, tasks, config) == schedule_reference(cells, lrps, tasks, config)


@agreement
@given(
    shape=st.tuples(st.sampled_from([48, 96, 100]), st.sampled_from([48, 100]), st.integers(2, 8)),
    cell_count=st.integers(1, 12),
    apps=st.lists(st.tuples(st.integers(1, 6), st.sampled_from([8, 16, 48])), min_size=1, max_size=8),
    config=configs,
    seed=st.integers(0, 2**16),
)
def test_the_fast_scheduler_agrees_when_identical_cells_fill_up(shape, cell_count, apps, config, seed):
    memory, disk, containers = shape
    cluster = [
        cell(f"cell-{i}", zone=ZONES[i % 2], memory=memory, disk=disk, containers=containers) for i in range(cell_count)
    ]
    lrps = [
        LRPStartRequest(f"app-{n}", index, app_memory, 16)
        for n, (instances, app_memory) in enumerate(apps)
        for index in range(instances)
    ]
    random.Random(seed).shuffle(lrps)

    assert schedule(cluster, lrps, config=config) == schedule_reference(cluster, lrps, config=config)


@agreement
@given(
    total=st.sampled_from([10, 96, 100, 1000]),
    used=st.lists(st.integers(0, 9), min_size=3, max_size=3),
    orders=st.lists(st.permutations([0, 1, 2]), min_size=2, max_size=8),
    zones=st.integers(1, 2),
    lrps=st.lists(
        st.builds(
            LRPStartRequest,
            process_guid=st.sampled_from(GUIDS),
            index=st.integers(0, 3),
            memory_mb=st.integers(0, 3),
            disk_mb=st.integers(0, 3),
        ),
        min_size=1,
        max_size=6,
    ),
    config=configs,
)
def test_the_fast_scheduler_agrees_when_cells_differ_only_by_which_resource_is_used(
    total, used, orders, zones, lrps, config
):
    # Such cells score alike in exact arithmetic and a rounding error apart in floats.
    cluster = []
    for i, order in enumerate(orders):
        taken = [used[j] for j in order]
        cluster.append(
            cell(
                f"cell-{i}",
                zone=ZONES[i % zones],
                memory=total,
                disk=total,
                containers=total,
                used_memory=taken[0],
                used_disk=taken[1],
                used_containers=taken[2],
            )
        )

    assert schedule(cluster, lrps, config=config) == schedule_reference(cluster, lrps, config=config)


def test_the_fast_scheduler_agrees_on_a_crowded_mixed_round():
    rng = random.Random(7)
    cluster = [
        cell(
            f"cell-{i}",
            zone=f"z{i % 3}",
            memory=rng.choice([2048, 4096]),
            disk=8192,
            containers=rng.choice([40, 60]),
            used_memory=rng.choice([0, 512, 1024]),
            required=("gpu",) if i % 10 == 0 else (),
            optional=("ssd",) if i % 4 == 0 else (),
            lrp_counts={f"app-{rng.randrange(50)}": rng.randint(1, 3) for _ in range(rng.randint(0, 4))},
            index=i // 3,
        )
        for i in range(30)
    ]
    lrps = []
    for n in range(120):
        memory = rng.choice([32, 128, 1024])
        tags = rng.choice([frozenset(), frozenset(), frozenset({"ssd"}), frozenset({"gpu"})])
        lrps += [LRPStartRequest(f"app-{n}", i, memory, 256, placement_tags=tags) for i in range(rng.randint(1, 25))]
    tasks = [TaskRequest(f"task-{n}", rng.choice([256, 1024]), 512) for n in range(40)]
    config = AuctionConfig(bin_pack_first_fit_weight=0.01)

    fast = schedule(cluster, lrps, tasks, config)

    assert fast.failed, "the round should overflow the cluster"
    assert fast == schedule_reference(cluster, lrps, tasks, config)


def test_fast_results_are_placements_and_failures_of_the_given_work():
    cells = [cell("c1", memory=10)]

    results = schedule(cells, [lrp("a", memory=5), lrp("b", memory=50)])

    assert results.placed == (Placement(lrp("a", memory=5), "c1", results.placed[0].score),)
    assert results.failed == (PlacementFailure(lrp("b", memory=50), no_room("memory")),)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cell_count=st.integers(34, 70),
    shapes=st.lists(st.sampled_from([(4096, 8192, 40), (2048, 8192, 30), (4096, 4096, 60)]), min_size=1, max_size=2),
    preloaded=st.integers(0, 60),
    instances=st.integers(40, 220),
    others=st.lists(st.tuples(st.integers(1, 30), st.sampled_from([32, 128, 1024])), max_size=4),
    config=configs,
    seed=st.integers(0, 2**16),
)
def test_the_fast_scheduler_agrees_when_one_app_is_on_most_cells(
    cell_count, shapes, preloaded, instances, others, config, seed
):
    # Past a few dozen occupied cells the fast scheduler queries them through
    # the app's own sorted lists: they must give the reference's placements.
    rng = random.Random(seed)
    cluster = []
    for i in range(cell_count):
        memory, disk, containers = rng.choice(shapes)
        held = {"big": rng.randint(1, 3)} if i < preloaded else {}
        if rng.random() < 0.3:
            held[f"app-{rng.randrange(4)}"] = 1
        cluster.append(
            cell(
                f"cell-{i}",
                zone=ZONES[i % 3],
                memory=memory,
                disk=disk,
                containers=containers,
                used_memory=rng.choice([0, 0, 256, 1024]),
                lrp_counts=held,
                index=i // 3,
            )
        )
    lrps = [LRPStartRequest("big", index, rng.choice([32, 64]), 16) for index in range(instances)]
    lrps += [
        LRPStartRequest(f"app-{n}", index, memory, 16)
        for n, (count, memory) in enumerate(others)
        for index in range(count)
    ]
    rng.shuffle(lrps)

    assert schedule(cluster, lrps, config=config) == schedule_reference(cluster, lrps, config=config)
