from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import anyio
import pytest

from actors.ccdb.schema import LATEST_VERSION, MIGRATIONS
from actors.ccdb.store import CCDB, OP_READ, OP_WRITE
from protocol.errors import AppNameTaken, AppNotFound, DatabaseUnavailable
from protocol.records import DELIVERY_FIELDS, AuditEvent
from protocol.states import AppState, BuildState, DropletState, PackageState

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def guids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"event-{next(counter)}"


class Crash(Exception):
    """Stands in for the process dying in the middle of a transaction."""


class CountingGuard:
    def __init__(self) -> None:
        self.entered = 0
        self.depth = 0

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        self.entered += 1
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


class SwitchableFault:
    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.seen: list[str] = []

    async def __call__(self, op: str) -> None:
        self.seen.append(op)
        if op in self.failing:
            raise DatabaseUnavailable()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ccdb.sqlite"


@pytest.fixture
async def db(db_path: Path, anyio_backend: str) -> AsyncIterator[CCDB]:
    async with CCDB(db_path, new_guid=guids()) as db:
        yield db


def raw(path: Path, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


async def ready_package(db: CCDB, app_guid: str, guid: str, blob: str, now: datetime) -> None:
    await db.create_package(guid, app_guid, now=now)
    await db.finish_package_upload(guid, blob_key=blob, size=10, now=now, actor="user")


async def stage(
    db: CCDB,
    app_guid: str,
    package_guid: str,
    build_guid: str,
    blob: str,
    now: datetime,
    *,
    set_current: bool = True,
) -> str:
    build = await db.create_build(
        build_guid,
        app_guid,
        package_guid,
        now=now,
        actor="user",
        staging_memory_mb=1024,
        staging_disk_mb=4096,
        droplet_guid=f"droplet-of-{build_guid}",
    )
    await db.finish_build_staged(
        build_guid,
        blob_key=blob,
        size=20,
        buildpacks=["python"],
        detected_buildpack="python",
        start_command="python app.py",
        process_types={"web": "python app.py"},
        now=now,
        set_current=set_current,
    )
    assert build.droplet_guid is not None
    return build.droplet_guid


async def staging_build(db: CCDB) -> None:
    """app-1 'hello' with a READY package and a build STAGING from it."""
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    await ready_package(db, "app-1", "pkg-1", key("pkg-1"), at(1))
    await db.create_build(
        "build-1",
        "app-1",
        "pkg-1",
        now=at(2),
        actor="user",
        staging_memory_mb=1024,
        staging_disk_mb=4096,
        droplet_guid="droplet-1",
    )


# --- schema and lifecycle ---------------------------------------------------


async def test_opening_a_new_file_applies_every_migration(db: CCDB, db_path: Path) -> None:
    assert db.schema_version == LATEST_VERSION
    assert raw(db_path, "SELECT version FROM schema_version ORDER BY version") == [(v,) for v, _ in MIGRATIONS]


async def test_reopening_applies_no_migration_twice_and_keeps_data(db_path: Path, anyio_backend: str) -> None:
    async with CCDB(db_path) as db:
        await db.create_app("app-1", "hello", now=at(0), actor="user")
    async with CCDB(db_path) as db:
        assert db.schema_version == LATEST_VERSION
        assert (await db.get_app("app-1")).name == "hello"
    assert raw(db_path, "SELECT count(*) FROM schema_version") == [(len(MIGRATIONS),)]


async def test_upgrading_from_version_1_keeps_data_and_adds_the_indexes(db_path: Path, anyio_backend: str) -> None:
    async with CCDB(db_path, migrations=MIGRATIONS[:1]) as db:
        assert db.schema_version == 1
        await db.create_app("app-1", "hello", now=at(0), actor="user")
        await ready_package(db, "app-1", "pkg-1", key("pkg-1"), at(1))
    indexes = "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'packages_by_app'"
    assert raw(db_path, indexes) == []

    async with CCDB(db_path) as db:
        assert db.schema_version == LATEST_VERSION
        assert (await db.get_app("app-1")).name == "hello"
        assert (await db.latest_ready_package("app-1")).blob_key == key("pkg-1")
        assert len(await db.list_events("app-1")) == 2
    assert raw(db_path, indexes) == [("packages_by_app",)]


async def test_a_database_newer_than_the_code_is_refused(db_path: Path, anyio_backend: str) -> None:
    async with CCDB(db_path):
        pass
    old_code = CCDB(db_path, migrations=MIGRATIONS[:1])
    with pytest.raises(DatabaseUnavailable, match="newer than this code"):
        await old_code.open()
    assert not old_code.is_open


async def test_the_database_runs_in_wal_mode_with_foreign_keys_enforced(db: CCDB, db_path: Path) -> None:
    assert raw(db_path, "PRAGMA journal_mode") == [("wal",)]
    with pytest.raises(sqlite3.IntegrityError):
        async with db._write():
            await db._sql(
                "INSERT INTO packages (guid, app_guid, state, created_at, updated_at)"
                " VALUES ('p', 'no-such-app', 'READY', 'x', 'x')"
            )


async def test_migrations_out_of_order_are_refused(db_path: Path) -> None:
    with pytest.raises(ValueError, match="must increase"):
        CCDB(db_path, migrations=[MIGRATIONS[1], MIGRATIONS[0]])


async def test_a_closed_ccdb_refuses_operations(db_path: Path, anyio_backend: str) -> None:
    db = CCDB(db_path)
    await db.open()
    await db.close()
    await db.close()
    with pytest.raises(RuntimeError, match="not open"):
        await db.list_apps()


# --- transactions -----------------------------------------------------------


async def test_a_transaction_interrupted_midway_leaves_nothing(db: CCDB) -> None:
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    before = await db.stats()
    with pytest.raises(Crash):
        async with db._write():
            await db._sql("UPDATE apps SET instances = 7 WHERE guid = 'app-1'")
            await db._insert_event("audit.app.update", "user", "app-1", "hello", {}, "t")
            raise Crash
    assert await db.stats() == before
    assert (await db.get_app("app-1")).instances == 1


async def test_a_transaction_cancelled_midway_leaves_nothing_and_the_connection_usable(
    db: CCDB,
) -> None:
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    with anyio.CancelScope() as scope:
        async with db._write():
            await db._sql("UPDATE apps SET instances = 7 WHERE guid = 'app-1'")
            scope.cancel()
            await anyio.sleep(0)
    assert scope.cancelled_caught
    assert (await db.get_app("app-1")).instances == 1
    await db.update_app("app-1", at(1), instances=3)
    assert (await db.get_app("app-1")).instances == 3


async def test_finish_build_staged_is_atomic_when_interrupted_mid_transaction(
    db: CCDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    await staging_build(db)
    events_before = await db.list_events("app-1")
    original = CCDB._sql

    async def crash_on_app_update(self: CCDB, sql: str, params=()):  # type: ignore[no-untyped-def]
        if sql.startswith("UPDATE apps SET droplet_guid"):
            raise Crash
        return await original(self, sql, params)

    monkeypatch.setattr(CCDB, "_sql", crash_on_app_update)
    with pytest.raises(Crash):
        await db.finish_build_staged(
            "build-1",
            blob_key=key("droplet-1"),
            size=20,
            buildpacks=["python"],
            detected_buildpack="python",
            start_command="python app.py",
            process_types={"web": "python app.py"},
            now=at(3),
        )
    monkeypatch.undo()

    assert (await db.get_build("build-1")).state is BuildState.STAGING
    droplet = await db.get_droplet("droplet-1")
    assert (droplet.state, droplet.blob_key) == (DropletState.STAGING, None)
    assert (await db.get_app("app-1")).droplet_guid is None
    assert await db.list_events("app-1") == events_before


async def test_a_raising_fault_hook_propagates_its_error_and_changes_nothing(db_path: Path, anyio_backend: str) -> None:
    fault = SwitchableFault()
    async with CCDB(db_path, fault=fault) as db:
        fault.failing = {OP_WRITE}
        with pytest.raises(DatabaseUnavailable):
            await db.create_app("app-1", "hello", now=at(0), actor="user")
        fault.failing = set()
        assert await db.find_app("hello") is None
        assert (await db.stats()).events == 0


async def test_the_fault_hook_is_told_whether_each_operation_reads_or_writes(db_path: Path, anyio_backend: str) -> None:
    fault = SwitchableFault()
    async with CCDB(db_path, fault=fault) as db:
        await db.create_app("app-1", "hello", now=at(0), actor="user")
        await db.get_app("app-1")
        await db.update_app("app-1", at(1), instances=2)
        await db.list_events("app-1")
    assert fault.seen == [OP_WRITE, OP_READ, OP_WRITE, OP_READ]


async def test_io_guard_is_entered_around_every_database_call(
    db_path: Path, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard = CountingGuard()
    calls = 0
    unguarded: list[object] = []
    original_execute = aiosqlite.Connection._execute
    original_connect = aiosqlite.Connection._connect

    async def checked_execute(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if guard.depth == 0:
            unguarded.append(fn)
        return await original_execute(self, fn, *args, **kwargs)

    async def checked_connect(self):  # type: ignore[no-untyped-def]
        if guard.depth == 0:
            unguarded.append("connect")
        return await original_connect(self)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", checked_execute)
    monkeypatch.setattr(aiosqlite.Connection, "_connect", checked_connect)
    async with CCDB(db_path, io_guard=guard) as db:
        await staging_build(db)
        await db.fail_build("build-1", "StagingError - lost", at(3))
        await db.delete_app("app-1", at(4), actor="user")
    assert unguarded == []
    assert calls > 20
    assert guard.entered >= calls
    assert guard.depth == 0


# --- apps -------------------------------------------------------------------


async def test_create_app_stores_the_app_and_an_audit_app_create_event(db: CCDB) -> None:
    app = await db.create_app(
        "app-1",
        "hello",
        now=at(0),
        actor="user",
        memory_mb=256,
        instances=2,
        buildpacks=["python"],
        env={"SECRET": "x"},
        routes=["hello.apps.internal"],
    )
    assert app == await db.get_app("app-1")
    assert (app.state, app.memory_mb, app.instances) == (AppState.STOPPED, 256, 2)
    assert app.buildpacks == ("python",)
    assert app.env == {"SECRET": "x"}
    assert app.routes == ("hello.apps.internal",)
    assert app.created_at == app.updated_at == at(0)
    [event] = await db.list_events("app-1")
    assert (event.type, event.actor, event.actee_name) == ("audit.app.create", "user", "hello")
    assert "SECRET" not in str(event.metadata)


async def test_get_app_of_an_unknown_guid_raises_app_not_found(db: CCDB) -> None:
    with pytest.raises(AppNotFound):
        await db.get_app("nope")


async def test_find_app_returns_none_when_no_app_has_the_name(db: CCDB) -> None:
    assert await db.find_app("nope") is None


async def test_app_names_are_unique(db: CCDB) -> None:
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    with pytest.raises(AppNameTaken):
        await db.create_app("app-2", "hello", now=at(1), actor="user")
    assert [a.guid for a in await db.list_apps()] == ["app-1"]
    assert await db.list_events("app-2") == []


async def test_renaming_an_app_to_a_taken_name_is_refused(db: CCDB) -> None:
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    await db.create_app("app-2", "world", now=at(0), actor="user")
    with pytest.raises(AppNameTaken):
        await db.update_app("app-2", at(1), name="hello")
    assert (await db.get_app("app-2")).name == "world"


async def test_update_app_changes_fields_and_records_its_event_together(db: CCDB) -> None:
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    app = await db.update_app(
        "app-1",
        at(5),
        state=AppState.STARTED,
        instances=3,
        event=AuditEvent("audit.app.start", "user", {"instances": 3}),
    )
    assert (app.state, app.instances, app.updated_at) == (AppState.STARTED, 3, at(5))
    newest = (await db.list_events("app-1"))[0]
    assert (newest.type, newest.time, newest.metadata) == ("audit.app.start", at(5), {"instances": 3})


async def test_update_app_rejects_fields_it_does_not_know(db: CCDB) -> None:
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    with pytest.raises(TypeError, match="guid"):
        await db.update_app("app-1", at(1), guid="other")


async def test_the_current_droplet_must_be_a_staged_droplet_of_the_app(db: CCDB) -> None:
    await staging_build(db)
    with pytest.raises(ValueError, match="not a staged droplet"):
        await db.update_app("app-1", at(3), droplet_guid="droplet-1")


async def test_naive_timestamps_are_refused(db: CCDB) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await db.create_app("app-1", "hello", now=datetime(2026, 1, 1), actor="user")
    assert await db.list_apps() == []


# --- packages ---------------------------------------------------------------


async def test_finish_package_upload_readies_the_package_and_stamps_the_app_once(
    db: CCDB,
) -> None:
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    await db.create_package("pkg-1", "app-1", now=at(1))
    package = await db.finish_package_upload("pkg-1", blob_key=key("p"), size=42, now=at(2), actor="user")
    await db.finish_package_upload("pkg-1", blob_key=key("p"), size=42, now=at(3), actor="user")
    assert (package.state, package.blob_key, package.size) == (PackageState.READY, key("p"), 42)
    assert (await db.get_app("app-1")).last_uploaded_at == at(2)
    types = [e.type for e in await db.list_events("app-1")]
    assert types == ["audit.app.upload-bits", "audit.app.create"]


async def test_latest_ready_package_is_the_newest_ready_one(db: CCDB) -> None:
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    await ready_package(db, "app-1", "pkg-old", key("old"), at(1))
    await ready_package(db, "app-1", "pkg-new", key("new"), at(2))
    await db.create_package("pkg-waiting", "app-1", now=at(3))
    await db.create_package("pkg-failed", "app-1", now=at(4), state=PackageState.FAILED)
    assert (await db.latest_ready_package("app-1")).guid == "pkg-new"
    assert await db.latest_ready_package("no-such-app") is None


async def test_a_package_for_an_unknown_app_raises_app_not_found(db: CCDB) -> None:
    with pytest.raises(AppNotFound):
        await db.create_package("pkg-1", "nope", now=at(0))


async def test_update_package_changes_its_state_with_an_optional_event(db: CCDB) -> None:
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    await db.create_package("pkg-1", "app-1", now=at(1))
    package = await db.update_package(
        "pkg-1",
        at(2),
        state=PackageState.FAILED,
        event=AuditEvent("audit.app.package.fail", "system", {}),
    )
    assert (package.state, package.updated_at) == (PackageState.FAILED, at(2))
    assert (await db.list_events("app-1"))[0].type == "audit.app.package.fail"


# --- builds and droplets ----------------------------------------------------


async def test_create_build_makes_a_staging_build_and_droplet_with_an_event(db: CCDB) -> None:
    await staging_build(db)
    build = await db.get_build("build-1")
    droplet = await db.get_droplet("droplet-1")
    assert (build.state, build.droplet_guid, build.created_by) == (
        BuildState.STAGING,
        "droplet-1",
        "user",
    )
    assert (droplet.state, droplet.build_guid, droplet.package_guid) == (
        DropletState.STAGING,
        "build-1",
        "pkg-1",
    )
    assert (await db.list_events("app-1"))[0].type == "audit.app.build.create"


async def test_a_build_of_another_apps_package_is_refused(db: CCDB) -> None:
    await staging_build(db)
    await db.create_app("app-2", "world", now=at(0), actor="user")
    with pytest.raises(LookupError):
        await db.create_build(
            "build-2",
            "app-2",
            "pkg-1",
            now=at(3),
            actor="u",
            staging_memory_mb=1,
            staging_disk_mb=1,
        )
    assert await db.list_builds("app-2") == []


async def test_finish_build_staged_stages_build_and_droplet_and_makes_it_current(
    db: CCDB,
) -> None:
    await staging_build(db)
    droplet = await db.finish_build_staged(
        "build-1",
        blob_key=key("droplet-1"),
        size=20,
        buildpacks=["python"],
        detected_buildpack="python",
        start_command="python app.py",
        process_types={"web": "python app.py"},
        now=at(3),
    )
    assert (droplet.state, droplet.blob_key, droplet.start_command) == (
        DropletState.STAGED,
        key("droplet-1"),
        "python app.py",
    )
    assert droplet.process_types == {"web": "python app.py"}
    assert (await db.get_build("build-1")).state is BuildState.STAGED
    assert (await db.get_app("app-1")).droplet_guid == "droplet-1"
    assert await db.current_droplet("app-1") == droplet
    event = (await db.list_events("app-1"))[0]
    assert (event.type, event.actor, event.metadata["droplet_guid"]) == (
        "audit.app.droplet.create",
        "user",
        "droplet-1",
    )


async def test_finish_build_staged_without_set_current_keeps_the_current_droplet(
    db: CCDB,
) -> None:
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    await ready_package(db, "app-1", "pkg-1", key("pkg-1"), at(1))
    first = await stage(db, "app-1", "pkg-1", "build-1", key("d1"), at(2))
    await stage(db, "app-1", "pkg-1", "build-2", key("d2"), at(3), set_current=False)
    assert (await db.get_app("app-1")).droplet_guid == first


async def test_a_duplicate_staging_result_changes_nothing(db: CCDB) -> None:
    await staging_build(db)
    fields = dict(
        size=20,
        buildpacks=["python"],
        detected_buildpack="python",
        start_command="python app.py",
        process_types={},
    )
    await db.finish_build_staged("build-1", blob_key=key("first"), now=at(3), **fields)
    again = await db.finish_build_staged("build-1", blob_key=key("second"), now=at(4), **fields)
    assert again.blob_key == key("first")
    types = [e.type for e in await db.list_events("app-1")]
    assert types.count("audit.app.droplet.create") == 1


async def test_fail_build_fails_the_build_and_its_droplet(db: CCDB) -> None:
    await staging_build(db)
    build = await db.fail_build("build-1", "NoAppDetectedError - none detected", at(3))
    assert (build.state, build.error) == (BuildState.FAILED, "NoAppDetectedError - none detected")
    assert (await db.get_droplet("droplet-1")).state is DropletState.FAILED


async def test_a_staging_result_after_the_build_failed_is_ignored(db: CCDB) -> None:
    await staging_build(db)
    await db.fail_build("build-1", "StagingTimeExpired - Staging time expired", at(3))
    droplet = await db.finish_build_staged(
        "build-1",
        blob_key=key("late"),
        size=1,
        buildpacks=[],
        detected_buildpack=None,
        start_command=None,
        process_types={},
        now=at(4),
    )
    assert (droplet.state, droplet.blob_key) == (DropletState.FAILED, None)
    assert (await db.get_app("app-1")).droplet_guid is None


# --- deletion, blob references and expiry -------------------------------------


async def test_delete_app_returns_exactly_the_blob_keys_no_longer_referenced(db: CCDB) -> None:
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    await db.create_app("app-2", "world", now=at(0), actor="user")
    await ready_package(db, "app-1", "pkg-1", key("shared"), at(1))
    await ready_package(db, "app-2", "pkg-2", key("shared"), at(1))
    await stage(db, "app-1", "pkg-1", "build-1", key("only-app-1"), at(2))
    await stage(db, "app-2", "pkg-2", "build-2", key("only-app-2"), at(2))

    freed = await db.delete_app("app-1", at(3), actor="user")

    assert freed == {key("only-app-1")}
    assert await db.referenced_blob_keys() == {key("shared"), key("only-app-2")}


async def test_delete_app_removes_its_rows_but_keeps_its_events(db: CCDB) -> None:
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    await ready_package(db, "app-1", "pkg-1", key("p"), at(1))
    await stage(db, "app-1", "pkg-1", "build-1", key("d"), at(2))
    await db.delete_app("app-1", at(3), actor="admin")
    with pytest.raises(AppNotFound):
        await db.get_app("app-1")
    stats = await db.stats()
    assert (stats.apps, stats.packages, stats.builds, stats.droplets) == (0, 0, 0, 0)
    events = await db.list_events("app-1")
    assert (events[0].type, events[0].actor) == ("audit.app.delete-request", "admin")
    assert events[-1].type == "audit.app.create"


async def test_referenced_blob_keys_covers_packages_and_droplets(db: CCDB) -> None:
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    await ready_package(db, "app-1", "pkg-1", key("p"), at(1))
    await db.create_package("pkg-2", "app-1", now=at(1))
    await stage(db, "app-1", "pkg-1", "build-1", key("d"), at(2))
    assert await db.referenced_blob_keys() == {key("p"), key("d")}


async def test_expire_old_packages_keeps_the_newest_and_returns_the_freed_keys(
    db: CCDB,
) -> None:
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    await db.create_app("app-2", "world", now=at(0), actor="user")
    for n in range(1, 5):
        await ready_package(db, "app-1", f"pkg-{n}", key(f"p{n}"), at(n))
    await ready_package(db, "app-2", "other", key("p2"), at(1))

    freed = await db.expire_old_packages("app-1", at(10), keep=2)

    assert freed == {key("p1")}  # p2 is still app-2's
    states = {p.guid: p.state for p in await db.list_packages("app-1")}
    assert states == {
        "pkg-4": PackageState.READY,
        "pkg-3": PackageState.READY,
        "pkg-2": PackageState.EXPIRED,
        "pkg-1": PackageState.EXPIRED,
    }
    assert (await db.get_package("pkg-1")).blob_key is None


async def test_expire_old_packages_spares_the_current_droplets_package(db: CCDB) -> None:
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    await ready_package(db, "app-1", "pkg-1", key("p1"), at(1))
    await stage(db, "app-1", "pkg-1", "build-1", key("d1"), at(2))
    await ready_package(db, "app-1", "pkg-2", key("p2"), at(3))
    assert await db.expire_old_packages("app-1", at(4), keep=1) == set()
    assert (await db.get_package("pkg-1")).state is PackageState.READY


async def test_expire_old_droplets_never_expires_the_current_droplet(db: CCDB) -> None:
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    await ready_package(db, "app-1", "pkg-1", key("p"), at(1))
    current = await stage(db, "app-1", "pkg-1", "build-1", key("d1"), at(2))
    old = await stage(db, "app-1", "pkg-1", "build-2", key("d2"), at(3), set_current=False)
    await stage(db, "app-1", "pkg-1", "build-3", key("d3"), at(4), set_current=False)

    freed = await db.expire_old_droplets("app-1", at(5), keep=1)

    assert freed == {key("d2")}
    assert (await db.get_droplet(old)).state is DropletState.EXPIRED
    assert (await db.get_droplet(current)).state is DropletState.STAGED


# --- events and stats ---------------------------------------------------------


async def test_events_are_listed_newest_first(db: CCDB) -> None:
    await db.create_app("app-1", "hello", now=at(0), actor="user")
    await db.update_app("app-1", at(5), event=AuditEvent("audit.app.update", "user", {}))
    # Same instant as the update: the one recorded later still comes first.
    await db.record_event(
        "audit.app.process.crash",
        actor="cell-1",
        actee_guid="app-1",
        actee_name="hello",
        metadata={"index": 0, "reason": "CRASHED"},
        now=at(5),
    )
    events = await db.list_events("app-1")
    assert [e.type for e in events] == [
        "audit.app.process.crash",
        "audit.app.update",
        "audit.app.create",
    ]
    assert [e.type for e in await db.list_events("app-1", limit=1)] == ["audit.app.process.crash"]


async def test_stats_count_rows_and_report_the_schema_version(db: CCDB) -> None:
    await staging_build(db)
    stats = await db.stats()
    assert (stats.schema_version, stats.apps, stats.packages, stats.builds, stats.droplets) == (
        LATEST_VERSION,
        1,
        1,
        1,
        1,
    )
    assert stats.events == 3


async def test_a_saved_trace_is_read_back_and_only_the_newest_few_are_kept(tmp_path):
    from datetime import UTC, datetime, timedelta

    base = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    async with CCDB(tmp_path / "ccdb.sqlite3") as db:
        for i in range(7):
            await db.save_trace(
                f"t{i}",
                app_guid="app-1",
                app_name="hello",
                kind="push",
                deliveries=[{"sender": "user", "receiver": "cli", "label": f"m{i}", "step": 1}],
                now=base + timedelta(seconds=i),
                keep=5,
            )
        latest = await db.latest_trace("app-1")
        assert latest is not None and latest.trace_id == "t6"
        assert latest.deliveries[0]["label"] == "m6"
        rows = await db._sql("SELECT count(*) FROM traces")
        assert rows[0][0] == 5
        assert await db.latest_trace("nope") is None


async def test_a_trace_is_stored_as_rows_and_read_back_as_records(db: CCDB, db_path: Path) -> None:
    row = (3, 1.5, "cli", "cloud_controller", "CreateOrUpdateApp", 2, True)
    await db.save_trace("t1", app_guid="app-1", app_name="hello", kind="push", deliveries=[row], now=at(1))
    assert json.loads(raw(db_path, "SELECT deliveries FROM traces")[0][0]) == [list(row)]
    latest = await db.latest_trace("app-1")
    assert latest is not None
    assert latest.deliveries == (dict(zip(DELIVERY_FIELDS, row, strict=True)),)


async def test_a_trace_stored_as_objects_by_an_earlier_version_still_reads(db: CCDB, db_path: Path) -> None:
    old = {"seq": 1, "t": 0.0, "sender": "user", "receiver": "cli", "label": "CliCommand", "step": 1, "ask": True}
    await db._sql(
        "INSERT INTO traces (trace_id, app_guid, app_name, kind, created_at, deliveries) VALUES (?, ?, ?, ?, ?, ?)",
        ("t0", "app-1", "hello", "push", "2026-11-25T10:00:00Z", json.dumps([old])),
    )
    latest = await db.latest_trace("app-1")
    assert latest is not None and latest.deliveries == (old,)


async def test_started_usage_sums_the_started_apps_memory_and_instances_but_one(db: CCDB) -> None:
    assert await db.started_usage() == (0, 0)
    await db.create_app("a", "a", now=at(0), actor="user", state=AppState.STARTED, memory_mb=256, instances=3)
    await db.create_app("b", "b", now=at(0), actor="user", state=AppState.STARTED, memory_mb=1024, instances=1)
    await db.create_app("c", "c", now=at(0), actor="user", state=AppState.STOPPED, memory_mb=4096, instances=5)
    assert await db.started_usage() == (256 * 3 + 1024, 4)
    assert await db.started_usage("b") == (256 * 3, 3)  # the app being changed is left out
    assert await db.started_usage("unknown") == (256 * 3 + 1024, 4)


# --- group commit ----------------------------------------------------------------


class _FailsToCommit:
    """The connection's own sqlite3 connection, whose COMMIT fails (a full disk)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: object = ()) -> sqlite3.Cursor:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, params)  # type: ignore[arg-type]

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction


async def test_a_batch_runs_its_operations_in_order_in_one_hop_each_as_if_alone(
    db_path: Path, anyio_backend: str
) -> None:
    guard = CountingGuard()
    fault = SwitchableFault()
    async with CCDB(db_path, io_guard=guard, fault=fault, new_guid=guids()) as db:
        await db.create_app("app-0", "taken", now=at(0), actor="user")
        guard.entered, fault.seen = 0, []
        outcomes = await db.perform_batch(
            [
                (CCDB.create_app, {"guid": "app-1", "name": "one", "now": at(1), "actor": "user"}),
                (CCDB.find_app, {"name": "one"}),  # sees the write before it
                (CCDB.create_app, {"guid": "app-2", "name": "taken", "now": at(1), "actor": "user"}),
                (CCDB.update_app, {"guid": "app-1", "now": at(2), "instances": 3}),
                (CCDB.get_app, {"guid": "nope"}),
            ]
        )
        assert guard.entered == 1
        assert fault.seen == [OP_WRITE, OP_READ, OP_WRITE, OP_WRITE, OP_READ]
        oks = [ok for ok, _ in outcomes]
        assert oks == [True, True, False, True, False]
        assert outcomes[1][1].guid == "app-1"
        assert isinstance(outcomes[2][1], AppNameTaken) and isinstance(outcomes[4][1], AppNotFound)
        # The failed create left nothing, not even its event; the others are kept.
        assert raw(db_path, "SELECT guid, instances FROM apps ORDER BY guid") == [("app-0", 1), ("app-1", 3)]
        assert [e.actee_guid for e in await db.list_events("app-2")] == []
        assert [e.type for e in await db.list_events("app-1")] == ["audit.app.create"]


async def test_a_batch_whose_commit_fails_keeps_nothing_and_fails_every_operation_from_its_first_write(
    db_path: Path, anyio_backend: str
) -> None:
    fault = SwitchableFault()
    async with CCDB(db_path, fault=fault, new_guid=guids()) as db:
        await db.create_app("app-0", "zero", now=at(0), actor="user")
        fault.failing = {OP_READ}  # the batch's second read fails before the hop
        good = db._sqlite
        assert good is not None
        db._sqlite = _FailsToCommit(good)  # type: ignore[assignment]
        try:
            outcomes = await db.perform_batch(
                [
                    (CCDB.get_app, {"guid": "app-0"}),
                    (CCDB.create_app, {"guid": "app-1", "name": "one", "now": at(1), "actor": "user"}),
                    (CCDB.find_app, {"name": "one"}),
                    (CCDB.update_app, {"guid": "app-0", "now": at(2), "instances": 4}),
                ]
            )
        finally:
            db._sqlite = good
        fault.failing = set()
        # The reads' fault hooks failed them; the COMMIT failed the writes.
        assert [(ok, type(error)) for ok, error in outcomes] == [
            (False, DatabaseUnavailable),
            (False, sqlite3.OperationalError),
            (False, DatabaseUnavailable),
            (False, sqlite3.OperationalError),
        ]
        assert "disk is full" in str(outcomes[1][1])
        assert raw(db_path, "SELECT guid, instances FROM apps") == [("app-0", 1)]
        # The connection goes on.
        assert [ok for ok, _ in await db.perform_batch([(CCDB.find_app, {"name": "zero"})])] == [True]
        await db.update_app("app-0", at(3), instances=2)
        assert (await db.get_app("app-0")).instances == 2


# --- records kept once read -----------------------------------------------------------------------


async def test_a_record_read_again_comes_without_a_hop_until_its_row_changes(db_path: Path, anyio_backend: str) -> None:
    guard = CountingGuard()
    fault = SwitchableFault()
    async with CCDB(db_path, io_guard=guard, fault=fault, new_guid=guids()) as db:
        await db.create_app("app-1", "one", now=at(0), actor="user")
        first = await db.get_app("app-1")
        guard.entered, fault.seen = 0, []
        assert await db.get_app("app-1") is first
        assert guard.entered == 0 and fault.seen == [OP_READ]  # the fault hook still runs
        fault.failing = {OP_READ}
        with pytest.raises(DatabaseUnavailable):
            await db.get_app("app-1")
        fault.failing = set()
        await db.update_app("app-1", at(1), instances=3)
        assert (await db.get_app("app-1")).instances == 3


async def test_a_row_changed_by_any_statement_is_read_anew(db_path: Path, anyio_backend: str) -> None:
    async with CCDB(db_path, new_guid=guids()) as db:
        await db.create_app("app-1", "one", now=at(0), actor="user")
        await ready_package(db, "app-1", "pkg-1", key("blob"), at(0))
        assert (await db.get_app("app-1")).memory_mb == 1024
        assert (await db.get_package("pkg-1")).size is not None
        # Written as no operation writes it: SQLite's trigger still tells.
        await db._sql("UPDATE apps SET memory_mb = 64 WHERE guid = 'app-1'")
        await db._sql("UPDATE packages SET size = 7 WHERE guid = 'pkg-1'")
        assert (await db.get_app("app-1")).memory_mb == 64
        assert (await db.get_package("pkg-1")).size == 7


async def test_a_read_in_the_same_batch_as_a_write_sees_it_and_a_failed_commit_forgets_it(
    db_path: Path, anyio_backend: str
) -> None:
    async with CCDB(db_path, new_guid=guids()) as db:
        await db.create_app("app-1", "one", now=at(0), actor="user")
        assert (await db.get_app("app-1")).instances == 1
        outcomes = await db.perform_batch(
            [(CCDB.update_app, {"guid": "app-1", "now": at(1), "instances": 2}), (CCDB.get_app, {"guid": "app-1"})]
        )
        assert outcomes[1][1].instances == 2
        good = db._sqlite
        assert good is not None
        db._sqlite = _FailsToCommit(good)  # type: ignore[assignment]
        try:
            outcomes = await db.perform_batch(
                [(CCDB.update_app, {"guid": "app-1", "now": at(2), "instances": 5}), (CCDB.get_app, {"guid": "app-1"})]
            )
        finally:
            db._sqlite = good
        # The read saw the write the COMMIT then lost: both fail, and neither is kept.
        assert [ok for ok, _ in outcomes] == [False, False]
        assert (await db.get_app("app-1")).instances == 2


async def test_a_read_asked_while_a_write_is_on_its_way_waits_for_it(db_path: Path, anyio_backend: str) -> None:
    async with CCDB(db_path, new_guid=guids()) as db:
        await db.create_app("app-1", "one", now=at(0), actor="user")
        await db.get_app("app-1")
        _, read = await asyncio.gather(db.update_app("app-1", at(1), instances=9), db.get_app("app-1"))
        assert read.instances == 9


async def test_changing_one_app_keeps_the_others_records(db_path: Path, anyio_backend: str) -> None:
    guard = CountingGuard()
    async with CCDB(db_path, io_guard=guard, new_guid=guids()) as db:
        await db.create_app("app-1", "one", now=at(0), actor="user")
        await db.create_app("app-2", "two", now=at(0), actor="user")
        await ready_package(db, "app-2", "pkg-2", key("blob"), at(0))
        await db.get_app("app-2")
        await db.get_package("pkg-2")
        await db.update_app("app-1", at(1), instances=3)
        guard.entered = 0
        await db.get_app("app-2")
        await db.get_package("pkg-2")
        assert guard.entered == 0


async def test_deleting_an_app_forgets_its_packages_builds_and_droplets(db_path: Path, anyio_backend: str) -> None:
    async with CCDB(db_path, new_guid=guids()) as db:
        await db.create_app("app-1", "one", now=at(0), actor="user")
        await ready_package(db, "app-1", "pkg-1", key("blob"), at(0))
        await db.get_package("pkg-1")
        await db.delete_app("app-1", at(1), actor="user")
        with pytest.raises(LookupError):
            await db.get_package("pkg-1")
