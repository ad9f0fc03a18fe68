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

from actors.ccdb.apps import DEFAULT_STACK, AppsTable
from actors.ccdb.builds import BuildsTable
from actors.ccdb.connection import OP_READ, OP_WRITE, operation
from actors.ccdb.events import EventsTable
from actors.ccdb.packages import PackagesTable
from actors.ccdb.routes import RoutesTable
from protocol.records import (
    AppRecord,
    BuildRecord,
    CCDBStats,
    DropletRecord,
    EventRecord,
    PackageRecord,
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


class CCDB(AppsTable, PackagesTable, BuildsTable, EventsTable, RoutesTable):
    """Cloud Controller's database: one SQLite file, one connection, one owner."""

    # --- whole-database views ---------------------------------------------

    @operation(OP_READ)
    async def referenced_blob_keys(self) -> set[str]:
        """Every blob key a package or droplet row points to."""
        async with self._read():
            rows = await self._sql(
                "SELECT blob_key FROM packages WHERE blob_key IS NOT NULL"
                " UNION SELECT blob_key FROM droplets WHERE blob_key IS NOT NULL"
            )
        return {row[0] for row in rows}

    @operation(OP_READ)
    async def blob_keys_of(self, kind: str) -> list[str]:
        """The blob keys of packages (`kind` "package") or droplets ("droplet"), sorted."""
        table = {"package": "packages", "droplet": "droplets"}.get(kind)
        if table is None:
            raise ValueError(f"kind must be package or droplet, not {kind!r}")
        async with self._read():
            rows = await self._sql(
                f"SELECT DISTINCT blob_key FROM {table} WHERE blob_key IS NOT NULL ORDER BY blob_key"
            )
        return [row[0] for row in rows]

    @operation(OP_READ)
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
