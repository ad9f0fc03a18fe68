"""CC_DB's apps (and their one web process): create, read, update, delete."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from actors.ccdb.codec import (
    _APP_UPDATABLE,
    _app,
    _droplet,
    _encode_app_field,
    _json,
    _ts,
)
from actors.ccdb.connection import OP_READ, OP_WRITE, Connection, EventSpec, operation
from protocol.errors import AppNameTaken
from protocol.records import (
    AppRecord,
    DropletRecord,
)
from protocol.states import (
    AppState,
    DropletState,
    HealthCheckType,
)

__all__ = ["DEFAULT_STACK", "AppsTable"]

DEFAULT_STACK = "cflinuxfs4"


class AppsTable(Connection):
    # --- apps -------------------------------------------------------------

    @operation(OP_WRITE)
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
        fields: dict[str, Any] = {
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
            await self._insert_event("audit.app.create", actor, guid, name, {"request": request}, ts)
            row = await self._app_row(guid)
        return _app(row)

    @operation(OP_READ, cached="apps")
    async def get_app(self, guid: str) -> AppRecord:
        """The app with this guid; `AppNotFound` if there is none."""
        async with self._read():
            row = await self._app_row(guid)
        return _app(row)

    @operation(OP_READ)
    async def find_app(self, name: str) -> AppRecord | None:
        """The app with this name, or None."""
        async with self._read():
            row = await self._one("SELECT * FROM apps WHERE name = ?", (name,))
        return None if row is None else _app(row)

    @operation(OP_READ)
    async def list_apps(self) -> list[AppRecord]:
        """Every app, by name."""
        async with self._read():
            rows = await self._sql("SELECT * FROM apps ORDER BY name")
        return [_app(row) for row in rows]

    @operation(OP_READ)
    async def started_usage(self, except_guid: str | None = None) -> tuple[int, int]:
        """(memory MB, instances) of every STARTED app but `except_guid`."""
        async with self._read():
            row = await self._one(
                "SELECT COALESCE(SUM(memory_mb * instances), 0), COALESCE(SUM(instances), 0)"
                " FROM apps WHERE state = 'STARTED' AND guid IS NOT ?",
                (except_guid,),
            )
        assert row is not None
        return int(row[0]), int(row[1])

    @operation(OP_READ)
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

    @operation(OP_WRITE)
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
                    raise ValueError(f"droplet {droplet_guid} is not a staged droplet of app {guid}")
            assignments = ", ".join(f"{name} = ?" for name in columns)
            await self._sql(f"UPDATE apps SET {assignments} WHERE guid = ?", (*columns.values(), guid))
            if event is not None:
                type_, actor, metadata = event.type, event.actor, event.metadata
                await self._insert_event(type_, actor, guid, new_name, metadata, ts)
            row = await self._app_row(guid)
        return _app(row)

    @operation(OP_WRITE)
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
