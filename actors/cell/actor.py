"""`cell-N`: a Diego cell (rep + executor + garden) as one actor.

It bids (`FetchCellState`), accepts or refuses work it won (`Perform`),
stages apps (staging tasks: download the package, run the buildpacks on the
real files, upload a real droplet) and runs app instances. Instances are
modelled, not executed: how each behaves comes from its app's `MF_*`
environment knobs (`actors.cell.instance_model`). It heartbeats its presence
to the BBS and, every sync interval, tells the BBS what really runs on it.

A cell keeps nothing across a crash: when its actor is killed its instances
are gone, and the restarted cell comes back empty with a new incarnation.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from actors.cell.buildpacks.lifecycle import stage_tree
from actors.cell.buildtree import BuildTree
from actors.cell.droplet import StagingInfo, droplet_bytes, write_droplet_file
from actors.cell.instance_model import InstanceModel, StartPlan
from actors.runtime import AsyncioActor, handles
from actors.runtime.delivery import current_trace
from actors.runtime.offload import in_thread
from protocol import blobs
from protocol.auction import CellState, FrozenCounts, LRPStartRequest, TaskRequest
from protocol.errors import (
    BuildpackCompileFailed,
    BuildpackReleaseFailed,
    NoAppDetectedError,
    PlatformError,
    StagingError,
)
from protocol.lrp import CellPresence, ContainerInfo, DesiredLRP, StagingFailure, StagingResult, TaskDefinition
from protocol.messages import (
    CancelTask,
    CellInfo,
    CellSync,
    CrashInstances,
    FetchCellState,
    GetDesiredLRP,
    GetDesiredLRPs,
    GetTask,
    Heartbeat,
    InstanceCrashed,
    InstancesStarted,
    InstanceStarted,
    ListContainers,
    LogLine,
    LogLines,
    LogRow,
    Perform,
    PerformResult,
    SetDraining,
    StartedRow,
    StopInstance,
    SyncNow,
    TaskCompleted,
)
from protocol.records import BlobInfo
from protocol.snapshots import CellStatistics
from protocol.states import HealthCheckType
from protocol.units import format_bytes

__all__ = ["CellActor", "CellConfig"]

log = structlog.get_logger("minifoundry.cell")

_NO_TRACE = object()  # "no trace set yet" (None is a trace: no conversation)

_EXIT_STATUS = {NoAppDetectedError: 222, BuildpackCompileFailed: 223, BuildpackReleaseFailed: 224}
# Desired LRPs a cell asks the BBS for in one message.
_DESIRED_PER_ASK = 1000
# 2026-01-01T00:00:00Z, the time every droplet's files carry.
DROPLET_MTIME = 1_767_225_600
# Packages up to this size are staged in memory (when the cell has room).
STAGE_IN_MEMORY_BYTES = 32 * 1024 * 1024
# ... and up to this size, on the loop rather than a worker thread.
STAGE_HERE_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class CellConfig:
    cell_id: str
    zone: str = "z1"
    memory_mb: int = 8192
    disk_mb: int = 32768
    containers: int = 250
    rootfs: frozenset[str] = frozenset({"cflinuxfs4", "cflinuxfs3"})
    placement_tags: frozenset[str] = frozenset()
    optional_placement_tags: frozenset[str] = frozenset()
    volume_drivers: frozenset[str] = frozenset()
    cell_index: int = 0
    work_dir: Path | None = None  # staging and droplet cache; None: no disk (benchmarks)
    # Real memory (bytes) the cell's stagings may hold at once in build trees;
    # a staging that does not fit stages on disk in work_dir.
    staging_memory: int = 256 * 1024 * 1024
    heartbeat_interval: float = 5.0
    sync_interval: float = 30.0
    staging_seconds: float = 2.0  # modelled compile time, platform seconds
    ask_timeout: float = 10.0


class _Instance:
    __slots__ = (
        "app_guid",
        "created_at",
        "disk_mb",
        "droplet_key",
        "guid",
        "index",
        "memory_mb",
        "plan",
        "process_guid",
        "running_at",
        "state",
        "trace",
        "usage",
    )

    def __init__(self, work: LRPStartRequest, guid: str, now: float, trace: Any) -> None:
        self.process_guid = work.process_guid
        self.index = work.index
        self.guid = guid
        self.memory_mb = work.memory_mb
        self.disk_mb = work.disk_mb
        self.state = "reserved"  # reserved -> starting -> running
        self.created_at = now
        self.running_at: float | None = None
        self.plan: StartPlan | None = None
        self.app_guid = ""
        self.usage = (0.0, 0.0)
        self.trace = trace
        self.droplet_key: str | None = None


class _Task:
    __slots__ = ("disk_mb", "guid", "memory_mb", "runner", "trace")

    def __init__(self, work: TaskRequest, trace: Any) -> None:
        self.guid = work.task_guid
        self.memory_mb = work.memory_mb
        self.disk_mb = work.disk_mb
        self.trace = trace
        self.runner: asyncio.Task[Any] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class _Healthy:
    guid: str


@dataclasses.dataclass(frozen=True, slots=True)
class _HealthyMany:
    """Timer: the instances started together whose health checks pass now."""

    guids: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class _Crash:
    guid: str


class _Beat:
    pass


class _Sync:
    pass


class CellActor(AsyncioActor):
    def __init__(self, config: CellConfig, *, name: str | None = None) -> None:
        super().__init__(name=name or config.cell_id)
        self.config = config
        self.cell_id = config.cell_id
        self.draining = False
        self.instances: dict[str, _Instance] = {}
        self.tasks: dict[str, _Task] = {}
        self._used_memory = 0
        self._used_disk = 0
        self._lrp_counts: dict[str, int] = {}
        self._indices: set[tuple[str, int]] = set()  # (process_guid, index) held here
        self._frozen_counts: FrozenCounts | None = None
        self._starting = 0
        self._desired: dict[str, DesiredLRP | None] = {}
        self._models: dict[str, InstanceModel] = {}
        self._downloads: dict[str, asyncio.Future[Path | None]] = {}
        self.incarnation = ""
        self.staged = 0
        self._staging_memory_free = config.staging_memory
        self._clock = self._system.clock
        # Log lines held while one step starts many instances (`_batched_logs`),
        # the trace they were logged under and the time of that step.
        self._log_batch: list[LogRow] | None = None
        self._log_batch_trace: Any = None
        self._log_batch_now = 0.0

    # --- lifecycle ---------------------------------------------------------------------

    def on_start(self) -> None:
        self.incarnation = f"{self.rng.getrandbits(64):016x}"
        self._beat()
        self.tell_self_later(self.config.sync_interval, _Sync())

    def _beat(self) -> None:
        c = self.config
        self.tell(
            "bbs",
            Heartbeat(
                CellPresence(
                    cell_id=self.cell_id,
                    zone=c.zone,
                    incarnation=self.incarnation,
                    memory_mb=c.memory_mb,
                    disk_mb=c.disk_mb,
                    containers=c.containers,
                    rootfs_providers=c.rootfs,
                    placement_tags=c.placement_tags,
                    optional_placement_tags=c.optional_placement_tags,
                    draining=self.draining,
                    cell_index=c.cell_index,
                )
            ),
        )
        self.tell_self_later(c.heartbeat_interval, _Beat())

    # --- dispatch ------------------------------------------------------------------------

    @handles(FetchCellState)
    def _fetch_state(self, _message: FetchCellState) -> CellState:
        return self.state()

    @handles(_Healthy)
    def _on_healthy(self, message: _Healthy) -> None:
        self._healthy(message.guid)

    @handles(_HealthyMany)
    def _on_healthy_many(self, message: _HealthyMany) -> None:
        # The BBS hears of them together too: one InstancesStarted for each
        # run of instances in one conversation, after that run's log lines.
        now = self.clock.monotonic()
        trace: Any = _NO_TRACE
        token = None
        rows: list[StartedRow] = []
        with self._batched_logs():
            try:
                for guid in message.guids:
                    instance = self.instances.get(guid)
                    if instance is None or instance.state != "starting":
                        continue
                    if instance.trace is not trace:
                        if token is not None:
                            self._report_started(rows)
                            current_trace.reset(token)
                        trace = instance.trace
                        token = current_trace.set(trace)
                    rows.append(self._became_healthy(instance, now))
                self._report_started(rows)
            finally:
                if token is not None:
                    current_trace.reset(token)

    def _report_started(self, rows: list[StartedRow]) -> None:
        """Tell the BBS of these started instances (in the current trace)."""
        if not rows:
            return
        self._send_logs()  # their lines first, as one at a time would have them
        if len(rows) == 1:
            guid, index, instance_guid, memory, disk = rows[0]
            self.tell("bbs", InstanceStarted(guid, index, instance_guid, self.cell_id, memory, disk))
        else:
            self.tell("bbs", InstancesStarted(self.cell_id, tuple(rows)))
        rows.clear()

    @handles(_Crash)
    def _on_crash(self, message: _Crash) -> None:
        self._crash(message.guid)

    @handles(_Beat)
    def _on_beat(self, _message: _Beat) -> None:
        self._beat()

    @handles(_Sync)
    def _on_sync(self, _message: _Sync) -> None:
        self._sync()

    @handles(SyncNow)
    def _on_sync_now(self, _message: SyncNow) -> None:
        self._report()

    @handles(CancelTask)
    def _on_cancel_task(self, message: CancelTask) -> bool:
        return self._cancel_task(message.task_guid)

    @handles(SetDraining)
    def _set_draining(self, message: SetDraining) -> None:
        self.draining = message.draining

    @handles(CellInfo)
    def _info(self, _message: CellInfo) -> CellStatistics:
        return self.statistics()

    @handles(ListContainers)
    def _list_containers(self, _message: ListContainers) -> tuple[ContainerInfo, ...]:
        return self.containers()

    # --- bidding ---------------------------------------------------------------------------

    def state(self) -> CellState:
        c = self.config
        if self._frozen_counts is None:
            self._frozen_counts = FrozenCounts(self._lrp_counts)
        used_containers = len(self.instances) + len(self.tasks)
        return CellState(
            cell_id=self.cell_id,
            zone=c.zone,
            rootfs_providers=c.rootfs,
            volume_drivers=c.volume_drivers,
            required_tags=c.placement_tags,
            optional_tags=c.optional_placement_tags,
            total_memory_mb=c.memory_mb,
            total_disk_mb=c.disk_mb,
            total_containers=c.containers,
            available_memory_mb=c.memory_mb - self._used_memory,
            available_disk_mb=c.disk_mb - self._used_disk,
            available_containers=c.containers - used_containers,
            starting_containers=self._starting,
            lrp_counts=self._frozen_counts,
            task_count=len(self.tasks),
            evacuating=self.draining,
            cell_index=c.cell_index,
        )

    def _fits(self, memory_mb: int, disk_mb: int) -> bool:
        c = self.config
        return (
            self._used_memory + memory_mb <= c.memory_mb
            and self._used_disk + disk_mb <= c.disk_mb
            and len(self.instances) + len(self.tasks) < c.containers
        )

    @handles(Perform)
    def _perform(self, message: Perform) -> PerformResult:
        # Each item's own conversation, when the work came from several.
        traces: Iterator[Any] = iter(message.traces) if message.traces else itertools.repeat(current_trace.get())
        rejected_lrps: list[LRPStartRequest] = []
        rejected_tasks: list[TaskRequest] = []
        reserved: list[_Instance] = []
        now = self.clock.monotonic()
        for work, trace in zip(message.lrps, traces, strict=False):
            if self.draining or not self._fits(work.memory_mb, work.disk_mb) or self._has(work):
                rejected_lrps.append(work)
                continue
            instance = _Instance(work, self.system.new_guid(), now, trace)
            self._reserve(instance)
            reserved.append(instance)
        for task_request, trace in zip(message.tasks, traces, strict=False):
            if (
                self.draining
                or task_request.task_guid in self.tasks
                or not self._fits(task_request.memory_mb, task_request.disk_mb)
            ):
                rejected_tasks.append(task_request)
                continue
            task = _Task(task_request, trace)
            self.tasks[task.guid] = task
            self._used_memory += task.memory_mb
            self._used_disk += task.disk_mb
            task.runner = self.spawn(self._run_task(task), name=f"{self.cell_id}:task:{task.guid}")
        if reserved:
            self.spawn(self._start_instances(reserved), name=f"{self.cell_id}:start")
        return PerformResult(tuple(rejected_lrps), tuple(rejected_tasks))

    def _has(self, work: LRPStartRequest) -> bool:
        # Diego's rep refuses a second container for the same index.
        return (work.process_guid, work.index) in self._indices

    def _reserve(self, instance: _Instance) -> None:
        self.instances[instance.guid] = instance
        self._indices.add((instance.process_guid, instance.index))
        self._used_memory += instance.memory_mb
        self._used_disk += instance.disk_mb
        self._lrp_counts[instance.process_guid] = self._lrp_counts.get(instance.process_guid, 0) + 1
        self._frozen_counts = None
        self._starting += 1

    def _release(self, instance: _Instance) -> None:
        if self.instances.pop(instance.guid, None) is None:
            return
        self._indices.discard((instance.process_guid, instance.index))
        self._used_memory -= instance.memory_mb
        self._used_disk -= instance.disk_mb
        count = self._lrp_counts.get(instance.process_guid, 0) - 1
        if count > 0:
            self._lrp_counts[instance.process_guid] = count
        else:
            self._lrp_counts.pop(instance.process_guid, None)
        self._frozen_counts = None
        if instance.state != "running":
            self._starting -= 1

    # --- running instances -------------------------------------------------------------------

    async def _desired_lrps(self, process_guids: list[str]) -> None:
        """Learn these desired LRPs from the BBS (as `_desired_lrp`, each)."""
        if not process_guids:
            return
        if len(process_guids) == 1:
            await self._desired_lrp(process_guids[0])
            return
        # One ask per batch: one message for the BBS however many apps a
        # cell won in a round. A failed ask leaves its guids unknown, and
        # their instances are given back (as a failed single fetch does).
        for start in range(0, len(process_guids), _DESIRED_PER_ASK):
            batch = tuple(process_guids[start : start + _DESIRED_PER_ASK])
            try:
                replies = await self.ask("bbs", GetDesiredLRPs(batch), timeout=self.config.ask_timeout)
            except Exception as exc:  # noqa: BLE001 - cannot learn what to run: give the work back
                log.warning("fetching-desired-lrps-failed", cell_id=self.cell_id, count=len(batch), error=repr(exc))
                continue
            for process_guid, reply in zip(batch, replies, strict=True):
                if process_guid not in self._desired:
                    self._desired[process_guid] = reply

    async def _desired_lrp(self, process_guid: str) -> DesiredLRP | None:
        if process_guid not in self._desired:
            try:
                self._desired[process_guid] = await self.ask(
                    "bbs", GetDesiredLRP(process_guid), timeout=self.config.ask_timeout
                )
            except Exception as exc:  # noqa: BLE001 - cannot learn what to run: give the work back
                log.warning("fetching-desired-lrp-failed", cell_id=self.cell_id, error=repr(exc))
                return None
        return self._desired[process_guid]

    async def _start_instances(self, reserved: list[_Instance]) -> None:
        # dict.fromkeys, not a set: a repeatable order, in one ask for all.
        await self._desired_lrps([g for g in dict.fromkeys(i.process_guid for i in reserved) if g not in self._desired])
        # Instances that need no droplet download start here, one after the
        # other, as their own tasks would have (nothing in between waits);
        # their health timers are grouped by when they fire.
        healthy: dict[float, list[str]] = {}
        with self._batched_logs():
            self._start_now(reserved, healthy)
        for after, guids in healthy.items():
            self.tell_self_later(after, _HealthyMany(tuple(guids)))

    def _start_now(self, reserved: list[_Instance], healthy: dict[float, list[str]]) -> None:
        # Instances of one Perform share its conversation: the trace is set
        # once for each run of them.
        trace: Any = _NO_TRACE
        token = None
        try:
            for instance in reserved:
                if instance.guid not in self.instances:
                    continue  # stopped while we were fetching
                desired = self._desired.get(instance.process_guid)
                if desired is None:
                    self._desired.pop(instance.process_guid, None)
                    self._release(instance)
                    continue
                if desired.droplet_key is not None and self.config.work_dir is not None:
                    self.spawn(self._start_one(instance, desired), name=f"{self.cell_id}:{instance.guid}")
                    continue
                if instance.trace is not trace:
                    if token is not None:
                        current_trace.reset(token)
                    trace = instance.trace
                    token = current_trace.set(trace)
                self._creating(instance, desired)
                self._launch(instance, desired, healthy)
        finally:
            if token is not None:
                current_trace.reset(token)

    def _creating(self, instance: _Instance, desired: DesiredLRP) -> None:
        instance.app_guid = desired.app_guid
        instance.droplet_key = desired.droplet_key
        self._logs(
            desired.app_guid,
            str(instance.index),
            ("CELL", f"Cell {self.cell_id} creating container for instance {instance.guid}"),
            ("CELL", f"Cell {self.cell_id} successfully created container for instance {instance.guid}"),
        )

    async def _start_one(self, instance: _Instance, desired: DesiredLRP) -> None:
        token = current_trace.set(instance.trace)
        try:
            self._creating(instance, desired)
            if desired.droplet_key is not None and self.config.work_dir is not None:
                index = str(instance.index)
                self._log(desired.app_guid, "CELL", index, "Downloading droplet...")
                droplet = await self._download_droplet(desired.droplet_key)
                if droplet is None:
                    if instance.guid in self.instances:
                        self._exit(instance, "Downloading droplet failed", ran_for=0.0)
                    return
                self._log(
                    desired.app_guid, "CELL", index, f"Downloaded droplet ({format_bytes(droplet.stat().st_size)})"
                )
            if instance.guid not in self.instances:
                return
            self._launch(instance, desired, None)
        finally:
            current_trace.reset(token)

    def _launch(self, instance: _Instance, desired: DesiredLRP, healthy: dict[float, list[str]] | None) -> None:
        """Start the (modelled) process and its health monitoring; its
        health timer is added to `healthy` (grouped by delay) if given."""
        index = str(instance.index)
        endpoint = desired.health_check_http_endpoint or "/"
        fixed = _planned_start(
            desired.env,
            desired.health_check_type,
            desired.health_check_timeout_s,
            desired.memory_mb,
            desired.disk_mb,
            endpoint,
        )
        if fixed is None:
            model = self._model(desired)
            plan = model.plan_start(
                self.rng,
                health_check_type=desired.health_check_type,
                timeout_s=desired.health_check_timeout_s,
                memory_quota_mb=desired.memory_mb,
                http_endpoint=endpoint,
            )
            usage = (model.memory_usage_mb(desired.memory_mb), model.disk_usage_mb(desired.disk_mb))
        else:
            plan, usage = fixed
        instance.plan = plan
        instance.state = "starting"
        instance.usage = usage
        self._logs(
            desired.app_guid,
            index,
            ("CELL", "Starting health monitoring of container"),
            ("APP", f"Starting app with command: {desired.start_command}"),
        )
        if plan.healthy_after is not None:
            if healthy is None:
                self.tell_self_later(plan.healthy_after, _Healthy(instance.guid))
            else:
                healthy.setdefault(plan.healthy_after, []).append(instance.guid)
        if plan.crash_after is not None:
            self.tell_self_later(plan.crash_after, _Crash(instance.guid))

    def _model(self, desired: DesiredLRP) -> InstanceModel:
        model = self._models.get(desired.process_guid)
        if model is None:
            model = self._models[desired.process_guid] = _model_of(desired.env)
        return model

    async def _download_droplet(self, key: str) -> Path | None:
        assert self.config.work_dir is not None
        pending = self._downloads.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Path | None] = asyncio.get_running_loop().create_future()
        self._downloads[key] = future
        dest = self.config.work_dir / "droplets" / f"{key}.tgz"
        try:
            if not dest.exists():
                async with self.clock.threaded_io():
                    await in_thread(lambda: dest.parent.mkdir(parents=True, exist_ok=True))
                await self.ask("blobstore", blobs.CopyTo(key, str(dest)), timeout=60)
            future.set_result(dest)
        except Exception as exc:  # noqa: BLE001 - the instance fails to start; try again next time
            log.warning("droplet-download-failed", cell_id=self.cell_id, key=key, error=repr(exc))
            future.set_result(None)
            del self._downloads[key]
        return future.result()

    def _healthy(self, guid: str) -> None:
        instance = self.instances.get(guid)
        if instance is None or instance.state != "starting":
            return
        token = current_trace.set(instance.trace)
        try:
            self._report_started([self._became_healthy(instance, self.clock.monotonic())])
        finally:
            current_trace.reset(token)

    def _became_healthy(self, instance: _Instance, now: float) -> StartedRow:
        """A starting instance passed its health check (its trace is set):
        what the BBS is to be told of it."""
        instance.state = "running"
        instance.running_at = now
        self._starting -= 1
        self._log(instance.app_guid, "CELL", str(instance.index), "Container became healthy")
        memory, disk = instance.usage
        return (instance.process_guid, instance.index, instance.guid, memory, disk)

    def _crash(self, guid: str) -> None:
        instance = self.instances.get(guid)
        if instance is None or instance.plan is None:
            return
        ran_for = 0.0 if instance.running_at is None else self.clock.monotonic() - instance.running_at
        self._exit(instance, instance.plan.exit_description, ran_for)

    def _exit(self, instance: _Instance, description: str, ran_for: float) -> None:
        index = str(instance.index)
        token = current_trace.set(instance.trace)
        try:
            if instance.app_guid:
                self._log(instance.app_guid, "APP", index, description or "Exited")
                self._log(instance.app_guid, "CELL", index, f"Cell {self.cell_id} stopping instance {instance.guid}")
                self._log(
                    instance.app_guid,
                    "CELL",
                    index,
                    f"Cell {self.cell_id} destroying container for instance {instance.guid}",
                )
            self._release(instance)
            self.tell(
                "bbs",
                InstanceCrashed(
                    instance.process_guid, instance.index, instance.guid, self.cell_id, description, ran_for
                ),
            )
        finally:
            current_trace.reset(token)

    @handles(StopInstance)
    def _stop_instance(self, message: StopInstance) -> bool:
        instance = self.instances.get(message.instance_guid) if message.instance_guid else None
        if instance is None:
            for candidate in self.instances.values():
                if candidate.process_guid == message.process_guid and candidate.index == message.index:
                    instance = candidate
                    break
        if instance is None:
            return False
        if instance.app_guid:
            self._log(
                instance.app_guid, "CELL", str(instance.index), f"Cell {self.cell_id} stopping instance {instance.guid}"
            )
            self._log(
                instance.app_guid,
                "CELL",
                str(instance.index),
                f"Cell {self.cell_id} destroying container for instance {instance.guid}",
            )
        self._release(instance)
        if not self._lrp_counts.get(instance.process_guid):
            self._desired.pop(instance.process_guid, None)
            self._models.pop(instance.process_guid, None)
        return True

    @handles(CrashInstances)
    def _crash_storm(self, message: CrashInstances) -> int:
        """Crash a seeded-random share of the running instances (a fault)."""
        running = sorted(
            (
                i
                for i in self.instances.values()
                if i.state == "running" and (message.process_guid is None or i.process_guid == message.process_guid)
            ),
            key=lambda i: i.guid,
        )
        wanted = (
            message.count if message.count is not None else round(len(running) * max(0.0, min(1.0, message.fraction)))
        )
        victims = self.rng.sample(running, max(0, min(wanted, len(running))))
        now = self.clock.monotonic()
        for instance in victims:
            ran_for = 0.0 if instance.running_at is None else now - instance.running_at
            self._exit(instance, "APP/PROC/WEB: Exited with status 137 (crash storm)", ran_for)
        return len(victims)

    # --- staging tasks --------------------------------------------------------------------------

    async def _run_task(self, task: _Task) -> None:
        token = current_trace.set(task.trace)
        try:
            definition: TaskDefinition | None = None
            try:
                definition = await self.ask("bbs", GetTask(task.guid), timeout=self.config.ask_timeout)
            except Exception as exc:  # noqa: BLE001
                log.warning("fetching-task-failed", cell_id=self.cell_id, task=task.guid, error=repr(exc))
            if definition is None or definition.staging is None:
                return  # cancelled (or not a task we can run): the BBS has moved on
            result, failure = None, None
            try:
                result = await self._stage(task, definition)
            except PlatformError as exc:
                # The cause's name (BlobCorrupt: the package is damaged) rides along.
                failure = StagingFailure.of(exc, getattr(exc.__cause__, "code", ""))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("staging-crashed", cell_id=self.cell_id, task=task.guid)
                failure = StagingFailure.of(StagingError(f"Staging error: {exc}"))
            self.tell("bbs", TaskCompleted(task.guid, self.cell_id, result, failure, definition))
        finally:
            current_trace.reset(token)
            self._finish_task(task)

    def _finish_task(self, task: _Task) -> None:
        if self.tasks.pop(task.guid, None) is not None:
            self._used_memory -= task.memory_mb
            self._used_disk -= task.disk_mb

    def _cancel_task(self, task_guid: str) -> bool:
        task = self.tasks.get(task_guid)
        if task is None:
            return False
        if task.runner is not None:
            task.runner.cancel()
        self._finish_task(task)
        return True

    async def _stage(self, task: _Task, definition: TaskDefinition) -> StagingResult:
        staging = definition.staging
        assert staging is not None
        app = staging.app_guid
        container = self.system.new_guid()

        def out(*texts: str) -> None:
            # Lines said together go to the loggregator together.
            with self._batched_logs():
                self._logs(app, "0", *(("STG", text) for text in texts))

        out(
            f"Cell {self.cell_id} creating container for instance {container}",
            f"Cell {self.cell_id} successfully created container for instance {container}",
        )
        if self.config.work_dir is None:
            raise StagingError("Staging error: this cell has no disk to stage on")
        work = self.config.work_dir / "staging" / task.guid
        # The buildpacks' lines are gathered while they run (on a thread, for
        # all but a small app) and streamed when they return, so when a line
        # reaches the log never depends on thread timing (two stagings cannot
        # interleave by chance).
        buildpack_lines: list[str] = []
        # A small package is staged in memory (`actors.cell.buildtree`): the
        # package comes as bytes and the droplet goes as bytes, and nothing
        # of the staging touches a disk. A large one, one of unknown size,
        # or one the cell's staging memory has no room for now is staged on
        # the cell's disk: its big files and its droplet are written there.
        held = _staging_memory_for(staging.package_size)
        in_memory = 0 < held <= self._staging_memory_free
        if in_memory:
            self._staging_memory_free -= held
        try:
            out("Downloading app package...")
            package: bytes | Path
            if in_memory:
                package = await self._get_package(staging.package_key)
                size = len(package)
            else:
                package, info = await self._download_package(staging.package_key, work)
                size = info.size
            out(f"Downloaded app package ({format_bytes(size)})")
            # One fixed time in every droplet: the same package and buildpacks
            # give the same bytes, so staging again rewrites a damaged copy.
            stage_args = (
                package,
                None if in_memory else work,
                staging.buildpacks,
                staging.command,
                buildpack_lines.append,
                DROPLET_MTIME,
            )
            try:
                if in_memory and size <= STAGE_HERE_BYTES:
                    # A small app stages in well under a millisecond: here,
                    # where a hop to a thread and back would cost about as much.
                    staged, droplet_out = _run_staging(*stage_args)
                else:
                    async with self.clock.threaded_io():
                        staged, droplet_out = await in_thread(_run_staging, *stage_args)
            finally:
                out(*buildpack_lines)
            await self.clock.sleep(self.config.staging_seconds)
            out("Exit status 0", "Uploading droplet, build artifacts cache...", "Uploading droplet...")
            upload = (
                blobs.PutBytes(droplet_out, step=9)
                if isinstance(droplet_out, bytes)
                else blobs.PutFile(str(droplet_out), step=9)
            )
            del package, droplet_out
            try:
                droplet = await self.ask("blobstore", upload, timeout=60)
            except PlatformError as exc:
                raise StagingError(f"Staging error: uploading the droplet failed: {exc}") from None
            out(f"Uploaded droplet ({format_bytes(droplet.size)})", "Uploading complete")
            self.staged += 1
            return StagingResult(
                droplet_key=droplet.key,
                droplet_size=droplet.size,
                detected_buildpack=staged.detected_buildpack,
                buildpacks=staged.buildpacks,
                start_command=staged.start_command,
                process_types=staged.process_types,
            )
        except PlatformError as exc:
            status = _EXIT_STATUS.get(type(exc))
            out(*([f"Exit status {status}"] if status is not None else []), str(exc))
            raise
        finally:
            out(
                f"Cell {self.cell_id} stopping instance {container}",
                f"Cell {self.cell_id} destroying container for instance {container}",
                f"Cell {self.cell_id} successfully destroyed container for instance {container}",
            )
            if in_memory:
                self._staging_memory_free += held
            else:
                await self._remove(work)

    async def _get_package(self, key: str) -> bytes:
        """The package's bytes, verified by the blob store; a staging error if it cannot give them."""
        try:
            data: bytes = await self.ask("blobstore", blobs.GetBytes(key, step=8), timeout=60)
        except PlatformError as exc:
            raise StagingError(f"Staging error: downloading the app package failed: {exc}") from exc
        return data

    async def _download_package(self, key: str, home: Path) -> tuple[Path, BlobInfo]:
        """The package, copied into `home` (made afresh); a staging error if
        the blob store cannot give it (OSError as raised if `home` cannot
        take it)."""
        async with self.clock.threaded_io():
            await in_thread(_fresh_dir, home)
        package = home / "package.tgz"
        try:
            info = await self.ask("blobstore", blobs.CopyTo(key, str(package), step=8), timeout=60)
        except PlatformError as exc:
            raise StagingError(f"Staging error: downloading the app package failed: {exc}") from exc
        return package, info

    async def _remove(self, path: Path) -> None:
        async with self.clock.threaded_io():
            await in_thread(shutil.rmtree, path, True)  # errors ignored

    # --- reporting ------------------------------------------------------------------------------

    def _log(self, app_guid: str, source: str, instance: str, text: str) -> None:
        if self._log_batch is None:
            self._system.tell("loggregator", LogLine(app_guid, source, instance, text, self._clock.now()))
        else:
            self._logs(app_guid, instance, (source, text))

    def _logs(self, app_guid: str, instance: str, *lines: tuple[str, str]) -> None:
        """Lines of one instance, (source, text) each: each on its own, or,
        while lines are held (`_batched_logs`), added to the message of the
        current conversation's run (a cell starting thousands of instances
        logs four lines each)."""
        batch = self._log_batch
        if batch is None:
            for source, text in lines:
                self._log(app_guid, source, instance, text)
            return
        trace = current_trace.get()
        if batch and trace is not self._log_batch_trace:
            self._send_logs()  # each message carries one conversation's lines
            batch = self._log_batch
            assert batch is not None
        self._log_batch_trace = trace
        now = self._log_batch_now
        batch.extend([(app_guid, source, instance, text, now, "OUT") for source, text in lines])

    @contextlib.contextmanager
    def _batched_logs(self) -> Iterator[None]:
        """Within: log lines are held and go to the loggregator together (one
        message per run of lines under the same trace), in order. They are
        lines of one step, and carry its time."""
        if self._log_batch is not None:
            yield
            return
        self._log_batch_now = self._clock.now()
        self._log_batch = []
        try:
            yield
        finally:
            self._send_logs()
            self._log_batch = None

    def _send_logs(self) -> None:
        batch = self._log_batch
        if not batch:
            return
        self._log_batch = []
        token = current_trace.set(self._log_batch_trace)
        try:
            self._system.tell("loggregator", LogLine(*batch[0]) if len(batch) == 1 else LogLines(tuple(batch)))
        finally:
            current_trace.reset(token)

    def _sync(self) -> None:
        self.tell_self_later(self.config.sync_interval, _Sync())
        self._report()

    def _report(self) -> None:
        """Tell the BBS what really runs here (Diego's rep bulk sync)."""
        self.tell(
            "bbs",
            CellSync(
                self.cell_id,
                self.incarnation,
                tuple((i.process_guid, i.index, i.guid, i.state == "running") for i in self.instances.values()),
                tuple(self.tasks),
            ),
        )

    def held(self) -> tuple[int, int]:
        """(instances held, instances running): two counters, no walk."""
        return len(self.instances), len(self.instances) - self._starting

    def statistics(self) -> CellStatistics:
        """A frozen snapshot of the cell's usage (for observers that send no messages)."""
        c = self.config
        return CellStatistics(
            cell_id=self.cell_id,
            zone=c.zone,
            state="draining" if self.draining else "active",
            memory_used=self._used_memory,
            memory_total=c.memory_mb,
            disk_used=self._used_disk,
            disk_total=c.disk_mb,
            containers_used=len(self.instances) + len(self.tasks),
            containers_total=c.containers,
            instances=len(self.instances),
            running=sum(1 for i in self.instances.values() if i.state == "running"),
            starting=self._starting,
            tasks=len(self.tasks),
            staged=self.staged,
            staging_memory_held=c.staging_memory - self._staging_memory_free,
        )

    def containers(self) -> tuple[ContainerInfo, ...]:
        return tuple(
            ContainerInfo(
                cell_id=self.cell_id,
                process_guid=i.process_guid,
                index=i.index,
                instance_guid=i.guid,
                state=i.state,
                memory_mb=i.memory_mb,
                disk_mb=i.disk_mb,
                droplet_key=i.droplet_key,
            )
            for i in self.instances.values()
        )


