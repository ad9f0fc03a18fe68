"""Every fault kind of the Faults API (`platform.faults`), on a running
platform: it takes effect, and `heal()` (or its duration) ends it."""

from __future__ import annotations

import pytest

from actors.runtime import EXTERNAL
from actors.runtime.errors import AskTimeout
from protocol import blobs
from protocol.errors import BlobCorrupt, BlobStoreUnavailable, DatabaseUnavailable
from protocol.messages import BBSSnapshot, Converge, ListCells
from tests.actors.conftest import EXAMPLES, app_guid, blob, db, run

pytestmark = pytest.mark.anyio


async def push(platform, name: str, *flags: str) -> None:
    code, lines = await run(platform, "push", name, "-p", str(EXAMPLES / "static"), "-m", "64M", *flags)
    assert code == 0, "\n".join(lines)


async def running_on_cells(platform) -> dict[str, int]:
    counts = {}
    for name in platform.system.names():
        if name.startswith("cell-"):
            counts[name] = platform.system.actor(name).statistics().running
    return counts


async def cells(platform) -> set[str]:
    return {p.cell_id for p in await platform.system.ask("bbs", ListCells())}


# --- messages ------------------------------------------------------------------------------


async def test_a_drop_fault_loses_matching_messages_until_healed(platform):
    platform.faults.message_fault("drop", sender=EXTERNAL, receiver="bbs", message_type="BBSSnapshot")

    with pytest.raises(AskTimeout):
        await platform.system.ask("bbs", BBSSnapshot(), timeout=2)
    assert platform.system.statistics()["dropped"] == 1
    assert any("drop user -> bbs type=BBSSnapshot" in line for line in platform.faults.active())

    assert platform.faults.heal()["message_rules"] == 1
    assert (await platform.system.ask("bbs", BBSSnapshot(), timeout=2)).apps == ()


async def test_a_delay_fault_holds_messages_for_platform_time(platform):
    platform.faults.message_fault("delay", receiver="bbs", message_type="BBSSnapshot", delay=3.0)
    began = platform.clock.monotonic()

    await platform.system.ask("bbs", BBSSnapshot(), timeout=10)

    assert platform.clock.monotonic() - began == pytest.approx(3.0)
    assert platform.system.statistics()["delayed"] == 1


async def test_a_duplicate_fault_delivers_twice_and_the_ask_is_answered_once(platform):
    bbs = platform.system.actor("bbs")
    before = bbs.statistics().convergence_runs
    platform.faults.message_fault("duplicate", receiver="bbs", message_type="Converge")

    await platform.system.ask("bbs", Converge("test"))
    await platform.clock.advance(0)

    assert bbs.statistics().convergence_runs == before + 2
    assert platform.system.statistics()["duplicated"] == 1


async def test_a_push_whose_writes_to_ccdb_are_all_delivered_twice_succeeds(platform):
    # The copy of a create fails (its guid is taken), but the original ran
    # first and its answer is the one the asker gets, batched or not.
    rule = platform.faults.message_fault("duplicate", sender="cloud_controller", receiver="ccdb")

    await push(platform, "twice")
    await push(platform, "again")

    assert rule.matched > 20
    assert platform.system.statistics()["duplicated"] == rule.matched
    code, lines = await run(platform, "app", "twice")
    assert code == 0 and any("#0" in line and "running" in line for line in lines), lines


async def test_a_reorder_fault_holds_each_message_back_by_part_of_its_window(platform):
    rule = platform.faults.message_fault("reorder", receiver="bbs", message_type="BBSSnapshot", delay=5.0)
    began = platform.clock.monotonic()

    for _ in range(3):
        await platform.system.ask("bbs", BBSSnapshot(), timeout=10)

    assert 0 <= platform.clock.monotonic() - began <= 15
    assert rule.matched == 3 and platform.system.statistics()["delayed"] == 3


async def test_a_timed_message_fault_ends_by_itself(platform):
    platform.faults.message_fault("drop", receiver="bbs", message_type="BBSSnapshot", duration=10)
    await platform.clock.advance(11)
    assert (await platform.system.ask("bbs", BBSSnapshot(), timeout=2)).apps == ()


async def test_a_partition_cuts_a_cell_off_until_healed(platform):
    label = platform.faults.partition([["cell-1"], ["bbs"]])
    await platform.clock.advance(25)  # longer than the presence TTL
    assert "cell-1" not in await cells(platform)

    platform.faults.heal()
    await platform.clock.advance(6)  # the next heartbeat gets through
    assert "cell-1" in await cells(platform)
    assert label.startswith("partition-")


async def test_a_one_way_partition_only_cuts_messages_from_the_first_group(platform):
    platform.faults.partition([["bbs"], ["cell-1"]], one_way=True)
    platform.faults.partition([["cell-2"], ["bbs"]], one_way=True)
    await platform.clock.advance(25)  # longer than the presence TTL

    present = await cells(platform)
    assert "cell-1" in present  # its heartbeats still reach the BBS
    assert "cell-2" not in present  # its do not


# --- components ------------------------------------------------------------------------------


