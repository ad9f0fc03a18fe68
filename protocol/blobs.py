"""The blob store's operations, one message each (packages, droplets and the
resource pool). Every one is safe to send again (`RETRY_SAFE`): the store is
content addressed, so a put or delete repeated changes nothing more.
Replies are `protocol.records.BlobInfo` and friends."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from protocol.records import AppFile

__all__ = [
    "AddResources",
    "AssemblePackage",
    "BlobOperation",
    "BlobSize",
    "BlobStats",
    "CopyTo",
    "DeleteBlob",
    "Exists",
    "GetBytes",
    "GetResource",
    "ListBlobKeys",
    "MatchResources",
    "PutBytes",
    "PutFile",
    "StorePackage",
    "TakeInventory",
    "VerifyBlob",
]


@functools.cache  # made once per type name: a trace labels every delivery
def _label(name: str) -> str:
    return "blob." + re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True, slots=True)
class BlobOperation:
    """Base of every blob store operation."""

    RETRY_SAFE: ClassVar[bool] = True
    STEP: ClassVar[int | None] = None
    step: int | None = field(default=None, kw_only=True)

    @property
    def label(self) -> str:
        return _label(type(self).__name__)

    def arguments(self) -> dict[str, Any]:
        import dataclasses

        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "step"}


@dataclass(frozen=True, slots=True)
class PutBytes(BlobOperation):
    """Store bytes under their sha256 (rewriting a stored copy that no longer verifies)."""

    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class PutFile(BlobOperation):
    """Stream a file into the store under its sha256."""

    path: str


@dataclass(frozen=True, slots=True)
class GetBytes(BlobOperation):
    key: str


@dataclass(frozen=True, slots=True)
class CopyTo(BlobOperation):
    """Copy a blob to `dest`, verified as it streams."""

    key: str
    dest: str


@dataclass(frozen=True, slots=True)
class Exists(BlobOperation):
    key: str


@dataclass(frozen=True, slots=True)
class BlobSize(BlobOperation):
    key: str


@dataclass(frozen=True, slots=True)
class VerifyBlob(BlobOperation):
    key: str


@dataclass(frozen=True, slots=True)
class DeleteBlob(BlobOperation):
    key: str


@dataclass(frozen=True, slots=True)
class ListBlobKeys(BlobOperation):
    """Every blob key held, sorted."""


@dataclass(frozen=True, slots=True)
class BlobStats(BlobOperation):
    """How many blobs and pooled files are held, and their bytes."""


@dataclass(frozen=True, slots=True)
class MatchResources(BlobOperation):
    """Which of these (sha1, size) files does the resource pool hold (intact)?"""

    STEP: ClassVar[int | None] = 4
    resources: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class AddResources(BlobOperation):
    """Add (sha1, bytes) files to the resource pool."""

    resources: tuple[tuple[str, bytes], ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class GetResource(BlobOperation):
    sha1: str


@dataclass(frozen=True, slots=True)
class AssemblePackage(BlobOperation):
    """Build the package blob from uploaded bytes plus resource-pool files
    (step 5); `files` are the app's `AppFile`s, all of them."""

    STEP: ClassVar[int | None] = 5
    files: tuple[AppFile, ...]
    uploaded: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class StorePackage(BlobOperation):
    """Build the package blob from an uploaded zip on disk (`archive`, None
    when every file matched) plus the resource-pool files it matched
    (`matched`), streaming both; the reply is its `BlobInfo`."""

    STEP: ClassVar[int | None] = 5
    archive: str | None
    matched: tuple[AppFile, ...] = ()


@dataclass(frozen=True, slots=True)
class TakeInventory(BlobOperation):
    """Compare the blobs held with those CC_DB refers to: orphans, missing, corrupt."""

    referenced: frozenset[str]
    verify: bool = False
