"""The droplet: what staging produces and running cells start from.

A droplet is a gzipped tar, laid out like Diego's:

    staging_info.yml      detected_buildpack, start_command, buildpacks,
                          process_types, as one line of JSON like Diego's
                          builder writes it (first entry, so it reads fast)
    app/...               the staged app (build directory after finalize)
    deps/<i>/...          each buildpack's supplied dependencies
    logs/  tmp/           empty, as in a real droplet

It is deterministic: entries in sorted order, one fixed mtime (an argument),
uid/gid 0 with no owner names, normalised modes, and a gzip header with the
same mtime and no file name. Identical inputs give identical bytes, hence the
same sha256. Links and special files are refused, so a droplet only ever
holds directories and regular files.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import yaml

from actors.cell.buildtree import BuildTree
from actors.tarstream import TarStream
from protocol.errors import BlobCorrupt, BlobNotFound

__all__ = [
    "MAX_STAGING_INFO_BYTES",
    "STAGING_INFO",
    "DropletFile",
    "StagingInfo",
    "build_droplet",
    "droplet_bytes",
    "read_staging_info",
    "staging_info_document",
    "write_droplet",
    "write_droplet_file",
]

STAGING_INFO = "staging_info.yml"
MAX_STAGING_INFO_BYTES = 64 * 1024
# Level 6 is gzip's own default: level 9 costs much more for a few percent.
_COMPRESS_LEVEL = 6
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class StagingInfo:
    """What staging decided, as `staging_info.yml` records it."""

    detected_buildpack: str
    start_command: str
    buildpacks: tuple[tuple[str, str], ...] = ()  # (name, version), in order
    process_types: tuple[tuple[str, str], ...] = ()  # (type, command)


@dataclass(frozen=True, slots=True)
class DropletFile:
    """A droplet written to disk."""

    path: str
    sha256: str
    size: int


class _HashingWriter:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.raw.write(data)


def staging_info_document(info: StagingInfo) -> bytes:
    """`staging_info.yml` as Diego's builder writes it: one line of JSON
    (which YAML readers read too), keys sorted."""
    doc = {
        "buildpacks": [{"name": n, "version": v} for n, v in info.buildpacks],
        "detected_buildpack": info.detected_buildpack,
        "process_types": dict(info.process_types),
        "start_command": info.start_command,
    }
    return (json.dumps(doc, sort_keys=True) + "\n").encode("utf-8")


def write_droplet(tree: BuildTree, info: StagingInfo, sink: BinaryIO, *, mtime: int = 0) -> tuple[str, int]:
    """Write the droplet of `tree` (its ``app/`` and ``deps/``, either may be
    absent) to `sink`; the sha256 and size of what was written."""
    out = _HashingWriter(sink)
    tar = TarStream(out, mtime, _COMPRESS_LEVEL)
    data = staging_info_document(info)
    tar.file(STAGING_INFO, 0o644, len(data), (data,))
    for top in ("app", "deps"):
        for parts, entry in tree.walk((top,)):
            name = "/".join(parts)
            if entry is None:
                tar.directory(name)
            else:
                tar.file(name, 0o755 if entry.mode & 0o100 else 0o644, entry.size, entry.chunks())
    tar.directory("logs")
    tar.directory("tmp")
    tar.close()
    return out.digest.hexdigest(), out.size


def droplet_bytes(tree: BuildTree, info: StagingInfo, *, mtime: int = 0) -> bytes:
    """The droplet of `tree`, in memory."""
    buffer = io.BytesIO()
    write_droplet(tree, info, buffer, mtime=mtime)
    return buffer.getvalue()


def build_droplet(
    app_dir: str | os.PathLike[str],
    deps_dir: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    info: StagingInfo,
    *,
    mtime: int = 0,
) -> DropletFile:
    """Write the droplet of the directories `app_dir` and `deps_dir` (may be
    absent) to `dest`.

    The file appears at `dest` only once complete (written beside it, then
    renamed), so a reader never sees half a droplet.
    """
    tree = BuildTree()
    for top, source in (("app", Path(app_dir)), ("deps", Path(deps_dir))):
        if source.is_dir():
            tree.add_directory(source, top)
    return write_droplet_file(tree, info, dest, mtime=mtime)


def write_droplet_file(
    tree: BuildTree, info: StagingInfo, dest: str | os.PathLike[str], *, mtime: int = 0
) -> DropletFile:
    """Write the droplet of `tree` to the file `dest`, whole or not at all."""
    dest_path = Path(dest)
    tmp = dest_path.with_name(f".{dest_path.name}.partial")
    try:
        with open(tmp, "wb") as raw:
            sha256, size = write_droplet(tree, info, raw, mtime=mtime)
        os.replace(tmp, dest_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return DropletFile(path=str(dest_path), sha256=sha256, size=size)


def read_staging_info(droplet: str | os.PathLike[str] | bytes) -> StagingInfo:
    """Read `staging_info.yml` back from a droplet (a path, or its bytes).

    Only that one entry is read, bounded in size and parsed with
    `yaml.safe_load`; anything odd raises `BlobCorrupt`.
    """
    try:
        if isinstance(droplet, (bytes, bytearray, memoryview)):
            tf = tarfile.open(fileobj=io.BytesIO(bytes(droplet)), mode="r|*")  # noqa: SIM115 - closed below
        else:
            tf = tarfile.open(droplet, mode="r|*")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise BlobNotFound(f"Droplet {droplet!s} does not exist") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BlobCorrupt(f"Droplet is not a readable tar archive: {exc}") from None
    try:
        with tf:
            for member in tf:
                if member.name.removeprefix("./") != STAGING_INFO:
                    continue
                if not member.isreg() or member.size > MAX_STAGING_INFO_BYTES:
                    raise BlobCorrupt(f"Droplet's {STAGING_INFO} is not a small regular file")
                fh = tf.extractfile(member)
                assert fh is not None
                return _parse_staging_info(fh.read(MAX_STAGING_INFO_BYTES + 1))
    except (tarfile.TarError, OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise BlobCorrupt(f"Droplet is not a readable tar archive: {exc}") from None
    raise BlobCorrupt(f"Droplet has no {STAGING_INFO}")


def _parse_staging_info(data: bytes) -> StagingInfo:
    try:
        doc = yaml.safe_load(data.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BlobCorrupt(f"Droplet's {STAGING_INFO} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise BlobCorrupt(f"Droplet's {STAGING_INFO} is not a mapping")
    detected, start = doc.get("detected_buildpack"), doc.get("start_command")
    if not isinstance(detected, str) or not isinstance(start, str):
        raise BlobCorrupt(f"Droplet's {STAGING_INFO} lacks detected_buildpack or start_command")
    bps = doc.get("buildpacks") or []
    procs = doc.get("process_types") or {}
    try:
        buildpacks = tuple((str(b["name"]), str(b["version"])) for b in bps)
        process_types = tuple((str(k), str(v)) for k, v in procs.items())
    except (TypeError, KeyError, AttributeError):
        raise BlobCorrupt(f"Droplet's {STAGING_INFO} has malformed buildpacks or process_types") from None
    return StagingInfo(detected, start, buildpacks, process_types)