async def test_killing_a_cell_loses_its_instances_and_they_run_elsewhere(platform):
    await push(platform, "web", "-i", "4")
    before = await running_on_cells(platform)
    victim = max(sorted(before), key=before.get)
    old = platform.system.actor(victim)

    assert platform.faults.kill(victim)
    await platform.clock.advance(10)

    assert platform.system.actor(victim) is not old  # its supervisor started a new, empty one
    after = await running_on_cells(platform)
    assert sum(after.values()) == 4
    assert platform.faults.killed == [victim]


async def test_kill_cells_picks_a_seeded_share_of_the_cells(make_platform):
    chosen = []
    for n in range(2):
        p = make_platform(data_dir=make_platform().data_dir.parent / f"d{n}", cells=10, seed=42)
        await p.start()
        try:
            await p.clock.advance(1)
            chosen.append(await p.faults.kill_cells(fraction=0.2))
        finally:
            await p.stop()
    assert chosen[0] == chosen[1] and len(chosen[0]) == 2


async def test_a_paused_actor_answers_nothing_until_resumed(platform):
    assert platform.faults.pause("bbs")
    pending = platform.system.lookup("bbs").ask(BBSSnapshot(), block=False, timeout=30)
    await platform.clock.advance(5)
    assert not pending.done()
    assert platform.faults.active() == ["paused bbs"]

    assert platform.faults.heal()["resumed"] == 1
    assert (await pending).apps == ()


async def test_draining_a_cell_replaces_its_instances_first_then_empties_it(platform):
    await push(platform, "web", "-i", "4")
    before = await running_on_cells(platform)
    victim = max(sorted(before), key=before.get)

    moving = await platform.faults.drain(victim)
    await platform.clock.advance(15)

    after = await running_on_cells(platform)
    assert moving == before[victim] > 0
    assert after[victim] == 0 and sum(after.values()) == 4


async def test_a_crash_storm_crashes_a_share_of_instances_and_they_restart(platform):
    await push(platform, "web", "-i", "4")
    guid = await app_guid(platform, "web")

    crashed = await platform.faults.crash_storm(1.0)
    await platform.clock.advance(5)

    events = [e for e in await db(platform, "list_events", actee_guid=guid) if e.type == "audit.app.process.crash"]
    assert crashed == 4 and len(events) == 4
    assert "crash storm" in events[0].metadata["exit_description"]
    assert sum((await running_on_cells(platform)).values()) == 4  # crash 1 restarts at once


# --- storage -------------------------------------------------------------------------------------


async def test_blob_writes_fail_while_the_fault_lasts(platform):
    platform.faults.blob_fault("blob.put")
    with pytest.raises(BlobStoreUnavailable):
        await blob(platform, "put_bytes", data=b"hello")
    assert await blob(platform, "keys") == []  # reads still work

    platform.faults.heal()
    assert (await blob(platform, "put_bytes", data=b"hello")).size == 5


async def test_slow_blob_operations_take_platform_time(platform):
    platform.faults.blob_fault("blob.put", delay=7.0, fail=False)
    began = platform.clock.monotonic()
    await platform.system.ask("blobstore", blobs.PutBytes(b"hello"), timeout=30)
    assert platform.clock.monotonic() - began == pytest.approx(7.0)
    assert platform.faults.blob.slowed == 1


async def test_ccdb_writes_fail_while_reads_go_on(platform):
    platform.faults.db_fault("ccdb.write", duration=30)
    with pytest.raises(DatabaseUnavailable):
        await db(platform, "record_event", type="x", actor="a", actee_guid="g", actee_name=None, metadata={}, now=None)
    assert await db(platform, "list_apps") == []

    await platform.clock.advance(31)
    await db(platform, "record_event", type="x", actor="a", actee_guid="g", actee_name=None, metadata={}, now=None)


async def test_a_push_during_ccdb_failures_ends_with_a_named_error(platform):
    platform.faults.db_fault("ccdb.*", probability=1.0)
    code, lines = await run(platform, "push", "web", "-p", str(EXAMPLES / "static"))
    assert code == 1
    assert lines[-1] == "FAILED" and lines[-2].startswith("DatabaseError - injected fault")


async def test_slow_ccdb_operations_take_platform_time(platform):
    platform.faults.db_fault("ccdb.read", delay=4.0, fail=False)
    began = platform.clock.monotonic()
    await db(platform, "list_apps")
    assert platform.clock.monotonic() - began == pytest.approx(4.0)


async def test_a_corrupted_blob_is_found_on_the_next_read(platform):
    await push(platform, "web")
    keys = await blob(platform, "keys")

    key = await platform.faults.corrupt_blob(keys[0])

    assert key == keys[0] and platform.faults.corrupted == [key]
    with pytest.raises(BlobCorrupt):
        await blob(platform, "get_bytes", key=key)
    inventory = await platform.system.ask("blobstore", blobs.TakeInventory(frozenset(keys), verify=True))
    assert inventory.corrupt == (key,)


async def test_the_names_experiment_files_are_checked_against_are_the_running_platforms(platform):
    from actors.platform import actor_names

    assert set(platform.system.names()) == set(actor_names(platform.config.cells))
