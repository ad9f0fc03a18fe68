"""The platform keeps its views in agreement as Cloud Foundry does: Cloud
Controller's sync repairs lost and reordered messages to the BBS, a killed
BBS rebuilds its books without restarting anything, supervision never leaves
the platform dead, and damaged blobs are healed. Real actors, virtual clock."""

from __future__ import annotations

import dataclasses

import pytest

from actors.cloud_controller import ControllerConfig, desired_lrp
from protocol.messages import (
    DesireLRP,
    ListContainers,
    ListDesiredLRPs,
    SyncProcesses,
    UpdateDesiredLRP,
)
from protocol.states import ActualLRPState, BuildState, PackageState
from tests.actors.conftest import EXAMPLES, actual_lrps, app_guid, db, eventually, run

pytestmark = pytest.mark.anyio


async def _push(platform, name: str, *flags: str, example: str = "python") -> None:
    code, lines = await run(platform, "push", name, "-f", str(EXAMPLES / example / "manifest.yml"), "-m", "64M", *flags)
    assert code == 0, "\n".join(lines)


async def _lrps(platform, name: str):
    guid = await app_guid(platform, name)
    return await platform.system.ask("bbs", ListDesiredLRPs(guid))


async def _lrps_of_guid(platform, guid: str):
    return await platform.system.ask("bbs", ListDesiredLRPs(guid))


async def _containers(platform) -> list:
    found = []
    for name in sorted(n for n in platform.system.names() if n.startswith("cell-")):
        found += await platform.system.ask(name, ListContainers())
    return found


async def _events(platform, guid: str, kind: str) -> list:
    return [e for e in await db(platform, "list_events", actee_guid=guid) if e.type == kind]


# --- Cloud Controller's sync with the BBS ----------------------------------------------------


async def test_a_lost_remove_after_delete_is_repaired_within_one_sync_period(platform):
    await _push(platform, "gone")
    guid = await app_guid(platform, "gone")
    platform.faults.message_fault("drop", sender="cloud_controller", receiver="bbs", message_type="RemoveDesiredLRP")

    code, lines = await run(platform, "delete", "gone", "-f")

    assert code == 0, lines
    assert await _lrps_of_guid(platform, guid)  # the BBS never heard
    platform.faults.heal()
    await platform.clock.advance(31)
    assert await _lrps_of_guid(platform, guid) == ()
    assert not [c for c in await _containers(platform) if c.process_guid.startswith(guid)]
    repairs = await _events(platform, guid, "audit.app.process.sync")
    assert [e.metadata["repair"] for e in repairs] == ["remove"]


async def test_a_lost_stop_is_repaired_and_the_instances_stop(platform):
    await _push(platform, "halt")
    platform.faults.message_fault("drop", sender="cloud_controller", receiver="bbs", message_type="RemoveDesiredLRP")

    code, _ = await run(platform, "stop", "halt")

    assert code == 0
    assert await _lrps(platform, "halt")
    platform.faults.heal()
    await platform.clock.advance(31)
    assert await _lrps(platform, "halt") == ()


async def test_a_stale_instance_count_from_reordered_scales_is_updated(platform):
    await _push(platform, "scaled", "-i", "1")
    code, _ = await run(platform, "scale", "scaled", "-i", "3")
    assert code == 0
    (lrp,) = await _lrps(platform, "scaled")
    # The older scale arriving last, as a reorder would deliver it.
    platform.system.tell("bbs", UpdateDesiredLRP(lrp.process_guid, 1))
    await platform.clock.advance(1)
    assert (await _lrps(platform, "scaled"))[0].instances == 1

    repairs = await platform.system.ask("cloud_controller", SyncProcesses())

    assert repairs == [{"repair": "update", "instances": 3, "was": 1}]
    await platform.clock.advance(5)
    assert (await _lrps(platform, "scaled"))[0].instances == 3
    running = [a for a in await actual_lrps(platform, "scaled") if a.state is ActualLRPState.RUNNING]
    assert len(running) == 3


