"""Named errors: what a Cloud Foundry user sees, spelled as Cloud Foundry
spells them. Each says who raises it and when. (The actor runtime's own
errors, such as `AskTimeout`, live with the runtime: `actors.runtime.errors`.)
"""

from __future__ import annotations

__all__ = [
    "ApiPortInUse",
    "AppInvalid",
    "AppMemoryQuotaExceeded",
    "AppNameTaken",
    "AppNotFound",
    "BadCredentials",
    "BlobCorrupt",
    "BlobNotFound",
    "BlobStoreUnavailable",
    "BuildpackCompileFailed",
    "BuildpackReleaseFailed",
    "DataDirUnusable",
    "DatabaseUnavailable",
    "FileTooLarge",
    "IncorrectUsage",
    "InsufficientResources",
    "InvalidAppName",
    "InvalidDroplet",
    "InvalidManifest",
    "InvalidToken",
    "MinifoundryError",
    "NoAppDetectedError",
    "NoCompatibleCell",
    "NotStaged",
    "PackageBitsAlreadyUploaded",
    "PackageNotReady",
    "PathEmpty",
    "PathNotFound",
    "PlatformError",
    "PlatformUnavailable",
    "QuotaInstanceLimitExceeded",
    "QuotaInstanceMemoryLimitExceeded",
    "ResourceNotFound",
    "StackNotFound",
    "StagingError",
    "StagingInProgress",
    "StagingTimeExpired",
    "StartUnsuccessful",
    "UnknownBuildpack",
    "UnknownCommand",
    "UnsafePath",
]


class MinifoundryError(Exception):
    """Base of every error minifoundry raises on purpose."""


# --- platform: what a user of `cf` sees -------------------------------------


class PlatformError(MinifoundryError):
    """An error with a Cloud Foundry name; `str()` is what the CLI prints.

    `code` is the name users see (e.g. ``NoAppDetectedError``); the build's
    `error` field is ``"<code> - <message>"``.
    """

    code: str = "UnknownError"
    default_message: str = ""

    def __init__(self, message: str | None = None) -> None:
        self.message = message if message is not None else self.default_message
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code} - {self.message}" if self.message else self.code

    @property
    def build_error(self) -> str:
        return str(self)


class NoAppDetectedError(PlatformError):
    """No buildpack's detect passed (buildpack exit 222)."""

    code = "NoAppDetectedError"
    default_message = "An app was not successfully detected by any available buildpack"


class BuildpackCompileFailed(PlatformError):
    """A buildpack's supply/finalize/compile failed (exit 223)."""

    code = "BuildpackCompileFailed"
    default_message = "App staging failed in the buildpack compile phase"


class BuildpackReleaseFailed(PlatformError):
    """A buildpack's release step failed (exit 224)."""

    code = "BuildpackReleaseFailed"
    default_message = "App staging failed in the buildpack release phase"


class InsufficientResources(PlatformError):
    """No cell had room for the staging task or instance."""

    code = "InsufficientResources"
    default_message = "Insufficient resources"


class NoCompatibleCell(PlatformError):
    """No cell matched the stack or placement tags."""

    code = "NoCompatibleCell"
    default_message = "Found no compatible cell"


class StagingError(PlatformError):
    """Staging failed for a reason outside the buildpack (blob store, cell lost)."""

    code = "StagingError"
    default_message = "Staging error: staging failed"


class StagingTimeExpired(PlatformError):
    """Staging did not finish within its time limit."""

    code = "StagingTimeExpired"
    default_message = "Staging time expired"


class StartUnsuccessful(PlatformError):
    """Every instance of the app crashed while starting."""

    code = "StartUnsuccessful"
    default_message = "Start unsuccessful"

    def __str__(self) -> str:
        return "Start unsuccessful"


class UnknownBuildpack(PlatformError):
    """A buildpack named in the push is not installed."""

    code = "UnknownBuildpack"
    default_message = "Buildpack not found"


class NotStaged(PlatformError):
    """restart/start of an app that has no staged droplet."""

    code = "NotStaged"
    default_message = "App has not been staged"


class AppNotFound(PlatformError):
    """The named app does not exist."""

    code = "AppNotFound"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"App '{name}' not found.")

    def __str__(self) -> str:
        return self.message


class AppMemoryQuotaExceeded(PlatformError):
    """The org's started apps would use more memory than its quota allows (CC code 100005)."""

    code = "AppMemoryQuotaExceeded"
    default_message = "You have exceeded your organization's memory limit: app requested more memory than available"


class QuotaInstanceMemoryLimitExceeded(PlatformError):
    """One instance asks for more memory than the org quota's per-instance limit (CC code 100007)."""

    code = "QuotaInstanceMemoryLimitExceeded"
    default_message = "You have exceeded the instance memory limit for your organization's quota."


