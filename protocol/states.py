"""State names users see, spelled as Cloud Foundry spells them."""

from __future__ import annotations

import enum


class PackageState(enum.StrEnum):
    AWAITING_UPLOAD = "AWAITING_UPLOAD"
    PROCESSING_UPLOAD = "PROCESSING_UPLOAD"
    READY = "READY"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


class BuildState(enum.StrEnum):
    STAGING = "STAGING"
    STAGED = "STAGED"
    FAILED = "FAILED"


class DropletState(enum.StrEnum):
    STAGING = "STAGING"
    STAGED = "STAGED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


class AppState(enum.StrEnum):
    """The desired state of an app."""

    STARTED = "STARTED"
    STOPPED = "STOPPED"


class InstanceState(enum.StrEnum):
    """An app instance as `cf app` shows it."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    CRASHED = "CRASHED"
    DOWN = "DOWN"


class ActualLRPState(enum.StrEnum):
    """Diego's view of one instance (BBS actual LRP)."""

    UNCLAIMED = "UNCLAIMED"
    CLAIMED = "CLAIMED"
    RUNNING = "RUNNING"
    CRASHED = "CRASHED"


class TaskState(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class CellState(enum.StrEnum):
    """A cell's presence as the BBS sees it."""

    ACTIVE = "ACTIVE"
    DRAINING = "DRAINING"
    GONE = "GONE"


class HealthCheckType(enum.StrEnum):
    PORT = "port"
    PROCESS = "process"
    HTTP = "http"