async def test_a_stale_memory_from_a_reordered_desire_is_replaced_by_what_cc_db_says(platform):
    await _push(platform, "mem")
    code, _ = await run(platform, "scale", "mem", "-m", "96M", "-f")
    assert code == 0
    (current,) = await _lrps(platform, "mem")
    old = dataclasses.replace(current, process_guid=current.process_guid[:-8] + "00000000", memory_mb=64)
    platform.system.tell("bbs", DesireLRP(old))  # an older version overtaking the newer one
    await platform.clock.advance(1)
    assert (await _lrps(platform, "mem"))[0].memory_mb == 64

    await platform.clock.advance(31)

    (lrp,) = await _lrps(platform, "mem")
    assert lrp.memory_mb == 96 and lrp.process_guid == current.process_guid
    await platform.clock.advance(5)
    assert {c.memory_mb for c in await _containers(platform)} == {96}


async def test_a_lost_start_after_a_restage_moves_the_cells_to_the_new_droplet(platform):
    await _push(platform, "restaged", example="node")
    old = (await _lrps(platform, "restaged"))[0]
    platform.faults.message_fault(
        "drop", sender="cloud_controller", receiver="bbs", message_type="DesireLRP", duration=5
    )

    code, lines = await run(platform, "restage", "restaged")

    # The start was lost; the CLI waits, and within a sync period it runs.
    assert code == 0, "\n".join(lines)
    app = await db(platform, "find_app", name="restaged")
    droplet = await db(platform, "get_droplet", guid=app.droplet_guid)
    (lrp,) = await _lrps(platform, "restaged")
    assert lrp.process_guid == app.process_guid != old.process_guid
    assert lrp.droplet_key == droplet.blob_key
    assert {c.process_guid for c in await _containers(platform)} == {app.process_guid}
    repairs = await _events(platform, app.guid, "audit.app.process.sync")
    assert sorted(e.metadata["repair"] for e in repairs) == ["desire", "remove"]  # the new version; the old one off


async def test_what_the_sync_desires_is_a_function_of_cc_db_alone(platform):
    await _push(platform, "pure")
    app = await db(platform, "find_app", name="pure")
    droplet = await db(platform, "get_droplet", guid=app.droplet_guid)

    (lrp,) = await _lrps(platform, "pure")

    assert lrp == desired_lrp(app, droplet)
    assert lrp.process_guid == f"{app.guid}-{app.process_version}"


async def test_with_the_sync_switched_off_a_lost_remove_is_never_repaired(make_platform):
    platform = await make_platform(controller=ControllerConfig(sync_enabled=False)).start()
    await _push(platform, "leak")
    guid = await app_guid(platform, "leak")
    platform.faults.message_fault("drop", sender="cloud_controller", receiver="bbs", message_type="RemoveDesiredLRP")
    await run(platform, "delete", "leak", "-f")
    platform.faults.heal()

    await platform.clock.advance(120)

    assert await _lrps_of_guid(platform, guid)
    assert [c for c in await _containers(platform) if c.process_guid.startswith(guid)]


# --- the BBS's books, after it is killed -------------------------------------------------------


async def test_a_killed_bbs_rebuilds_its_books_and_adopts_what_runs_without_restarting_it(platform):
    await _push(platform, "steady", "-i", "3")
    before = sorted((c.cell_id, c.index, c.instance_guid) for c in await _containers(platform))

    assert platform.faults.kill("bbs")
    await platform.clock.advance(1)
    assert platform.system.lookup("bbs") is not None  # restarted
    await platform.clock.advance(30)

    after = sorted((c.cell_id, c.index, c.instance_guid) for c in await _containers(platform))
    assert after == before  # the same instances: adopted, not replaced
    actual = await actual_lrps(platform, "steady")
    assert [a.state for a in actual] == [ActualLRPState.RUNNING] * 3
    assert {(a.cell_id, a.index, a.instance_guid) for a in actual} == set(before)


async def test_a_push_goes_on_when_the_bbs_is_killed_while_it_stages(platform):
    done = []

    async def push() -> None:
        done.append(
            await run(platform, "push", "through", "-f", str(EXAMPLES / "python" / "manifest.yml"), "-m", "64M")
        )

    import asyncio

    task = asyncio.ensure_future(push())
    await eventually(platform, lambda: _staging(platform), every=0.1, within=30)
    platform.faults.kill("bbs")
    await task

    code, lines = done[0]
    assert code == 0, "\n".join(lines)
    assert len(await _lrps(platform, "through")) == 1


