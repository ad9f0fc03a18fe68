"""What every part of Cloud Controller shares: its state, and how it talks
to CC_DB, the blob store and the app's log stream."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from actors.cloud_controller.config import ControllerConfig
from actors.runtime import AsyncioActor
from actors.runtime.errors import AskTimeout
from protocol import ccdb
from protocol.blobs import BlobOperation
from protocol.ccdb import CCDBOperation
from protocol.errors import AppNotFound
from protocol.lrp import InstanceInfo, TaskDefinition
from protocol.messages import LogLine, StartApp
from protocol.records import AppRecord, JobRecord

__all__ = ["ControllerBase"]


class ControllerBase(AsyncioActor):
    default_name = "cloud_controller"

    def __init__(self, config: ControllerConfig | None = None, *, name: str = "cloud_controller") -> None:
        super().__init__(name=name)
        self.config = config or ControllerConfig()
        # Builds this process waits for (their staging's reply), and their
        # staging tasks, so the sync can desire again a task a restarted BBS lost.
        self._builds: dict[str, asyncio.Future[Any]] = {}
        self._staging_tasks: dict[str, TaskDefinition] = {}
        # One lock per app around "write CC_DB, then tell the BBS": the sync
        # takes it too, so it never judges an app between the two.
        self._app_locks: dict[str, asyncio.Lock] = {}
        self._syncing: asyncio.Future[list[dict[str, Any]]] | None = None
        self.sync_runs = 0
        self.sync_repairs = 0
        self._orphans_seen: dict[str, float] = {}  # blob key -> when first seen unreferenced
        # Held while bits are stored and recorded, and while freed blobs are
        # deleted: the two must not interleave (see Bits._delete_blobs).
        self._blob_lock = asyncio.Lock()
        self._jobs: OrderedDict[str, JobRecord] = OrderedDict()  # the API's jobs, newest last
        self._uploading: set[str] = set()  # packages whose bits are being stored now
        # Routes no app maps (made by the API, or left by an unmap or a
        # delete), as CC_DB keeps them: read at start, written through.
        self._created_routes: set[str] = set()

    async def db(self, operation: CCDBOperation) -> Any:
        """One CC_DB operation. A read is safe to repeat, so a lost request or
        reply is retried; a write is not (its reply may be what was lost)."""
        attempts = self.config.db_read_attempts if operation.RETRY_SAFE else 1
        for attempt in range(1, attempts + 1):
            try:
                return await self.ask("ccdb", operation, timeout=self.config.db_timeout)
            except AskTimeout:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    async def blob(self, operation: BlobOperation) -> Any:
        return await self.ask("blobstore", operation, timeout=self.config.blob_timeout)

    def _api_log(self, app_guid: str, text: str) -> None:
        self.tell("loggregator", LogLine(app_guid, "API", "0", text, self.clock.now()))

    async def _app(self, app_guid: str) -> AppRecord:
        try:
            return await self.db(ccdb.GetApp(app_guid))
        except AppNotFound:
            raise AppNotFound(app_guid) from None

    # What one part calls of another (each defined in its part).

    async def _instances(self, app: AppRecord) -> tuple[InstanceInfo, ...]:
        raise NotImplementedError  # views.Views

    async def _delete_blobs(self, keys: Any) -> None:
        raise NotImplementedError  # bits.Bits

    async def _sync(self, reason: str) -> list[dict[str, Any]]:
        raise NotImplementedError  # processes.Processes

    async def _sync_tasks(self) -> list[dict[str, Any]]:
        raise NotImplementedError  # staging.Staging

    async def _check_quota(self, app_guid: str | None, memory_mb: int, instances: int) -> None:
        raise NotImplementedError  # apps.Apps

    async def _unmapped(self, added: Iterable[str] = (), removed: Iterable[str] = ()) -> None:
        """Routes no app maps from now on (`added`) and routes mapped again
        or deleted (`removed`): kept in CC_DB first, then in the set."""
        new = sorted({u for u in added if u not in self._created_routes})
        gone = sorted({u for u in removed if u in self._created_routes} - set(new))
        if not new and not gone:
            return
        await self.db(ccdb.UpdateUnmappedRoutes(tuple(new), tuple(gone)))
        self._created_routes.update(new)
        self._created_routes.difference_update(gone)

    def _check_disk(self, disk_mb: int) -> None:
        raise NotImplementedError  # apps.Apps

    async def _sweep_orphans(self, grace: float) -> int:
        raise NotImplementedError  # bits.Bits

    async def _start_app(self, message: StartApp) -> str | None:
        raise NotImplementedError  # processes.Processes

    def _app_lock(self, app_guid: str) -> asyncio.Lock:
        lock = self._app_locks.get(app_guid)
        if lock is None:
            lock = self._app_locks[app_guid] = asyncio.Lock()
        return lock
