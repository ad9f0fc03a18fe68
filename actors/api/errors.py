"""Cloud Controller's errors as its API writes them, and the platform's named
errors mapped onto them (V3: ``{"errors": [{code, title, detail}]}``; V2:
``{code, description, error_code}``; UAA's token endpoint: ``{error,
error_description}``). The titles and details are the ones cf v8 matches."""

from __future__ import annotations

from typing import Any

from actors.runtime.errors import ActorDeadError, AskTimeout
from protocol import errors as e

__all__ = [
    "INVALID_TOKEN",
    "NOT_AUTHENTICATED",
    "UNKNOWN_REQUEST",
    "ApiError",
    "bad_query",
    "bad_request",
    "from_exception",
    "not_found",
    "parse_error",
    "unprocessable",
]


class ApiError(Exception):
    """A response Cloud Controller would give: status, code, title, detail."""

    def __init__(
        self,
        status: int,
        code: int,
        title: str,
        detail: str,
        *,
        v2_code: int | None = None,
        v2: tuple[int, str, str] | None = None,
    ) -> None:
        """`v2`: (status, title, detail) where V2 answers otherwise than V3
        (its own error names for what V3 calls UnprocessableEntity)."""
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.v2_code = v2_code if v2_code is not None else code
        self.v2_status, self.v2_title, self.v2_detail = v2 if v2 is not None else (status, title, detail)

    def v3(self) -> dict[str, Any]:
        return {"errors": [{"detail": self.detail, "title": self.title, "code": self.code}]}

    def v2(self) -> dict[str, Any]:
        return {"code": self.v2_code, "description": self.v2_detail, "error_code": self.v2_title}


NOT_AUTHENTICATED = ApiError(401, 10002, "CF-NotAuthenticated", "Authentication error")
INVALID_TOKEN = ApiError(401, 1000, "CF-InvalidAuthToken", "Invalid Auth Token")
UNKNOWN_REQUEST = ApiError(404, 10000, "CF-NotFound", "Unknown request")


def not_found(kind: str) -> ApiError:
    """``<Kind> not found`` (cf v8 matches "App not found", "Droplet not found", ...)."""
    v2 = {"App": 100004, "Space": 40004, "Organization": 30003, "Route": 210002, "Job": 10010}.get(kind, 10010)
    return ApiError(404, 10010, "CF-ResourceNotFound", f"{kind} not found", v2_code=v2)


def unprocessable(detail: str) -> ApiError:
    return ApiError(422, 10008, "CF-UnprocessableEntity", detail)


def bad_request(detail: str) -> ApiError:
    return ApiError(400, 1004, "CF-BadRequest", f"Bad request: {detail}")


def parse_error(detail: str) -> ApiError:
    return ApiError(400, 1001, "CF-MessageParseError", f"Request invalid due to parse error: {detail}")


def bad_query(detail: str) -> ApiError:
    return ApiError(400, 10005, "CF-BadQueryParameter", f"The query parameter is invalid: {detail}")


def upload_invalid(detail: str) -> ApiError:
    return ApiError(400, 160001, "CF-AppBitsUploadInvalid", f"The app upload is invalid: {detail}")


def unavailable(detail: str) -> ApiError:
    return ApiError(503, 10015, "CF-ServiceUnavailable", detail)


def from_exception(exc: BaseException) -> ApiError:
    """The API's answer to an error the platform raised while serving a request."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, e.AppNotFound):
        return not_found("App")
    if isinstance(exc, e.InvalidToken):
        return INVALID_TOKEN
    if isinstance(exc, e.ResourceNotFound):
        return ApiError(404, 10010, "CF-ResourceNotFound", exc.message or "Resource not found")
    if isinstance(exc, e.PackageBitsAlreadyUploaded):
        return ApiError(400, 150004, "CF-PackageBitsAlreadyUploaded", exc.message)
    if isinstance(exc, e.PackageNotReady):
        return bad_request("Cannot stage package whose state is not ready.")
    if isinstance(exc, e.StagingInProgress):
        return ApiError(422, 170017, "CF-StagingInProgress", exc.message)
    if isinstance(exc, e.NotStaged):
        return unprocessable("Assign a droplet before starting this app.")
    if isinstance(exc, e.AppMemoryQuotaExceeded | e.QuotaInstanceMemoryLimitExceeded | e.QuotaInstanceLimitExceeded):
        # V3 words them as its validation errors; V2 by the error's own name (errors/v2.yml).
        v3_detail, v2_code = {
            "AppMemoryQuotaExceeded": ("memory quota_exceeded", 100005),
            "QuotaInstanceMemoryLimitExceeded": ("memory instance_limit_exceeded", 100007),
            "QuotaInstanceLimitExceeded": ("instances app_instance_limit_exceeded", 100008),
        }[exc.code]
        v2 = (400, f"CF-{exc.code}", exc.message)
        return ApiError(422, 10008, "CF-UnprocessableEntity", v3_detail, v2_code=v2_code, v2=v2)
    if isinstance(exc, e.AppNameTaken):
        return ApiError(422, 10016, "CF-UniquenessError", exc.message)
    if isinstance(exc, e.UnsafePath | e.FileTooLarge | e.PathEmpty):
        return upload_invalid(exc.message)
    if isinstance(exc, e.BlobStoreUnavailable | e.BlobCorrupt | e.BlobNotFound):
        return ApiError(500, 150007, "CF-BlobstoreError", f"Failed to perform blobstore operation: {exc.message}")
    if isinstance(exc, e.DatabaseUnavailable):
        return unavailable("Database connection failure")
    if isinstance(exc, AskTimeout | ActorDeadError | e.PlatformUnavailable):
        return unavailable(f"The platform did not answer in time: {exc}")
    if isinstance(exc, e.PlatformError):
        return unprocessable(exc.message or str(exc))
    return ApiError(500, 10001, "UnknownError", "An unknown error occurred.")
