"""The resources the API shows one at a time: an app by guid, its packages,
builds and droplets; its current droplet set by hand; and jobs, the
outcomes of operations the API reports asynchronously (kept in memory, the
newest `JOBS_KEPT`: a job is for polling, not for history)."""

from __future__ import annotations

from datetime import UTC, datetime

from actors.cloud_controller.base import ControllerBase
from actors.runtime import handles
from protocol import ccdb
from protocol.errors import InvalidDroplet, ResourceNotFound
from protocol.messages import (
    ListAppBuilds,
    ListAppDroplets,
    ListAppPackages,
    RecordJob,
    SetCurrentDroplet,
    ShowApp,
    ShowBuild,
    ShowDroplet,
    ShowJob,
    ShowPackage,
)
from protocol.records import (
    AppRecord,
    AuditEvent,
    BuildRecord,
    DropletRecord,
    FrozenDict,
    JobRecord,
    PackageRecord,
    freeze,
)

__all__ = ["JOBS_KEPT", "Resources"]

JOBS_KEPT = 1000


class Resources(ControllerBase):
    @handles(ShowApp, concurrent=True)
    async def _show_app(self, message: ShowApp) -> AppRecord:
        return await self._app(message.app_guid)

    @handles(ShowPackage, concurrent=True)
    async def _show_package(self, message: ShowPackage) -> PackageRecord:
        return await self.db(ccdb.GetPackage(message.package_guid))

    @handles(ListAppPackages, concurrent=True)
    async def _list_packages(self, message: ListAppPackages) -> list[PackageRecord]:
        return await self.db(ccdb.ListPackages(message.app_guid))

    @handles(ShowBuild, concurrent=True)
    async def _show_build(self, message: ShowBuild) -> BuildRecord:
        return await self.db(ccdb.GetBuild(message.build_guid))

    @handles(ListAppBuilds, concurrent=True)
    async def _list_builds(self, message: ListAppBuilds) -> list[BuildRecord]:
        return await self.db(ccdb.ListBuilds(message.app_guid))

    @handles(ShowDroplet, concurrent=True)
    async def _show_droplet(self, message: ShowDroplet) -> DropletRecord:
        return await self.db(ccdb.GetDroplet(message.droplet_guid))

    @handles(ListAppDroplets, concurrent=True)
    async def _list_droplets(self, message: ListAppDroplets) -> list[DropletRecord]:
        return await self.db(ccdb.ListDroplets(message.app_guid))

    @handles(SetCurrentDroplet, concurrent=True)
    async def _set_current_droplet(self, message: SetCurrentDroplet) -> AppRecord:
        app = await self._app(message.app_guid)
        try:
            droplet = await self.db(ccdb.GetDroplet(message.droplet_guid))
        except ResourceNotFound:
            raise InvalidDroplet() from None
        if droplet.app_guid != app.guid:
            raise InvalidDroplet()
        if app.droplet_guid == droplet.guid:
            return app
        event = AuditEvent(
            "audit.app.droplet.mapped", message.actor, freeze({"request": {"droplet_guid": droplet.guid}})
        )
        async with self._app_lock(app.guid):
            try:
                return await self.db(ccdb.UpdateApp(app.guid, FrozenDict({"droplet_guid": droplet.guid}), event))
            except ValueError:
                raise InvalidDroplet() from None

    @handles(RecordJob)
    def _record_job(self, message: RecordJob) -> JobRecord:
        jobs = self._jobs
        stamp = datetime.fromtimestamp(self.clock.now(), UTC)
        job = JobRecord(
            guid=self.system.new_guid(),
            operation=message.operation,
            state="FAILED" if message.errors else "COMPLETE",
            resource_type=message.resource_type,
            resource_guid=message.resource_guid,
            errors=message.errors,
            warnings=message.warnings,
            created_at=stamp,
            updated_at=stamp,
        )
        jobs[job.guid] = job
        while len(jobs) > JOBS_KEPT:
            jobs.popitem(last=False)
        return job

    @handles(ShowJob)
    def _show_job(self, message: ShowJob) -> JobRecord:
        job = self._jobs.get(message.job_guid)
        if job is None:
            raise ResourceNotFound("Job not found")
        return job
