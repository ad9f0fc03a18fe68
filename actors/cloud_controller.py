"""The `cloud_controller` actor: Cloud Controller (CAPI) — the platform's API.

It owns the user-facing objects — apps, packages, builds, droplets, the web
process — keeps them in CC_DB, moves bits through the blob store, and turns
user intent into Diego work: a build becomes a staging task, a started app a
desired LRP. It hears back from the BBS when staging completes and when an
instance crashes (for `audit.app.process.crash`).

On boot it re-desires every STARTED app from CC_DB, so apps come back after
the platform restarts, and fails builds a previous process left STAGING.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import structlog

from actors.cell.buildpacks import find_buildpack
from actors.cell.instance_model import InstanceModel
from actors.runtime import AsyncioActor, Deferred
from actors.runtime.delivery import current_trace
from protocol.errors import (
    AppNotFound,
    AskTimeout,
    InsufficientResources,
    InvalidManifest,
    NoCompatibleCell,
    NotStaged,
    PlatformError,
    StagingError,
    StagingTimeExpired,
)
from protocol.lrp import DesiredLRP, InstanceInfo, StagingRequest, TaskDefinition
from protocol.manifest import default_route
from protocol.messages import (
    AssemblePackage,
    Blob,
    BlobInventory,
    CancelTask,
    CreateOrUpdateApp,
    Db,
    DeleteApp,
    DesireLRP,
    DesireTask,
    ForgetLogs,
    GetActualLRPs,
    GetApp,
    GetAppInstances,
    GetAppSummary,
    GetEvents,
    GetTrace,
    ListApps,
    ListDesiredLRPs,
    LogLine,
    MatchResources,
    ProcessCrashed,
    RemoveDesiredLRP,
    SaveTrace,
    ScaleApp,
    StageApp,
    StagingCompleted,
    StartApp,
    StopApp,
    UpdateDesiredLRP,
    UploadBits,
)
from protocol.states import ActualLRPState, AppState, BuildState, InstanceState, PackageState

__all__ = ["CloudController", "ControllerConfig"]

log = structlog.get_logger("minifoundry.cloud_controller")


@dataclasses.dataclass(frozen=True, slots=True)
class ControllerConfig:
    staging_timeout: float = 900.0  # CC's staging_timeout_in_seconds (15 min)
    staging_memory_mb: int = 1024
    staging_disk_mb: int = 4096
    db_timeout: float = 10.0
    blob_timeout: float = 60.0
    packages_kept: int = 5
    droplets_kept: int = 5
    reap_interval: float = 300.0  # orphan blob sweep, platform seconds
    db_read_attempts: int = 3
    # Cloud Controller's pending-packages / pending-builds cleanup jobs: an
    # upload or a build whose request was lost is failed after this long.
    max_pending_package_age: float = 600.0


class _Reap:
    """Timer: sweep orphan blobs."""


@dataclasses.dataclass(frozen=True, slots=True)
class _StagingExpired:
    build_guid: str
    task_guid: str


def build_error(reason: str) -> str:
    """A BBS/cell failure reason as Cloud Controller's `<Name> - <message>`."""
    if " - " in reason.split(":")[0] or reason.startswith(tuple(_NAMED)):
        return reason
    if reason.startswith("insufficient resources"):
        return str(InsufficientResources(reason))
    if reason.startswith("found no compatible cell"):
        return str(NoCompatibleCell(reason))
    return str(StagingError(f"Staging error: {reason}"))


_READS = ("get_", "find_", "list_", "latest_", "current_", "referenced_", "stats")

_NAMED = (
    "NoAppDetectedError",
    "BuildpackCompileFailed",
    "BuildpackReleaseFailed",
    "InsufficientResources",
    "NoCompatibleCell",
    "StagingError",
    "StagingTimeExpired",
)