@functools.lru_cache(maxsize=4096)
def _model_of(env: tuple[tuple[str, str], ...]) -> InstanceModel:
    """An app's instance model from its environment (a pure function of
    it, so cells share one per distinct environment)."""
    try:
        return InstanceModel.from_env(dict(env))
    except ValueError:
        return InstanceModel()  # Cloud Controller refuses bad knobs at push


class _NeverDrawn(random.Random):
    """The generator `_planned_start` plans with: a draw from it is a bug
    (the plan would be shared by instances that should each draw)."""

    def random(self) -> float:
        raise AssertionError("a start planned once drew from the generator")

    def getrandbits(self, _k: int, /) -> int:
        raise AssertionError("a start planned once drew from the generator")


_NEVER_DRAWN = _NeverDrawn(0)


@functools.lru_cache(maxsize=4096)
def _planned_start(
    env: tuple[tuple[str, str], ...],
    health_check_type: HealthCheckType,
    timeout_s: float,
    memory_mb: int,
    disk_mb: int,
    endpoint: str,
) -> tuple[StartPlan, tuple[float, float]] | None:
    """The start plan and usage of an app whose model draws nothing from the
    generator (`InstanceModel.draws`): the same for every instance of it, on
    every cell, so planned once (the plan is frozen, shared); None when its
    starts draw, each its own."""
    model = _model_of(env)
    if model.draws:
        return None
    plan = model.plan_start(
        _NEVER_DRAWN,
        health_check_type=health_check_type,
        timeout_s=timeout_s,
        memory_quota_mb=memory_mb,
        http_endpoint=endpoint,
    )
    return plan, (model.memory_usage_mb(memory_mb), model.disk_usage_mb(disk_mb))


