"""CC_DB's operations, one message each: what Cloud Controller (and the
experiments' observers) ask the `ccdb` actor.

Each is a frozen, slotted dataclass named for what it does. What a caller
needs to know is on the type: `RETRY_SAFE` (a read, safe to send again when
a request or its reply may have been lost; a write is not) and `STAMPED` (the
ccdb actor stamps it with its clock's `now`, so no caller reads a clock for
it). `step` is the seed step a delivery belongs to in a push's trace. The
replies are the records in `protocol.records`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from protocol.records import AuditEvent, DeliveryRow, FrozenDict, delivery_row, freeze
from protocol.states import AppState, HealthCheckType, PackageState

__all__ = [
    "BlobKeysOf",
    "CCDBOperation",
    "CountRows",
    "CreateApp",
    "CreateBuild",
    "CreatePackage",
    "CurrentDroplet",
    "DeleteApp",
    "ExpireOldDroplets",
    "ExpireOldPackages",
    "FailBuild",
    "FindApp",
    "FinishBuildStaged",
    "FinishPackageUpload",
    "GetApp",
    "GetBuild",
    "GetDroplet",
    "GetPackage",
    "LatestReadyPackage",
    "LatestTrace",
    "ListApps",
    "ListBuilds",
    "ListDroplets",
    "ListEvents",
    "ListPackages",
    "ListStartedProcesses",
    "RecordEvent",
    "ReferencedBlobKeys",
    "SaveTrace",
    "StartedUsage",
    "UpdateApp",
    "UpdatePackage",
]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@functools.cache  # made once per type name: a trace labels every delivery
def _label(name: str) -> str:
    return "db." + _snake(name)


@dataclass(frozen=True, slots=True)
class CCDBOperation:
    """Base of every CC_DB operation."""

    RETRY_SAFE: ClassVar[bool] = True
    STAMPED: ClassVar[bool] = False
    STEP: ClassVar[int | None] = None
    step: int | None = field(default=None, kw_only=True)

    @property
    def label(self) -> str:
        return _label(type(self).__name__)

    def arguments(self) -> dict[str, Any]:
        """The operation's fields, as the store method takes them."""
        skip = {"step"} if self.STAMPED else {"step", "now"}
        return {name: getattr(self, name) for name in _fields(type(self)) if name not in skip}


def _fields(cls: type) -> tuple[str, ...]:
    names = getattr(cls, "_field_names", None)
    if names is None or names[0] is not cls:
        import dataclasses

        names = (cls, tuple(f.name for f in dataclasses.fields(cls)))
        cls._field_names = names  # type: ignore[attr-defined]
    return names[1]


@dataclass(frozen=True, slots=True)
class _Write(CCDBOperation):
    """A write: one transaction; not safe to send twice; stamped with `now`."""

    RETRY_SAFE: ClassVar[bool] = False
    STAMPED: ClassVar[bool] = True
    now: datetime | None = field(default=None, kw_only=True)


# --- apps ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateApp(_Write):
    """A new app (STOPPED) and its `audit.app.create` event; `AppNameTaken` if the name is used."""

    guid: str
    name: str
    actor: str
    memory_mb: int = 1024
    disk_mb: int = 1024
    instances: int = 1
    buildpacks: tuple[str, ...] = ()
    command: str | None = None
    stack: str = "cflinuxfs4"
    health_check_type: HealthCheckType = HealthCheckType.PORT
    health_check_http_endpoint: str | None = None
    health_check_timeout: int | None = None
    env: FrozenDict = FrozenDict()
    routes: tuple[str, ...] = ()
    state: AppState = AppState.STOPPED

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", freeze(self.env))


@dataclass(frozen=True, slots=True)
class GetApp(CCDBOperation):
    """The app with this guid (`AppNotFound` if none)."""

    guid: str


@dataclass(frozen=True, slots=True)
class FindApp(CCDBOperation):
    """The app with this name, or None."""

    name: str


@dataclass(frozen=True, slots=True)
class ListApps(CCDBOperation):
    """Every app, by name."""


@dataclass(frozen=True, slots=True)
class StartedUsage(CCDBOperation):
    """(memory MB, instances) the STARTED apps other than `except_guid` take:
    what an org's quota counts, in one query."""

    except_guid: str | None = None


@dataclass(frozen=True, slots=True)
class ListStartedProcesses(CCDBOperation):
    """Every STARTED app with a current droplet, with that droplet: what the BBS should run."""


@dataclass(frozen=True, slots=True)
class UpdateApp(_Write):
    """Change some of an app's fields (`changes`: column -> value) and record
    `event` in the same transaction."""

    guid: str
    changes: FrozenDict = FrozenDict()
    event: AuditEvent | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "changes", FrozenDict(self.changes))

    def arguments(self) -> dict[str, Any]:
        return {"guid": self.guid, "now": self.now, "event": self.event, **self.changes}


