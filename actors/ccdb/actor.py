"""The `ccdb` actor: owns the one CC_DB connection for its whole life and
runs CC_DB's operations (`protocol.ccdb`), one message type each.

Times are the platform clock's, stamped here on every write (`STAMPED`), so
the store never reads a wall clock of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from actors.ccdb.store import CCDB
from actors.storage import StorageActor
from protocol import ccdb

__all__ = ["CCDBActor"]


class CCDBActor(StorageActor):
    default_name = "ccdb"
    # Operations waiting together share one hop and one COMMIT (group commit).
    BATCH = 32

    OPERATIONS = {
        ccdb.CreateApp: CCDB.create_app,
        ccdb.GetApp: CCDB.get_app,
        ccdb.FindApp: CCDB.find_app,
        ccdb.ListApps: CCDB.list_apps,
        ccdb.ListStartedProcesses: CCDB.list_started_processes,
        ccdb.StartedUsage: CCDB.started_usage,
        ccdb.UpdateApp: CCDB.update_app,
        ccdb.DeleteApp: CCDB.delete_app,
        ccdb.CreatePackage: CCDB.create_package,
        ccdb.GetPackage: CCDB.get_package,
        ccdb.ListPackages: CCDB.list_packages,
        ccdb.UpdatePackage: CCDB.update_package,
        ccdb.FinishPackageUpload: CCDB.finish_package_upload,
        ccdb.LatestReadyPackage: CCDB.latest_ready_package,
        ccdb.ExpireOldPackages: CCDB.expire_old_packages,
        ccdb.CreateBuild: CCDB.create_build,
        ccdb.GetBuild: CCDB.get_build,
        ccdb.ListBuilds: CCDB.list_builds,
        ccdb.FinishBuildStaged: CCDB.finish_build_staged,
        ccdb.FailBuild: CCDB.fail_build,
        ccdb.GetDroplet: CCDB.get_droplet,
        ccdb.ListDroplets: CCDB.list_droplets,
        ccdb.CurrentDroplet: CCDB.current_droplet,
        ccdb.ExpireOldDroplets: CCDB.expire_old_droplets,
        ccdb.ListUnmappedRoutes: CCDB.list_unmapped_routes,
        ccdb.UpdateUnmappedRoutes: CCDB.update_unmapped_routes,
        ccdb.RecordEvent: CCDB.record_event,
        ccdb.ListEvents: CCDB.list_events,
        ccdb.SaveTrace: CCDB.save_trace,
        ccdb.LatestTrace: CCDB.latest_trace,
        ccdb.ReferencedBlobKeys: CCDB.referenced_blob_keys,
        ccdb.BlobKeysOf: CCDB.blob_keys_of,
        ccdb.CountRows: CCDB.stats,
    }

    def __init__(self, path: Path, *, name: str = "ccdb", fault: Any = None) -> None:
        super().__init__(name=name, fault=fault)
        self.path = Path(path)

    def open_store(self) -> CCDB:
        return CCDB(self.path, io_guard=self.clock.threaded_io, fault=self._fault, new_guid=self.system.new_guid)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def arguments(self, message: Any) -> dict[str, Any]:
        kwargs = message.arguments()
        if message.STAMPED and kwargs.get("now") is None:
            kwargs["now"] = self.now()
        return kwargs
