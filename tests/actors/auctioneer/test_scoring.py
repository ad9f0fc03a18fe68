import pytest

from actors.auctioneer.scoring import (
    ROOTFS_MISMATCH,
    compatible_cells,
    insufficient_resources,
    lrp_score,
    matches_placement_tags,
    matches_rootfs,
    matches_volume_drivers,
    resource_problems,
    resource_score,
    sort_work,
    task_score,
)
from protocol.auction import AuctionConfig, CellState, FrozenCounts, LRPStartRequest, TaskRequest


def cell(
    cell_id: str = "cell-1",
    *,
    memory: int = 1000,
    disk: int = 2000,
    containers: int = 100,
    used_memory: int = 0,
    used_disk: int = 0,
    used_containers: int = 0,
    starting: int = 0,
    zone: str = "z1",
    rootfs=frozenset({"cflinuxfs4"}),
    drivers=frozenset(),
    required=frozenset(),
    optional=frozenset(),
    lrp_counts=None,
    tasks: int = 0,
    index: int = 0,
) -> CellState:
    return CellState(
        cell_id=cell_id,
        zone=zone,
        rootfs_providers=frozenset(rootfs),
        volume_drivers=frozenset(drivers),
        required_tags=frozenset(required),
        optional_tags=frozenset(optional),
        total_memory_mb=memory,
        total_disk_mb=disk,
        total_containers=containers,
        available_memory_mb=memory - used_memory,
        available_disk_mb=disk - used_disk,
        available_containers=containers - used_containers,
        starting_containers=starting,
        lrp_counts=lrp_counts or {},
        task_count=tasks,
        cell_index=index,
    )


def lrp(guid: str = "app", index: int = 0, memory: int = 10, disk: int = 10, **kwargs) -> LRPStartRequest:
    return LRPStartRequest(guid, index, memory, disk, **kwargs)


def task(guid: str = "task", memory: int = 10, disk: int = 10, **kwargs) -> TaskRequest:
    return TaskRequest(guid, memory, disk, **kwargs)


# --- scores ------------------------------------------------------------------


def test_resource_score_is_the_mean_used_fraction_after_placement():
    c = cell(memory=1000, disk=2000, containers=100, used_memory=500, used_disk=1000, used_containers=49)

    # after placing 100 MB / 200 MB / 1 container: 0.6, 0.6 and 0.5 used
    assert resource_score(c, 100, 200, 0.25) == pytest.approx((0.6 + 0.6 + 0.5) / 3)


def test_each_starting_container_adds_the_starting_container_weight():
    idle = cell(starting=0)
    busy = cell(starting=3)

    assert resource_score(busy, 10, 10, 0.25) - resource_score(idle, 10, 10, 0.25) == pytest.approx(0.75)
    assert resource_score(busy, 10, 10, 0.0) == resource_score(idle, 10, 10, 0.0)


def test_an_emptier_cell_scores_lower():
    assert resource_score(cell(used_memory=100), 10, 10, 0.25) < resource_score(cell(used_memory=600), 10, 10, 0.25)


def test_lrp_score_adds_a_thousand_per_instance_of_the_same_app_on_the_cell():
    config = AuctionConfig()
    empty = cell()
    with_two = cell(lrp_counts={"app": 2, "other": 5})

    assert lrp_score(with_two, lrp("app"), config) - lrp_score(empty, lrp("app"), config) == pytest.approx(2000)
    assert lrp_score(with_two, lrp("new"), config) == lrp_score(empty, lrp("new"), config)


def test_lrp_score_adds_the_bin_pack_weight_times_the_cell_index():
    config = AuctionConfig(bin_pack_first_fit_weight=0.5)

    first = lrp_score(cell(index=0), lrp(), config)
    fourth = lrp_score(cell(index=3), lrp(), config)

    assert fourth - first == pytest.approx(1.5)


def test_task_score_adds_a_thousand_per_task_on_the_cell():
    config = AuctionConfig()

    assert task_score(cell(tasks=1), task(), config) - task_score(cell(), task(), config) == pytest.approx(1000)
    assert task_score(cell(lrp_counts={"app": 3}), task(), config) == task_score(cell(), task(), config)


# --- what does not fit -------------------------------------------------------


def test_resource_problems_is_empty_when_the_work_fits_exactly():
    c = cell(memory=100, disk=100, containers=1)

    assert resource_problems(c, 100, 100) == frozenset()


def test_resource_problems_names_every_resource_that_does_not_fit():
    c = cell(memory=100, disk=100, containers=2, used_containers=2)

    assert resource_problems(c, 101, 50) == {"memory", "containers"}
    assert resource_problems(c, 10, 101) == {"disk", "containers"}


def test_insufficient_resources_names_what_every_cell_lacked():
    reason = insufficient_resources([frozenset({"memory", "disk"}), frozenset({"memory"})])

    assert reason == "insufficient resources: memory"


def test_insufficient_resources_names_everything_lacked_when_cells_lacked_different_things():
    reason = insufficient_resources([frozenset({"memory"}), frozenset({"disk"}), frozenset({"containers"})])

    assert reason == "insufficient resources: containers, disk, memory"


# --- constraints ---------------------------------------------------------------


