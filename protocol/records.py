"""What the storage components hand out: CC_DB's rows (apps, packages,
builds, droplets, events, traces) and the blob store's blobs, as frozen
snapshots detached from the connection or the disk.

Lists are tuples and JSON objects are `FrozenDict`s, so a record cannot be
changed behind the database's back. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from protocol.states import (
    AppState,
    BuildState,
    DropletState,
    HealthCheckType,
    PackageState,
)

__all__ = [
    "DELIVERY_FIELDS",
    "AppFile",
    "AppRecord",
    "AuditEvent",
    "BlobInfo",
    "BlobStoreStats",
    "BuildRecord",
    "CCDBStats",
    "DeliveryRow",
    "DropletRecord",
    "EventRecord",
    "FrozenDict",
    "JobRecord",
    "PackageRecord",
    "TraceRecord",
    "delivery_from_row",
    "delivery_row",
    "freeze",
]


class FrozenDict(dict):
    """A JSON object that cannot change: a dict (so `json.dumps` writes it as
    one) whose mutators raise, and which hashes by its items."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a FrozenDict cannot be changed")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted((k, _hashable(v)) for k, v in self.items())))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"

    def __reduce__(self) -> Any:
        return (FrozenDict, (dict(self),))


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


_SCALARS = frozenset({str, int, float, bool, type(None)})
_is_scalar = _SCALARS.__contains__


def freeze(value: Any) -> Any:
    """JSON-like data with every dict a FrozenDict and every list a tuple."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is FrozenDict and all(map(_is_scalar, map(type, value.values()))):
        return value  # frozen already, and nothing inside it to freeze
    if isinstance(value, Mapping):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def _frozen(pairs: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> FrozenDict:
    return freeze(dict(pairs or ()))


@dataclass(frozen=True, slots=True)
class AppFile:
    """One file of an app: what resource matching and packages speak of
    (relative POSIX path, SHA1, size, mode)."""

    path: str
    sha1: str
    size: int
    mode: int


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """An audit event to record with a write, in the same transaction:
    `type` (``audit.app.update``), who did it, and what it was about."""

    type: str
    actor: str
    metadata: FrozenDict = FrozenDict()

    def __post_init__(self) -> None:
        if not isinstance(self.metadata, FrozenDict):
            object.__setattr__(self, "metadata", _frozen(self.metadata))


@dataclass(frozen=True, slots=True)
class AppRecord:
    """An app and its single `web` process, as CC_DB stores them."""

    guid: str
    name: str
    state: AppState
    memory_mb: int
    disk_mb: int
    instances: int
    buildpacks: tuple[str, ...]
    command: str | None
    stack: str
    health_check_type: HealthCheckType
    health_check_http_endpoint: str | None
    # None means the platform's default startup timeout
    health_check_timeout: int | None
    env: FrozenDict
    routes: tuple[str, ...]
    droplet_guid: str | None
    created_at: datetime
    updated_at: datetime
    last_uploaded_at: datetime | None
    # The web process's version; None until it is first started.
    process_version: str | None = None

    @property
    def process_guid(self) -> str | None:
        """The process guid of its desired LRP (Diego's name for this version), if started once."""
        return None if self.process_version is None else f"{self.guid}-{self.process_version}"


@dataclass(frozen=True, slots=True)
class PackageRecord:
    """An app's uploaded bits; `blob_key` is the sha256 of the package in the blob store."""

    guid: str
    app_guid: str
    state: PackageState
    blob_key: str | None
    size: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BuildRecord:
    """One staging of a package; `error` is ``"<code> - <message>"`` when FAILED."""

    guid: str
    app_guid: str
    package_guid: str
    state: BuildState
    error: str | None
    droplet_guid: str | None
    staging_memory_mb: int
    staging_disk_mb: int
    created_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DropletRecord:
    """A staged (or staging) runnable image of an app."""

    guid: str
    app_guid: str
    build_guid: str
    package_guid: str
    state: DropletState
    blob_key: str | None
    size: int
    buildpacks: tuple[str, ...]
    detected_buildpack: str | None
    start_command: str | None
    process_types: FrozenDict
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An audit event (``audit.app.create``, ...), kept after its app is deleted."""

    guid: str
    time: datetime
    type: str
    actor: str
    actee_guid: str
    actee_name: str | None
    metadata: FrozenDict


@dataclass(frozen=True, slots=True)
class CCDBStats:
    """Row counts and schema version, for a status line."""

    schema_version: int
    apps: int
    packages: int
    builds: int
    droplets: int
    events: int


#: One delivery of a recorded conversation, as it travels and is stored: a
#: row of these fields (seq, platform time, sender, receiver, label, seed
#: step or None, whether it was an ask).
DELIVERY_FIELDS = ("seq", "t", "sender", "receiver", "label", "step", "ask")
DeliveryRow = tuple[int, float, str, str, str, int | None, bool]


def delivery_row(delivery: Sequence[Any] | Mapping[str, Any]) -> DeliveryRow:
    """A delivery (a row, or a record by field name) as a row of scalars."""
    if type(delivery) is tuple and len(delivery) == 7:
        return delivery  # a row already (what the recorder gives)
    if isinstance(delivery, Mapping):
        return tuple(delivery.get(name) for name in DELIVERY_FIELDS)  # type: ignore[return-value]
    row = tuple(delivery)
    if len(row) != len(DELIVERY_FIELDS):
        raise ValueError(f"a delivery row has {len(DELIVERY_FIELDS)} fields, not {len(row)}")
    return row


def delivery_from_row(row: Sequence[Any] | Mapping[str, Any]) -> FrozenDict:
    """A delivery as `cf trace` reads it: a record with the row's fields by name."""
    if isinstance(row, Mapping):
        return freeze(row)  # as rows were stored before they were rows
    return FrozenDict(zip(DELIVERY_FIELDS, row, strict=True))


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One recorded conversation (a push, restart or restage), for `cf trace`."""

    trace_id: str
    app_name: str
    kind: str
    created_at: str
    deliveries: tuple[FrozenDict, ...]


@dataclass(frozen=True, slots=True)
class JobRecord:
    """An asynchronous operation as Cloud Controller's API reports it
    (``space.apply_manifest``, ``app.delete``): its state (PROCESSING,
    COMPLETE, FAILED) and, when failed, its errors as (code, title, detail)."""

    guid: str
    operation: str
    state: str
    resource_type: str
    resource_guid: str
    errors: tuple[tuple[int, str, str], ...]
    warnings: tuple[str, ...]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A stored blob: its sha256 key and size in bytes."""

    key: str
    size: int


@dataclass(frozen=True, slots=True)
class BlobStoreStats:
    """Counts and bytes held, for a status line."""

    blobs: int
    blob_bytes: int
    resources: int
    resource_bytes: int