async def _staging(platform) -> bool:
    app = await db(platform, "find_app", name="through")
    if app is None:
        return False
    return any(b.state is BuildState.STAGING for b in await db(platform, "list_builds", app_guid=app.guid))


async def test_containers_nobody_desires_again_are_stopped_when_the_bbs_recovers(platform):
    await _push(platform, "orphan")
    guid = await app_guid(platform, "orphan")
    platform.faults.message_fault("drop", sender="cloud_controller", receiver="bbs", message_type="RemoveDesiredLRP")
    await run(platform, "delete", "orphan", "-f")
    platform.faults.heal()
    platform.faults.kill("bbs")  # its books, and the stale LRP with them, are gone

    await platform.clock.advance(30)

    assert not [c for c in await _containers(platform) if c.process_guid.startswith(guid)]


# --- supervision -----------------------------------------------------------------------------


async def test_a_kill_storm_on_ccdb_restarts_the_components_and_the_platform_serves_again(platform):
    await _push(platform, "survivor")
    for _ in range(15):
        platform.faults.kill("ccdb")
        await platform.clock.advance(2)

    await platform.clock.advance(60)

    code, lines = await run(platform, "push", "later", "-f", str(EXAMPLES / "python" / "manifest.yml"), "-m", "64M")
    assert code == 0, "\n".join(lines)
    code, lines = await run(platform, "apps")
    assert code == 0 and any(line.startswith("survivor ") for line in lines), lines
    await eventually(platform, lambda: _all_running(platform, "survivor", 2))


async def _all_running(platform, name: str, n: int) -> bool:
    return sum(a.state is ActualLRPState.RUNNING for a in await actual_lrps(platform, name)) == n


async def test_a_command_whose_cli_dies_ends_with_a_named_error(platform):
    await _push(platform, "named")
    platform.faults.pause("cloud_controller")  # the command waits...
    lines: list[str] = []
    import asyncio

    job = asyncio.ensure_future(platform.command(["app", "named"], lines.append))
    await platform.clock.advance(1)
    platform.faults.kill("cli")  # ...and its cli dies under it
    code = await job
    platform.faults.heal()

    assert code == 1
    assert lines[-2].startswith("PlatformUnavailable - "), lines
    assert lines[-1] == "FAILED"


# --- damaged blobs ---------------------------------------------------------------------------


async def test_a_restage_from_a_damaged_package_fails_named_and_marks_the_package_failed(platform):
    await _push(platform, "damaged")
    app = await db(platform, "find_app", name="damaged")
    (package,) = await db(platform, "list_packages", app_guid=app.guid)
    assert await platform.faults.corrupt_blob(package.blob_key)

    code, lines = await run(platform, "restage", "damaged")

    assert code == 1
    assert any("StagingError - " in line and "BlobCorrupt" in line for line in lines), lines
    package = await db(platform, "get_package", guid=package.guid)
    assert package.state is PackageState.FAILED and package.blob_key is None


async def test_pushing_the_same_bits_again_heals_a_damaged_package_and_droplet(platform):
    await _push(platform, "healed")
    app = await db(platform, "find_app", name="healed")
    (package,) = await db(platform, "list_packages", app_guid=app.guid)
    droplet = await db(platform, "get_droplet", guid=app.droplet_guid)
    await platform.faults.corrupt_blob(package.blob_key)
    await platform.faults.corrupt_blob(droplet.blob_key)

    await _push(platform, "healed")
    code, lines = await run(platform, "restage", "healed")
    assert code == 0, "\n".join(lines)
    code, lines = await run(platform, "scale", "healed", "-m", "80M", "-f")
    assert code == 0, "\n".join(lines)

    from protocol import blobs

    keys = frozenset(await db(platform, "referenced_blob_keys"))
    inventory = await platform.system.ask("blobstore", blobs.TakeInventory(keys, verify=True))
    assert inventory.corrupt == () and inventory.missing == ()
    assert package.blob_key in keys and droplet.blob_key in keys
