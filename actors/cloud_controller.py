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
    ActorDeadError,
    AppNotFound,
    AskTimeout,
    InsufficientResources,
    InvalidManifest,
    NoCompatibleCell,
    NotStaged,
    PlatformError,
    StagingError,
    StackNotFound,
    StagingTimeExpired,
)
from protocol.lrp import DesiredLRP, InstanceInfo, StagingRequest, TaskDefinition
from protocol.manifest import default_route
from protocol.quota import QuotaDefinition
from protocol.messages import (
    AssemblePackage,
    BBSStarted,
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
    ListTasks,
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
    SyncProcesses,
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
    # The clock job's Diego sync (ProcessesSync, TasksSync): CC_DB is the
    # truth, the BBS is made to agree with it this often (and at once when
    # the BBS restarts). Switched off only to prove that checks catch drift.
    sync_interval: float = 30.0
    sync_enabled: bool = True
    desire_task_attempts: int = 3
    # The org's quota (the platform sizes its default to the cells) and the
    # stacks the cells provide.
    quota: QuotaDefinition = QuotaDefinition()
    stacks: tuple[str, ...] = ("cflinuxfs4", "cflinuxfs3")

    @property
    def cleanup_bound(self) -> float:
        """Platform seconds after which the cleanup jobs have failed anything
        a lost message left pending (an experiment judges leftovers after it)."""
        return max(self.max_pending_package_age, self.staging_timeout) + 2 * self.reap_interval


class _Reap:
    """Timer: sweep orphan blobs."""


class _SyncTick:
    """Timer: the periodic sync with the BBS."""


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


def desired_lrp(app: Any, droplet: Any) -> DesiredLRP:
    """The desired LRP a started app should have, from its CC_DB records alone."""
    return DesiredLRP(
        process_guid=app.process_guid or f"{app.guid}-0",
        app_guid=app.guid,
        app_name=app.name,
        instances=app.instances,
        memory_mb=app.memory_mb,
        disk_mb=app.disk_mb,
        droplet_key=droplet.blob_key,
        start_command=app.command or droplet.start_command or "",
        rootfs=app.stack,
        health_check_type=app.health_check_type,
        health_check_http_endpoint=app.health_check_http_endpoint,
        health_check_timeout_s=float(app.health_check_timeout or 60),
        env=tuple(sorted(app.env.items())),
    )


def _drift(expected: DesiredLRP, current: list[DesiredLRP]) -> bool:
    """Whether the BBS's LRPs of an app differ from the one it should have."""
    return len(current) != 1 or current[0] != expected


def _why(expected: DesiredLRP, current: list[DesiredLRP]) -> str:
    if not current:
        return "missing"
    same = [lrp for lrp in current if lrp.process_guid == expected.process_guid]
    if not same:
        return "an old version"
    fields = [f.name for f in dataclasses.fields(DesiredLRP) if getattr(same[0], f.name) != getattr(expected, f.name)]
    return "stale " + ", ".join(fields)


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
        # Staging tasks of the builds this process waits for, so the sync
        # can desire again a task a restarted BBS lost.
        self._staging_tasks: dict[str, TaskDefinition] = {}
        # One lock per app around "write CC_DB, then tell the BBS": the sync
        # takes it too, so it never judges an app between the two.
        self._app_locks: dict[str, asyncio.Lock] = {}
        self._syncing: asyncio.Task[Any] | None = None
        self.sync_runs = 0
        self.sync_repairs = 0
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
        # The first sync desires every started app the BBS lacks and adopts
        # the LRPs it still runs (a restarted Cloud Controller in a running
        # platform leaves running instances alone).
        await self._sync("boot")
        self.tell_self_later(self.config.reap_interval, _Reap())
        self.tell_self_later(self.config.sync_interval, _SyncTick())
        log.info("cloud-controller-started", apps=len(apps), orphans_swept=swept)

    # --- the sync with Diego (ProcessesSync, TasksSync) ---------------------------------

    def _app_lock(self, app_guid: str) -> asyncio.Lock:
        lock = self._app_locks.get(app_guid)
        if lock is None:
            lock = self._app_locks[app_guid] = asyncio.Lock()
        return lock

    async def _sync_tick(self, message: _SyncTick) -> None:
        self.tell_self_later(self.config.sync_interval, _SyncTick())
        await self._sync("timer")

    async def _bbs_started(self, message: BBSStarted) -> None:
        await self._sync("bbs-restarted")

    async def _sync_now(self, message: SyncProcesses) -> list[dict[str, Any]]:
        return await self._sync("asked")

    async def _sync(self, reason: str) -> list[dict[str, Any]]:
        """Make the BBS agree with CC_DB: desire the missing LRPs, update the
        stale ones, remove those of stopped and deleted apps; desire again
        the staging tasks it lost. One run at a time; a failed read leaves it
        for the next run. Returns the repairs made."""
        if not self.config.sync_enabled:
            return []
        if self._syncing is not None and not self._syncing.done():
            return await asyncio.shield(self._syncing)
        self._syncing = asyncio.ensure_future(self._sync_once(reason))
        return await asyncio.shield(self._syncing)

    async def _sync_once(self, reason: str) -> list[dict[str, Any]]:
        token = current_trace.set(None)  # background work, not part of a push
        repairs: list[dict[str, Any]] = []
        try:
            started = {app.guid: (app, droplet) for app, droplet in await self.db("list_started_processes")}
            running = await self.ask("bbs", ListDesiredLRPs(), timeout=self.config.db_timeout)
            bbs_by_app: dict[str, list[DesiredLRP]] = {}
            for lrp in running:
                bbs_by_app.setdefault(lrp.app_guid, []).append(lrp)
            suspects = [g for g in started if _drift(desired_lrp(*started[g]), bbs_by_app.get(g, []))]
            suspects += [g for g in bbs_by_app if g not in started]
            for app_guid in suspects:
                repairs += await self._repair(app_guid)
            repairs += await self._sync_tasks()
        except Exception as exc:  # noqa: BLE001 - the next run tries again
            log.warning("processes-sync-failed", reason=reason, error=repr(exc))
        finally:
            current_trace.reset(token)
        self.sync_runs += 1
        self.sync_repairs += len(repairs)
        log.info("processes-sync-finished", reason=reason, repairs=len(repairs))
        return repairs

    async def _repair(self, app_guid: str) -> list[dict[str, Any]]:
        """Judge one app again under its lock, on fresh reads, and fix the BBS."""
        async with self._app_lock(app_guid):
            try:
                app = await self.db("get_app", guid=app_guid)
            except AppNotFound:
                app = None
            expected: DesiredLRP | None = None
            if app is not None and app.state is AppState.STARTED and app.droplet_guid is not None:
                expected = desired_lrp(app, await self.db("get_droplet", guid=app.droplet_guid))
            current = list(await self.ask("bbs", ListDesiredLRPs(app_guid), timeout=self.config.db_timeout))
            repairs: list[dict[str, Any]] = []
            if expected is not None and _drift(expected, current):
                same = [lrp for lrp in current if lrp.process_guid == expected.process_guid]
                if same and dataclasses.replace(same[0], instances=expected.instances) == expected:
                    self.tell("bbs", UpdateDesiredLRP(expected.process_guid, expected.instances))
                    repairs.append({"repair": "update", "instances": expected.instances, "was": same[0].instances})
                else:
                    self.tell("bbs", DesireLRP(expected))
                    repairs.append({"repair": "desire", "why": _why(expected, current)})
            for lrp in current:
                if expected is None or lrp.process_guid != expected.process_guid:
                    self.tell("bbs", RemoveDesiredLRP(lrp.process_guid))
                    state = "deleted" if app is None else app.state.value.lower()
                    repairs.append({"repair": "remove", "process_guid": lrp.process_guid, "why": f"the app is {state}"
                                    if expected is None else "an old version"})
            name = app.name if app is not None else (current[0].app_name if current else "")
            for repair in repairs:
                log.warning("processes-sync-repaired", app_guid=app_guid, app=name, **repair)
                try:
                    await self.db(
                        "record_event",
                        type="audit.app.process.sync",
                        actor="cloud_controller",
                        actee_guid=app_guid,
                        actee_name=name,
                        metadata=repair,
                    )
                except Exception as exc:  # noqa: BLE001 - the repair stands; only its record is lost
                    log.warning("sync-event-not-recorded", app_guid=app_guid, error=repr(exc))
            return repairs

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
            build = await self.db("get_build", guid=build_guid)
            if build.state is not BuildState.STAGING:
                continue
            self.tell("bbs", DesireTask(task))
            repairs.append({"repair": "desire-task", "build_guid": build_guid})
            log.warning("tasks-sync-repaired", build_guid=build_guid)
        return repairs

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
        self._check_stack(spec.stack)
        routes = self._routes(spec)
        app = await self.db("find_app", step=3, name=spec.name)
        # As the push will start it: refused here, before any row is written.
        memory = spec.memory_mb if app is None or "memory_mb" in message.explicit else app.memory_mb
        instances = spec.instances if app is None or "instances" in message.explicit else app.instances
        await self._check_quota(None if app is None else app.guid, memory, instances)
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

    async def _check_quota(self, app_guid: str | None, memory_mb: int, instances: int) -> None:
        """Refuse what would take the org past its quota, counting its other started apps."""
        used_memory = used_instances = 0
        for other in await self.db("list_apps"):
            if other.guid != app_guid and other.state is AppState.STARTED:
                used_memory += other.memory_mb * other.instances
                used_instances += other.instances
        self.config.quota.check(
            memory_mb=memory_mb, instances=instances, used_memory_mb=used_memory, used_instances=used_instances
        )

    def _check_stack(self, stack: str) -> None:
        if stack not in self.config.stacks:
            raise StackNotFound(f"Stack '{stack}' does not exist")

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
        self._staging_tasks[build.guid] = task
        try:
            # Desiring a task is idempotent (by its guid): a lost request or
            # reply, or a BBS restarting, is worth another try.
            for attempt in range(1, self.config.desire_task_attempts + 1):
                try:
                    await self.ask("bbs", DesireTask(task))
                    break
                except (AskTimeout, ActorDeadError):
                    if attempt == self.config.desire_task_attempts:
                        raise
                    await self.clock.sleep(1.0)
        except Exception as exc:
            self._builds.pop(build.guid, None)
            self._staging_tasks.pop(build.guid, None)
            await self.db(
                "fail_build",
                build_guid=build.guid,
                error=str(StagingError(f"Staging error: could not hand the staging task to Diego: {exc}")),
            )
            raise
        try:
            return await done
        finally:
            self._staging_tasks.pop(build.guid, None)

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
                if message.cause == "BlobCorrupt" and build.state is BuildState.FAILED:
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
        package = await self.db("get_package", guid=package_guid)
        if package.state is not PackageState.READY:
            return
        await self.db("update_package", guid=package_guid, state=PackageState.FAILED, blob_key=None)
        log.warning("package-corrupt", package_guid=package_guid, key=package.blob_key)
        if package.blob_key is not None:
            await self._delete_blobs([package.blob_key])

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
        await self._check_quota(app.guid, app.memory_mb, app.instances)
        return await self._desire(
            app, restart=message.restart, audit=("audit.app.restart" if message.restart else "audit.app.start", message.actor)
        )

    async def _desire(self, app: Any, *, restart: bool, audit: tuple[str, str] | None) -> str:
        """A new version of the app's web process: recorded in CC_DB, then
        desired at the BBS (which replaces the old version's LRP)."""
        async with self._app_lock(app.guid):
            droplet = await self.db("get_droplet", guid=app.droplet_guid)
            version = f"{self.rng.getrandbits(32):08x}"
            event = None if audit is None else (audit[0], audit[1], {})
            app = await self.db(
                "update_app", guid=app.guid, state=AppState.STARTED, process_version=version, event=event
            )
            if audit is not None:
                self._api_log(app.guid, f"{'Restarting' if restart else 'Starting'} app with guid {app.guid}")
            self.tell("bbs", DesireLRP(desired_lrp(app, droplet)))
            return app.process_guid

    async def _stop_app(self, message: StopApp) -> Any:
        async with self._app_lock(message.app_guid):
            app = await self._app(message.app_guid)
            if app.state is not AppState.STOPPED:
                app = await self.db(
                    "update_app", guid=app.guid, state=AppState.STOPPED, event=("audit.app.stop", message.actor, {})
                )
                self._api_log(app.guid, f"Stopping app with guid {app.guid}")
            if app.process_guid is not None:
                self.tell("bbs", RemoveDesiredLRP(app.process_guid))
            return app

    async def _scale(self, message: ScaleApp) -> Any:
        async with self._app_lock(message.app_guid):
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
            if app.state is AppState.STARTED:
                await self._check_quota(app.guid, changes.get("memory_mb", app.memory_mb), changes.get("instances", app.instances))
            running = app.state is AppState.STARTED and app.droplet_guid is not None
            new_containers = running and ("memory_mb" in changes or "disk_mb" in changes)
            if new_containers:
                # New quotas need new containers: a new version of the process.
                changes["process_version"] = f"{self.rng.getrandbits(32):08x}"
            metadata = {
                "request": {"instances": message.instances, "memory_in_mb": message.memory_mb, "disk_in_mb": message.disk_mb}
            }
            app = await self.db(
                "update_app", guid=app.guid, event=("audit.app.process.scale", message.actor, metadata), **changes
            )
            self._api_log(app.guid, f"Scaling app with guid {app.guid} ({', '.join(sorted(changes))})")
            if new_containers:
                droplet = await self.db("get_droplet", guid=app.droplet_guid)
                self.tell("bbs", DesireLRP(desired_lrp(app, droplet)))
            elif running and app.process_guid is not None:
                self.tell("bbs", UpdateDesiredLRP(app.process_guid, app.instances))
            return app

    async def _delete(self, message: DeleteApp) -> bool:
        async with self._app_lock(message.app_guid):
            app = await self._app(message.app_guid)
            freed = await self.db("delete_app", guid=app.guid, actor=message.actor)
            if app.process_guid is not None:
                self.tell("bbs", RemoveDesiredLRP(app.process_guid))
        self._app_locks.pop(app.guid, None)
        await self._delete_blobs(freed)
        self.tell("loggregator", ForgetLogs(app.guid))
        return True

    # --- views ---------------------------------------------------------------------------------

    async def _get_instances(self, message: GetAppInstances) -> tuple[InstanceInfo, ...]:
        app = await self._app(message.app_guid)
        return await self._instances(app)

    async def _instances(self, app: Any) -> tuple[InstanceInfo, ...]:
        process_guid = app.process_guid
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
        token = current_trace.set(None)  # crashes are not part of the push's conversation
        try:
            try:
                app = await self._app(message.app_guid)
            except AppNotFound:
                return
            if app.process_guid != message.process_guid:
                return  # an old version's instance
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
    _SyncTick: CloudController._sync_tick,
    BBSStarted: CloudController._bbs_started,
    SyncProcesses: CloudController._sync_now,
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
