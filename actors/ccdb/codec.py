"""How CC_DB's rows are written and read back: times as fixed-width UTC
text (so text order is time order), JSON columns, and the row -> record
decoders."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from protocol.records import AppRecord, BuildRecord, DropletRecord, EventRecord, PackageRecord, freeze
from protocol.states import AppState, BuildState, DropletState, HealthCheckType, PackageState

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_APP_UPDATABLE = frozenset(
    {
        "name",
        "state",
        "memory_mb",
        "disk_mb",
        "instances",
        "buildpacks",
        "command",
        "stack",
        "health_check_type",
        "health_check_http_endpoint",
        "health_check_timeout",
        "env",
        "routes",
        "droplet_guid",
        "last_uploaded_at",
        "process_version",
    }
)
_PACKAGE_UPDATABLE = frozenset({"state", "blob_key", "size"})


def _ts(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive time would be read back as UTC and silently shift.
        raise ValueError(f"timestamps must be timezone-aware, got {moment!r}")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _dt(text: str) -> datetime:
    # fromisoformat reads what _ts writes (…Z is UTC), in C: strptime costs
    # 15 us a timestamp, and a listing reads three per row.
    return datetime.fromisoformat(text)


def _dt_or_none(text: str | None) -> datetime | None:
    return None if text is None else _dt(text)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _encode_app_field(name: str, value: Any) -> Any:
    if name == "state":
        return AppState(value).value
    if name == "health_check_type":
        return HealthCheckType(value).value
    if name in ("buildpacks", "routes"):
        return _json(list(value))
    if name == "env":
        return _json(dict(value))
    if name == "last_uploaded_at":
        return None if value is None else _ts(value)
    return value


def _app(row: sqlite3.Row) -> AppRecord:
    return AppRecord(
        guid=row["guid"],
        name=row["name"],
        state=AppState(row["state"]),
        memory_mb=row["memory_mb"],
        disk_mb=row["disk_mb"],
        instances=row["instances"],
        buildpacks=tuple(json.loads(row["buildpacks"])),
        command=row["command"],
        stack=row["stack"],
        health_check_type=HealthCheckType(row["health_check_type"]),
        health_check_http_endpoint=row["health_check_http_endpoint"],
        health_check_timeout=row["health_check_timeout"],
        env=freeze(json.loads(row["env"])),
        routes=tuple(json.loads(row["routes"])),
        droplet_guid=row["droplet_guid"],
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
        last_uploaded_at=_dt_or_none(row["last_uploaded_at"]),
        # Absent from a database still at a schema older than 4 (tests open those).
        process_version=row["process_version"] if "process_version" in row.keys() else None,  # noqa: SIM118 - a Row is not a dict
    )


def _package(row: sqlite3.Row) -> PackageRecord:
    return PackageRecord(
        guid=row["guid"],
        app_guid=row["app_guid"],
        state=PackageState(row["state"]),
        blob_key=row["blob_key"],
        size=row["size"],
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
    )


def _build(row: sqlite3.Row) -> BuildRecord:
    return BuildRecord(
        guid=row["guid"],
        app_guid=row["app_guid"],
        package_guid=row["package_guid"],
        state=BuildState(row["state"]),
        error=row["error"],
        droplet_guid=row["droplet_guid"],
        staging_memory_mb=row["staging_memory_mb"],
        staging_disk_mb=row["staging_disk_mb"],
        created_by=row["created_by"],
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
    )


def _droplet(row: sqlite3.Row) -> DropletRecord:
    return DropletRecord(
        guid=row["guid"],
        app_guid=row["app_guid"],
        build_guid=row["build_guid"],
        package_guid=row["package_guid"],
        state=DropletState(row["state"]),
        blob_key=row["blob_key"],
        size=row["size"],
        buildpacks=tuple(json.loads(row["buildpacks"])),
        detected_buildpack=row["detected_buildpack"],
        start_command=row["start_command"],
        process_types=freeze(json.loads(row["process_types"])),
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
    )


def _event(row: sqlite3.Row) -> EventRecord:
    return EventRecord(
        guid=row["guid"],
        time=_dt(row["time"]),
        type=row["type"],
        actor=row["actor"],
        actee_guid=row["actee_guid"],
        actee_name=row["actee_name"],
        metadata=freeze(json.loads(row["metadata"])),
    )