def _fresh_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


def _staging_memory_for(package_size: int) -> int:
    """What staging a package of this size in memory holds, in bytes: the
    package, its files, what the buildpacks add and the droplet (0: too big,
    or its size is unknown, so it stages on disk)."""
    if not 0 < package_size <= STAGE_IN_MEMORY_BYTES:
        return 0
    return max(4 * package_size, 1024 * 1024)


def _run_staging(
    package: bytes | Path,
    work: Path | None,
    buildpacks: tuple[str, ...],
    command: str | None,
    out: Any,
    mtime: int,
) -> tuple[StagingInfo, bytes | Path]:
    """Stage `package` (its bytes, or its file) in a build tree; the droplet
    as bytes, or, with a `work` directory on disk, written there (big app
    files are spilled there too, under ``files/``). Blocking: on a worker
    thread, but for a small app."""
    tree = BuildTree(spill_dir=None if work is None else work / "files")
    try:
        tree.add_package(package)
    except OSError as exc:
        raise StagingError(f"Staging error: unpacking the app package failed: {exc}") from exc
    info = stage_tree(tree.root, buildpacks, command, out)
    try:
        if work is None:
            return info, droplet_bytes(tree, info, mtime=mtime)
        return info, Path(write_droplet_file(tree, info, work / "droplet.tgz", mtime=mtime).path)
    except OSError as exc:
        raise StagingError(f"Staging error: {exc}") from exc