class QuotaInstanceLimitExceeded(PlatformError):
    """The org's started apps would run more instances than its quota allows (CC code 100008)."""

    code = "QuotaInstanceLimitExceeded"
    default_message = "You have exceeded the instance limit for your organization's quota."


class AppInvalid(PlatformError):
    """An app Cloud Controller refuses as it stands (CC code 100001), such as
    one asking for more disk than `maximum_app_disk_in_mb`."""

    code = "AppInvalid"


class StackNotFound(PlatformError):
    """The app names a stack the platform does not have (raised by Cloud Controller)."""

    code = "StackNotFound"


class AppNameTaken(PlatformError):
    code = "CF-AppNameTaken"


class InvalidAppName(PlatformError):
    """An app name with characters Cloud Foundry refuses, or empty/too long."""

    code = "InvalidAppName"


class InvalidManifest(PlatformError):
    """The manifest cannot be parsed, or a value is invalid (`memory: lots`)."""

    code = "InvalidManifest"


class PathNotFound(PlatformError):
    """`-p PATH` (or the manifest's `path`) does not exist."""

    code = "PathNotFound"


class PathEmpty(PlatformError):
    """The app directory holds no files to push."""

    code = "PathEmpty"


class UnsafePath(PlatformError):
    """An archive entry or symlink would escape the app directory."""

    code = "UnsafePath"


class FileTooLarge(PlatformError):
    """A file (or the whole app) is over the upload size limit."""

    code = "FileTooLarge"


class UnknownCommand(PlatformError):
    """The CLI does not know the command (raised by the command parser)."""

    code = "UnknownCommand"


class IncorrectUsage(PlatformError):
    """A known command with a bad or missing flag or argument."""

    code = "IncorrectUsage"

    def __str__(self) -> str:
        return self.message  # cf prints "Incorrect Usage: ..." with no name before it


class PackageBitsAlreadyUploaded(PlatformError):
    """An upload to a package that is no longer AWAITING_UPLOAD (CC code 150004)."""

    code = "PackageBitsAlreadyUploaded"
    default_message = "Bits may be uploaded only once. Create a new package to upload different bits."


class PackageNotReady(PlatformError):
    """A build asked of a package that is not READY (CC's BadRequest, 1004)."""

    code = "PackageNotReady"
    default_message = "Cannot stage package whose state is not ready."


class StagingInProgress(PlatformError):
    """A build asked while another of the app's builds is STAGING (CC code 170017)."""

    code = "StagingInProgress"
    default_message = "Only one build can be STAGING at a time per application."


class InvalidDroplet(PlatformError):
    """A current droplet that is not a STAGED droplet of the app."""

    code = "InvalidDroplet"
    default_message = "Unable to assign current droplet. Ensure the droplet exists and belongs to this app."


class ResourceNotFound(PlatformError, LookupError):
    """A package, build or droplet guid that CC_DB does not hold."""

    code = "ResourceNotFound"


class BlobNotFound(PlatformError):
    """The blob store holds no blob with that key (raised by `blobstore`)."""

    code = "BlobNotFound"


class BlobCorrupt(PlatformError):
    """A blob's content no longer matches its sha256 key (found on read)."""

    code = "BlobCorrupt"


class BlobStoreUnavailable(PlatformError):
    """The blob store failed a read or write (an injected fault, or the disk)."""

    code = "BlobstoreUnavailable"
    default_message = "The blobstore is unavailable"


class PlatformUnavailable(PlatformError):
    """A command could not finish because part of the platform restarted under
    it (supervision brings it back); raised to the user, who may run it again."""

    code = "PlatformUnavailable"
    default_message = "The platform is restarting"


class DataDirUnusable(PlatformError):
    """The data directory (or a file in it: CC_DB, the lock, the blob store)
    is not what minifoundry keeps there; raised at boot, naming the file."""

    code = "DataDirUnusable"


class BadCredentials(PlatformError):
    """UAA refused a user name and password (or the OAuth client)."""

    code = "BadCredentials"
    default_message = "Bad credentials"


class InvalidToken(PlatformError):
    """A token UAA did not issue, or that expired: forged, tampered, unsigned
    (`alg: none`), past its `exp`, or the wrong kind (a refresh token used as
    an access token)."""

    code = "InvalidToken"
    default_message = "Invalid Auth Token"


class ApiPortInUse(PlatformError):
    """The API's port (`--api-port`) is taken by another process (raised at boot)."""

    code = "ApiPortInUse"


class DatabaseUnavailable(PlatformError):
    """A CC_DB operation failed (an injected fault, or the disk)."""

    code = "DatabaseError"
    default_message = "The database is unavailable"
