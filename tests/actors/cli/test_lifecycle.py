"""After the push: crashes and their backoff, scaling, stop/start, logs,
cells, placement failures, deletes and the blob store, and a platform
restart on the same data directory. Real actors on a virtual clock."""

from __future__ import annotations

import asyncio
import re
import shutil

import pytest

from actors.platform import DataDirInUse
from protocol import blobs
from protocol.messages import BBSSnapshot, CellInfo
from protocol.states import ActualLRPState, AppState
from tests.actors.conftest import (
    EXAMPLES,
    actual_lrps,
    app_guid,
    blob_keys,
    db,
    eventually,
    line_starting,
    run,
)

pytestmark = pytest.mark.anyio


async def _push(platform, *argv: str, cwd: object = ".") -> list[str]:
    code, lines = await run(platform, "push", *argv, cwd=cwd)
    assert code == 0, "\n".join(lines)
    return lines


async def _running(platform, name: str) -> int:
    return sum(1 for a in await actual_lrps(platform, name) if a.state is ActualLRPState.RUNNING)


async def _eq(awaitable, expected) -> bool:
    return await awaitable == expected


async def _instances_on_cells(platform) -> int:
    total = 0
    for name in platform.system.names():
        if name.startswith("cell-"):
            total += (await platform.system.ask(name, CellInfo())).instances
    return total


# --- crashes ---------------------------------------------------------------------------------


async def test_a_crash_looping_app_shows_crashed_instances_and_crash_events(platform):
    await _push(platform, cwd=EXAMPLES / "crashloop")  # MF_CRASH_AFTER_SECONDS: 3

    await platform.clock.advance(300)

    code, lines = await run(platform, "app", "crashloop")
    assert code == 0
    assert "instances:      0/1" in lines
    row = line_starting(lines, "#0 ")
    assert re.match(r"#0   crashed   ", row), row
    assert row.endswith("APP/PROC/WEB: Exited with status 1   false")
    code, lines = await run(platform, "events", "crashloop")
    crashes = [line for line in lines if " audit.app.process.crash " in line]
    assert len(crashes) >= 4
    assert "index: 0, reason: CRASHED, cell_id: cell-" in crashes[0]
    assert crashes[0].endswith("exit_description: APP/PROC/WEB: Exited with status 1")


async def test_crashed_instances_restart_at_once_twice_then_after_a_thirty_second_backoff(platform):
    await _push(platform, cwd=EXAMPLES / "crashloop")  # healthy after 1 s, crashes 3 s later
    guid = await app_guid(platform, "crashloop")

    async def crash_events(count: int):
        events = [e for e in await db(platform, "list_events", actee_guid=guid) if e.type == "audit.app.process.crash"]
        return sorted(events, key=lambda e: e.metadata["crash_count"]) if len(events) >= count else None

    await eventually(platform, lambda: crash_events(3), every=0.5)
    # Crash 3 just happened: the BBS holds the instance CRASHED, not restarted.
    [actual] = await actual_lrps(platform, "crashloop")
    assert actual.state is ActualLRPState.CRASHED
    assert actual.crash_count == 3
    assert actual.next_restart_at == pytest.approx(platform.clock.monotonic() + 30, abs=1.0)
    await platform.clock.advance(25)
    [actual] = await actual_lrps(platform, "crashloop")
    assert actual.state is ActualLRPState.CRASHED and actual.crash_count == 3
    await platform.clock.advance(6)
    [actual] = await actual_lrps(platform, "crashloop")
    assert actual.state in (ActualLRPState.CLAIMED, ActualLRPState.RUNNING)
    assert actual.crash_count == 3

    events = await eventually(platform, lambda: crash_events(5))
    times = [e.metadata["crash_timestamp"] for e in events[:5]]
    assert [e.metadata["crash_count"] for e in events[:5]] == [1, 2, 3, 4, 5]
    gaps = [b - a for a, b in zip(times, times[1:])]
    life = gaps[0]  # start (1 s) + run (3 s): an immediate restart
    assert life == pytest.approx(4, abs=0.5)
    assert gaps == pytest.approx([life, life, 30 + life, 60 + life], abs=0.5)


