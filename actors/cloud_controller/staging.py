"""Staging: a build from the app's newest package becomes a staging task at
the BBS; its completion (or its deadline) ends the build STAGED, with the
droplet made current, or FAILED with a named error."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import structlog

from actors.cloud_controller.base import ControllerBase
from actors.runtime import handles
from actors.runtime.errors import ActorDeadError, AskTimeout
from protocol import blobs, ccdb
from protocol.errors import NotStaged, PackageNotReady, StagingError, StagingInProgress, StagingTimeExpired
from protocol.lrp import StagingFailure, StagingRequest, TaskDefinition
from protocol.messages import (
    CancelTask,
    CreateBuild,
    DesireTask,
    ListTasks,
    StageAndStart,
    StageApp,
    StagingCompleted,
    StartApp,
)
from protocol.records import AppRecord, BuildRecord, FrozenDict, PackageRecord, freeze
from protocol.states import BuildState, PackageState

__all__ = ["Staging", "StagingExpired"]

log = structlog.get_logger("minifoundry.cloud_controller")


@dataclasses.dataclass(frozen=True, slots=True)
class StagingExpired:
    """Timer: a build's staging deadline."""

    build_guid: str
    task_guid: str


class Staging(ControllerBase):
    @handles(StageApp, concurrent=True)
    async def _stage(self, message: StageApp) -> BuildRecord:
        app = await self._app(message.app_guid)
        package = await self.db(ccdb.LatestReadyPackage(app.guid, step=6))
        if package is None:
            raise NotStaged(f"App {app.name} has no uploaded package to stage")
        if message.reason == "restage":
            await self.db(ccdb.RecordEvent("audit.app.restage", message.actor, app.guid, app.name, step=6))
        _build, done = await self._begin_build(app, package, message.actor)
        return await done

    @handles(StageAndStart, concurrent=True)
    async def _stage_and_start(self, message: StageAndStart) -> BuildRecord | None:
        app = await self._app(message.app_guid)
        package = await self.db(ccdb.LatestReadyPackage(app.guid))
        build = None
        if package is not None:
            current = await self.db(ccdb.CurrentDroplet(app.guid)) if app.droplet_guid else None
            if current is None or current.package_guid != package.guid:
                _build, done = await self._begin_build(app, package, message.actor)
                build = await done
                if build.state is not BuildState.STAGED:
                    return build
        await self._start_app(StartApp(app.guid, message.actor))
        return build

    @handles(CreateBuild, concurrent=True)
    async def _create_build(self, message: CreateBuild) -> BuildRecord:
        """A build of this package, STAGING; staging goes on without the asker."""
        package = await self.db(ccdb.GetPackage(message.package_guid, step=6))
        if package.state is not PackageState.READY:
            raise PackageNotReady()
        app = await self._app(package.app_guid)
        async with self._app_lock(app.guid):
            builds = await self.db(ccdb.ListBuilds(app.guid))
            if any(b.state is BuildState.STAGING for b in builds):
                raise StagingInProgress()
            build, _done = await self._begin_build(app, package, message.actor)
        return build

    async def _begin_build(
        self, app: AppRecord, package: PackageRecord, actor: str
    ) -> tuple[BuildRecord, asyncio.Future[BuildRecord]]:
        """Create the build and hand its staging task to the BBS; the future
        ends with the build, STAGED or FAILED."""
        build = await self.db(
            ccdb.CreateBuild(
                build_guid=self.system.new_guid(),
                app_guid=app.guid,
                package_guid=package.guid,
                actor=actor,
                staging_memory_mb=self.config.staging_memory_mb,
                staging_disk_mb=self.config.staging_disk_mb,
                step=6,
            )
        )
        task = TaskDefinition(
            task_guid=build.guid,
            memory_mb=self.config.staging_memory_mb,
            disk_mb=self.config.staging_disk_mb,
            rootfs=app.stack,
            staging=StagingRequest(
                app_guid=app.guid,
                app_name=app.name,
                build_guid=build.guid,
                package_key=package.blob_key or "",
                buildpacks=tuple(app.buildpacks),
                command=app.command,
                stack=app.stack,
                env=tuple(sorted(app.env.items())),
                package_size=package.size,
            ),
        )
        done: asyncio.Future[BuildRecord] = asyncio.get_running_loop().create_future()
        done.add_done_callback(lambda _: self._staging_tasks.pop(build.guid, None))
        self._builds[build.guid] = done
        self._api_log(app.guid, f"Creating build for app with guid {app.guid}")
        # The deadline is armed first: whatever is lost from here on, the
        # build ends (STAGED, FAILED, or StagingTimeExpired), never hangs.
        self.tell_self_later(self.config.staging_timeout, StagingExpired(build.guid, task.task_guid))
        self._staging_tasks[build.guid] = task
        try:
            await self._desire_task(task)
        except Exception as exc:
            self._builds.pop(build.guid, None)
            self._staging_tasks.pop(build.guid, None)
            error = StagingError(f"Staging error: could not hand the staging task to Diego: {exc}")
            await self.db(ccdb.FailBuild(build.guid, str(error)))
            raise
        return build, done

    async def _desire_task(self, task: TaskDefinition) -> None:
        # Desiring a task is idempotent (by its guid): a lost request or
        # reply, or a BBS restarting, is worth another try.
        for attempt in range(1, self.config.desire_task_attempts + 1):
            try:
                await self.ask("bbs", DesireTask(task))
                return
            except (AskTimeout, ActorDeadError):
                if attempt == self.config.desire_task_attempts:
                    raise
                await self.clock.sleep(1.0)

    @handles(StagingCompleted, concurrent=True)
    async def _staging_completed(self, message: StagingCompleted) -> None:
        waiter = self._builds.pop(message.build_guid, None)
        try:
            if message.result is not None:
                r = message.result
                async with self._blob_lock:
                    # The cell stored the droplet before we heard of it; a
                    # delete of identical bits may have freed it meanwhile.
                    if await self.blob(blobs.Exists(r.droplet_key)):
                        await self.db(
                            ccdb.FinishBuildStaged(
                                build_guid=message.build_guid,
                                blob_key=r.droplet_key,
                                size=r.droplet_size,
                                buildpacks=tuple(name for name, _ in r.buildpacks),
                                detected_buildpack=r.detected_buildpack,
                                start_command=r.start_command,
                                process_types=freeze(dict(r.process_types)),
                                set_current=True,
                                step=10,
                            )
                        )
                    else:
                        lost = StagingError("Staging error: the droplet was lost before it was recorded")
                        await self.db(ccdb.FailBuild(message.build_guid, str(lost), step=10))
                build = await self.db(ccdb.GetBuild(message.build_guid))
                freed = await self.db(ccdb.ExpireOldDroplets(build.app_guid, keep=self.config.droplets_kept))
                await self._delete_blobs(freed)
            else:
                failure = message.failure or StagingFailure.of(StagingError())
                await self.db(ccdb.FailBuild(message.build_guid, failure.build_error, step=10))
                build = await self.db(ccdb.GetBuild(message.build_guid))
                if failure.cause == "BlobCorrupt" and build.state is BuildState.FAILED:
                    await self._package_corrupt(build.package_guid)
            self._api_log(build.app_guid, f"Staging {'complete' if build.state is BuildState.STAGED else 'failed'}")
        except Exception as exc:
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
            raise
        if waiter is not None and not waiter.done():
            waiter.set_result(build)

    async def _package_corrupt(self, package_guid: str) -> None:
        """Staging found the package's blob damaged: the package is FAILED and
        lets go of the blob, so the next push of the same bits stores them anew."""
        package = await self.db(ccdb.GetPackage(package_guid))
        if package.state is not PackageState.READY:
            return
        await self.db(ccdb.UpdatePackage(package_guid, FrozenDict({"state": PackageState.FAILED, "blob_key": None})))
        log.warning("package-corrupt", package_guid=package_guid, key=package.blob_key)
        if package.blob_key is not None:
            await self._delete_blobs([package.blob_key])

    @handles(StagingExpired, concurrent=True)
    async def _staging_expired(self, message: StagingExpired) -> None:
        """The staging deadline: whatever happened meanwhile (a lost result,
        a lost write), a build still STAGING in CC_DB now fails."""
        waiter = self._builds.pop(message.build_guid, None)
        build = await self.db(ccdb.GetBuild(message.build_guid))
        if build.state is BuildState.STAGING:
            expired = StagingTimeExpired(f"Staging time expired after {self.config.staging_timeout:g} s")
            await self.db(ccdb.FailBuild(message.build_guid, str(expired)))
            self.tell("bbs", CancelTask(message.task_guid))
            build = await self.db(ccdb.GetBuild(message.build_guid))
        if waiter is not None and not waiter.done():
            waiter.set_result(build)

    async def _sync_tasks(self) -> list[dict[str, Any]]:
        """Desire again the staging tasks of builds this process waits for
        that the BBS does not hold (it restarted, or the desire was lost)."""
        if not self._staging_tasks:
            return []
        held = {t.task_guid for t in await self.ask("bbs", ListTasks(), timeout=self.config.db_timeout)}
        repairs = []
        for build_guid, task in list(self._staging_tasks.items()):
            if task.task_guid in held or build_guid not in self._builds:
                continue
            build = await self.db(ccdb.GetBuild(build_guid))
            if build.state is not BuildState.STAGING:
                continue
            self.tell("bbs", DesireTask(task))
            repairs.append({"repair": "desire-task", "build_guid": build_guid})
            log.warning("tasks-sync-repaired", build_guid=build_guid)
        return repairs
