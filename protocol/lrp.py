"""Diego's records as they travel between actors: desired LRPs, actual LRP
snapshots, task definitions, staging requests and results, cell presences.

Frozen snapshots only: the BBS keeps its own mutable books and hands these out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.errors import PlatformError
from protocol.states import ActualLRPState, HealthCheckType, TaskState

__all__ = [
    "ActualLRP",
    "CellPresence",
    "ContainerInfo",
    "DesiredLRP",
    "InstanceInfo",
    "StagingFailure",
    "StagingRequest",
    "StagingResult",
    "TaskDefinition",
    "TaskSnapshot",
]


@dataclass(frozen=True, slots=True)
class DesiredLRP:
    """What should run: N instances of one version of one app's web process."""

    process_guid: str
    app_guid: str
    app_name: str
    instances: int
    memory_mb: int
    disk_mb: int
    droplet_key: str | None
    start_command: str
    rootfs: str = "cflinuxfs4"
    health_check_type: HealthCheckType = HealthCheckType.PORT
    health_check_http_endpoint: str | None = None
    health_check_timeout_s: float = 60.0
    env: tuple[tuple[str, str], ...] = ()
    placement_tags: frozenset[str] = frozenset()
    volume_drivers: frozenset[str] = frozenset()
    domain: str = "cf-apps"


@dataclass(frozen=True, slots=True)
class ActualLRP:
    """One instance as the BBS sees it."""

    process_guid: str
    index: int
    instance_guid: str | None
    cell_id: str | None
    state: ActualLRPState
    since: float
    crash_count: int = 0
    crash_reason: str = ""
    placement_error: str = ""
    memory_usage_mb: float = 0.0
    disk_usage_mb: float = 0.0
    next_restart_at: float | None = None
    evacuating: bool = False


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """One container on a cell, as the cell itself sees it."""

    cell_id: str
    process_guid: str
    index: int
    instance_guid: str
    state: str  # reserved | starting | running
    memory_mb: int
    disk_mb: int
    droplet_key: str | None = None


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """One row of `cf app`'s instance table."""

    index: int
    state: str  # InstanceState value: STARTING, RUNNING, CRASHED, DOWN
    since: float
    cell_id: str | None
    memory_usage_mb: float
    memory_quota_mb: int
    disk_usage_mb: float
    disk_quota_mb: int
    details: str = ""
    crash_count: int = 0


@dataclass(frozen=True, slots=True)
class StagingRequest:
    """What a staging task needs: the package and how to build it."""

    app_guid: str
    app_name: str
    build_guid: str
    package_key: str
    buildpacks: tuple[str, ...]
    command: str | None
    stack: str
    env: tuple[tuple[str, str], ...] = ()
    # The package's size as Cloud Controller recorded it (0: not known): the
    # cell reserves its staging's room before downloading.
    package_size: int = 0


@dataclass(frozen=True, slots=True)
class StagingResult:
    """What a successful staging task produced (the droplet is in the blob store)."""

    droplet_key: str
    droplet_size: int
    detected_buildpack: str
    buildpacks: tuple[tuple[str, str], ...]
    start_command: str
    process_types: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class StagingFailure:
    """Why a staging task failed, as a named error: `code` is the error's
    Cloud Foundry name (``NoAppDetectedError``, ``InsufficientResources``,
    ``StagingError``...), `message` its text, and `cause` the name of what lay
    under it (``BlobCorrupt``: the package's blob is damaged)."""

    code: str
    message: str
    cause: str = ""

    @property
    def build_error(self) -> str:
        """The build's `error`, as Cloud Controller records it: ``"<code> - <message>"``."""
        return f"{self.code} - {self.message}"

    @classmethod
    def of(cls, error: PlatformError, cause: str = "") -> StagingFailure:
        return cls(error.code, error.message, cause)


@dataclass(frozen=True, slots=True)
class TaskDefinition:
    """A one-off task desired at the BBS (here: staging)."""

    task_guid: str
    memory_mb: int
    disk_mb: int
    rootfs: str
    staging: StagingRequest | None = None
    domain: str = "cf-staging"
    callback: str = "cloud_controller"


@dataclass(frozen=True, slots=True)
class TaskSnapshot:
    task_guid: str
    state: TaskState
    cell_id: str | None
    rejections: int
    failed: bool
    failure_reason: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class CellPresence:
    """A cell's heartbeat: who it is, where, what it has."""

    cell_id: str
    zone: str
    incarnation: str
    memory_mb: int
    disk_mb: int
    containers: int
    rootfs_providers: frozenset[str] = frozenset({"cflinuxfs4", "cflinuxfs3"})
    placement_tags: frozenset[str] = frozenset()
    optional_placement_tags: frozenset[str] = frozenset()
    draining: bool = False
    cell_index: int = 0
    extra: tuple[tuple[str, str], ...] = field(default=())