async def test_a_push_whose_every_instance_crashes_while_starting_ends_start_unsuccessful(platform, tmp_path):
    src = tmp_path / "sick"
    shutil.copytree(EXAMPLES / "python", src)
    (src / "manifest.yml").write_text(
        "applications:\n- name: sick\n  memory: 64M\n  instances: 2\n  timeout: 5\n  env:\n    MF_HEALTHY: false\n"
    )

    code, lines = await run(platform, "push", "-f", str(src / "manifest.yml"))

    assert code == 1, "\n".join(lines)
    assert "Start unsuccessful" in lines
    assert lines[-2:] == ["TIP: use 'cf logs sick --recent' for more information", "FAILED"]


# --- instances that cannot be placed -------------------------------------------------------------------


async def test_instances_too_big_for_any_cell_show_down_and_the_push_ends(platform):
    started = platform.clock.monotonic()
    code, lines = await run(platform, "push", "big", "-f", str(EXAMPLES / "python" / "manifest.yml"), "-m", "64G")

    assert code == 1, "\n".join(lines)
    # cf v8 waits CF_STARTUP_TIMEOUT (5 minutes) for instances it cannot place,
    # saying why at every poll, then gives up with its start timeout.
    assert platform.clock.monotonic() - started >= 300
    assert "Error starting instances: 'insufficient resources: memory'" in lines
    assert lines[-6:] == [
        "Start app timeout",
        "",
        "TIP: Application must be listening on the right port. Instead of hard coding the port, "
        "use the $PORT environment variable.",
        "",
        "Use 'cf logs big --recent' for more information",
        "FAILED",
    ]
    code, lines = await run(platform, "app", "big")
    for index in (0, 1):
        row = line_starting(lines, f"#{index} ")
        assert re.match(rf"#{index}   down ", row) and row.endswith("insufficient resources: memory   -"), row


# --- scale, stop, start ------------------------------------------------------------------------------


async def test_scaling_up_runs_more_instances_and_scaling_down_retires_the_extras(platform):
    await _push(platform, "hello", "-f", str(EXAMPLES / "python" / "manifest.yml"))

    code, lines = await run(platform, "scale", "hello", "-i", "3")
    assert code == 0, "\n".join(lines)
    assert "instances:      2/3" in lines or "instances:      3/3" in lines
    assert await eventually(platform, lambda: _eq(_running(platform, "hello"), 3))
    code, lines = await run(platform, "app", "hello")
    assert "instances:      3/3" in lines
    assert await _instances_on_cells(platform) == 3

    code, lines = await run(platform, "scale", "hello", "-i", "1")
    assert code == 0
    assert "instances:      1/1" in lines
    assert [a.index for a in await actual_lrps(platform, "hello")] == [0]
    await platform.clock.advance(1)
    assert await _instances_on_cells(platform) == 1
    code, lines = await run(platform, "events", "hello")
    assert "audit.app.process.scale" in "\n".join(lines)


