"""CC_DB: Cloud Controller's durable metadata in one SQLite file.

`CCDB` owns one aiosqlite connection for its life (WAL, foreign keys on) and
the domain operations on apps, packages, builds, droplets and audit events.
Each operation is one transaction: writes that belong together (a droplet
staged, its build, the app's current droplet, the audit event) commit together
or not at all. The `ccdb` actor owns one instance; nothing else opens the file.

Hooks, all injected:
- ``io_guard()`` is entered around every aiosqlite call, so a virtual clock
  knows threaded work is in flight and does not jump meanwhile;
- ``fault(op)`` is awaited before each operation with ``"ccdb.read"`` or
  ``"ccdb.write"`` and may raise `DatabaseUnavailable` or sleep;
- ``new_guid()`` names events (pass one drawn from the platform's seeded
  random so runs repeat); every time is passed in by the caller.

sqlite3's own exceptions pass through unchanged. Domain errors: `AppNotFound`,
`AppNameTaken`; an unknown package, build or droplet guid raises LookupError.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiosqlite
import anyio

from protocol.records import (
    AppRecord,
    AuditEvent,
    BuildRecord,
    CCDBStats,
    DropletRecord,
    EventRecord,
    PackageRecord,
    TraceRecord,
    freeze,
)
from actors.ccdb.schema import (
    BOOTSTRAP,
    MIGRATIONS,
    Migration,
    check_migrations,
    pending_migrations,
)
from protocol.errors import AppNameTaken, AppNotFound, DatabaseUnavailable, ResourceNotFound
from protocol.states import (
    AppState,
    BuildState,
    DropletState,
    HealthCheckType,
    PackageState,
)

__all__ = [
    "CCDB",
    "DEFAULT_STACK",
    "OP_READ",
    "OP_WRITE",
    "AppRecord",
    "BuildRecord",
    "CCDBStats",
    "DropletRecord",
    "EventRecord",
    "PackageRecord",
]

OP_READ = "ccdb.read"
OP_WRITE = "ccdb.write"
DEFAULT_STACK = "cflinuxfs4"

IoGuard = Callable[[], AbstractAsyncContextManager[object]]
Fault = Callable[[str], Awaitable[None]]
EventSpec = AuditEvent

# Fixed width, so text order is time order in SQL.
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_APP_UPDATABLE = frozenset(
    {
        "name",
        "state",
        "memory_mb",
        "disk_mb",
        "instances",
        "buildpacks",
        "command",
        "stack",
        "health_check_type",
        "health_check_http_endpoint",
        "health_check_timeout",
        "env",
        "routes",
        "droplet_guid",
        "last_uploaded_at",
        "process_version",
    }
)
_PACKAGE_UPDATABLE = frozenset({"state", "blob_key", "size"})


def _new_uuid() -> str:
    return str(uuid.uuid4())


def _ts(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive time would be read back as UTC and silently shift.
        raise ValueError(f"timestamps must be timezone-aware, got {moment!r}")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _dt(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def _dt_or_none(text: str | None) -> datetime | None:
    return None if text is None else _dt(text)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _encode_app_field(name: str, value: Any) -> Any:
    if name == "state":
        return AppState(value).value
    if name == "health_check_type":
        return HealthCheckType(value).value
    if name in ("buildpacks", "routes"):
        return _json(list(value))
    if name == "env":
        return _json(dict(value))
    if name == "last_uploaded_at":
        return None if value is None else _ts(value)
    return value


def _app(row: sqlite3.Row) -> AppRecord:
    return AppRecord(
        guid=row["guid"],
        name=row["name"],
        state=AppState(row["state"]),
        memory_mb=row["memory_mb"],
        disk_mb=row["disk_mb"],
        instances=row["instances"],
        buildpacks=tuple(json.loads(row["buildpacks"])),
        command=row["command"],
        stack=row["stack"],
        health_check_type=HealthCheckType(row["health_check_type"]),
        health_check_http_endpoint=row["health_check_http_endpoint"],
        health_check_timeout=row["health_check_timeout"],
        env=freeze(json.loads(row["env"])),
        routes=tuple(json.loads(row["routes"])),
        droplet_guid=row["droplet_guid"],
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
        last_uploaded_at=_dt_or_none(row["last_uploaded_at"]),
        # Absent from a database still at a schema older than 4 (tests open those).
        process_version=row["process_version"] if "process_version" in row.keys() else None,
    )


def _package(row: sqlite3.Row) -> PackageRecord:
    return PackageRecord(
        guid=row["guid"],
        app_guid=row["app_guid"],
        state=PackageState(row["state"]),
        blob_key=row["blob_key"],
        size=row["size"],
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
    )


def _build(row: sqlite3.Row) -> BuildRecord:
    return BuildRecord(
        guid=row["guid"],
        app_guid=row["app_guid"],
        package_guid=row["package_guid"],
        state=BuildState(row["state"]),
        error=row["error"],
        droplet_guid=row["droplet_guid"],
        staging_memory_mb=row["staging_memory_mb"],
        staging_disk_mb=row["staging_disk_mb"],
        created_by=row["created_by"],
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
    )


def _droplet(row: sqlite3.Row) -> DropletRecord:
    return DropletRecord(
        guid=row["guid"],
        app_guid=row["app_guid"],
        build_guid=row["build_guid"],
        package_guid=row["package_guid"],
        state=DropletState(row["state"]),
        blob_key=row["blob_key"],
        size=row["size"],
        buildpacks=tuple(json.loads(row["buildpacks"])),
        detected_buildpack=row["detected_buildpack"],
        start_command=row["start_command"],
        process_types=freeze(json.loads(row["process_types"])),
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
    )


def _event(row: sqlite3.Row) -> EventRecord:
    return EventRecord(
        guid=row["guid"],
        time=_dt(row["time"]),
        type=row["type"],
        actor=row["actor"],
        actee_guid=row["actee_guid"],
        actee_name=row["actee_name"],
        metadata=freeze(json.loads(row["metadata"])),
    )


class CCDB:
    """Cloud Controller's database: one SQLite file, one connection, one owner."""

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        io_guard: IoGuard | None = None,
        fault: Fault | None = None,
        new_guid: Callable[[], str] | None = None,
        migrations: Sequence[Migration] = MIGRATIONS,
        synchronous: str = "NORMAL",
    ) -> None:
        check_migrations(migrations)
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"unknown synchronous level {synchronous!r}")
        self._path = Path(path)
        self._io_guard: IoGuard = io_guard or contextlib.nullcontext
        self._fault = fault
        self._new_guid = new_guid or _new_uuid
        self._migrations = tuple(migrations)
        # NORMAL in WAL mode survives a process crash; only a power cut can
        # lose the last commits. FULL trades speed for that too.
        self._synchronous = synchronous.upper()
        self._conn: aiosqlite.Connection | None = None
        self._version = 0
        # One connection, one transaction at a time: without this, a second
        # task's statements would land inside the first task's transaction.
        self._lock = anyio.Lock()

    # --- lifecycle --------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    @property
    def schema_version(self) -> int:
        """The highest migration applied to the open database."""
        return self._version

    async def open(self) -> None:
        """Connect, set the pragmas, and apply any migrations not yet applied."""
        if self._conn is not None:
            raise RuntimeError("ccdb is already open")
        async with self._io_guard():
            conn = await aiosqlite.connect(self._path, isolation_level=None)
        self._conn = conn
        try:
            async with self._lock:
                conn.row_factory = sqlite3.Row
                (mode,) = (await self._sql("PRAGMA journal_mode = WAL"))[0]
                if str(mode).lower() != "wal":
                    raise DatabaseUnavailable(f"cannot put {self._path} in WAL mode ({mode})")
                await self._sql("PRAGMA foreign_keys = ON")
                await self._sql(f"PRAGMA synchronous = {self._synchronous}")
                await self._sql("PRAGMA busy_timeout = 5000")
                await self._migrate()
        except BaseException:
            await self._disconnect()
            raise

    async def close(self) -> None:
        """Close the connection; a second close does nothing."""
        if self._conn is None:
            return
        with anyio.CancelScope(shield=True):
            async with self._lock:
                await self._disconnect()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                async with self._io_guard():
                    await conn.close()

    async def _migrate(self) -> None:
        await self._sql(BOOTSTRAP)
        rows = await self._sql("SELECT coalesce(max(version), 0) FROM schema_version")
        current = rows[0][0]
        known = self._migrations[-1][0] if self._migrations else 0
        if current > known:
            # Running old code on a newer file would write rows the newer
            # schema's constraints never expected.
            raise DatabaseUnavailable(
                f"{self._path} is at schema version {current}, newer than this code ({known})"
            )
        for version, statements in pending_migrations(self._migrations, current):
            async with self._transaction():
                for statement in statements:
                    await self._sql(statement)
                await self._sql("INSERT INTO schema_version (version) VALUES (?)", (version,))
            current = version
        self._version = current

    # --- plumbing ---------------------------------------------------------

    async def _sql(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if self._conn is None:
            raise RuntimeError("ccdb is not open")
        async with self._io_guard():
            return list(await self._conn.execute_fetchall(sql, params))

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self._sql(sql, params)
        return rows[0] if rows else None

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """BEGIN IMMEDIATE ... COMMIT; any exception (or cancellation) rolls back."""
        try:
            # Inside the try: if we are cancelled while BEGIN is queued, it
            # still runs on the worker thread, and the ROLLBACK queued behind
            # it must undo it.
            await self._sql("BEGIN IMMEDIATE")
            yield
            # Shielded: once COMMIT is queued on the worker thread it runs
            # anyway, and the caller must not be told it failed when it did not.
            with anyio.CancelScope(shield=True):
                await self._sql("COMMIT")
        except BaseException:
            with anyio.CancelScope(shield=True):
                # A failed COMMIT may already have ended the transaction.
                with contextlib.suppress(sqlite3.OperationalError, RuntimeError):
                    await self._sql("ROLLBACK")
            raise

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[None]:
        if self._conn is None:
            raise RuntimeError("ccdb is not open")
        if self._fault is not None:
            await self._fault(OP_WRITE)
        async with self._lock, self._transaction():
            yield

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[None]:
        if self._conn is None:
            raise RuntimeError("ccdb is not open")
        if self._fault is not None:
            await self._fault(OP_READ)
        async with self._lock:
            yield

    async def _insert_event(
        self,
        type: str,
        actor: str,
        actee_guid: str,
        actee_name: str | None,
        metadata: dict[str, Any] | None,
        ts: str,
    ) -> str:
        guid = self._new_guid()
        await self._sql(
            "INSERT INTO events (guid, time, type, actor, actee_guid, actee_name, metadata)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (guid, ts, type, actor, actee_guid, actee_name, _json(metadata or {})),
        )
        return guid

    async def _app_row(self, guid: str) -> sqlite3.Row:
        row = await self._one("SELECT * FROM apps WHERE guid = ?", (guid,))
        if row is None:
            raise AppNotFound(guid)
        return row

    async def _row(self, table: str, guid: str) -> sqlite3.Row:
        row = await self._one(f"SELECT * FROM {table} WHERE guid = ?", (guid,))
        if row is None:
            raise ResourceNotFound(f"{table[:-1]} {guid} not found")
        return row

    async def _name_taken(self, name: str) -> bool:
        return bool(await self._sql("SELECT 1 FROM apps WHERE name = ?", (name,)))

    async def _still_referenced(self, keys: Iterable[str]) -> set[str]:
        wanted = _json(sorted(set(keys)))
        rows = await self._sql(
            "SELECT blob_key FROM packages WHERE blob_key IN (SELECT value FROM json_each(?))"
            " UNION"
            " SELECT blob_key FROM droplets WHERE blob_key IN (SELECT value FROM json_each(?))",
            (wanted, wanted),
        )
        return {row[0] for row in rows}

    # --- apps -------------------------------------------------------------

    async def create_app(
        self,
        guid: str,
        name: str,
        *,
        now: datetime,
        actor: str,
        state: AppState | str = AppState.STOPPED,
        memory_mb: int = 1024,
        disk_mb: int = 1024,
        instances: int = 1,
        buildpacks: Iterable[str] = (),
        command: str | None = None,
        stack: str = DEFAULT_STACK,
        health_check_type: HealthCheckType | str = HealthCheckType.PORT,
        health_check_http_endpoint: str | None = None,
        health_check_timeout: int | None = None,
        env: dict[str, Any] | None = None,
        routes: Iterable[str] = (),
    ) -> AppRecord:
        """Create an app and its `audit.app.create` event; `AppNameTaken` if the name is used."""
        ts = _ts(now)
        fields = {
            "state": state,
            "memory_mb": memory_mb,
            "disk_mb": disk_mb,
            "instances": instances,
            "buildpacks": tuple(buildpacks),
            "command": command,
            "stack": stack,
            "health_check_type": health_check_type,
            "health_check_http_endpoint": health_check_http_endpoint,
            "health_check_timeout": health_check_timeout,
            "env": env or {},
            "routes": tuple(routes),
        }
        columns = {k: _encode_app_field(k, v) for k, v in fields.items()}
        # As Cloud Controller does: the request goes in the event, env does not.
        request = {
            "name": name,
            **{k: v for k, v in columns.items() if k not in ("env", "buildpacks", "routes")},
            "buildpacks": list(fields["buildpacks"]),
            "routes": list(fields["routes"]),
            "environment_json": "[PRIVATE DATA HIDDEN]",
        }
        async with self._write():
            if await self._name_taken(name):
                raise AppNameTaken(f"The app name is taken: {name}")
            names = ", ".join(["guid", "name", *columns, "created_at", "updated_at"])
            marks = ", ".join("?" * (len(columns) + 4))
            await self._sql(
                f"INSERT INTO apps ({names}) VALUES ({marks})",
                (guid, name, *columns.values(), ts, ts),
            )
            await self._insert_event(
                "audit.app.create", actor, guid, name, {"request": request}, ts
            )
            row = await self._app_row(guid)
        return _app(row)

    async def get_app(self, guid: str) -> AppRecord:
        """The app with this guid; `AppNotFound` if there is none."""
        async with self._read():
            row = await self._app_row(guid)
        return _app(row)

    async def find_app(self, name: str) -> AppRecord | None:
        """The app with this name, or None."""
        async with self._read():
            row = await self._one("SELECT * FROM apps WHERE name = ?", (name,))
        return None if row is None else _app(row)

    async def list_apps(self) -> list[AppRecord]:
        """Every app, by name."""
        async with self._read():
            rows = await self._sql("SELECT * FROM apps ORDER BY name")
        return [_app(row) for row in rows]

    async def list_started_processes(self) -> list[tuple[AppRecord, DropletRecord]]:
        """Every STARTED app that has a current droplet, with that droplet, by
        name: what the BBS should run (the sync with Diego reads this)."""
        async with self._read():
            rows = await self._sql(
                "SELECT a.*, d.guid AS d_guid FROM apps a JOIN droplets d ON d.guid = a.droplet_guid"
                " WHERE a.state = ? ORDER BY a.name",
                (AppState.STARTED.value,),
            )
            droplets = {}
            if rows:
                found = await self._sql(
                    "SELECT * FROM droplets WHERE guid IN (SELECT value FROM json_each(?))",
                    (_json([row["d_guid"] for row in rows]),),
                )
                droplets = {row["guid"]: _droplet(row) for row in found}
        return [(_app(row), droplets[row["d_guid"]]) for row in rows]

    async def update_app(
        self,
        guid: str,
        now: datetime,
        *,
        event: EventSpec | None = None,
        **fields: Any,
    ) -> AppRecord:
        """Change some of an app's fields and, in the same transaction, record `event`.

        `event` is an `AuditEvent`; its actee is this app. Setting
        ``droplet_guid`` requires a STAGED droplet of this app (ValueError).
        """
        unknown = fields.keys() - _APP_UPDATABLE
        if unknown:
            raise TypeError(f"update_app() got fields it cannot change: {sorted(unknown)}")
        ts = _ts(now)
        columns = {k: _encode_app_field(k, v) for k, v in fields.items()}
        columns["updated_at"] = ts
        async with self._write():
            row = await self._app_row(guid)
            new_name = fields.get("name", row["name"])
            if new_name != row["name"] and await self._name_taken(new_name):
                raise AppNameTaken(f"The app name is taken: {new_name}")
            droplet_guid = fields.get("droplet_guid")
            if droplet_guid is not None:
                droplet = await self._row("droplets", droplet_guid)
                if droplet["app_guid"] != guid or droplet["state"] != DropletState.STAGED:
                    raise ValueError(
                        f"droplet {droplet_guid} is not a staged droplet of app {guid}"
                    )
            assignments = ", ".join(f"{name} = ?" for name in columns)
            await self._sql(
                f"UPDATE apps SET {assignments} WHERE guid = ?", (*columns.values(), guid)
            )
            if event is not None:
                type_, actor, metadata = event.type, event.actor, event.metadata
                await self._insert_event(type_, actor, guid, new_name, metadata, ts)
            row = await self._app_row(guid)
        return _app(row)

    async def delete_app(self, guid: str, now: datetime, *, actor: str) -> set[str]:
        """Delete an app with its packages, builds and droplets; keep its events.

        Records `audit.app.delete-request`. Returns the blob keys that no row
        points to any more, for the caller to delete from the blob store
        (content addressing means another app may share a key).
        """
        ts = _ts(now)
        async with self._write():
            app = await self._app_row(guid)
            rows = await self._sql(
                "SELECT blob_key FROM packages WHERE app_guid = ? AND blob_key IS NOT NULL"
                " UNION"
                " SELECT blob_key FROM droplets WHERE app_guid = ? AND blob_key IS NOT NULL",
                (guid, guid),
            )
            keys = {row[0] for row in rows}
            # Children first; ON DELETE SET NULL clears apps/builds.droplet_guid.
            await self._sql("DELETE FROM droplets WHERE app_guid = ?", (guid,))
            await self._sql("DELETE FROM builds WHERE app_guid = ?", (guid,))
            await self._sql("DELETE FROM packages WHERE app_guid = ?", (guid,))
            await self._sql("DELETE FROM apps WHERE guid = ?", (guid,))
            await self._insert_event(
                "audit.app.delete-request",
                actor,
                guid,
                app["name"],
                {"request": {"recursive": True}},
                ts,
            )
            freed = keys - await self._still_referenced(keys)
        return freed

    # --- packages ---------------------------------------------------------

    async def create_package(
        self,
        guid: str,
        app_guid: str,
        *,
        now: datetime,
        state: PackageState | str = PackageState.AWAITING_UPLOAD,
        blob_key: str | None = None,
        size: int = 0,
        event: EventSpec | None = None,
    ) -> PackageRecord:
        """Create a package of an app (`AppNotFound` if none), with an optional event."""
        ts = _ts(now)
        async with self._write():
            app = await self._app_row(app_guid)
            await self._sql(
                "INSERT INTO packages (guid, app_guid, state, blob_key, size, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (guid, app_guid, PackageState(state).value, blob_key, size, ts, ts),
            )
            if event is not None:
                type_, actor, metadata = event.type, event.actor, event.metadata
                await self._insert_event(type_, actor, app_guid, app["name"], metadata, ts)
            row = await self._row("packages", guid)
        return _package(row)

    async def get_package(self, guid: str) -> PackageRecord:
        """The package with this guid; LookupError if there is none."""
        async with self._read():
            row = await self._row("packages", guid)
        return _package(row)

    async def list_packages(self, app_guid: str) -> list[PackageRecord]:
        """An app's packages, newest first."""
        async with self._read():
            rows = await self._sql(
                "SELECT * FROM packages WHERE app_guid = ? ORDER BY created_at DESC, rowid DESC",
                (app_guid,),
            )
        return [_package(row) for row in rows]

    async def update_package(
        self,
        guid: str,
        now: datetime,
        *,
        event: EventSpec | None = None,
        **fields: Any,
    ) -> PackageRecord:
        """Change a package's state, blob_key or size, with an optional event on its app."""
        unknown = fields.keys() - _PACKAGE_UPDATABLE
        if unknown:
            raise TypeError(f"update_package() got fields it cannot change: {sorted(unknown)}")
        ts = _ts(now)
        columns = dict(fields)
        if "state" in columns:
            columns["state"] = PackageState(columns["state"]).value
        columns["updated_at"] = ts
        async with self._write():
            package = await self._row("packages", guid)
            assignments = ", ".join(f"{name} = ?" for name in columns)
            await self._sql(
                f"UPDATE packages SET {assignments} WHERE guid = ?", (*columns.values(), guid)
            )
            if event is not None:
                app = await self._app_row(package["app_guid"])
                type_, actor, metadata = event.type, event.actor, event.metadata
                await self._insert_event(type_, actor, app["guid"], app["name"], metadata, ts)
            row = await self._row("packages", guid)
        return _package(row)

    async def finish_package_upload(
        self, guid: str, *, blob_key: str, size: int, now: datetime, actor: str
    ) -> PackageRecord:
        """Package READY with its blob, app's last_uploaded_at, `audit.app.upload-bits`: one commit.

        A repeat for a package already READY with this blob changes nothing,
        so a duplicated message does not write a second event.
        """
        ts = _ts(now)
        async with self._write():
            package = await self._row("packages", guid)
            if package["state"] == PackageState.READY and package["blob_key"] == blob_key:
                return _package(package)
            app = await self._app_row(package["app_guid"])
            await self._sql(
                "UPDATE packages SET state = ?, blob_key = ?, size = ?, updated_at = ?"
                " WHERE guid = ?",
                (PackageState.READY.value, blob_key, size, ts, guid),
            )
            await self._sql(
                "UPDATE apps SET last_uploaded_at = ?, updated_at = ? WHERE guid = ?",
                (ts, ts, app["guid"]),
            )
            await self._insert_event(
                "audit.app.upload-bits",
                actor,
                app["guid"],
                app["name"],
                {"package_guid": guid},
                ts,
            )
            row = await self._row("packages", guid)
        return _package(row)

    async def latest_ready_package(self, app_guid: str) -> PackageRecord | None:
        """The app's newest READY package, or None."""
        async with self._read():
            row = await self._one(
                "SELECT * FROM packages WHERE app_guid = ? AND state = ?"
                " ORDER BY created_at DESC, rowid DESC LIMIT 1",
                (app_guid, PackageState.READY.value),
            )
        return None if row is None else _package(row)

    async def expire_old_packages(
        self, app_guid: str, now: datetime, *, keep: int = 5
    ) -> set[str]:
        """Mark READY packages beyond the newest `keep` EXPIRED and drop their blob keys.

        Spared, as Cloud Controller spares them: the current droplet's package
        and any package a build is staging from. Returns the blob keys no row
        points to any more.
        """
        if keep < 0:
            raise ValueError("keep must be >= 0")
        ts = _ts(now)
        async with self._write():
            rows = await self._sql(
                "SELECT guid, blob_key FROM packages"
                " WHERE app_guid = ? AND state = ?"
                " AND guid NOT IN (SELECT d.package_guid FROM apps a"
                "                  JOIN droplets d ON d.guid = a.droplet_guid WHERE a.guid = ?)"
                " AND guid NOT IN (SELECT package_guid FROM builds WHERE state = ?)"
                " ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?",
                (app_guid, PackageState.READY.value, app_guid, BuildState.STAGING.value, keep),
            )
            freed = await self._expire("packages", PackageState.EXPIRED, rows, ts)
        return freed

    async def _expire(
        self, table: str, expired: str, rows: list[sqlite3.Row], ts: str
    ) -> set[str]:
        if not rows:
            return set()
        await self._sql(
            f"UPDATE {table} SET state = ?, blob_key = NULL, updated_at = ?"
            " WHERE guid IN (SELECT value FROM json_each(?))",
            (expired, ts, _json([row["guid"] for row in rows])),
        )
        keys = {row["blob_key"] for row in rows if row["blob_key"] is not None}
        return keys - await self._still_referenced(keys)

    # --- builds and droplets ----------------------------------------------

    async def create_build(
        self,
        build_guid: str,
        app_guid: str,
        package_guid: str,
        *,
        now: datetime,
        actor: str,
        staging_memory_mb: int,
        staging_disk_mb: int,
        droplet_guid: str | None = None,
    ) -> BuildRecord:
        """A STAGING build, its STAGING droplet, and `audit.app.build.create`: one commit."""
        ts = _ts(now)
        droplet_guid = droplet_guid or self._new_guid()
        async with self._write():
            app = await self._app_row(app_guid)
            package = await self._row("packages", package_guid)
            if package["app_guid"] != app_guid:
                raise ResourceNotFound(f"package {package_guid} is not a package of app {app_guid}")
            # build and droplet point at each other: build first, then its
            # droplet, then close the loop.
            await self._sql(
                "INSERT INTO builds (guid, app_guid, package_guid, state, staging_memory_mb,"
                " staging_disk_mb, created_by, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    build_guid,
                    app_guid,
                    package_guid,
                    BuildState.STAGING.value,
                    staging_memory_mb,
                    staging_disk_mb,
                    actor,
                    ts,
                    ts,
                ),
            )
            await self._sql(
                "INSERT INTO droplets (guid, app_guid, build_guid, package_guid, state,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (droplet_guid, app_guid, build_guid, package_guid, DropletState.STAGING.value, ts, ts),
            )
            await self._sql(
                "UPDATE builds SET droplet_guid = ? WHERE guid = ?", (droplet_guid, build_guid)
            )
            await self._insert_event(
                "audit.app.build.create",
                actor,
                app_guid,
                app["name"],
                {"build_guid": build_guid, "package_guid": package_guid},
                ts,
            )
            row = await self._row("builds", build_guid)
        return _build(row)

    async def get_build(self, guid: str) -> BuildRecord:
        """The build with this guid; LookupError if there is none."""
        async with self._read():
            row = await self._row("builds", guid)
        return _build(row)

    async def list_builds(self, app_guid: str) -> list[BuildRecord]:
        """An app's builds, newest first."""
        async with self._read():
            rows = await self._sql(
                "SELECT * FROM builds WHERE app_guid = ? ORDER BY created_at DESC, rowid DESC",
                (app_guid,),
            )
        return [_build(row) for row in rows]

    async def finish_build_staged(
        self,
        build_guid: str,
        *,
        blob_key: str,
        size: int,
        buildpacks: Iterable[str],
        detected_buildpack: str | None,
        start_command: str | None,
        process_types: dict[str, str],
        now: datetime,
        set_current: bool = True,
    ) -> DropletRecord:
        """Build STAGED, droplet STAGED with its blob, (optionally) the app's current
        droplet, and `audit.app.droplet.create`: one commit.

        A result for a build no longer STAGING (a duplicate, or one that
        arrives after the build failed) changes nothing; the droplet is
        returned as it stands, so the caller can tell by its state.
        """
        ts = _ts(now)
        async with self._write():
            build = await self._row("builds", build_guid)
            droplet_guid = build["droplet_guid"]
            if build["state"] != BuildState.STAGING:
                return _droplet(await self._row("droplets", droplet_guid))
            app = await self._app_row(build["app_guid"])
            await self._sql(
                "UPDATE builds SET state = ?, updated_at = ? WHERE guid = ?",
                (BuildState.STAGED.value, ts, build_guid),
            )
            await self._sql(
                "UPDATE droplets SET state = ?, blob_key = ?, size = ?, buildpacks = ?,"
                " detected_buildpack = ?, start_command = ?, process_types = ?, updated_at = ?"
                " WHERE guid = ?",
                (
                    DropletState.STAGED.value,
                    blob_key,
                    size,
                    _json(list(buildpacks)),
                    detected_buildpack,
                    start_command,
                    _json(dict(process_types)),
                    ts,
                    droplet_guid,
                ),
            )
            if set_current:
                await self._sql(
                    "UPDATE apps SET droplet_guid = ?, updated_at = ? WHERE guid = ?",
                    (droplet_guid, ts, app["guid"]),
                )
            await self._insert_event(
                "audit.app.droplet.create",
                build["created_by"],
                app["guid"],
                app["name"],
                {
                    "droplet_guid": droplet_guid,
                    "build_guid": build_guid,
                    "package_guid": build["package_guid"],
                },
                ts,
            )
            row = await self._row("droplets", droplet_guid)
        return _droplet(row)

    async def fail_build(self, build_guid: str, error: str, now: datetime) -> BuildRecord:
        """Build FAILED with `error` (``"<code> - <message>"``) and its droplet FAILED.

        Like `finish_build_staged`, a build no longer STAGING is left as it is.
        """
        ts = _ts(now)
        async with self._write():
            build = await self._row("builds", build_guid)
            if build["state"] == BuildState.STAGING:
                await self._sql(
                    "UPDATE builds SET state = ?, error = ?, updated_at = ? WHERE guid = ?",
                    (BuildState.FAILED.value, error, ts, build_guid),
                )
                await self._sql(
                    "UPDATE droplets SET state = ?, updated_at = ? WHERE guid = ?",
                    (DropletState.FAILED.value, ts, build["droplet_guid"]),
                )
                build = await self._row("builds", build_guid)
        return _build(build)

    async def get_droplet(self, guid: str) -> DropletRecord:
        """The droplet with this guid; LookupError if there is none."""
        async with self._read():
            row = await self._row("droplets", guid)
        return _droplet(row)

    async def list_droplets(self, app_guid: str) -> list[DropletRecord]:
        """An app's droplets, newest first."""
        async with self._read():
            rows = await self._sql(
                "SELECT * FROM droplets WHERE app_guid = ? ORDER BY created_at DESC, rowid DESC",
                (app_guid,),
            )
        return [_droplet(row) for row in rows]

    async def current_droplet(self, app_guid: str) -> DropletRecord | None:
        """The app's current droplet, or None if it has none; `AppNotFound` if no app."""
        async with self._read():
            app = await self._app_row(app_guid)
            if app["droplet_guid"] is None:
                return None
            row = await self._row("droplets", app["droplet_guid"])
        return _droplet(row)

    async def expire_old_droplets(
        self, app_guid: str, now: datetime, *, keep: int = 5
    ) -> set[str]:
        """Mark STAGED droplets beyond the newest `keep` EXPIRED and drop their blob keys.

        The current droplet is never expired and does not count toward
        `keep`. Returns the blob keys no row points to any more.
        """
        if keep < 0:
            raise ValueError("keep must be >= 0")
        ts = _ts(now)
        async with self._write():
            rows = await self._sql(
                "SELECT guid, blob_key FROM droplets"
                " WHERE app_guid = ? AND state = ?"
                " AND guid IS NOT (SELECT droplet_guid FROM apps WHERE guid = ?)"
                " ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?",
                (app_guid, DropletState.STAGED.value, app_guid, keep),
            )
            freed = await self._expire("droplets", DropletState.EXPIRED, rows, ts)
        return freed

    # --- events -----------------------------------------------------------

    async def record_event(
        self,
        type: str,
        *,
        actor: str,
        actee_guid: str,
        actee_name: str | None = None,
        metadata: dict[str, Any] | None = None,
        now: datetime,
    ) -> EventRecord:
        """Record an audit event on its own (e.g. `audit.app.process.crash`)."""
        ts = _ts(now)
        async with self._write():
            guid = await self._insert_event(type, actor, actee_guid, actee_name, metadata, ts)
            row = await self._row("events", guid)
        return _event(row)

    async def list_events(self, actee_guid: str, limit: int = 50) -> list[EventRecord]:
        """An app's events, newest first (ties in time: latest recorded first)."""
        async with self._read():
            # rowid breaks ties: the injected clock may not move between events.
            rows = await self._sql(
                "SELECT * FROM events WHERE actee_guid = ?"
                " ORDER BY time DESC, rowid DESC LIMIT ?",
                (actee_guid, limit),
            )
        return [_event(row) for row in rows]

    # --- traces -----------------------------------------------------------

    async def save_trace(
        self,
        trace_id: str,
        *,
        app_guid: str,
        app_name: str,
        kind: str,
        deliveries: list[dict[str, Any]],
        now: datetime,
        keep: int = 5,
    ) -> None:
        """Store one recorded conversation; keep the newest `keep` per app."""
        ts = _ts(now)
        async with self._write():
            await self._sql(
                "INSERT OR REPLACE INTO traces (trace_id, app_guid, app_name, kind, created_at, deliveries)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (trace_id, app_guid, app_name, kind, ts, _json(deliveries)),
            )
            await self._sql(
                "DELETE FROM traces WHERE app_guid = ? AND trace_id NOT IN ("
                " SELECT trace_id FROM traces WHERE app_guid = ?"
                " ORDER BY created_at DESC, rowid DESC LIMIT ?)",
                (app_guid, app_guid, keep),
            )

    async def latest_trace(self, app_guid: str) -> TraceRecord | None:
        """The newest stored trace of an app, or None."""
        async with self._read():
            row = await self._one(
                "SELECT trace_id, app_name, kind, created_at, deliveries FROM traces"
                " WHERE app_guid = ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
                (app_guid,),
            )
        if row is None:
            return None
        return TraceRecord(
            trace_id=row[0], app_name=row[1], kind=row[2], created_at=row[3], deliveries=freeze(json.loads(row[4]))
        )

    # --- whole-database views ---------------------------------------------

    async def referenced_blob_keys(self) -> set[str]:
        """Every blob key a package or droplet row points to."""
        async with self._read():
            rows = await self._sql(
                "SELECT blob_key FROM packages WHERE blob_key IS NOT NULL"
                " UNION SELECT blob_key FROM droplets WHERE blob_key IS NOT NULL"
            )
        return {row[0] for row in rows}

    async def blob_keys_of(self, kind: str) -> list[str]:
        """The blob keys of packages (`kind` "package") or droplets ("droplet"), sorted."""
        table = {"package": "packages", "droplet": "droplets"}.get(kind)
        if table is None:
            raise ValueError(f"kind must be package or droplet, not {kind!r}")
        async with self._read():
            rows = await self._sql(f"SELECT DISTINCT blob_key FROM {table} WHERE blob_key IS NOT NULL ORDER BY blob_key")
        return [row[0] for row in rows]

    async def stats(self) -> CCDBStats:
        """Row counts and schema version, for a status line."""
        async with self._read():
            row = await self._one(
                "SELECT (SELECT count(*) FROM apps), (SELECT count(*) FROM packages),"
                " (SELECT count(*) FROM builds), (SELECT count(*) FROM droplets),"
                " (SELECT count(*) FROM events)"
            )
        assert row is not None
        apps, packages, builds, droplets, events = tuple(row)
        return CCDBStats(
            schema_version=self._version,
            apps=apps,
            packages=packages,
            builds=builds,
            droplets=droplets,
            events=events,
        )
