"""CC_DB's schema: the ordered list of migrations, and the rules for applying them.

A migration is ``(version, statements)``. A database records each version it
has applied in the ``schema_version`` table; opening it applies, in order, only
the migrations newer than the highest recorded one, each inside its own
transaction together with its ``schema_version`` row. Migrations are history:
never edit or drop one that has shipped, add a new one.

The store (`actors.ccdb.store`) owns the connection and runs the statements;
this module only says what they are.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BOOTSTRAP",
    "LATEST_VERSION",
    "MIGRATIONS",
    "Migration",
    "check_migrations",
    "pending_migrations",
]

Migration = tuple[int, tuple[str, ...]]

# Created outside any migration because it is how we know which ones ran.
BOOTSTRAP = "CREATE TABLE IF NOT EXISTS schema_version ( version INTEGER PRIMARY KEY)"

# State names are spelled out literally rather than generated from
# protocol.states: a shipped migration must keep meaning the same thing even
# if an enum grows later (that would be a new migration).
_V1_CORE_TABLES: tuple[str, ...] = (
    """
    CREATE TABLE apps (
        guid                       TEXT PRIMARY KEY,
        name                       TEXT NOT NULL UNIQUE,
        state                      TEXT NOT NULL CHECK (state IN ('STARTED', 'STOPPED')),
        memory_mb                  INTEGER NOT NULL CHECK (memory_mb > 0),
        disk_mb                    INTEGER NOT NULL CHECK (disk_mb > 0),
        instances                  INTEGER NOT NULL CHECK (instances >= 0),
        buildpacks                 TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(buildpacks)),
        command                    TEXT,
        stack                      TEXT NOT NULL,
        health_check_type          TEXT NOT NULL
                                   CHECK (health_check_type IN ('port', 'process', 'http')),
        health_check_http_endpoint TEXT,
        health_check_timeout       INTEGER CHECK (health_check_timeout > 0),
        env                        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(env)),
        routes                     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(routes)),
        -- the current droplet; SET NULL so deleting droplets never needs the
        -- app row rewritten first
        droplet_guid               TEXT REFERENCES droplets (guid) ON DELETE SET NULL,
        created_at                 TEXT NOT NULL,
        updated_at                 TEXT NOT NULL,
        last_uploaded_at           TEXT
    )
    """,
    """
    CREATE TABLE packages (
        guid        TEXT PRIMARY KEY,
        app_guid    TEXT NOT NULL REFERENCES apps (guid),
        state       TEXT NOT NULL CHECK (state IN
                    ('AWAITING_UPLOAD', 'PROCESSING_UPLOAD', 'READY', 'FAILED', 'EXPIRED')),
        blob_key    TEXT CHECK (blob_key IS NULL OR length(blob_key) = 64),
        size        INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE builds (
        guid               TEXT PRIMARY KEY,
        app_guid           TEXT NOT NULL REFERENCES apps (guid),
        package_guid       TEXT NOT NULL REFERENCES packages (guid),
        state              TEXT NOT NULL CHECK (state IN ('STAGING', 'STAGED', 'FAILED')),
        error              TEXT,
        droplet_guid       TEXT REFERENCES droplets (guid) ON DELETE SET NULL,
        staging_memory_mb  INTEGER NOT NULL CHECK (staging_memory_mb > 0),
        staging_disk_mb    INTEGER NOT NULL CHECK (staging_disk_mb > 0),
        created_by         TEXT NOT NULL,
        created_at         TEXT NOT NULL,
        updated_at         TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE droplets (
        guid                TEXT PRIMARY KEY,
        app_guid            TEXT NOT NULL REFERENCES apps (guid),
        build_guid          TEXT NOT NULL REFERENCES builds (guid),
        package_guid        TEXT NOT NULL REFERENCES packages (guid),
        state               TEXT NOT NULL CHECK (state IN ('STAGING', 'STAGED', 'FAILED', 'EXPIRED')),
        blob_key            TEXT CHECK (blob_key IS NULL OR length(blob_key) = 64),
        size                INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
        buildpacks          TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(buildpacks)),
        detected_buildpack  TEXT,
        start_command       TEXT,
        process_types       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(process_types)),
        created_at          TEXT NOT NULL,
        updated_at          TEXT NOT NULL
    )
    """,
    # No foreign key on actee_guid: events outlive the app they describe.
    """
    CREATE TABLE events (
        guid        TEXT PRIMARY KEY,
        time        TEXT NOT NULL,
        type        TEXT NOT NULL,
        actor       TEXT NOT NULL,
        actee_guid  TEXT NOT NULL,
        actee_name  TEXT,
        metadata    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata))
    )
    """,
    "CREATE INDEX events_by_actee_time ON events (actee_guid, time)",
)

# SQLite does not index foreign-key child columns by itself, so every parent
# delete (delete_app) and every per-app listing scanned whole tables; the
# blob_key indexes serve "is this key still referenced elsewhere?".
_V2_CHILD_INDEXES: tuple[str, ...] = (
    "CREATE INDEX packages_by_app ON packages (app_guid, created_at)",
    "CREATE INDEX packages_by_blob ON packages (blob_key) WHERE blob_key IS NOT NULL",
    "CREATE INDEX builds_by_app ON builds (app_guid, created_at)",
    "CREATE INDEX builds_by_package ON builds (package_guid)",
    "CREATE INDEX droplets_by_app ON droplets (app_guid, created_at)",
    "CREATE INDEX droplets_by_build ON droplets (build_guid)",
    "CREATE INDEX droplets_by_package ON droplets (package_guid)",
    "CREATE INDEX droplets_by_blob ON droplets (blob_key) WHERE blob_key IS NOT NULL",
)

# `cf trace APP` draws the last push / restart / restage of an app from the
# deliveries recorded while it ran; kept here so it outlives the process.
# No foreign key: a trace is history, like events, and survives delete.
_V3_TRACES: tuple[str, ...] = (
    """
    CREATE TABLE traces (
        trace_id   TEXT PRIMARY KEY,
        app_guid   TEXT NOT NULL,
        app_name   TEXT NOT NULL,
        kind       TEXT NOT NULL,
        created_at TEXT NOT NULL,
        deliveries TEXT NOT NULL CHECK (json_valid(deliveries))
    )
    """,
    "CREATE INDEX traces_by_app ON traces (app_guid, created_at)",
)

# The web process's version (Cloud Controller's `process.version`): a new
# one each time its instances must be replaced (start, restart, a memory or
# disk change). Diego's process guid is the app guid and this version, so the
# desired LRP an app should have is a function of CC_DB alone, which is what
# lets the sync with the BBS repair any lost or reordered message.
_V4_PROCESS_VERSION: tuple[str, ...] = ("ALTER TABLE apps ADD COLUMN process_version TEXT",)

# Routes no app maps: made by `cf create-route`, or left behind when their
# app unmapped them or was deleted. Cloud Foundry keeps a route until it is
# deleted; a mapped one lives in its apps' `routes`.
_V5_UNMAPPED_ROUTES: tuple[str, ...] = (
    "CREATE TABLE unmapped_routes (url TEXT PRIMARY KEY, created_at TEXT NOT NULL)",
)

MIGRATIONS: tuple[Migration, ...] = (
    (1, _V1_CORE_TABLES),
    (2, _V2_CHILD_INDEXES),
    (3, _V3_TRACES),
    (4, _V4_PROCESS_VERSION),
    (5, _V5_UNMAPPED_ROUTES),
)

LATEST_VERSION = MIGRATIONS[-1][0]


def check_migrations(migrations: Sequence[Migration]) -> None:
    """Raise ValueError unless versions are positive and strictly increasing."""
    previous = 0
    for version, statements in migrations:
        if version <= previous:
            raise ValueError(f"migration versions must increase: {version} follows {previous}")
        if not statements:
            raise ValueError(f"migration {version} has no statements")
        previous = version


def pending_migrations(migrations: Sequence[Migration], current: int) -> list[Migration]:
    """The migrations newer than `current`, in order."""
    return [m for m in migrations if m[0] > current]