def test_a_cell_must_provide_the_requested_rootfs():
    c = cell(rootfs={"cflinuxfs3"})

    assert matches_rootfs(c, "cflinuxfs3")
    assert not matches_rootfs(c, "cflinuxfs4")


def test_a_docker_image_needs_a_cell_with_the_docker_provider():
    assert matches_rootfs(cell(rootfs={"cflinuxfs4", "docker"}), "docker:///busybox")
    assert not matches_rootfs(cell(rootfs={"cflinuxfs4"}), "docker:///busybox")


def test_a_cell_must_have_every_requested_volume_driver():
    c = cell(drivers={"nfs", "smb"})

    assert matches_volume_drivers(c, frozenset({"nfs"}))
    assert matches_volume_drivers(c, frozenset())
    assert not matches_volume_drivers(c, frozenset({"nfs", "cephfs"}))


def test_a_cell_with_required_tags_only_takes_work_that_requests_them():
    c = cell(required={"gpu"}, optional={"ssd"})

    assert not matches_placement_tags(c, frozenset())
    assert matches_placement_tags(c, frozenset({"gpu"}))
    assert matches_placement_tags(c, frozenset({"gpu", "ssd"}))


def test_a_cell_refuses_work_requesting_a_tag_it_does_not_have():
    assert not matches_placement_tags(cell(optional={"ssd"}), frozenset({"edge"}))
    assert matches_placement_tags(cell(optional={"ssd"}), frozenset())


def test_compatible_cells_keeps_the_positions_of_cells_passing_every_constraint():
    cells = [cell("a", rootfs={"cflinuxfs3"}), cell("b"), cell("c", required={"gpu"}), cell("d")]

    assert compatible_cells(cells, lrp()) == ((1, 3), None)


def test_a_rootfs_no_cell_has_is_reported_before_other_constraints():
    cells = [cell(rootfs={"cflinuxfs3"})]

    assert compatible_cells(cells, lrp(volume_drivers={"nfs"}, placement_tags={"x"})) == (
        (),
        ROOTFS_MISMATCH,
    )
    assert ROOTFS_MISMATCH == "found no compatible cell for required rootfs"


def test_missing_volume_drivers_are_reported_sorted_and_quoted():
    cells = [cell(drivers={"nfs"}), cell(rootfs={"cflinuxfs3"}, drivers={"smb", "nfs"})]

    _, reason = compatible_cells(cells, lrp(volume_drivers={"smb", "nfs"}))

    assert reason == 'found no compatible cell with volume drivers "nfs", "smb"'


def test_unmatched_placement_tags_are_reported_sorted_and_quoted():
    _, reason = compatible_cells([cell()], task(placement_tags={"zeta", "alpha"}))

    assert reason == 'found no compatible cell with placement tag(s) "alpha", "zeta"'


def test_work_without_tags_refused_by_every_cell_says_so_in_words():
    _, reason = compatible_cells([cell(required={"gpu"})], lrp())

    assert reason == "found no compatible cell with no placement tags"


# --- order -------------------------------------------------------------------


def test_index_zero_lrps_are_placed_before_tasks_and_tasks_before_other_indexes():
    work = sort_work([lrp("a", 1), lrp("b", 0), lrp("a", 0), lrp("b", 2)], [task("t")])

    assert [(getattr(w, "process_guid", "task"), getattr(w, "index", None)) for w in work] == [
        ("b", 0),
        ("a", 0),
        ("task", None),
        ("a", 1),
        ("b", 2),
    ]


def test_larger_memory_is_placed_first_within_each_part():
    work = sort_work(
        [
            lrp("small", 0, memory=32),
            lrp("big", 0, memory=1024),
            lrp("small", 1, memory=32),
            lrp("big", 1, memory=1024),
        ],
        [task("t-small", memory=10), task("t-big", memory=100)],
    )

    assert [w.memory_mb for w in work] == [1024, 32, 100, 10, 1024, 32]


def test_work_of_equal_memory_keeps_its_arrival_order():
    lrps = [lrp(f"app-{i}", 0, memory=64) for i in (3, 1, 2)]

    assert [w.process_guid for w in sort_work(lrps)] == ["app-3", "app-1", "app-2"]


def test_repeated_work_is_placed_once():
    work = sort_work([lrp("a", 0), lrp("a", 0, memory=99), lrp("a", 1)], [task("t"), task("t")])

    assert len(work) == 3
    assert work[0].memory_mb == 10


# --- the types -----------------------------------------------------------------


def test_cell_state_stores_instance_counts_as_a_hashable_mapping():
    c = cell(lrp_counts={"app": 2, "gone": 0})

    assert isinstance(c.lrp_counts, FrozenCounts)
    assert dict(c.lrp_counts) == {"app": 2}
    assert c.lrp_counts.get("gone", 0) == 0
    assert hash(c) == hash(cell(lrp_counts=[("app", 2)]))


def test_cell_state_refuses_a_zero_total_it_would_divide_by():
    with pytest.raises(ValueError):
        cell(memory=0)


def test_requests_turn_tag_and_driver_sets_into_frozensets():
    request = lrp(placement_tags={"gpu"}, volume_drivers=["nfs"])

    assert request.placement_tags == frozenset({"gpu"})
    assert isinstance(request.volume_drivers, frozenset)
    hash(request)
