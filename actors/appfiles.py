"""App bits: the files of an app, as the CLI gathers them and as the platform
packs and unpacks them.

This module owns three things:

* gathering (`scan_app`): walk an app directory, or read a ``.zip`` (``.jar``,
  ``.war``) or ``.tar``/``.tgz`` archive given as the path, honouring
  ``.cfignore``, and describe each file as an `AppFile` (relative POSIX path,
  SHA1, size, mode) with its bytes read on demand;
* the package format (`write_package`, `build_package`): a deterministic
  gzipped tar of regular files only;
* unpacking (`unpack_package`, `iter_package`, `extract_package`): reading a package back from
  the blob store, refusing anything hostile.

Safety rules, the same for directories, archives and packages: no entry may
name a path outside the app (absolute names, drive letters, ``..``
components), no device files, FIFOs or sockets, no duplicate or conflicting
entries, no file over `MAX_FILE_BYTES`, no app over `MAX_APP_BYTES`.

Symlinks: a symlink whose target resolves *inside* the app is stored as the
content it points to (a regular file at the link's path; a directory link is
walked like a directory), so packages and droplets never contain links. A
symlink that resolves outside the app, dangles, or loops is refused with
`UnsafePath`, unless ``.cfignore`` excludes it first. Packages themselves
must hold no links at all: `extract_package` refuses them.

Always skipped (as cf does; these win over ``!`` rules in ``.cfignore``):
``.cfignore``, ``/manifest.yml``, ``.gitignore``, ``.git``, ``.hg``, ``.svn``,
``_darcs``, ``.DS_Store``. Empty directories are not carried.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from actors.tarstream import TarStream
from protocol.errors import BlobCorrupt, FileTooLarge, PathEmpty, PathNotFound, UnsafePath
from protocol.records import AppFile

__all__ = [
    "DEFAULT_IGNORES",
    "MAX_APP_BYTES",
    "MAX_APP_FILES",
    "MAX_FILE_BYTES",
    "AppBits",
    "AppBudget",
    "AppFile",
    "CfIgnore",
    "build_package",
    "clean_name",
    "extract_package",
    "iter_package",
    "scan_app",
    "scan_small_app",
    "scan_upload",
    "unpack_package",
    "write_package",
    "write_package_from",
]

MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_APP_BYTES = 1024 * 1024 * 1024
# Empty files cost nothing against MAX_APP_BYTES; this bounds their number.
MAX_APP_FILES = 100_000
# Directories nest at most this deep: deeper trees are refused by name, long
# before a path outgrows the filesystem's limit.
MAX_DEPTH = 100

DEFAULT_IGNORES = (
    ".cfignore",
    "/manifest.yml",
    ".gitignore",
    ".git",
    ".hg",
    ".svn",
    "_darcs",
    ".DS_Store",
)

_CHUNK = 1024 * 1024
# What reading a damaged archive can raise (gzip/zlib errors are not TarError).
_READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError, UnicodeDecodeError)
# As many hops as Linux follows before ELOOP.
_MAX_LINK_HOPS = 40


def _normal_mode(mode: int) -> int:
    # Only "executable or not" survives, as in git: odd modes (0o000, setuid)
    # would otherwise break staging or leak privileges into the container.
    return 0o755 if mode & 0o100 else 0o644


# --- .cfignore ---------------------------------------------------------------


class CfIgnore:
    """gitignore-style rules: ``*``, ``?``, ``[...]``, ``**``, a leading ``/``
    anchors, a trailing ``/`` matches directories only, ``!`` re-includes,
    ``#`` comments. As in git, nothing under an ignored directory can be
    re-included."""

    def __init__(self, lines: Iterable[str] = ()) -> None:
        self._rules: list[tuple[re.Pattern[str], bool, bool]] = []
        for line in list(lines) + list(DEFAULT_IGNORES):
            self._add(line)

    @classmethod
    def from_text(cls, text: str) -> CfIgnore:
        return cls(text.splitlines())

    def _add(self, line: str) -> None:
        rule = _rule(line)
        if rule is not None:
            self._rules.append(rule)

    def _matches(self, path: str, is_dir: bool) -> bool:
        ignored = False
        for regex, negate, dir_only in self._rules:
            if dir_only and not is_dir:
                continue
            if regex.fullmatch(path):
                ignored = not negate
        return ignored

    def ignored(self, path: str, is_dir: bool = False) -> bool:
        """Is the relative POSIX `path` (or anything above it) ignored?"""
        parts = path.split("/")
        for i in range(1, len(parts)):
            if self._matches("/".join(parts[:i]), True):
                return True
        return self._matches(path, is_dir)


@functools.lru_cache(maxsize=1024)
def _rule(line: str) -> tuple[re.Pattern[str], bool, bool] | None:
    """A .cfignore line as (pattern, negate, dir_only), or None for a blank
    line or a comment. Cached: every push reads the default rules, and an
    app's own .cfignore rarely changes between its pushes."""
    line = line.rstrip("\r\n")
    if not line.strip() or line.startswith("#"):
        return None
    line = line.rstrip(" ")
    negate = line.startswith("!")
    if negate or line.startswith(("\\#", "\\!")):
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.lstrip("/")
    body = _glob_to_regex(line)
    regex = body if anchored else f"(?:.*/)?{body}"
    return re.compile(regex, re.DOTALL), negate, dir_only


