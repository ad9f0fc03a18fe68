"""The `cloud_controller` actor, assembled from its parts, and its boot."""

from __future__ import annotations

import structlog

from actors.cloud_controller.apps import Apps
from actors.cloud_controller.bits import Bits, Reap
from actors.cloud_controller.processes import Processes, SyncTick
from actors.cloud_controller.resources import Resources
from actors.cloud_controller.staging import Staging
from actors.cloud_controller.views import Views
from protocol import ccdb
from protocol.errors import StagingError
from protocol.records import FrozenDict
from protocol.states import BuildState, PackageState

__all__ = ["CloudController"]

log = structlog.get_logger("minifoundry.cloud_controller")


class CloudController(Apps, Bits, Staging, Processes, Views, Resources):
    """Cloud Controller: apps, packages, builds, droplets and the web process."""

    async def on_start(self) -> None:  # type: ignore[override]  # pykka types hooks -> None
        """Pick up where the last process stopped: fail orphaned builds and
        uploads, sweep orphan blobs, and sync the BBS with CC_DB."""
        apps = await self.db(ccdb.ListApps())
        self._created_routes = set(await self.db(ccdb.ListUnmappedRoutes()))
        interrupted = str(StagingError("Staging error: staging was interrupted by a platform restart"))
        for app in apps:
            for build in await self.db(ccdb.ListBuilds(app.guid)):
                if build.state is BuildState.STAGING:
                    await self.db(ccdb.FailBuild(build.guid, interrupted))
            for package in await self.db(ccdb.ListPackages(app.guid)):
                if package.state in (PackageState.AWAITING_UPLOAD, PackageState.PROCESSING_UPLOAD):
                    await self.db(ccdb.UpdatePackage(package.guid, FrozenDict({"state": PackageState.FAILED})))
        # Nothing is in flight at boot, so every blob CC_DB does not point to
        # is an orphan a crash left behind (a write whose row never committed).
        swept = await self._sweep_orphans(grace=0.0)
        # The first sync desires every started app the BBS lacks and adopts
        # the LRPs it still runs (a restarted Cloud Controller in a running
        # platform leaves running instances alone).
        await self._sync("boot")
        self.tell_self_later(self.config.reap_interval, Reap())
        self.tell_self_later(self.config.sync_interval, SyncTick())
        log.info("cloud-controller-started", apps=len(apps), orphans_swept=swept)
