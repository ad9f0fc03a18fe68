"""CC_DB's packages: an app's uploaded bits and their states."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from actors.ccdb.codec import (
    _PACKAGE_UPDATABLE,
    _package,
    _ts,
)
from actors.ccdb.connection import OP_READ, OP_WRITE, Connection, EventSpec, operation
from protocol.records import (
    PackageRecord,
)
from protocol.states import (
    BuildState,
    PackageState,
)

__all__ = ["PackagesTable"]


class PackagesTable(Connection):
    # --- packages ---------------------------------------------------------

    @operation(OP_WRITE)
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

    @operation(OP_READ, cached="packages")
    async def get_package(self, guid: str) -> PackageRecord:
        """The package with this guid; LookupError if there is none."""
        async with self._read():
            row = await self._row("packages", guid)
        return _package(row)

    @operation(OP_READ)
    async def list_packages(self, app_guid: str) -> list[PackageRecord]:
        """An app's packages, newest first."""
        async with self._read():
            rows = await self._sql(
                "SELECT * FROM packages WHERE app_guid = ? ORDER BY created_at DESC, rowid DESC",
                (app_guid,),
            )
        return [_package(row) for row in rows]

    @operation(OP_WRITE)
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
            await self._sql(f"UPDATE packages SET {assignments} WHERE guid = ?", (*columns.values(), guid))
            if event is not None:
                app = await self._app_row(package["app_guid"])
                type_, actor, metadata = event.type, event.actor, event.metadata
                await self._insert_event(type_, actor, app["guid"], app["name"], metadata, ts)
            row = await self._row("packages", guid)
        return _package(row)

    @operation(OP_WRITE)
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
                "UPDATE packages SET state = ?, blob_key = ?, size = ?, updated_at = ? WHERE guid = ?",
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

    @operation(OP_READ)
    async def latest_ready_package(self, app_guid: str) -> PackageRecord | None:
        """The app's newest READY package, or None."""
        async with self._read():
            row = await self._one(
                "SELECT * FROM packages WHERE app_guid = ? AND state = ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
                (app_guid, PackageState.READY.value),
            )
        return None if row is None else _package(row)

    @operation(OP_WRITE)
    async def expire_old_packages(self, app_guid: str, now: datetime, *, keep: int = 5) -> set[str]:
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