async def test_stop_removes_every_instance_and_start_brings_them_back(platform):
    await _push(platform, "hello", "-f", str(EXAMPLES / "python" / "manifest.yml"))

    code, lines = await run(platform, "stop", "hello")
    assert (code, lines) == (0, ["Stopping app hello in org minifoundry / space dev as admin...", "OK", ""])
    await platform.clock.advance(1)
    assert await _instances_on_cells(platform) == 0
    code, lines = await run(platform, "app", "hello")
    assert "requested state:   stopped" in lines
    assert "instances:      0/2" in lines
    # Cloud Controller reports a stopped app's instances as down, and cf shows them.
    assert re.fullmatch(
        r"#0   down    \S+Z   0\.0%   0B of 0B   0B of 0B   0B/s of 0B/s {31}-", line_starting(lines, "#0 ")
    )

    code, lines = await run(platform, "start", "hello")
    assert code == 0, "\n".join(lines)
    assert "Staging app and tracing logs..." not in lines  # the droplet is still there
    assert lines[:4] == [
        "Starting app hello in org minifoundry / space dev as admin...",
        "",
        "Waiting for app to start...",
        "",
    ]
    assert "instances:      2/2" in lines
    assert await _instances_on_cells(platform) == 2
    code, lines = await run(platform, "events", "hello")
    events = [line.split()[1] for line in lines[2:]]
    assert events[:2] == ["audit.app.start", "audit.app.stop"]


# --- logs and cells --------------------------------------------------------------------------------------


async def test_recent_logs_show_staging_cell_api_and_app_lines(platform):
    await _push(platform, "hello", "-f", str(EXAMPLES / "python" / "manifest.yml"))

    code, lines = await run(platform, "logs", "hello", "--recent")

    assert code == 0
    assert lines[0] == "Retrieving logs for app hello in org minifoundry / space dev as admin..."
    sources = {m.group(1) for line in lines if (m := re.search(r" \[([A-Z/]+)/\d+\] (OUT|ERR) ", line))}
    assert {"STG", "CELL", "API", "APP/PROC/WEB"} <= sources
    assert any("[STG/0] OUT -----> Python Buildpack version" in line for line in lines)
    assert any("[APP/PROC/WEB/0] OUT Starting app with command: python app.py" in line for line in lines)


async def test_cells_lists_every_cell_with_its_zone_and_instances(platform):
    await _push(platform, "hello", "-f", str(EXAMPLES / "python" / "manifest.yml"))

    code, lines = await run(platform, "cells")

    assert code == 0
    header = lines.index(next(line for line in lines if line.startswith("cell ")))
    columns = ["cell", "zone", "state", "memory", "disk", "containers", "instances", "running", "tasks"]
    assert lines[header].split() == columns
    rows = [line.split() for line in lines[header + 1 :]]
    assert [r[0] for r in rows] == ["cell-1", "cell-2", "cell-3", "cell-4"]
    assert [r[1] for r in rows] == ["z1", "z2", "z1", "z2"]
    assert all(r[2] == "active" for r in rows)
    running = {r[0]: r[-2] for r in rows}  # "running/instances"
    busy = [r for r in rows if running[r[0]] != "0/0"]
    assert [running[r[0]] for r in busy] == ["1/1", "1/1"]
    assert {r[1] for r in busy} == {"z1", "z2"}  # hello's two instances, one per zone


# --- deletes and the blob store -------------------------------------------------------------------------


async def test_the_blob_store_holds_exactly_the_blobs_cc_db_refers_to_after_a_delete(platform):
    await _push(platform, "hello", "-f", str(EXAMPLES / "python" / "manifest.yml"))
    await _push(platform, cwd=EXAMPLES / "node")
    hello = await app_guid(platform, "hello")
    mine = {p.blob_key for p in await db(platform, "list_packages", app_guid=hello)}
    mine |= {d.blob_key for d in await db(platform, "list_droplets", app_guid=hello)}

    code, lines = await run(platform, "delete", "hello", "-f")

    assert (code, lines[-2:]) == (0, ["OK", ""])
    assert await db(platform, "find_app", name="hello") is None
    referenced = await db(platform, "referenced_blob_keys")
    assert referenced and await blob_keys(platform) == referenced
    assert not mine & referenced
    inventory = await platform.system.ask("blobstore", blobs.TakeInventory(frozenset(referenced), verify=True))
    assert (inventory.orphans, inventory.missing, inventory.corrupt) == ((), (), ())
    await platform.clock.advance(1)
    assert await _instances_on_cells(platform) == 2  # node-hello's two; hello's are gone
    code, lines = await run(platform, "apps")
    assert [line.split()[0] for line in lines[3:]] == ["node-hello"]


