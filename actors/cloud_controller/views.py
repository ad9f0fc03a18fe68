"""What Cloud Controller shows: an app's instances (from the BBS's actual
LRPs), its summary, events and recorded traces."""

from __future__ import annotations

from actors.cloud_controller.base import ControllerBase
from actors.runtime import handles
from protocol import ccdb
from protocol.lrp import InstanceInfo
from protocol.messages import (
    GetActualLRPs,
    GetAppInstances,
    GetAppSummary,
    GetEvents,
    GetTrace,
    ListAppSummaries,
    SaveTrace,
)
from protocol.records import AppRecord, DropletRecord, EventRecord, TraceRecord
from protocol.states import ActualLRPState, AppState, InstanceState

__all__ = ["Views"]


class Views(ControllerBase):
    @handles(GetAppInstances, concurrent=True)
    async def _get_instances(self, message: GetAppInstances) -> tuple[InstanceInfo, ...]:
        return await self._instances(await self._app(message.app_guid))

    async def _instances(self, app: AppRecord) -> tuple[InstanceInfo, ...]:
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
            running = state is InstanceState.RUNNING
            rows.append(
                InstanceInfo(
                    index=a.index,
                    state=state.value,
                    since=a.since,
                    cell_id=a.cell_id,
                    memory_usage_mb=a.memory_usage_mb if running else 0.0,
                    memory_quota_mb=app.memory_mb,
                    disk_usage_mb=a.disk_usage_mb if running else 0.0,
                    disk_quota_mb=app.disk_mb,
                    details=details,
                    crash_count=a.crash_count,
                )
            )
        return tuple(rows)

    @handles(GetAppSummary, concurrent=True)
    async def _summary(
        self, message: GetAppSummary
    ) -> tuple[AppRecord, DropletRecord | None, tuple[InstanceInfo, ...]]:
        app = await self._app(message.app_guid)
        droplet = None
        if app.droplet_guid is not None:
            droplet = await self.db(ccdb.GetDroplet(app.droplet_guid))
        return app, droplet, await self._instances(app)

    @handles(ListAppSummaries, concurrent=True)
    async def _summaries(
        self, _message: ListAppSummaries
    ) -> list[tuple[AppRecord, DropletRecord | None, tuple[InstanceInfo, ...]]]:
        out = []
        for app in await self.db(ccdb.ListApps()):
            droplet = await self.db(ccdb.GetDroplet(app.droplet_guid)) if app.droplet_guid is not None else None
            out.append((app, droplet, await self._instances(app)))
        return out

    @handles(GetEvents, concurrent=True)
    async def _events(self, message: GetEvents) -> list[EventRecord]:
        return await self.db(ccdb.ListEvents(message.app_guid, message.limit))

    @handles(GetTrace, concurrent=True)
    async def _trace(self, message: GetTrace) -> TraceRecord | None:
        return await self.db(ccdb.LatestTrace(message.app_guid))

    @handles(SaveTrace, concurrent=True)
    async def _save_trace(self, message: SaveTrace) -> None:
        await self.db(
            ccdb.SaveTrace(message.trace_id, message.app_guid, message.app_name, message.kind, message.deliveries)
        )
