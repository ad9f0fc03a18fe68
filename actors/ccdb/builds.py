"""CC_DB's builds and droplets: stagings and what they produced."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from actors.ccdb.codec import (
    _build,
    _droplet,
    _json,
    _ts,
)
from actors.ccdb.connection import OP_READ, OP_WRITE, Connection, operation
from protocol.errors import ResourceNotFound
from protocol.records import (
    BuildRecord,
    DropletRecord,
)
from protocol.states import (
    BuildState,
    DropletState,
)

__all__ = ["BuildsTable"]


class BuildsTable(Connection):
    # --- builds and droplets ----------------------------------------------

    @operation(OP_WRITE)
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
        droplet_guid = droplet_guid or self._guid()
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
            await self._sql("UPDATE builds SET droplet_guid = ? WHERE guid = ?", (droplet_guid, build_guid))
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

    @operation(OP_READ, cached="builds")
    async def get_build(self, guid: str) -> BuildRecord:
        """The build with this guid; LookupError if there is none."""
        async with self._read():
            row = await self._row("builds", guid)
        return _build(row)

    @operation(OP_READ)
    async def list_builds(self, app_guid: str) -> list[BuildRecord]:
        """An app's builds, newest first."""
        async with self._read():
            rows = await self._sql(
                "SELECT * FROM builds WHERE app_guid = ? ORDER BY created_at DESC, rowid DESC",
                (app_guid,),
            )
        return [_build(row) for row in rows]

    @operation(OP_WRITE)
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

    @operation(OP_WRITE)
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

    @operation(OP_READ, cached="droplets")
    async def get_droplet(self, guid: str) -> DropletRecord:
        """The droplet with this guid; LookupError if there is none."""
        async with self._read():
            row = await self._row("droplets", guid)
        return _droplet(row)

    @operation(OP_READ)
    async def list_droplets(self, app_guid: str) -> list[DropletRecord]:
        """An app's droplets, newest first."""
        async with self._read():
            rows = await self._sql(
                "SELECT * FROM droplets WHERE app_guid = ? ORDER BY created_at DESC, rowid DESC",
                (app_guid,),
            )
        return [_droplet(row) for row in rows]

    @operation(OP_READ)
    async def current_droplet(self, app_guid: str) -> DropletRecord | None:
        """The app's current droplet, or None if it has none; `AppNotFound` if no app."""
        async with self._read():
            app = await self._app_row(app_guid)
            if app["droplet_guid"] is None:
                return None
            row = await self._row("droplets", app["droplet_guid"])
        return _droplet(row)

    @operation(OP_WRITE)
    async def expire_old_droplets(self, app_guid: str, now: datetime, *, keep: int = 5) -> set[str]:
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