# --- a platform restart --------------------------------------------------------------------------------


async def test_apps_and_their_running_instances_survive_a_platform_restart(make_platform):
    first = make_platform()
    await first.start()
    try:
        await _push(first, "hello", "-f", str(EXAMPLES / "python" / "manifest.yml"))
        await _push(first, cwd=EXAMPLES / "static")
        code, _ = await run(first, "stop", "static-hello")
        assert code == 0
        stopped_at = first.clock.monotonic()
    finally:
        await first.stop()

    second = make_platform(clock_start=stopped_at)
    await second.start()
    try:
        code, lines = await run(second, "apps")
        assert code == 0
        table = {line.split()[0]: line.split()[1] for line in lines[3:]}
        assert table == {"hello": "started", "static-hello": "stopped"}
        # the new platform numbers its commands from 1 again: no trace is overwritten
        await _push(second, cwd=EXAMPLES / "node")
        code, lines = await run(second, "trace", "static-hello")  # pushed as the old cmd-2, like node-hello
        assert code == 0 and "    title cf push static-hello" in lines
        assert await eventually(second, lambda: _eq(_running(second, "hello"), 2))
        code, lines = await run(second, "app", "hello")
        assert "instances:      2/2" in lines
        assert await actual_lrps(second, "static-hello") == ()
        app = await db(second, "find_app", name="static-hello")
        assert app.state is AppState.STOPPED and app.droplet_guid is not None
        snapshot = await second.system.ask("bbs", BBSSnapshot())
        assert snapshot.app(await app_guid(second, "static-hello")) is None
    finally:
        await second.stop()


async def test_a_second_platform_on_a_data_directory_in_use_is_refused(platform, make_platform):
    other = make_platform()
    with pytest.raises(DataDirInUse):
        await other.start()
    code, lines = await run(platform, "apps")
    assert code == 0


INTERRUPTED = "StagingError - Staging error: staging was interrupted by a platform restart"


async def _stop_and_boot_again(first, push, make_platform):
    """Stop `first` with `push` in flight (never answered: cancelled), and
    start a new platform on its data from the time it stopped."""
    stopped_at = first.clock.monotonic()
    await first.stop()
    push.cancel()
    await asyncio.gather(push, return_exceptions=True)
    second = make_platform(clock_start=stopped_at)
    await second.start()
    return second


async def test_a_build_a_stopped_platform_left_staging_fails_at_the_next_boot(make_platform):
    first = make_platform(staging_seconds=600)
    await first.start()
    push = asyncio.ensure_future(run(first, "push", "hello", "-f", str(EXAMPLES / "python" / "manifest.yml")))

    async def staging_builds():
        app = await db(first, "find_app", name="hello")
        return app is not None and await db(first, "list_builds", app_guid=app.guid)

    await eventually(first, staging_builds, every=0.5)
    second = await _stop_and_boot_again(first, push, make_platform)
    try:
        [build] = await db(second, "list_builds", app_guid=await app_guid(second, "hello"))
        assert build.error == INTERRUPTED
        code, lines = await run(second, "push", "hello", "-f", str(EXAMPLES / "python" / "manifest.yml"))
        assert code == 0, "\n".join(lines)
        assert "instances:       2/2" in lines
    finally:
        await second.stop()


