"""Processes: an app's web process as Diego runs it. Starting, stopping,
scaling and deleting write CC_DB and then tell the BBS; the sync with the
BBS (Cloud Controller's `ProcessesSync`) repairs whatever such a message
failed to do. Crashes come back as audit events."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import structlog

from actors.cloud_controller.base import ControllerBase
from actors.runtime import handles
from actors.runtime.delivery import current_trace
from protocol import ccdb
from protocol.errors import AppNotFound, NotStaged
from protocol.lrp import DesiredLRP
from protocol.messages import (
    BBSStarted,
    DeleteApp,
    DesireLRP,
    ForgetLogs,
    ListDesiredLRPs,
    ProcessCrashed,
    RemoveDesiredLRP,
    ScaleApp,
    StartApp,
    StopApp,
    SyncProcesses,
    UpdateDesiredLRP,
)
from protocol.records import AppRecord, AuditEvent, DropletRecord, FrozenDict, freeze
from protocol.states import AppState

__all__ = ["Processes", "SyncTick", "desired_lrp"]

log = structlog.get_logger("minifoundry.cloud_controller")


class SyncTick:
    """Timer: the periodic sync with the BBS."""


def desired_lrp(app: AppRecord, droplet: DropletRecord) -> DesiredLRP:
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


class Processes(ControllerBase):
    # --- start, stop, scale, delete ---------------------------------------------------------

    @handles(StartApp, concurrent=True)
    async def _start_app(self, message: StartApp) -> str | None:
        app = await self._app(message.app_guid)
        if app.droplet_guid is None:
            raise NotStaged(f"App {app.name} has not been staged: push or restage it first")
        await self._check_quota(app.guid, app.memory_mb, app.instances)
        kind = "audit.app.restart" if message.restart else "audit.app.start"
        return await self._desire(app, restart=message.restart, audit=(kind, message.actor))

    async def _desire(self, app: AppRecord, *, restart: bool, audit: tuple[str, str] | None) -> str | None:
        """A new version of the app's web process: recorded in CC_DB, then
        desired at the BBS (which replaces the old version's LRP)."""
        async with self._app_lock(app.guid):
            droplet = await self.db(ccdb.GetDroplet(app.droplet_guid or ""))
            version = f"{self.rng.getrandbits(32):08x}"
            event = None if audit is None else AuditEvent(audit[0], audit[1])
            app = await self.db(
                ccdb.UpdateApp(app.guid, FrozenDict({"state": AppState.STARTED, "process_version": version}), event)
            )
            if audit is not None:
                self._api_log(app.guid, f"{'Restarting' if restart else 'Starting'} app with guid {app.guid}")
            self.tell("bbs", DesireLRP(desired_lrp(app, droplet)))
            return app.process_guid

    @handles(StopApp, concurrent=True)
    async def _stop_app(self, message: StopApp) -> AppRecord:
        async with self._app_lock(message.app_guid):
            app = await self._app(message.app_guid)
            if app.state is not AppState.STOPPED:
                app = await self.db(
                    ccdb.UpdateApp(
                        app.guid, FrozenDict({"state": AppState.STOPPED}), AuditEvent("audit.app.stop", message.actor)
                    )
                )
                self._api_log(app.guid, f"Stopping app with guid {app.guid}")
            if app.process_guid is not None:
                self.tell("bbs", RemoveDesiredLRP(app.process_guid))
            return app

    @handles(ScaleApp, concurrent=True)
    async def _scale(self, message: ScaleApp) -> AppRecord:
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
            if "disk_mb" in changes:
                self._check_disk(changes["disk_mb"])
            if app.state is AppState.STARTED:
                await self._check_quota(
                    app.guid, changes.get("memory_mb", app.memory_mb), changes.get("instances", app.instances)
                )
            running = app.state is AppState.STARTED and app.droplet_guid is not None
            new_containers = running and ("memory_mb" in changes or "disk_mb" in changes)
            if new_containers:
                # New quotas need new containers: a new version of the process.
                changes["process_version"] = f"{self.rng.getrandbits(32):08x}"
            request = {"instances": message.instances, "memory_in_mb": message.memory_mb, "disk_in_mb": message.disk_mb}
            event = AuditEvent("audit.app.process.scale", message.actor, freeze({"request": request}))
            app = await self.db(ccdb.UpdateApp(app.guid, FrozenDict(changes), event))
            shown = sorted(c for c in changes if c != "process_version")
            self._api_log(app.guid, f"Scaling app with guid {app.guid} ({', '.join(shown)})")
            if new_containers:
                droplet = await self.db(ccdb.GetDroplet(app.droplet_guid or ""))
                self.tell("bbs", DesireLRP(desired_lrp(app, droplet)))
            elif running and app.process_guid is not None:
                self.tell("bbs", UpdateDesiredLRP(app.process_guid, app.instances))
            return app

    @handles(DeleteApp, concurrent=True)
    async def _delete(self, message: DeleteApp) -> bool:
        async with self._app_lock(message.app_guid):
            app = await self._app(message.app_guid)
            freed = await self.db(ccdb.DeleteApp(app.guid, message.actor))
            if app.process_guid is not None:
                self.tell("bbs", RemoveDesiredLRP(app.process_guid))
        # Its routes outlive it, as in Cloud Foundry (`cf delete -r` deletes them).
        await self._unmapped(added=app.routes)
        self._app_locks.pop(app.guid, None)
        await self._delete_blobs(freed)
        self.tell("loggregator", ForgetLogs(app.guid))
        return True

    # --- crashes ----------------------------------------------------------------------------

    @handles(ProcessCrashed, concurrent=True)
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
            await self.db(ccdb.RecordEvent("audit.app.process.crash", app.name, app.guid, app.name, freeze(metadata)))
            self._api_log(
                app.guid,
                f'Process has crashed with type: "web" (index: {message.index}, reason: CRASHED, '
                f"exit_description: {message.exit_description})",
            )
        finally:
            current_trace.reset(token)

    # --- the sync with Diego (ProcessesSync, TasksSync) ---------------------------------------

    @handles(SyncTick, concurrent=True)
    async def _sync_tick(self, _message: SyncTick) -> None:
        self.tell_self_later(self.config.sync_interval, SyncTick())
        await self._sync("timer")

    @handles(BBSStarted, concurrent=True)
    async def _bbs_started(self, _message: BBSStarted) -> None:
        await self._sync("bbs-restarted")

    @handles(SyncProcesses, concurrent=True)
    async def _sync_now(self, _message: SyncProcesses) -> list[dict[str, Any]]:
        return await self._sync("asked")

    async def _sync(self, reason: str) -> list[dict[str, Any]]:
        """Make the BBS agree with CC_DB: desire the missing LRPs, update the
        stale ones, remove those of stopped and deleted apps; desire again
        the staging tasks it lost. One run at a time; a failed read leaves it
        for the next run. Returns the repairs made."""
        if not self.config.sync_enabled:
            return []
        if self._syncing is None or self._syncing.done():
            self._syncing = asyncio.ensure_future(self._sync_once(reason))
        return await asyncio.shield(self._syncing)

    async def _sync_once(self, reason: str) -> list[dict[str, Any]]:
        token = current_trace.set(None)  # background work, not part of a push
        repairs: list[dict[str, Any]] = []
        try:
            started = {app.guid: (app, droplet) for app, droplet in await self.db(ccdb.ListStartedProcesses())}
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
                app: AppRecord | None = await self.db(ccdb.GetApp(app_guid))
            except AppNotFound:
                app = None
            expected: DesiredLRP | None = None
            if app is not None and app.state is AppState.STARTED and app.droplet_guid is not None:
                expected = desired_lrp(app, await self.db(ccdb.GetDroplet(app.droplet_guid)))
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
                    why = f"the app is {state}" if expected is None else "an old version"
                    repairs.append({"repair": "remove", "process_guid": lrp.process_guid, "why": why})
            name = app.name if app is not None else (current[0].app_name if current else "")
            for repair in repairs:
                log.warning("processes-sync-repaired", app_guid=app_guid, app=name, **repair)
                try:
                    await self.db(
                        ccdb.RecordEvent("audit.app.process.sync", "cloud_controller", app_guid, name, freeze(repair))
                    )
                except Exception as exc:  # noqa: BLE001 - the repair stands; only its record is lost
                    log.warning("sync-event-not-recorded", app_guid=app_guid, error=repr(exc))
            return repairs