class CloudController(AsyncioActor):
    default_name = "cloud_controller"

    def __init__(self, config: ControllerConfig | None = None, *, name: str = "cloud_controller") -> None:
        super().__init__(name=name)
        self.config = config or ControllerConfig()
        self._builds: dict[str, asyncio.Future[Any]] = {}
        self._process: dict[str, str] = {}  # app_guid -> process_guid of its running version
        self._orphans_seen: dict[str, float] = {}  # blob key -> when first seen unreferenced
        # Held while bits are stored and recorded, and while freed blobs are
        # deleted: the two must not interleave (see _delete_blobs).
        self._blob_lock = asyncio.Lock()

    # --- helpers ----------------------------------------------------------------------

    async def db(self, op: str, step: int | None = None, **kwargs: Any) -> Any:
        if "now" in _NEEDS_NOW.get(op, ()) and "now" not in kwargs:
            kwargs["now"] = None  # the ccdb actor fills in its clock's now
        # Reads are safe to repeat, so a lost request or reply is retried;
        # a write is not (its reply may be what was lost), so it is not.
        attempts = self.config.db_read_attempts if op.startswith(_READS) else 1
        for attempt in range(1, attempts + 1):
            try:
                return await self.ask("ccdb", Db(op, kwargs, step), timeout=self.config.db_timeout)
            except AskTimeout:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def _api_log(self, app_guid: str, text: str) -> None:
        self.tell("loggregator", LogLine(app_guid, "API", "0", text, self.clock.now()))

    async def _app(self, app_guid: str) -> Any:
        try:
            return await self.db("get_app", guid=app_guid)
        except AppNotFound:
            raise AppNotFound(app_guid) from None

    # --- boot -----------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Pick up where the last process stopped: fail orphaned builds and
        uploads, sweep orphan blobs, re-desire started apps."""
        apps = await self.db("list_apps")
        for app in apps:
            for build in await self.db("list_builds", app_guid=app.guid):
                if build.state is BuildState.STAGING:
                    await self.db(
                        "fail_build",
                        build_guid=build.guid,
                        error=str(StagingError("Staging error: staging was interrupted by a platform restart")),
                    )
            for package in await self.db("list_packages", app_guid=app.guid):
                if package.state in (PackageState.AWAITING_UPLOAD, PackageState.PROCESSING_UPLOAD):
                    await self.db("update_package", guid=package.guid, state=PackageState.FAILED)
        # Nothing is in flight at boot, so every blob CC_DB does not point to
        # is an orphan a crash left behind (a write whose row never committed).
        swept = await self._sweep_orphans(grace=0.0)
        # A restarted Cloud Controller (the platform kept running) adopts the
        # desired LRPs the BBS still has, so running instances are left alone.
        running = {lrp.app_guid: lrp for lrp in await self.ask("bbs", ListDesiredLRPs())}
        for app in apps:
            if app.state is not AppState.STARTED or app.droplet_guid is None:
                continue
            lrp = running.get(app.guid)
            droplet = await self.db("get_droplet", guid=app.droplet_guid)
            if lrp is not None and lrp.droplet_key == droplet.blob_key and lrp.instances == app.instances:
                self._process[app.guid] = lrp.process_guid
            else:
                await self._desire(app, restart=False, audit=None)
        self.tell_self_later(self.config.reap_interval, _Reap())
        log.info("cloud-controller-started", apps=len(apps), orphans_swept=swept)

    async def _sweep_orphans(self, grace: float) -> int:
        """Delete blobs no CC_DB row refers to once they have been orphans for
        `grace` seconds. The grace outlasts any upload or staging in flight
        (a droplet is stored before CC_DB learns its key)."""
        referenced = await self.db("referenced_blob_keys")
        inventory = await self.ask(
            "blobstore", BlobInventory(frozenset(referenced)), timeout=self.config.blob_timeout
        )
        now = self.clock.monotonic()
        orphans = set(inventory["orphans"])
        for key in list(self._orphans_seen):
            if key not in orphans:
                del self._orphans_seen[key]  # adopted by a row meanwhile
        doomed = []
        for key in orphans:
            first = self._orphans_seen.setdefault(key, now)
            if now - first >= grace:
                doomed.append(key)
        await self._delete_blobs(doomed)
        for key in doomed:
            self._orphans_seen.pop(key, None)
        if doomed:
            log.info("orphan-blobs-deleted", count=len(doomed))
        return len(doomed)

    async def _fail_stale_pending(self) -> int:
        """Fail uploads and builds that can no longer finish (their request or
        reply was lost): the cleanup jobs Cloud Controller runs on its clock."""
        now = self.clock.now()
        failed = 0
        for app in await self.db("list_apps"):
            for package in await self.db("list_packages", app_guid=app.guid):
                if package.state in (PackageState.AWAITING_UPLOAD, PackageState.PROCESSING_UPLOAD):
                    if now - package.updated_at.timestamp() > self.config.max_pending_package_age:
                        await self.db("update_package", guid=package.guid, state=PackageState.FAILED)
                        failed += 1
            for build in await self.db("list_builds", app_guid=app.guid):
                if build.state is BuildState.STAGING and build.guid not in self._builds:
                    if now - build.created_at.timestamp() > self.config.staging_timeout + self.config.reap_interval:
                        await self.db(
                            "fail_build",
                            build_guid=build.guid,
                            error=str(StagingTimeExpired("Staging time expired: the build was lost")),
                        )
                        failed += 1
        return failed

    async def _reap(self, message: _Reap) -> None:
        self.tell_self_later(self.config.reap_interval, _Reap())
        token = current_trace.set(None)
        try:
            await self._fail_stale_pending()
            await self._sweep_orphans(grace=self.config.staging_timeout + self.config.reap_interval)
        except Exception as exc:  # noqa: BLE001 - try again next time
            log.warning("orphan-sweep-failed", error=repr(exc))
        finally:
            current_trace.reset(token)

    # --- dispatch -------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        # Requests are served concurrently, as Cloud Controller's many
        # threads serve them: one slow (or lost) CC_DB call must not hold up
        # every other user's request behind it.
        handler = _HANDLERS.get(type(message))
        if handler is None:
            return super().on_receive(message)
        return Deferred(handler(self, message))

    # --- apps -------------------------------------------------------------------------------

    async def _create_or_update(self, message: CreateOrUpdateApp) -> Any:
        spec = message.spec
        for name in spec.buildpacks:
            find_buildpack(name)  # UnknownBuildpack for a name no cell has
        try:
            InstanceModel.from_env(spec.env_dict)
        except ValueError as exc:
            raise InvalidManifest(f"app {spec.name}: env: {exc}") from None
        routes = self._routes(spec)
        app = await self.db("find_app", step=3, name=spec.name)
        if app is None:
            app = await self.db(
                "create_app",
                step=3,
                guid=self.system.new_guid(),
                name=spec.name,
                actor=message.actor,
                memory_mb=spec.memory_mb,
                disk_mb=spec.disk_mb,
                instances=spec.instances,
                buildpacks=tuple(spec.buildpacks),
                command=spec.command,
                stack=spec.stack,
                health_check_type=spec.health_check_type,
                health_check_http_endpoint=spec.health_check_http_endpoint,
                health_check_timeout=spec.timeout_s,
                env=spec.env_dict,
                routes=routes,
            )
            self._api_log(app.guid, f"Created app with guid {app.guid}")
            return app
        changes = _changes(spec, message.explicit, routes)
        if not changes:
            return app
        app = await self.db(
            "update_app",
            step=3,
            guid=app.guid,
            event=("audit.app.update", message.actor, {"request": {k: _plain(v) for k, v in changes.items()}}),
            **changes,
        )
        self._api_log(app.guid, f"Updated app with guid {app.guid} ({', '.join(sorted(changes))})")
        return app

    def _routes(self, spec: Any) -> tuple[str, ...]:
        if spec.no_route:
            return ()
        if spec.routes:
            return tuple(spec.routes)
        if spec.needs_random_route:
            words = ("brave", "quiet", "lucky", "sunny", "rapid", "proud", "calm", "bold")
            animals = ("otter", "heron", "lynx", "panda", "gecko", "bison", "koala", "zebra")
            return (default_route(f"{spec.name}-{self.rng.choice(words)}-{self.rng.choice(animals)}"),)
        return (default_route(spec.name),)

    async def _get_app(self, message: GetApp) -> Any:
        app = await self.db("find_app", name=message.name)
        if app is None:
            raise AppNotFound(message.name)
        return app

    async def _list_apps(self, message: ListApps) -> list[tuple[Any, tuple[InstanceInfo, ...]]]:
        apps = await self.db("list_apps")
        return [(app, await self._instances(app)) for app in apps]

    # --- bits -------------------------------------------------------------------------------

    async def _match(self, message: MatchResources) -> Any:
        return await self.ask(
            "blobstore", Blob("match_resources", {"resources": list(message.fingerprints)}, step=4),
            timeout=self.config.blob_timeout,
        )

    async def _upload(self, message: UploadBits) -> Any:
        app = await self._app(message.app_guid)
        package = await self.db("create_package", step=5, guid=self.system.new_guid(), app_guid=app.guid)
        await self.db("update_package", step=5, guid=package.guid, state="PROCESSING_UPLOAD")
        # Storing the bits and recording the row happen under the blob lock,
        # so a concurrent delete cannot free the key in between (identical
        # bits dedupe onto one content-addressed blob).
        async with self._blob_lock:
            try:
                info = await self.ask(
                    "blobstore", AssemblePackage(message.files, message.uploaded), timeout=self.config.blob_timeout
                )
            except Exception:
                await self.db("update_package", step=5, guid=package.guid, state="FAILED")
                raise
            package = await self.db(
                "finish_package_upload",
                step=5,
                guid=package.guid,
                blob_key=info.key,
                size=info.size,
                actor=message.actor,
            )
        freed = await self.db("expire_old_packages", app_guid=app.guid, keep=self.config.packages_kept)
        await self._delete_blobs(freed)
        return package

    async def _delete_blobs(self, keys: Any) -> None:
        """Delete blobs CC_DB no longer refers to. Under the blob lock, and
        only those still unreferenced now: a concurrent push of identical bits
        may have claimed a key since it was freed."""
        if not keys:
            return
        async with self._blob_lock:
            still_referenced = await self.db("referenced_blob_keys")
            for key in sorted(set(keys) - set(still_referenced)):
                try:
                    await self.ask("blobstore", Blob("delete", {"key": key}), timeout=self.config.blob_timeout)
                except Exception as exc:  # noqa: BLE001 - an orphan is found and reported later, not fatal
                    log.warning("blob-delete-failed", key=key, error=repr(exc))

    # --- staging ----------------------------------------------------------------------------

    async def _stage(self, message: StageApp) -> Any:
        app = await self._app(message.app_guid)
        package = await self.db("latest_ready_package", step=6, app_guid=app.guid)
        if package is None:
            raise NotStaged(f"App {app.name} has no uploaded package to stage")
        if message.reason == "restage":
            await self.db(
                "record_event",
                step=6,
                type="audit.app.restage",
                actor=message.actor,
                actee_guid=app.guid,
                actee_name=app.name,
                metadata={},
            )
        build = await self.db(
            "create_build",
            step=6,
            build_guid=self.system.new_guid(),
            app_guid=app.guid,
            package_guid=package.guid,
            actor=message.actor,
            staging_memory_mb=self.config.staging_memory_mb,
            staging_disk_mb=self.config.staging_disk_mb,
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
                package_key=package.blob_key,
                buildpacks=tuple(app.buildpacks),
                command=app.command,
                stack=app.stack,
                env=tuple(sorted(app.env.items())),
            ),
        )
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._builds[build.guid] = done
        self._api_log(app.guid, f"Creating build for app with guid {app.guid}")
        # The deadline is armed first: whatever is lost from here on, the
        # build ends (STAGED, FAILED, or StagingTimeExpired), never hangs.
        self.tell_self_later(self.config.staging_timeout, _StagingExpired(build.guid, task.task_guid))
        try:
            await self.ask("bbs", DesireTask(task))
        except Exception as exc:
            self._builds.pop(build.guid, None)
            await self.db(
                "fail_build",
                build_guid=build.guid,
                error=str(StagingError(f"Staging error: could not hand the staging task to Diego: {exc}")),
            )
            raise
        return await done

    async def _staging_completed(self, message: StagingCompleted) -> None:
        waiter = self._builds.pop(message.build_guid, None)
        try:
            if message.result is not None:
                r = message.result
                async with self._blob_lock:
                    # The cell stored the droplet before we heard of it; a
                    # delete of identical bits may have freed it meanwhile.
                    if await self.ask("blobstore", Blob("exists", {"key": r.droplet_key}), timeout=self.config.blob_timeout):
                        await self.db(
                            "finish_build_staged",
                            step=10,
                            build_guid=message.build_guid,
                            blob_key=r.droplet_key,
                            size=r.droplet_size,
                            buildpacks=tuple(name for name, _ in r.buildpacks),
                            detected_buildpack=r.detected_buildpack,
                            start_command=r.start_command,
                            process_types=dict(r.process_types),
                            set_current=True,
                        )
                    else:
                        await self.db(
                            "fail_build",
                            step=10,
                            build_guid=message.build_guid,
                            error=str(StagingError("Staging error: the droplet was lost before it was recorded")),
                        )
                build = await self.db("get_build", guid=message.build_guid)
                freed = await self.db("expire_old_droplets", app_guid=build.app_guid, keep=self.config.droplets_kept)
                await self._delete_blobs(freed)
            else:
                await self.db("fail_build", step=10, build_guid=message.build_guid, error=build_error(message.error))
                build = await self.db("get_build", guid=message.build_guid)
                if message.result is None and build.state is BuildState.STAGED:
                    pass  # a late failure after a success changed nothing
            self._api_log(build.app_guid, f"Staging {'complete' if build.state is BuildState.STAGED else 'failed'}")
        except Exception as exc:
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
            raise
        if waiter is not None and not waiter.done():
            waiter.set_result(build)

    async def _staging_expired(self, message: _StagingExpired) -> None:
        """The staging deadline: whatever happened meanwhile (a lost result,
        a lost write), a build still STAGING in CC_DB now fails."""
        waiter = self._builds.pop(message.build_guid, None)
        build = await self.db("get_build", guid=message.build_guid)
        if build.state is BuildState.STAGING:
            await self.db(
                "fail_build",
                build_guid=message.build_guid,
                error=str(StagingTimeExpired(f"Staging time expired after {self.config.staging_timeout:g} s")),
            )
            self.tell("bbs", CancelTask(message.task_guid))
            build = await self.db("get_build", guid=message.build_guid)
        if waiter is not None and not waiter.done():
            waiter.set_result(build)

    # --- running ------------------------------------------------------------------------------

    async def _start_app(self, message: StartApp) -> str:
        app = await self._app(message.app_guid)
        if app.droplet_guid is None:
            raise NotStaged(f"App {app.name} has not been staged: push or restage it first")
        return await self._desire(
            app, restart=message.restart, audit=("audit.app.restart" if message.restart else "audit.app.start", message.actor)
        )

    async def _desire(self, app: Any, *, restart: bool, audit: tuple[str, str] | None) -> str:
        droplet = await self.db("get_droplet", guid=app.droplet_guid)
        old = self._process.get(app.guid)
        if old is not None:
            self.tell("bbs", RemoveDesiredLRP(old))
        if audit is not None:
            app = await self.db("update_app", guid=app.guid, state=AppState.STARTED, event=(audit[0], audit[1], {}))
            self._api_log(app.guid, f"{'Restarting' if restart else 'Starting'} app with guid {app.guid}")
        process_guid = f"{app.guid}-{self.rng.getrandbits(32):08x}"
        self._process[app.guid] = process_guid
        lrp = DesiredLRP(
            process_guid=process_guid,
            app_guid=app.guid,
            app_name=app.name,
            instances=app.instances,
            memory_mb=app.memory_mb,
            disk_mb=app.disk_mb,
            droplet_key=droplet.blob_key,
            start_command=app.command or droplet.start_command,
            rootfs=app.stack,
            health_check_type=app.health_check_type,
            health_check_http_endpoint=app.health_check_http_endpoint,
            health_check_timeout_s=float(app.health_check_timeout or 60),
            env=tuple(sorted(app.env.items())),
        )
        self.tell("bbs", DesireLRP(lrp))
        return process_guid

    async def _stop_app(self, message: StopApp) -> Any:
        app = await self._app(message.app_guid)
        process_guid = self._process.pop(app.guid, None)
        if process_guid is not None:
            self.tell("bbs", RemoveDesiredLRP(process_guid))
        if app.state is not AppState.STOPPED:
            app = await self.db(
                "update_app", guid=app.guid, state=AppState.STOPPED, event=("audit.app.stop", message.actor, {})
            )
            self._api_log(app.guid, f"Stopping app with guid {app.guid}")
        return app

    async def _scale(self, message: ScaleApp) -> Any:
        app = await self._app(message.app_guid)
        changes: dict[str, Any] = {}
        if message.instances is not None and message.instances != app.instances:
            changes["instances"] = message.instances
        if message.memory_mb is not None and message.memory_mb != app.memory_mb:
            changes["memory_mb"] = message.memory_mb
        if message.disk_mb is not None and message.disk_mb != app.disk_mb:
            changes["disk_mb"] = message.disk_mb
        if not changes:
            return app
        metadata = {"request": {"instances": message.instances, "memory_in_mb": message.memory_mb, "disk_in_mb": message.disk_mb}}
        app = await self.db(
            "update_app", guid=app.guid, event=("audit.app.process.scale", message.actor, metadata), **changes
        )
        self._api_log(app.guid, f"Scaling app with guid {app.guid} ({', '.join(sorted(changes))})")
        process_guid = self._process.get(app.guid)
        if app.state is AppState.STARTED and process_guid is not None:
            if "memory_mb" in changes or "disk_mb" in changes:
                await self._desire(app, restart=True, audit=None)  # new quotas need new containers
            else:
                self.tell("bbs", UpdateDesiredLRP(process_guid, app.instances))
        return app

    async def _delete(self, message: DeleteApp) -> bool:
        app = await self._app(message.app_guid)
        process_guid = self._process.pop(app.guid, None)
        if process_guid is not None:
            self.tell("bbs", RemoveDesiredLRP(process_guid))
        freed = await self.db("delete_app", guid=app.guid, actor=message.actor)
        await self._delete_blobs(freed)
        self.tell("loggregator", ForgetLogs(app.guid))
        return True

    # --- views ---------------------------------------------------------------------------------

    async def _get_instances(self, message: GetAppInstances) -> tuple[InstanceInfo, ...]:
        app = await self._app(message.app_guid)
        return await self._instances(app)

    async def _instances(self, app: Any) -> tuple[InstanceInfo, ...]:
        process_guid = self._process.get(app.guid)
        if process_guid is None or app.state is not AppState.STARTED:
            return ()
        actuals = await self.ask("bbs", GetActualLRPs(process_guid))
        rows = []
        for a in actuals:
            details = ""
            if a.state is ActualLRPState.RUNNING:
                state = InstanceState.RUNNING
            elif a.state is ActualLRPState.CRASHED:
                state = InstanceState.CRASHED
                details = a.crash_reason
            elif a.state is ActualLRPState.UNCLAIMED and a.placement_error:
                state = InstanceState.DOWN
                details = a.placement_error
            else:
                state = InstanceState.STARTING
            rows.append(
                InstanceInfo(
                    index=a.index,
                    state=state.value,
                    since=a.since,
                    cell_id=a.cell_id,
                    memory_usage_mb=a.memory_usage_mb if state is InstanceState.RUNNING else 0.0,
                    memory_quota_mb=app.memory_mb,
                    disk_usage_mb=a.disk_usage_mb if state is InstanceState.RUNNING else 0.0,
                    disk_quota_mb=app.disk_mb,
                    details=details,
                    crash_count=a.crash_count,
                )
            )
        return tuple(rows)

    async def _summary(self, message: GetAppSummary) -> tuple[Any, Any, tuple[InstanceInfo, ...]]:
        app = await self._app(message.app_guid)
        droplet = None
        if app.droplet_guid is not None:
            droplet = await self.db("get_droplet", guid=app.droplet_guid)
        return app, droplet, await self._instances(app)

    async def _events(self, message: GetEvents) -> Any:
        return await self.db("list_events", actee_guid=message.app_guid, limit=message.limit)

    async def _trace(self, message: GetTrace) -> Any:
        return await self.db("latest_trace", app_guid=message.app_guid)

    async def _save_trace(self, message: SaveTrace) -> None:
        await self.db(
            "save_trace",
            trace_id=message.trace_id,
            app_guid=message.app_guid,
            app_name=message.app_name,
            kind=message.kind,
            deliveries=list(message.deliveries),
        )

    async def _crashed(self, message: ProcessCrashed) -> None:
        if self._process.get(message.app_guid) != message.process_guid:
            return  # an old version's instance
        token = current_trace.set(None)  # crashes are not part of the push's conversation
        try:
            try:
                app = await self._app(message.app_guid)
            except AppNotFound:
                return
            metadata = {
                "index": message.index,
                "reason": "CRASHED",
                "cell_id": message.cell_id,
                "instance": message.instance_guid,
                "exit_description": message.exit_description,
                "crash_count": message.crash_count,
                "crash_timestamp": message.crash_timestamp,
            }
            await self.db(
                "record_event",
                type="audit.app.process.crash",
                actor=app.guid,
                actee_guid=app.guid,
                actee_name=app.name,
                metadata=metadata,
            )
            self._api_log(
                app.guid,
                f"Process has crashed with type: \"web\" (index: {message.index}, reason: CRASHED, "
                f"exit_description: {message.exit_description})",
            )
        finally:
            current_trace.reset(token)


def _changes(spec: Any, explicit: frozenset[str], routes: tuple[str, ...]) -> dict[str, Any]:
    """The app columns a push changes: only what the user set."""
    mapping = {
        "memory_mb": "memory_mb",
        "disk_mb": "disk_mb",
        "instances": "instances",
        "buildpacks": "buildpacks",
        "command": "command",
        "stack": "stack",
        "health_check_type": "health_check_type",
        "health_check_http_endpoint": "health_check_http_endpoint",
        "timeout_s": "health_check_timeout",
        "env": "env",
    }
    changes: dict[str, Any] = {}
    for field_name, column in mapping.items():
        if field_name in explicit:
            value = getattr(spec, field_name)
            if field_name == "env":
                value = dict(value)
            elif field_name == "buildpacks":
                value = tuple(value)
            changes[column] = value
    if explicit & {"routes", "no_route", "random_route"}:
        changes["routes"] = routes
    return changes


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "value"):
        return value.value
    return value


_NEEDS_NOW = {
    op: ("now",)
    for op in (
        "create_app",
        "update_app",
        "delete_app",
        "create_package",
        "update_package",
        "finish_package_upload",
        "expire_old_packages",
        "create_build",
        "finish_build_staged",
        "fail_build",
        "expire_old_droplets",
        "record_event",
        "save_trace",
    )
}

_HANDLERS: dict[type, Any] = {
    CreateOrUpdateApp: CloudController._create_or_update,
    GetApp: CloudController._get_app,
    ListApps: CloudController._list_apps,
    MatchResources: CloudController._match,
    UploadBits: CloudController._upload,
    StageApp: CloudController._stage,
    StagingCompleted: CloudController._staging_completed,
    _StagingExpired: CloudController._staging_expired,
    _Reap: CloudController._reap,
    StartApp: CloudController._start_app,
    StopApp: CloudController._stop_app,
    ScaleApp: CloudController._scale,
    DeleteApp: CloudController._delete,
    GetAppInstances: CloudController._get_instances,
    GetAppSummary: CloudController._summary,
    GetEvents: CloudController._events,
    GetTrace: CloudController._trace,
    SaveTrace: CloudController._save_trace,
    ProcessCrashed: CloudController._crashed,
}

__all__ += ["build_error", "PlatformError"]