@pytest.mark.parametrize("cells_restarted", [False, True])
async def test_a_staging_auction_cut_short_by_a_stop_is_an_interrupted_build_not_a_failed_one(
    make_platform, cells_restarted
):
    from actors.runtime.delivery import FaultRule

    first = make_platform()
    await first.start()
    if cells_restarted:
        # A restarted subtree keeps its place in the order things stop.
        first.system.kill("cells")
        await first.clock.sleep(30)
        assert first.system.starts("cells") == 2
    # The staging task's placement (Perform) waits in a cell's mailbox when
    # the platform stops, and the cell's stop fails it: the cells stop after
    # the cloud controller, so the auctioneer's failed commit reaches nobody
    # who would record it, and the build is left to the next boot.
    held = first.system.seam.add_fault(FaultRule("delay", receiver="cell-*", message_type="Perform", delay=0.5))
    push = asyncio.ensure_future(run(first, "push", "hello", "-p", str(EXAMPLES / "python")))

    async def perform_sent() -> bool:
        return held.matched > 0

    await eventually(first, perform_sent, every=0.01)
    for cell in ("cell-1", "cell-2", "cell-3", "cell-4"):
        first.system.pause(cell)
    second = await _stop_and_boot_again(first, push, make_platform)
    try:
        [build] = await db(second, "list_builds", app_guid=await app_guid(second, "hello"))
        assert build.error == INTERRUPTED
    finally:
        await second.stop()


@pytest.mark.parametrize("supervisor", ["cells", "components"])
async def test_a_killed_supervisor_is_restarted_with_its_subtree_and_the_app_runs_again(platform, supervisor):
    await _push(platform, "hello", "-p", str(EXAMPLES / "python"), "-i", "3")
    assert platform.system.kill(supervisor)
    await platform.clock.sleep(120)
    # Once: its children (and theirs) went down with it, so the new one
    # could start them under their names (before, every restart found the
    # names taken, and the platform restarted its components without end).
    assert platform.system.starts(supervisor) == 2
    assert platform.system.starts("cells") == 2
    assert [platform.system.starts(f"cell-{i}") for i in range(1, 5)] == [2, 2, 2, 2]
    if supervisor == "components":
        assert [platform.system.starts(n) for n in ("ccdb", "bbs", "cloud_controller", "cli")] == [2, 2, 2, 2]
    assert await eventually(platform, lambda: _eq(_running(platform, "hello"), 3))
    assert await _instances_on_cells(platform) == 3


async def test_a_restarted_cloud_controller_leaves_one_copy_of_each_app_running(platform):
    await _push(platform, "hello", "-f", str(EXAMPLES / "python" / "manifest.yml"))
    old = platform.system.lookup("cloud_controller")
    before = {a.instance_guid for a in await actual_lrps(platform, "hello")}

    assert platform.system.kill("cloud_controller")

    async def restarted():
        ref = platform.system.lookup("cloud_controller")
        return ref is not None and ref is not old and ref.is_alive()

    await eventually(platform, restarted, every=0.1)
    assert await eventually(platform, lambda: _eq(_running(platform, "hello"), 2))
    await platform.clock.advance(1)
    assert await _instances_on_cells(platform) == 2
    # Adopted, not restarted: the same instances still run.
    assert {a.instance_guid for a in await actual_lrps(platform, "hello")} == before
    code, lines = await run(platform, "app", "hello")
    assert "instances:      2/2" in lines


async def test_deleting_an_app_never_frees_the_blob_a_concurrent_push_of_identical_bits_stored(platform):
    import asyncio as _asyncio

    from tests.actors.conftest import blob_keys, db

    static = str(EXAMPLES / "static")
    assert (await run(platform, "push", "one", "-p", static))[0] == 0
    # Same bits under another name while the first app is deleted: both want
    # the same content-addressed package blob.
    # Slow writes hold the second upload in flight while the delete runs.
    platform.faults.blob_fault("blob.put", delay=5.0, fail=False)
    pushing = _asyncio.ensure_future(run(platform, "push", "two", "-p", static))
    await platform.clock.advance(1)
    assert (await run(platform, "delete", "one", "-f"))[0] == 0
    platform.faults.heal()
    code, lines = await pushing
    assert code == 0, lines
    referenced = await db(platform, "referenced_blob_keys")
    held = await blob_keys(platform)
    assert referenced <= held  # nothing CC_DB points to is missing
    assert held == referenced  # and nothing is orphaned
