"""The rows CC_DB hands out: frozen snapshots, detached from the connection.

Lists are tuples so a record cannot be changed behind the database's back;
JSON objects (env, metadata, process_types) are fresh dicts per record.
Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

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
    "AppRecord",
    "BuildRecord",
    "CCDBStats",
    "DropletRecord",
    "EventRecord",
    "PackageRecord",
]


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
    env: dict[str, Any]
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
    process_types: dict[str, str]
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
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CCDBStats:
    """Row counts and schema version, for a status line."""

    schema_version: int
    apps: int
    packages: int
    builds: int
    droplets: int
    events: int