def _glob_to_regex(glob: str) -> str:
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = glob.find("]", i + 2 if glob.startswith("[!", i) or glob.startswith("[^", i) else i + 1)
            if j == -1:
                out.append(re.escape(c))
                i += 1
                continue
            inner = glob[i + 1 : j]
            if inner[:1] in ("!", "^"):
                inner = "^" + inner[1:].replace("\\", "\\\\")
            else:
                inner = inner.replace("\\", "\\\\")
            out.append(f"[{inner}]")
            i = j + 1
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


# --- entry names -------------------------------------------------------------


def clean_name(name: str, *, backslash: bool = False) -> str:
    """An archive entry name as a safe relative POSIX path ('' for the root)."""
    if "\x00" in name:
        raise UnsafePath(f"Entry name {name!r} contains a NUL byte")
    if backslash:
        # Zips written on Windows may use backslashes as separators.
        name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise UnsafePath(f"Entry {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePath(f"Entry {name[:100]!r} escapes the app directory ('..')")
    if len(parts) > MAX_DEPTH + 1:
        raise UnsafePath(f"Entry {name[:100]!r}... nests directories more than {MAX_DEPTH} deep")
    return "/".join(parts)


def _check_utf8(path: str) -> None:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafePath(f"File name {path!r} is not valid UTF-8") from None


class AppBudget:
    """Enforces the per-file and per-app size limits while gathering."""

    def __init__(self) -> None:
        self.total = 0
        self.count = 0

    def add(self, path: str, size: int) -> None:
        self.count += 1
        if self.count > MAX_APP_FILES:
            raise FileTooLarge(f"The app has over {MAX_APP_FILES} files; that is the upload limit")
        if size > MAX_FILE_BYTES:
            raise FileTooLarge(f"{path} is {size} bytes; the limit per file is {MAX_FILE_BYTES} bytes")
        self.total += size
        if self.total > MAX_APP_BYTES:
            raise FileTooLarge(f"The app is over {MAX_APP_BYTES} bytes; that is the upload limit")


def _hash_stream(read: Callable[[int], bytes], path: str) -> tuple[str, int]:
    digest = hashlib.sha1(usedforsecurity=False)
    size = 0
    while chunk := read(_CHUNK):
        size += len(chunk)
        if size > MAX_FILE_BYTES:
            raise FileTooLarge(f"{path} is over the limit per file of {MAX_FILE_BYTES} bytes")
        digest.update(chunk)
    return digest.hexdigest(), size


def _check_conflicts(paths: Iterable[str]) -> None:
    seen: set[str] = set()
    dirs: set[str] = set()
    for path in paths:
        if path in seen:
            raise UnsafePath(f"Entry {path!r} appears more than once")
        seen.add(path)
        parts = path.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    clash = seen & dirs
    if clash:
        raise UnsafePath(f"Entry {sorted(clash)[0]!r} is both a file and a directory")


# --- gathering ---------------------------------------------------------------


class AppBits:
    """The gathered files of one app. `files` is sorted by path; content is
    read from the source when asked (`read`, or `iter_contents` for one pass)."""

    def __init__(self, source: Path, kind: str, files: list[AppFile], origin: dict[str, str]) -> None:
        self.source = source
        self.kind = kind  # "directory", "zip" or "tar"
        self.files: tuple[AppFile, ...] = tuple(files)
        # path -> real file (directory) or archive member name (archives)
        self._origin = origin
        self._by_path = {f.path: f for f in files}

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def read(self, path: str) -> bytes:
        """The bytes of one gathered file."""
        if path not in self._by_path:
            raise PathNotFound(f"{path} is not one of the app's files")
        for _, data in self.iter_contents([path]):
            return data
        raise PathNotFound(path)  # pragma: no cover - iter_contents yields it

    @contextlib.contextmanager
    def opened(self) -> Iterator[Callable[[AppFile], contextlib.AbstractContextManager[IO[bytes]]]]:
        """While open, a function that opens one gathered file's content as a
        stream (for `write_package_from`): zip members and directory files
        are read in chunks; a tar's members are read whole (tar has no index)."""
        if self.kind == "zip":
            with _open_zip(self.source) as zf:

                @contextlib.contextmanager
                def member(f: AppFile) -> Iterator[IO[bytes]]:
                    try:
                        with zf.open(self._origin[f.path]) as fh:
                            yield fh
                    except _READ_ERRORS as exc:
                        raise UnsafePath(f"{self.source} is not a readable archive: {exc}") from None

                yield member
        elif self.kind == "directory":

            @contextlib.contextmanager
            def regular(f: AppFile) -> Iterator[IO[bytes]]:
                try:
                    fd = os.open(self._origin[f.path], os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                except FileNotFoundError:
                    raise PathNotFound(f"{f.path} was removed while pushing") from None
                except OSError as exc:
                    raise PathNotFound(f"Cannot read {f.path}: {exc.strerror}") from None
                with os.fdopen(fd, "rb") as fh:
                    yield fh

            yield regular
        else:

            def whole(f: AppFile) -> contextlib.AbstractContextManager[IO[bytes]]:
                return contextlib.nullcontext(io.BytesIO(self.read(f.path)))

            yield whole

    def iter_contents(self, paths: Iterable[str] | None = None) -> Iterator[tuple[AppFile, bytes]]:
        """(file, bytes) for `paths` (default: all), in one pass over the source."""
        wanted = [self._by_path[p] for p in paths] if paths is not None else list(self.files)
        if self.kind == "directory":
            for f in wanted:
                yield f, _read_regular(Path(self._origin[f.path]), f.path)
        elif self.kind == "zip":
            with _open_zip(self.source) as zf:
                for f in wanted:
                    try:
                        with zf.open(self._origin[f.path]) as fh:
                            data = _bounded(fh.read, f.path)
                    except _READ_ERRORS as exc:
                        raise UnsafePath(f"{self.source} is not a readable archive: {exc}") from None
                    yield f, data
        else:
            by_member: dict[str, list[AppFile]] = {}
            for f in wanted:
                by_member.setdefault(self._origin[f.path], []).append(f)
            order = {p: i for i, p in enumerate(f.path for f in wanted)}
            found: list[tuple[AppFile, bytes]] = []
            with _open_tar(self.source) as tf:
                try:
                    for member in tf:
                        if member.name in by_member and member.isreg():
                            member_fh = tf.extractfile(member)
                            assert member_fh is not None
                            data = _bounded(member_fh.read, member.name)
                            found.extend((f, data) for f in by_member.pop(member.name))
                except _READ_ERRORS as exc:
                    raise UnsafePath(f"{self.source} is not a readable archive: {exc}") from None
            if by_member:
                raise PathNotFound(f"{self.source} changed while pushing: {sorted(by_member)[0]} is gone")
            found.sort(key=lambda item: order[item[0].path])
            yield from found


def _bounded(read: Callable[[int], bytes], path: str) -> bytes:
    # In chunks: one read of the whole limit would reserve 256 MB per file.
    chunks = []
    size = 0
    while chunk := read(_CHUNK):
        size += len(chunk)
        if size > MAX_FILE_BYTES:
            raise FileTooLarge(f"{path} is over the limit per file of {MAX_FILE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _read_regular(real: Path, path: str) -> bytes:
    try:
        # O_NOFOLLOW: a file swapped for a symlink after the scan is not read.
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise PathNotFound(f"{path} was removed while pushing") from None
    except OSError as exc:
        raise PathNotFound(f"Cannot read {path}: {exc.strerror}") from None
    try:
        return _bounded(lambda n: os.read(fd, n), path)
    finally:
        os.close(fd)


class _TooBig(Exception):
    """A scan asked to stay small went past its bound."""


#: What `scan_small_app` takes on: a directory of at most this many entries
#: (files, directories and links) and this many bytes.
SMALL_APP_ENTRIES = 64
SMALL_APP_BYTES = 256 * 1024


def scan_small_app(path: str | os.PathLike[str]) -> AppBits | None:
    """What `scan_app` gives, when `path` is a small directory (at most
    `SMALL_APP_ENTRIES` entries and `SMALL_APP_BYTES` bytes); None when it is
    not (an archive, or a bigger app), without reading any file's content.
    Small enough to do where asked, rather than on a worker thread."""
    try:
        return scan_app(path, small=True)
    except _TooBig:
        return None


def scan_app(path: str | os.PathLike[str], *, small: bool = False) -> AppBits:
    """Gather the app at `path`: a directory, or a zip/jar/war/tar/tgz file."""
    source = Path(path)
    if not os.path.lexists(source):
        raise PathNotFound(f"The specified path '{source}' does not exist.")
    try:
        real = source.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        raise PathNotFound(f"The specified path '{source}' does not exist.") from None
    if real.is_dir():
        bits = _scan_directory(source, real, small)
    elif small:
        raise _TooBig()
    elif real.is_file():
        if zipfile.is_zipfile(real):
            bits = _scan_zip(real)
        elif _is_tar(real):
            bits = _scan_tar(real)
        else:
            raise PathNotFound(f"The specified path '{source}' is not a directory, zip or tar archive")
    else:
        raise UnsafePath(f"The specified path '{source}' is not a directory or regular file")
    if not bits.files:
        raise PathEmpty(f"No app files found in '{source}'")
    return bits


def scan_upload(path: str | os.PathLike[str]) -> AppBits:
    """Gather an uploaded zip (the `bits` of a package upload): the same
    safety rules as `scan_app`, zip only, and an empty one is allowed (every
    file may have matched the resource pool)."""
    source = Path(path)
    if not zipfile.is_zipfile(source):
        raise UnsafePath("the bits must be a zip archive")
    return _scan_zip(source)


def _scan_directory(source: Path, root: Path, small: bool = False) -> AppBits:
    ignore = CfIgnore()
    entries_left = SMALL_APP_ENTRIES if small else -1
    cfignore = root / ".cfignore"
    if cfignore.is_file() and not cfignore.is_symlink():
        ignore = CfIgnore.from_text(cfignore.read_text(encoding="utf-8", errors="replace"))
    budget = AppBudget()
    found: list[tuple[str, str, os.stat_result]] = []

    def entries_of(real_dir: Path, prefix: str) -> Iterator[os.DirEntry[str]]:
        try:
            with os.scandir(real_dir) as listing:
                return iter(sorted(listing, key=lambda e: e.name))
        except OSError as exc:
            raise PathNotFound(f"Cannot read directory {prefix or '.'}: {exc.strerror}") from None

    # Depth first, in name order, without recursion: (entries, prefix, chain).
    stack = [(entries_of(root, ""), "", frozenset({root}))]
    while stack:
        entries, prefix, chain = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        rel = prefix + entry.name
        _check_utf8(rel)
        if entries_left == 0:
            raise _TooBig()
        entries_left -= 1
        if entry.is_symlink():
            # Ignore rules first (a user may .cfignore a bad link); following
            # the link only to learn if it is a directory reads nothing.
            if ignore.ignored(rel, os.path.isdir(entry.path)):
                continue
            target = Path(os.path.realpath(entry.path))
            if target != root and root not in target.parents:
                raise UnsafePath(f"Symlink {rel} points outside the app directory")
            try:
                st = target.stat()
            except OSError:
                raise UnsafePath(f"Symlink {rel} points to a missing file") from None
        else:
            target = Path(entry.path)
            st = entry.stat(follow_symlinks=False)
        is_dir = stat.S_ISDIR(st.st_mode)
        if ignore.ignored(rel, is_dir):
            continue
        if is_dir:
            if target in chain:
                raise UnsafePath(f"Symlink {rel} makes a loop")
            if len(stack) >= MAX_DEPTH:
                raise UnsafePath(f"{rel[:100]}... nests directories more than {MAX_DEPTH} deep")
            stack.append((entries_of(target, rel + "/"), rel + "/", chain | {target}))
        elif stat.S_ISREG(st.st_mode):
            budget.add(rel, st.st_size)
            if small and budget.total > SMALL_APP_BYTES:
                raise _TooBig()
            found.append((rel, str(target), st))
        else:
            raise UnsafePath(f"{rel} is not a regular file (device, FIFO or socket)")

    files: list[AppFile] = []
    origin: dict[str, str] = {}
    for rel, real, st in found:
        try:
            fd = os.open(real, os.O_RDONLY)
        except OSError as exc:
            raise PathNotFound(f"Cannot read {rel}: {exc.strerror}") from None
        try:
            # os.read on the descriptor: a file object would cost more than
            # hashing a small file does.
            sha1, size = _hash_stream(lambda n, fd=fd: os.read(fd, n), rel)  # type: ignore[misc]
        finally:
            os.close(fd)
        files.append(AppFile(rel, sha1, size, _normal_mode(st.st_mode)))
        origin[rel] = real
    # Sizes may have grown since stat(): check the budget on what was hashed.
    final = AppBudget()
    for f in files:
        final.add(f.path, f.size)
    return AppBits(source, "directory", files, origin)


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, tarfile.TarError, EOFError):
        return False


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafePath(f"{path} is not a readable zip archive: {exc}") from None


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:*", encoding="utf-8", errors="strict")
    except _READ_ERRORS as exc:
        raise UnsafePath(f"{path} is not a readable tar archive: {exc}") from None


@dataclass(slots=True)
class _Entry:
    """An archive member, classified."""

    name: str  # cleaned relative path
    member: str  # name in the archive
    kind: str  # "file", "dir" or "link"
    size: int = 0
    mode: int = 0o644
    link: str | None = None  # cleaned archive path the link points to


def _resolve_links(entries: list[_Entry]) -> dict[str, _Entry]:
    """Map each file or inside-pointing link to the regular-file entry it reads."""
    by_name = {e.name: e for e in entries}
    dirs = {e.name for e in entries if e.kind == "dir"}
    for e in entries:
        parts = e.name.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    resolved: dict[str, _Entry] = {}
    for e in entries:
        if e.kind == "dir":
            continue
        current = e
        for _ in range(_MAX_LINK_HOPS):
            if current.kind != "link":
                break
            assert current.link is not None
            if current.link in dirs:
                raise UnsafePath(f"Link {e.name} points to a directory; only links to files are supported")
            nxt = by_name.get(current.link)
            if nxt is None:
                raise UnsafePath(f"Link {e.name} points to a missing file {current.link!r}")
            current = nxt
        else:
            raise UnsafePath(f"Link {e.name} makes a loop")
        resolved[e.name] = current
    return resolved


def _link_target(name: str, target: str, *, relative: bool, backslash: bool = False) -> str:
    """The cleaned archive path a link names, or `UnsafePath` if it escapes."""
    if backslash:
        target = target.replace("\\", "/")
    if target.startswith("/") or re.match(r"[A-Za-z]:", target):
        raise UnsafePath(f"Link {name} points outside the app ({target!r} is absolute)")
    base = name.split("/")[:-1] if relative else []
    parts: list[str] = list(base)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafePath(f"Link {name} points outside the app ({target!r})")
            parts.pop()
        else:
            parts.append(part)
    if not parts:
        raise UnsafePath(f"Link {name} points to the app root")
    return "/".join(parts)


def _finish_archive(
    source: Path,
    kind: str,
    entries: list[_Entry],
    read_all: Callable[[set[str]], Iterator[tuple[str, Callable[[int], bytes]]]],
) -> AppBits:
    """Shared tail of zip and tar gathering: ignore rules, links, limits, hashes.

    `read_all(members)` yields each member with a `read(n)` of its content
    (valid until the next is yielded), so hashing streams: a big file is
    never held in memory."""
    _check_conflicts(e.name for e in entries if e.kind != "dir")
    by_name = {e.name: e for e in entries}
    ignore = CfIgnore()
    cfignore = by_name.get(".cfignore")
    if cfignore is not None and cfignore.kind == "file":
        try:
            for _, read in read_all({cfignore.member}):
                ignore = CfIgnore.from_text(_bounded(read, ".cfignore").decode("utf-8", errors="replace"))
        except _READ_ERRORS as exc:
            raise UnsafePath(f"{source} is not a readable archive: {exc}") from None
    kept = [e for e in entries if e.kind != "dir" and not ignore.ignored(e.name)]
    resolved = _resolve_links(entries)
    budget = AppBudget()
    for e in kept:
        budget.add(e.name, resolved[e.name].size)
    wanted = {resolved[e.name].member for e in kept}
    hashes: dict[str, tuple[str, int]] = {}
    try:
        for member, read in read_all(wanted):
            hashes[member] = _hash_stream(read, member)
    except _READ_ERRORS as exc:
        raise UnsafePath(f"{source} is not a readable archive: {exc}") from None
    files: list[AppFile] = []
    origin: dict[str, str] = {}
    for e in sorted(kept, key=lambda e: e.name):
        target = resolved[e.name]
        sha1, size = hashes[target.member]
        files.append(AppFile(e.name, sha1, size, _normal_mode(target.mode)))
        origin[e.name] = target.member
    return AppBits(source, kind, files, origin)


def _scan_zip(path: Path) -> AppBits:
    entries: list[_Entry] = []
    with _open_zip(path) as zf:
        for info in zf.infolist():
            name = clean_name(info.filename, backslash=True)
            unix = info.external_attr >> 16
            ftype = stat.S_IFMT(unix)
            if info.flag_bits & 0x1:
                raise UnsafePath(f"Entry {name} is encrypted")
            if info.is_dir() or ftype == stat.S_IFDIR:
                if name:
                    entries.append(_Entry(name, info.filename, "dir"))
                continue
            if not name:
                raise UnsafePath(f"Entry {info.filename!r} has no name")
            if ftype == stat.S_IFLNK:
                if info.file_size > 4096:
                    raise UnsafePath(f"Link {name} has an implausibly long target")
                target = zf.read(info).decode("utf-8", errors="strict")
                link = _link_target(name, target, relative=True, backslash=True)
                entries.append(_Entry(name, info.filename, "link", link=link))
            elif ftype in (0, stat.S_IFREG):
                mode = unix & 0o777 if unix else 0o644
                entries.append(_Entry(name, info.filename, "file", info.file_size, mode))
            else:
                raise UnsafePath(f"Entry {name} is not a regular file (device, FIFO or socket)")

        def read_all(members: set[str]) -> Iterator[tuple[str, Callable[[int], bytes]]]:
            for m in sorted(members):
                try:
                    with zf.open(m) as fh:
                        yield m, fh.read
                except _READ_ERRORS as exc:
                    raise UnsafePath(f"{path} is not a readable archive: {exc}") from None

        return _finish_archive(path, "zip", entries, read_all)


def _tar_entries(tf: tarfile.TarFile) -> list[_Entry]:
    entries: list[_Entry] = []
    for m in tf.getmembers():
        name = clean_name(m.name)
        if m.isdir():
            if name:
                entries.append(_Entry(name, m.name, "dir"))
            continue
        if not name:
            raise UnsafePath(f"Entry {m.name!r} has no name")
        if m.isreg():
            entries.append(_Entry(name, m.name, "file", m.size, m.mode))
        elif m.issym():
            entries.append(_Entry(name, m.name, "link", link=_link_target(name, m.linkname, relative=True)))
        elif m.islnk():
            entries.append(_Entry(name, m.name, "link", link=_link_target(name, m.linkname, relative=False)))
        else:
            raise UnsafePath(f"Entry {name} is not a regular file (device, FIFO or socket)")
    return entries


def _scan_tar(path: Path) -> AppBits:
    with _open_tar(path) as tf:
        try:
            entries = _tar_entries(tf)
        except _READ_ERRORS as exc:
            raise UnsafePath(f"{path} is not a readable archive: {exc}") from None
        # Hard links name their target by archive name, which may differ from
        # the cleaned name ("./a" vs "a"): map cleaned names to member names.
        members = {e.member: e for e in entries}

        def read_all(wanted: set[str]) -> Iterator[tuple[str, Callable[[int], bytes]]]:
            try:
                for m in tf.getmembers():
                    if m.name in wanted and m.name in members and m.isreg():
                        fh = tf.extractfile(m)
                        assert fh is not None
                        yield m.name, fh.read
            except _READ_ERRORS as exc:
                raise UnsafePath(f"{path} is not a readable archive: {exc}") from None

        return _finish_archive(path, "tar", entries, read_all)


# --- the package format --------------------------------------------------------


def write_package(
    files: Iterable[AppFile],
    read: Callable[[str], bytes],
    fileobj: BinaryIO,
    *,
    mtime: int = 0,
) -> None:
    """Write the package (a gzipped tar) of `files` to `fileobj`; `read(path)`
    supplies each file's bytes (see `write_package_from`)."""

    def open_file(f: AppFile) -> contextlib.AbstractContextManager[IO[bytes]]:
        return contextlib.nullcontext(io.BytesIO(read(f.path)))

    write_package_from(files, open_file, fileobj, mtime=mtime)


def write_package_from(
    files: Iterable[AppFile],
    open_file: Callable[[AppFile], contextlib.AbstractContextManager[IO[bytes]]],
    fileobj: BinaryIO,
    *,
    mtime: int = 0,
) -> None:
    """Write the package (a gzipped tar) of `files` to `fileobj`, streaming.

    `open_file(f)` opens each file's content (an upload's member, a resource
    pool file); it is copied in chunks, never held whole. Content that does
    not match the file's SHA1 and size raises `BlobCorrupt`, so a package
    never disagrees with the metadata kept about it. Entries are sorted, with
    fixed mtime and owner: the same files always give the same bytes.
    """
    ordered = sorted(files, key=lambda f: f.path)
    for f in ordered:
        if clean_name(f.path) != f.path or not f.path:
            raise UnsafePath(f"Package entry {f.path!r} is not a clean relative path")
    _check_conflicts(f.path for f in ordered)
    budget = AppBudget()
    for f in ordered:
        budget.add(f.path, f.size)
    # Level 6 (gzip's own default) costs far less CPU than 9 for a few percent.
    tar = TarStream(fileobj, mtime, 6)
    for f in ordered:
        with open_file(f) as source:
            tar.file(f.path, _normal_mode(f.mode), f.size, _checked(source, f))
    tar.close()


def _checked(source: IO[bytes], f: AppFile) -> Iterator[bytes]:
    """`source`'s content in chunks, which must be `f`'s (its size and SHA1): else `BlobCorrupt`."""
    digest = hashlib.sha1(usedforsecurity=False)
    size = 0
    while chunk := source.read(min(_CHUNK, f.size - size + 1)):
        size += len(chunk)
        if size > f.size:
            raise BlobCorrupt(f"Content for {f.path} does not match its SHA1 {f.sha1}")
        digest.update(chunk)
        yield chunk
    if size < f.size:
        raise BlobCorrupt(f"Content for {f.path} is shorter than its size {f.size}")
    if digest.hexdigest() != f.sha1:
        raise BlobCorrupt(f"Content for {f.path} does not match its SHA1 {f.sha1}")


def build_package(files: Iterable[AppFile], read: Callable[[str], bytes], *, mtime: int = 0) -> bytes:
    """The package of `files` as bytes (see `write_package`)."""
    buf = io.BytesIO()
    write_package(files, read, buf, mtime=mtime)
    return buf.getvalue()


def _open_package(package: str | os.PathLike[str] | bytes) -> tarfile.TarFile:
    try:
        if isinstance(package, (bytes, bytearray, memoryview)):
            return tarfile.open(fileobj=io.BytesIO(bytes(package)), mode="r:*", encoding="utf-8", errors="strict")
        return tarfile.open(package, mode="r:*", encoding="utf-8", errors="strict")
    except FileNotFoundError:
        raise PathNotFound(f"Package {package!s} does not exist") from None
    except _READ_ERRORS as exc:
        raise BlobCorrupt(f"Package is not a readable tar archive: {exc}") from None


def _package_members(tf: tarfile.TarFile) -> list[tuple[str, tarfile.TarInfo]]:
    """Every member, checked before anything is written: (clean name, member)."""
    try:
        members = tf.getmembers()
    except _READ_ERRORS as exc:
        raise BlobCorrupt(f"Package is not a readable tar archive: {exc}") from None
    out: list[tuple[str, tarfile.TarInfo]] = []
    budget = AppBudget()
    for m in members:
        name = clean_name(m.name)
        if m.isdir():
            continue
        if not m.isreg():
            kind = "link" if (m.issym() or m.islnk()) else "special file"
            raise UnsafePath(f"Package entry {m.name!r} is a {kind}; packages hold regular files only")
        if not name:
            raise UnsafePath(f"Package entry {m.name!r} has no name")
        budget.add(name, m.size)
        out.append((name, m))
    _check_conflicts(name for name, _ in out)
    return out


def unpack_package(package: str | os.PathLike[str] | bytes) -> Iterator[tuple[str, int, Iterator[bytes]]]:
    """Each regular file of a package, in the package's order, as (name,
    normalised mode, its bytes in chunks), once every entry has been checked:
    a hostile entry (``..``, absolute, link, device) raises `UnsafePath`
    before the first file is given. Reading an entry's chunks raises
    `BlobCorrupt` if it is unreadable, truncated or longer than its header
    says; read each one to its end before asking for the next."""
    with _open_package(package) as tf:
        for name, member in _package_members(tf):
            fh = tf.extractfile(member)
            assert fh is not None
            yield name, _normal_mode(member.mode), _member_chunks(fh, name, member.size)


def _member_chunks(fh: IO[bytes], name: str, expected: int) -> Iterator[bytes]:
    size = 0
    while chunk := _read_package_chunk(fh, name):
        size += len(chunk)
        if size > expected:
            raise BlobCorrupt(f"Package entry {name} is longer than its header says")
        yield chunk
    if size != expected:
        raise BlobCorrupt(f"Package entry {name} is truncated")


def iter_package(package: str | os.PathLike[str] | bytes) -> Iterator[tuple[AppFile, bytes]]:
    """Each (file, bytes) of a package, after checking every entry is safe."""
    for name, mode, chunks in unpack_package(package):
        data = b"".join(chunks)
        yield AppFile(name, hashlib.sha1(data, usedforsecurity=False).hexdigest(), len(data), mode), data


def extract_package(package: str | os.PathLike[str] | bytes, dest_dir: str | os.PathLike[str]) -> list[AppFile]:
    """Unpack a package into `dest_dir` (absent or empty) and list its files.

    Every entry is checked before the first byte is written; a hostile entry
    (``..``, absolute, link, device) raises `UnsafePath` and writes nothing.
    Truncated or undecodable data raises `BlobCorrupt` (`dest_dir` may then
    hold part of the package: discard it).
    """
    dest = Path(dest_dir)
    if dest.is_symlink():
        raise UnsafePath(f"Destination {dest} is a symlink")
    dest.mkdir(parents=True, exist_ok=True)
    with os.scandir(dest) as listing:
        occupied = next(listing, None) is not None
    if occupied:
        raise UnsafePath(f"Destination {dest} is not empty")
    files: list[AppFile] = []
    for name, mode, chunks in unpack_package(package):
        target = dest.joinpath(*name.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        digest = hashlib.sha1(usedforsecurity=False)
        size = 0
        with os.fdopen(os.open(target, flags, mode), "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                digest.update(chunk)
                out.write(chunk)
        # The umask may have narrowed the mode given to open().
        os.chmod(target, mode)
        files.append(AppFile(name, digest.hexdigest(), size, mode))
    return files


def _read_package_chunk(fh: IO[bytes], name: str) -> bytes:
    # Kept apart from the writes so a full disk is not reported as corruption.
    try:
        return fh.read(_CHUNK)
    except _READ_ERRORS as exc:
        raise BlobCorrupt(f"Package entry {name} cannot be read: {exc}") from None
