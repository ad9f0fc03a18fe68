"""The droplet: what staging produces and running cells start from.

A droplet is a gzipped tar, laid out like Diego's:

    staging_info.yml      detected_buildpack, start_command, buildpacks,
                          process_types (first entry, so it reads fast)
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

import gzip
import hashlib
import io
import os
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import yaml

from protocol.errors import BlobCorrupt, BlobNotFound, UnsafePath

__all__ = [
    "MAX_STAGING_INFO_BYTES",
    "STAGING_INFO",
    "DropletFile",
    "StagingInfo",
    "build_droplet",
    "read_staging_info",
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

    def flush(self) -> None:
        self.raw.flush()


def _staging_info_yaml(info: StagingInfo) -> bytes:
    doc = {
        "detected_buildpack": info.detected_buildpack,
        "start_command": info.start_command,
        "buildpacks": [{"name": n, "version": v} for n, v in info.buildpacks],
        "process_types": dict(info.process_types),
    }
    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False).encode("utf-8")


def _dir_info(name: str, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_tree(tf: tarfile.TarFile, root: Path, arc_root: str, mtime: int) -> None:
    """Add `root` as `arc_root/`, depth first, names sorted at every level."""
    tf.addfile(_dir_info(arc_root, mtime))
    if not root.exists():
        return
    with os.scandir(root) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        arcname = f"{arc_root}/{entry.name}"
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePath(f"{arcname} is a symlink; droplets hold regular files only")
        if stat.S_ISDIR(st.st_mode):
            _add_tree(tf, Path(entry.path), arcname, mtime)
        elif stat.S_ISREG(st.st_mode):
            info = tarfile.TarInfo(arcname)
            info.size = st.st_size
            info.mode = 0o755 if st.st_mode & 0o100 else 0o644
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(entry.path, "rb") as fh:
                tf.addfile(info, fh)
        else:
            raise UnsafePath(f"{arcname} is not a regular file (device, FIFO or socket)")


def build_droplet(
    app_dir: str | os.PathLike[str],
    deps_dir: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    info: StagingInfo,
    *,
    mtime: int = 0,
) -> DropletFile:
    """Write the droplet of `app_dir` and `deps_dir` (may be absent) to `dest`.

    The file appears at `dest` only once complete (written beside it, then
    renamed), so a reader never sees half a droplet.
    """
    dest_path = Path(dest)
    tmp = dest_path.with_name(f".{dest_path.name}.partial")
    try:
        with open(tmp, "wb") as raw:
            sink = _HashingWriter(raw)
            with (
                gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=mtime, compresslevel=_COMPRESS_LEVEL) as gz,
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tf,
            ):
                data = _staging_info_yaml(info)
                si = tarfile.TarInfo(STAGING_INFO)
                si.size = len(data)
                si.mode = 0o644
                si.mtime = mtime
                si.uname = si.gname = ""
                tf.addfile(si, io.BytesIO(data))
                _add_tree(tf, Path(app_dir), "app", mtime)
                _add_tree(tf, Path(deps_dir), "deps", mtime)
                tf.addfile(_dir_info("logs", mtime))
                tf.addfile(_dir_info("tmp", mtime))
        os.replace(tmp, dest_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return DropletFile(path=str(dest_path), sha256=sink.digest.hexdigest(), size=sink.size)


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
