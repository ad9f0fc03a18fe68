"""Messages between the platform's actors, grouped by the actor that receives them.

Every message is a frozen, slotted dataclass. `STEP` (a class attribute) is
the seed step (1-12, DESIGN.md section 3) a delivery of that type belongs to
in a push's trace; a message used in more than one step carries a `step`
field instead, set by its sender. `label` is what a trace arrow says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from protocol.auction import LRPStartRequest, PlacementError, TaskRequest
from protocol.frozen import fast_init
from protocol.lrp import CellPresence, DesiredLRP, StagingFailure, StagingResult, TaskDefinition
from protocol.manifest import AppSpec
from protocol.records import AppFile, DeliveryRow, delivery_row


class _Msg:
    __slots__ = ()
    STEP: ClassVar[int | None] = None


# --- user -> cli ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CliCommand(_Msg):
    """Run one cf-style command (`push hello -p ...`). Its output goes, line by
    line, to the `terminal` actor as `Output` messages of `command_id`; a
    question (delete's confirmation) is asked there with `Confirm`, when the
    user is `interactive`. The reply is a `CommandOutcome`."""

    argv: tuple[str, ...]
    command_id: str
    cwd: str = "."
    terminal: str = "user"
    interactive: bool = False

    @property
    def step(self) -> int | None:
        return 1 if self.argv[:1] in (("push",), ("restart",), ("restage",), ("start",)) else None

    @property
    def label(self) -> str:
        return "cf " + " ".join(self.argv[:2])


@dataclass(frozen=True, slots=True)
class CancelCommand(_Msg):
    """Stop the running command `command_id` (Ctrl-C ending a `logs APP`
    tail); a command that is not running is ignored."""

    command_id: str


@dataclass(frozen=True, slots=True)
class CommandOutcome(_Msg):
    """cli -> the command's sender: how it ended. `error` names the error it
    failed with (``StagingError``, ``AppNotFound``, ``IncorrectUsage``...),
    `error_line` is what was printed for it, `lines` how many `Output` lines
    were sent (so the terminal can wait for the last of them)."""

    exit_code: int
    error: str | None = None
    error_line: str = ""
    lines: int = 0


# --- cli -> terminal -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Output(_Msg):
    """Lines a command prints, in order, as (text, stream) with stream "out"
    or "err": the first is its `seq`-th line (from 1). What a command prints
    in one turn of the loop travels as one message."""

    command_id: str
    seq: int
    lines: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Confirm(_Msg):
    """Ask the user a yes/no question (delete's confirmation); the reply is a bool."""

    command_id: str
    question: str


# --- -> cloud_controller -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateOrUpdateApp(_Msg):
    """Create the app, or update an existing one's attributes from the spec.

    `explicit` names the AppSpec fields the user set (manifest or flags); on
    an existing app only those change, as with `cf push`."""

    STEP = 2
    spec: AppSpec
    explicit: frozenset[str] = frozenset()
    actor: str = "admin"
    #: A push (cf v8's `default-route: true`): an app left with no route
    #: gets the default (or, with `random_route`, a random) one. Other
    #: updates (an env var, a lifecycle) never touch routes they do not name.
    default_route: bool = False


@dataclass(frozen=True, slots=True)
class PatchApp(_Msg):
    """PATCH /v3/apps/:guid (`cf rename`, a lifecycle): the app's new name,
    buildpacks or stack (None: unchanged), all in one write or none."""

    app_guid: str
    name: str | None = None
    buildpacks: tuple[str, ...] | None = None
    stack: str | None = None
    actor: str = "admin"


@dataclass(frozen=True, slots=True)
class GetApp(_Msg):
    """Find an app by name (AppNotFound if absent)."""

    name: str


@dataclass(frozen=True, slots=True)
class ListApps(_Msg):
    """Every app with its instance counts, for `cf apps`."""


@dataclass(frozen=True, slots=True)
class ListAppSummaries(_Msg):
    """Every app with its current droplet (or None) and instances, for `cf apps`."""


@dataclass(frozen=True, slots=True)
class ListAppRecords(_Msg):
    """Every app, by name (no instances: one CC_DB read)."""


@dataclass(frozen=True, slots=True)
class MatchResources(_Msg):
    """Which of these (sha1, size) files does the platform already hold?"""

    STEP = 4
    fingerprints: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class UploadBits(_Msg):
    """The app's files: every file's identity, the bytes of the unmatched ones
    as a package tarball, and the rest to be taken from the resource pool."""

    STEP = 4
    app_guid: str
    files: tuple[AppFile, ...]
    uploaded: bytes = field(repr=False)
    actor: str = "admin"


# The API's steps and reads (`actors.api`): Cloud Foundry's V3 resources one
# call at a time, where the cli's push takes them in one conversation.


@dataclass(frozen=True, slots=True)
class ShowApp(_Msg):
    """The app with this guid (AppNotFound if absent)."""

    app_guid: str


@dataclass(frozen=True, slots=True)
class CreatePackage(_Msg):
    """A bits package for the app, AWAITING_UPLOAD."""

    STEP = 5
    app_guid: str
    actor: str = "admin"


@dataclass(frozen=True, slots=True)
class UploadPackage(_Msg):
    """The package's bits: an uploaded zip on disk (`archive`; None when
    every file matched) and the resource-pool files it `matched`. The reply
    is the package, READY."""

    STEP = 5
    package_guid: str
    archive: str | None
    matched: tuple[AppFile, ...] = ()
    actor: str = "admin"


@dataclass(frozen=True, slots=True)
class ShowPackage(_Msg):
    package_guid: str


@dataclass(frozen=True, slots=True)
class ListAppPackages(_Msg):
    """An app's packages, newest first."""

    app_guid: str


@dataclass(frozen=True, slots=True)
class CreateBuild(_Msg):
    """Stage this READY package; the reply is the build, STAGING (staging
    goes on, and ends it STAGED or FAILED)."""

    STEP = 6
    package_guid: str
    actor: str = "admin"


@dataclass(frozen=True, slots=True)
class ShowBuild(_Msg):
    build_guid: str


@dataclass(frozen=True, slots=True)
class ListAppBuilds(_Msg):
    app_guid: str


@dataclass(frozen=True, slots=True)
class ShowDroplet(_Msg):
    droplet_guid: str


@dataclass(frozen=True, slots=True)
class ListAppDroplets(_Msg):
    app_guid: str


@dataclass(frozen=True, slots=True)
class SetCurrentDroplet(_Msg):
    """Make a STAGED droplet of the app its current one (what it runs at its next start)."""

    app_guid: str
    droplet_guid: str
    actor: str = "admin"


@dataclass(frozen=True, slots=True)
class RecordJob(_Msg):
    """Keep an operation's outcome as a job the API's clients poll; the reply is its `JobRecord`."""

    operation: str
    resource_type: str
    resource_guid: str
    errors: tuple[tuple[int, str, str], ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ShowJob(_Msg):
    job_guid: str


@dataclass(frozen=True, slots=True)
class StageAndStart(_Msg):
    """Start the app as Cloud Controller's V2 does: first stage its newest
    READY package if its current droplet is not of it. The reply is the
    build when it staged (None when nothing needed staging)."""

    app_guid: str
    actor: str = "admin"


@dataclass(frozen=True, slots=True)
class ListRoutes(_Msg):
    """Every route (``host.domain[/path]``) with the guids of the apps mapped
    to it, sorted by route: the mapped ones and those made and not mapped."""


@dataclass(frozen=True, slots=True)
class CreateRoute(_Msg):
    url: str


@dataclass(frozen=True, slots=True)
class DeleteRoute(_Msg):
    """Delete a route (any spelling of it: routes are case-insensitive):
    unmapped from every app it is mapped to, then gone. With
    `only_if_unmapped`, a route some app has (by now) is left alone."""

    url: str
    actor: str = "admin"
    only_if_unmapped: bool = False


@dataclass(frozen=True, slots=True)
class MapRoute(_Msg):
    app_guid: str
    url: str
    actor: str = "admin"


@dataclass(frozen=True, slots=True)
class UnmapRoute(_Msg):
    app_guid: str
    url: str
    actor: str = "admin"


@dataclass(frozen=True, slots=True)
class StageApp(_Msg):
    """Build a droplet from the app's newest package; reply when it ends."""

    STEP = 6
    app_guid: str
    reason: str = "push"  # push | restage
    actor: str = "admin"


@dataclass(frozen=True, slots=True)
class StartApp(_Msg):
    """Desire the app's instances from its current droplet."""

    STEP = 11
    app_guid: str
    actor: str = "admin"
    restart: bool = False


@dataclass(frozen=True, slots=True)
class StopApp(_Msg):
    app_guid: str
    actor: str = "admin"


@dataclass(frozen=True, slots=True)
class ScaleApp(_Msg):
    app_guid: str
    instances: int | None = None
    memory_mb: int | None = None
    disk_mb: int | None = None
    actor: str = "admin"


@dataclass(frozen=True, slots=True)
class DeleteApp(_Msg):
    app_guid: str
    actor: str = "admin"


@dataclass(frozen=True, slots=True)
class GetAppInstances(_Msg):
    """The instance table of an app's web process."""

    STEP = 12
    app_guid: str


@dataclass(frozen=True, slots=True)
class GetAppSummary(_Msg):
    """App, current droplet and instance table, for `cf app`."""

    STEP = 12
    app_guid: str


@dataclass(frozen=True, slots=True)
class GetEvents(_Msg):
    app_guid: str
    limit: int = 50


@dataclass(frozen=True, slots=True)
class GetTrace(_Msg):
    """The recorded trace of the app's last push / restart / restage."""

    app_guid: str


@dataclass(frozen=True, slots=True)
class SaveTrace(_Msg):
    """cli -> cloud_controller: keep this recorded conversation for `cf trace`."""

    app_guid: str
    app_name: str
    trace_id: str
    kind: str
    deliveries: tuple[DeliveryRow, ...] = field(default=(), repr=False)  # rows of scalars

    def __post_init__(self) -> None:
        object.__setattr__(self, "deliveries", tuple(map(delivery_row, self.deliveries)))


@dataclass(frozen=True, slots=True)
class PlatformStatus(_Msg):
    """Counts across components, for `status` and experiment checks."""


@dataclass(frozen=True, slots=True)
class BBSStarted(_Msg):
    """bbs -> cloud_controller: the BBS (re)started with empty books; sync at once."""


@dataclass(frozen=True, slots=True)
class SyncProcesses(_Msg):
    """Run Cloud Controller's sync with the BBS now (it also runs on a timer);
    the reply is what it repaired."""


@dataclass(frozen=True, slots=True)
class StagingCompleted(_Msg):
    """BBS -> cloud_controller: a staging task finished (the completion callback)."""

    STEP = 10
    task_guid: str
    build_guid: str
    result: StagingResult | None = None
    failure: StagingFailure | None = None


@dataclass(frozen=True, slots=True)
class ProcessCrashed(_Msg):
    """BBS -> cloud_controller: an instance crashed (for audit.app.process.crash)."""

    app_guid: str
    process_guid: str
    index: int
    instance_guid: str
    cell_id: str
    exit_description: str
    crash_count: int
    crash_timestamp: float


# --- -> bbs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DesireTask(_Msg):
    STEP = 6
    task: TaskDefinition


@dataclass(frozen=True, slots=True)
class CancelTask(_Msg):
    task_guid: str


@dataclass(frozen=True, slots=True)
class DesireLRP(_Msg):
    STEP = 11
    lrp: DesiredLRP


@dataclass(frozen=True, slots=True)
class UpdateDesiredLRP(_Msg):
    process_guid: str
    instances: int


@dataclass(frozen=True, slots=True)
class RemoveDesiredLRP(_Msg):
    process_guid: str


@dataclass(frozen=True, slots=True)
class GetActualLRPs(_Msg):
    STEP = 12
    process_guid: str


@dataclass(frozen=True, slots=True)
class GetDesiredLRP(_Msg):
    """A cell fetches what to run after winning an auction (Diego's claim step)."""

    STEP = 11
    process_guid: str


@dataclass(frozen=True, slots=True)
class GetDesiredLRPs(_Msg):
    """The same for several at once (Diego's `DesiredLRPs` with a filter of
    process guids): a tuple in the same order, None for one not desired."""

    STEP = 11
    process_guids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListDesiredLRPs(_Msg):
    """Every desired LRP, or those of one app (Cloud Controller's sync reads them)."""

    app_guid: str | None = None


@dataclass(frozen=True, slots=True)
class ListActualLRPs(_Msg):
    """Every actual LRP the BBS holds, by process guid and index."""


@dataclass(frozen=True, slots=True)
class ListTasks(_Msg):
    """Every task the BBS holds (Cloud Controller's sync of staging tasks)."""


@dataclass(frozen=True, slots=True)
class GetTask(_Msg):
    STEP = 7
    task_guid: str


@dataclass(frozen=True, slots=True)
class ListCells(_Msg):
    """Present cells (for the auctioneer and `cf cells`)."""

    step: int | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat(_Msg):
    """cell -> bbs: I am here (presence with a TTL)."""

    presence: CellPresence


@dataclass(frozen=True, slots=True)
class AuctionOutcome(_Msg):
    """auctioneer -> bbs: what a round placed, failed, and what cells refused."""

    placed_lrps: tuple[tuple[LRPStartRequest, str], ...] = ()  # (work, cell_id)
    placed_tasks: tuple[tuple[TaskRequest, str], ...] = ()
    failed_lrps: tuple[tuple[LRPStartRequest, PlacementError], ...] = ()
    failed_tasks: tuple[tuple[TaskRequest, PlacementError], ...] = ()
    step: int | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class InstanceStarted(_Msg):
    """cell -> bbs: an instance passed its health check (RUNNING)."""

    STEP = 12
    process_guid: str
    index: int
    instance_guid: str
    cell_id: str
    memory_usage_mb: float = 0.0
    disk_usage_mb: float = 0.0


#: One started instance as a plain tuple: (process_guid, index,
#: instance_guid, memory_usage_mb, disk_usage_mb), `InstanceStarted`'s
#: fields without the cell.
StartedRow = tuple[str, int, str, float, float]


@fast_init
@dataclass(frozen=True, slots=True)
class InstancesStarted(_Msg):
    """cell -> bbs: instances started together passed their health checks
    together (a cell that started hundreds in one step reports them in one
    message, as it sends their log lines), in order, as rows: `reports`
    gives them as `InstanceStarted`s. The BBS takes each as if it came alone."""

    STEP = 12
    cell_id: str
    rows: tuple[StartedRow, ...]

    @property
    def reports(self) -> tuple[InstanceStarted, ...]:
        return tuple(InstanceStarted(g, i, guid, self.cell_id, m, d) for g, i, guid, m, d in self.rows)


@dataclass(frozen=True, slots=True)
class InstanceCrashed(_Msg):
    """cell -> bbs: an instance exited or failed its health check."""

    process_guid: str
    index: int
    instance_guid: str
    cell_id: str
    exit_description: str
    ran_for: float


@dataclass(frozen=True, slots=True)
class InstanceStopped(_Msg):
    """cell -> bbs: an instance was stopped on purpose (retired or evacuated)."""

    process_guid: str
    index: int
    instance_guid: str
    cell_id: str


@dataclass(frozen=True, slots=True)
class TaskCompleted(_Msg):
    """cell -> bbs: a task ended. The definition rides along, so a BBS that
    restarted since (and lost the task) can still tell the task's callback."""

    STEP = 10
    task_guid: str
    cell_id: str
    result: StagingResult | None = None
    failure: StagingFailure | None = None
    definition: TaskDefinition | None = None

    @property
    def failed(self) -> bool:
        return self.failure is not None


@dataclass(frozen=True, slots=True)
class CellSync(_Msg):
    """cell -> bbs, every convergence interval: what really runs here (Diego's
    rep bulk sync). `instances` are (process_guid, index, guid, running)."""

    cell_id: str
    incarnation: str
    instances: tuple[tuple[str, int, str, bool], ...]
    tasks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Converge(_Msg):
    """Timer or cell loss: reconcile desired with actual."""

    reason: str = "timer"


@dataclass(frozen=True, slots=True)
class EvacuateCell(_Msg):
    """Drain a cell: replace each of its instances elsewhere, then stop it."""

    cell_id: str


@dataclass(frozen=True, slots=True)
class BBSSnapshot(_Msg):
    """The BBS's `BBSStatistics`, for status lines and `settle`."""


# --- -> auctioneer ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestAuctions(_Msg):
    """bbs -> auctioneer: work to place; joins the pending batch."""

    lrps: tuple[LRPStartRequest, ...] = ()
    tasks: tuple[TaskRequest, ...] = ()

    @property
    def step(self) -> int:
        return 7 if self.tasks else 11


@dataclass(frozen=True, slots=True)
class AuctioneerStats(_Msg):
    """The auctioneer's `AuctionStatistics`."""


# --- -> cell ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchCellState(_Msg):
    """auctioneer -> cell: your state, for this round's bids."""

    step: int | None = None


@dataclass(frozen=True, slots=True)
class Perform(_Msg):
    """auctioneer -> cell: you won these; reply with what you refuse.

    `traces`, when the work came from several conversations, gives each
    item's own (the lrps', then the tasks'), so what an instance or a task
    sets off belongs to its own conversation only; empty, every item's is
    the message's."""

    lrps: tuple[LRPStartRequest, ...] = ()
    tasks: tuple[TaskRequest, ...] = ()
    traces: tuple[object, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.traces and len(self.traces) != len(self.lrps) + len(self.tasks):
            raise ValueError("Perform.traces must give one trace per lrp and task")

    @property
    def step(self) -> int:
        return 7 if self.tasks else 11


@dataclass(frozen=True, slots=True)
class PerformResult(_Msg):
    rejected_lrps: tuple[LRPStartRequest, ...] = ()
    rejected_tasks: tuple[TaskRequest, ...] = ()


@dataclass(frozen=True, slots=True)
class StopInstance(_Msg):
    process_guid: str
    index: int
    instance_guid: str
    reason: str = "stopped"


@dataclass(frozen=True, slots=True)
class CrashInstances(_Msg):
    """A fault: crash this fraction of the cell's running instances (a
    storm), or `count` of them when given."""

    fraction: float
    process_guid: str | None = None
    count: int | None = None


@dataclass(frozen=True, slots=True)
class CellInfo(_Msg):
    """The cell's `CellStatistics`, for `cf cells` and status."""


@dataclass(frozen=True, slots=True)
class ListContainers(_Msg):
    """What the cell really holds: one `ContainerInfo` per instance."""


@dataclass(frozen=True, slots=True)
class SyncNow(_Msg):
    """bbs -> cell: send your `CellSync` now (a restarted BBS rebuilding its books)."""


@dataclass(frozen=True, slots=True)
class SetDraining(_Msg):
    draining: bool = True


# --- -> uaa ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssueToken(_Msg):
    """UAA's token endpoint: a `password` grant (`username`, `password`) or a
    `refresh_token` grant, for OAuth client `client_id` with `client_secret`.
    The reply is a `TokenGrant`; `BadCredentials` or `InvalidToken` if refused."""

    grant_type: str
    client_id: str
    client_secret: str
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class TokenGrant(_Msg):
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    scope: str
    jti: str


@dataclass(frozen=True, slots=True)
class VerifyToken(_Msg):
    """Check an access token (signature, expiry, kind); the reply is its
    `TokenClaims`, or `InvalidToken`."""

    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TokenClaims(_Msg):
    user_name: str
    user_id: str
    scopes: tuple[str, ...]
    expires_at: float


# --- -> loggregator ------------------------------------------------------------------------


@fast_init
@dataclass(frozen=True, slots=True)
class LogLine(_Msg):
    """One line of an app's log stream."""

    app_guid: str
    source_type: str  # API, STG, CELL, APP
    source_instance: str
    text: str
    timestamp: float
    stream: str = "OUT"

    @property
    def step(self) -> int | None:
        return 8 if self.source_type == "STG" else None

    @property
    def row(self) -> LogRow:
        return (self.app_guid, self.source_type, self.source_instance, self.text, self.timestamp, self.stream)


#: A log line as a plain tuple, in `LogLine`'s field order: (app_guid,
#: source_type, source_instance, text, timestamp, stream). `LogLine(*row)`
#: is the line. A cell starting thousands of instances in one step makes
#: five lines each; a tuple costs a small part of a frozen dataclass.
LogRow = tuple[str, str, str, str, float, str]


@dataclass(frozen=True, slots=True)
class LogLines(_Msg):
    """Several lines at once, in order (a cell starting many instances in one
    step sends their lines together), as rows: `lines` gives them as `LogLine`s."""

    rows: tuple[LogRow, ...]

    @property
    def lines(self) -> tuple[LogLine, ...]:
        return tuple(LogLine(*row) for row in self.rows)

    @property
    def step(self) -> int | None:
        return 8 if any(row[1] == "STG" for row in self.rows) else None


@dataclass(frozen=True, slots=True)
class Subscribe(_Msg):
    """Send the app's new log lines to the actor `subscriber`, as
    `LogDelivery(subscription, lines)`, until unsubscribed."""

    app_guid: str
    subscriber: str
    subscription: str


@dataclass(frozen=True, slots=True)
class Unsubscribe(_Msg):
    app_guid: str
    subscription: str


@dataclass(frozen=True, slots=True)
class LogDelivery(_Msg):
    """loggregator -> a subscriber: new lines of a stream it subscribed to,
    in order (the lines that came in together go on together)."""

    subscription: str
    lines: tuple[LogLine, ...]

    @property
    def step(self) -> int | None:
        return 8 if any(line.source_type == "STG" for line in self.lines) else None


@dataclass(frozen=True, slots=True)
class RecentLogs(_Msg):
    app_guid: str
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class ForgetLogs(_Msg):
    app_guid: str


__all__ = [
    name
    for name, value in list(globals().items())
    if name[:1].isupper() and isinstance(value, type) and value.__module__ == __name__ and name != "FrozenDict"
]