@dataclass(frozen=True, slots=True)
class DeleteApp(_Write):
    """Delete an app with its packages, builds and droplets (not its events);
    the reply is the blob keys no row points to any more."""

    guid: str
    actor: str


# --- packages -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreatePackage(_Write):
    guid: str
    app_guid: str
    state: PackageState = PackageState.AWAITING_UPLOAD
    blob_key: str | None = None
    size: int = 0
    event: AuditEvent | None = None


@dataclass(frozen=True, slots=True)
class GetPackage(CCDBOperation):
    guid: str


@dataclass(frozen=True, slots=True)
class ListPackages(CCDBOperation):
    """An app's packages, newest first."""

    app_guid: str


@dataclass(frozen=True, slots=True)
class UpdatePackage(_Write):
    """Change a package's state, blob_key or size (`changes`), with an optional event."""

    guid: str
    changes: FrozenDict = FrozenDict()
    event: AuditEvent | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "changes", FrozenDict(self.changes))

    def arguments(self) -> dict[str, Any]:
        return {"guid": self.guid, "now": self.now, "event": self.event, **self.changes}


@dataclass(frozen=True, slots=True)
class FinishPackageUpload(_Write):
    """Package READY with its blob, the app's last upload time, `audit.app.upload-bits`: one commit."""

    guid: str
    blob_key: str
    size: int
    actor: str


@dataclass(frozen=True, slots=True)
class LatestReadyPackage(CCDBOperation):
    app_guid: str


@dataclass(frozen=True, slots=True)
class ExpireOldPackages(_Write):
    """READY packages past the newest `keep` EXPIRED; the reply is the blob keys freed."""

    app_guid: str
    keep: int = 5


# --- builds and droplets -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateBuild(_Write):
    """A STAGING build, its STAGING droplet and `audit.app.build.create`: one commit."""

    build_guid: str
    app_guid: str
    package_guid: str
    actor: str
    staging_memory_mb: int
    staging_disk_mb: int
    droplet_guid: str | None = None


@dataclass(frozen=True, slots=True)
class GetBuild(CCDBOperation):
    guid: str


@dataclass(frozen=True, slots=True)
class ListBuilds(CCDBOperation):
    app_guid: str


@dataclass(frozen=True, slots=True)
class FinishBuildStaged(_Write):
    """Build and droplet STAGED, the droplet current (optionally), `audit.app.droplet.create`."""

    build_guid: str
    blob_key: str
    size: int
    buildpacks: tuple[str, ...]
    detected_buildpack: str | None
    start_command: str | None
    process_types: FrozenDict = FrozenDict()
    set_current: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "process_types", freeze(self.process_types))


@dataclass(frozen=True, slots=True)
class FailBuild(_Write):
    """Build and droplet FAILED with `error` (``"<code> - <message>"``)."""

    build_guid: str
    error: str


@dataclass(frozen=True, slots=True)
class GetDroplet(CCDBOperation):
    guid: str


@dataclass(frozen=True, slots=True)
class ListDroplets(CCDBOperation):
    app_guid: str


@dataclass(frozen=True, slots=True)
class CurrentDroplet(CCDBOperation):
    app_guid: str


@dataclass(frozen=True, slots=True)
class ExpireOldDroplets(_Write):
    """STAGED droplets past the newest `keep` (never the current one) EXPIRED; the reply is the keys freed."""

    app_guid: str
    keep: int = 5


# --- events and traces -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListUnmappedRoutes(CCDBOperation):
    """The routes no app maps, oldest first."""


@dataclass(frozen=True, slots=True)
class UpdateUnmappedRoutes(_Write):
    """Keep `added` as unmapped routes and forget `removed`, in one transaction."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordEvent(_Write):
    """An audit event on its own (`audit.app.process.crash`, ...)."""

    type: str
    actor: str
    actee_guid: str
    actee_name: str | None = None
    metadata: FrozenDict = FrozenDict()

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", freeze(self.metadata))


@dataclass(frozen=True, slots=True)
class ListEvents(CCDBOperation):
    """An app's events, newest first."""

    actee_guid: str
    limit: int = 50


@dataclass(frozen=True, slots=True)
class SaveTrace(_Write):
    """Keep one recorded conversation (the newest `keep` per app)."""

    trace_id: str
    app_guid: str
    app_name: str
    kind: str
    deliveries: tuple[DeliveryRow, ...] = field(default=(), repr=False)  # rows of scalars
    keep: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "deliveries", tuple(map(delivery_row, self.deliveries)))


@dataclass(frozen=True, slots=True)
class LatestTrace(CCDBOperation):
    app_guid: str


# --- the whole database -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReferencedBlobKeys(CCDBOperation):
    """Every blob key a package or droplet row points to."""


@dataclass(frozen=True, slots=True)
class BlobKeysOf(CCDBOperation):
    """The blob keys of packages (`kind` "package") or droplets ("droplet")."""

    kind: str


@dataclass(frozen=True, slots=True)
class CountRows(CCDBOperation):
    """Row counts and the schema version."""
