"""A staging's file system, in memory: the build tree.

Staging unpacks the app's package, lets the buildpacks read it and write
their output beside it (``app/`` and ``deps/<i>/``, as Diego lays out a
staging container's ``/tmp``), tars the result into the droplet and throws
the tree away. Nothing of it outlives the staging and nothing else reads it,
so it lives in memory: a `BuildTree` of files and directories, and
`TreePath`, a path into it that answers the part of `pathlib.Path`'s
interface the buildpacks use (``/``, ``is_file``, ``read_text``, ``glob``,
``mkdir``, ``write_text``, ``chmod``, ...). A buildpack cannot tell the two
apart: the same code stages a real directory (`from_directory`, for tools
and tests) and a package from the blob store (`add_package`).

Files too big to keep in memory are spilled: an app file over
`spill_over` bytes, when the tree has a `spill_dir`, is written there and
read back from there (a staging of a large app runs with one, on the cell's
disk). What the buildpacks write is always small and stays in memory.

A tree's paths read as the container's (``/tmp/app/requirements.txt``).
There are no links in a tree, so `resolve()` only folds ``..`` away; a path
that climbs out of the tree names nothing in it.
"""

from __future__ import annotations

import fnmatch
import io
import os
import posixpath
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePath, PurePosixPath
from typing import IO, Any, NamedTuple

from actors.appfiles import MAX_DEPTH, AppBudget, unpack_package
from protocol.errors import UnsafePath

__all__ = ["TREE_ROOT", "BuildTree", "TreePath", "TreeStat"]

#: Where a tree's root is, as its paths read: a staging container's /tmp.
TREE_ROOT = "/tmp"
_CHUNK = 1024 * 1024

Parts = tuple[str, ...]


class TreeStat(NamedTuple):
    """What `TreePath.stat()` tells: a file's mode (with its type bits) and size."""

    st_mode: int
    st_size: int


class _File:
    """A file: its bytes, or the real file it was spilled to."""

    __slots__ = ("data", "mode", "size", "spilled")

    def __init__(self, data: bytes | None, mode: int, size: int, spilled: str | None = None) -> None:
        self.data = data
        self.mode = mode
        self.size = size
        self.spilled = spilled

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.spilled is not None
        with open(self.spilled, "rb") as fh:
            return fh.read()

    def chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            yield self.data
            return
        assert self.spilled is not None
        with open(self.spilled, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                yield chunk


class BuildTree:
    """The files and directories of one staging, by path under the root."""

    def __init__(self, spill_dir: Path | None = None, spill_over: int = 256 * 1024) -> None:
        self._files: dict[Parts, _File] = {}
        # Every directory (the root is ()) and the names in it.
        self._dirs: dict[Parts, set[str]] = {(): set()}
        self.spill_dir = spill_dir
        self.spill_over = spill_over
        self._spilled = 0

    @property
    def root(self) -> TreePath:
        return TreePath(self, ())

    def path(self, *names: str) -> TreePath:
        return self.root.joinpath(*names)

    @property
    def spilled(self) -> bool:
        """Whether any file of the tree lives on disk (in `spill_dir`)."""
        return self._spilled > 0

    # --- filling it -----------------------------------------------------------------------------

    def add_package(self, package: str | os.PathLike[str] | bytes, under: str = "app") -> None:
        """Unpack a package (its bytes or its file) under `under`, with the
        checks `actors.appfiles.unpack_package` makes: a hostile entry
        raises before anything is added, a damaged one `BlobCorrupt`."""
        base = self.path(under)
        base.mkdir(parents=True, exist_ok=True)
        for name, mode, chunks in unpack_package(package):
            self._put(base._parts + tuple(name.split("/")), mode, chunks)

    @classmethod
    def from_directory(cls, source: str | os.PathLike[str], under: str = "app", **kwargs: Any) -> BuildTree:
        """A tree holding the directory `source` under `under`."""
        tree = cls(**kwargs)
        tree.add_directory(source, under)
        return tree

    def add_directory(self, source: str | os.PathLike[str], under: str = "app") -> None:
        """Copy the directory `source` in, under `under`. Links and special
        files are refused (`UnsafePath`), as packages never hold them."""
        root = Path(source)
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a directory")
        self.path(under).mkdir(parents=True, exist_ok=True)
        budget = AppBudget()
        stack: list[tuple[Path, Parts]] = [(root, self.path(under)._parts)]
        while stack:
            real, parts = stack.pop()
            if len(parts) > MAX_DEPTH:
                raise UnsafePath(f"{'/'.join(parts[1:])[:100]}... nests directories more than {MAX_DEPTH} deep")
            with os.scandir(real) as listing:
                entries = sorted(listing, key=lambda e: e.name)
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                rel = "/".join((*parts[1:], entry.name))
                if stat.S_ISLNK(st.st_mode):
                    raise UnsafePath(f"{rel} is a symlink; staging takes regular files only")
                if stat.S_ISDIR(st.st_mode):
                    self._mkdir((*parts, entry.name))
                    stack.append((Path(entry.path), (*parts, entry.name)))
                elif stat.S_ISREG(st.st_mode):
                    budget.add(rel, st.st_size)
                    with open(entry.path, "rb") as fh:
                        self._put((*parts, entry.name), stat.S_IMODE(st.st_mode), _read_chunks(fh))
                else:
                    raise UnsafePath(f"{rel} is not a regular file")

    def _put(self, parts: Parts, mode: int, chunks: Iterable[bytes]) -> None:
        self._mkdir(parts[:-1])
        if parts in self._dirs:
            raise UnsafePath(f"{'/'.join(parts)} is both a directory and a file")
        spill: IO[bytes] | None = None
        spilled: str | None = None
        held: list[bytes] = []
        size = 0
        try:
            for chunk in chunks:
                size += len(chunk)
                if spill is None and self.spill_dir is not None and size > self.spill_over:
                    self.spill_dir.mkdir(parents=True, exist_ok=True)
                    self._spilled += 1
                    spilled = str(self.spill_dir / f"{self._spilled}")
                    spill = open(spilled, "wb")  # noqa: SIM115 - closed below
                    spill.writelines(held)
                    held = []
                if spill is not None:
                    spill.write(chunk)
                else:
                    held.append(chunk)
        finally:
            if spill is not None:
                spill.close()
        data = None if spilled is not None else b"".join(held)
        self._files[parts] = _File(data, mode, size, spilled)
        self._dirs[parts[:-1]].add(parts[-1])

    def _mkdir(self, parts: Parts) -> None:
        for depth in range(1, len(parts) + 1):
            here = parts[:depth]
            if here in self._dirs:
                continue
            if here in self._files:
                raise NotADirectoryError(f"{_shown(here)} is a file")
            self._dirs[here] = set()
            self._dirs[here[:-1]].add(here[-1])

    # --- reading it -----------------------------------------------------------------------------

    def walk(self, top: Parts) -> Iterator[tuple[Parts, _File | None]]:
        """`top` and everything below it, depth first, names sorted at every
        level: (parts, file) for a file, (parts, None) for a directory."""
        yield top, None
        for name in sorted(self._dirs.get(top, ())):
            parts = top + (name,)
            if parts in self._dirs:
                yield from self.walk(parts)
            else:
                yield parts, self._files[parts]

    def write_to(self, dest: str | os.PathLike[str]) -> None:
        """Materialise the tree under the directory `dest`."""
        out = Path(dest)
        out.mkdir(parents=True, exist_ok=True)
        for parts, entry in self.walk(()):
            target = out.joinpath(*parts)
            if entry is None:
                target.mkdir(exist_ok=True)
                continue
            with open(target, "wb") as fh:
                fh.writelines(entry.chunks())
            os.chmod(target, entry.mode)


def _read_chunks(fh: IO[bytes]) -> Iterator[bytes]:
    while chunk := fh.read(_CHUNK):
        yield chunk


def _split(text: str) -> Parts:
    """A relative path's parts as pathlib keeps them: empty and "." parts
    gone, ".." kept (until `resolve`)."""
    return tuple(p for p in text.split("/") if p and p != ".")


def _shown(parts: Parts) -> str:
    return posixpath.normpath(posixpath.join(TREE_ROOT, *parts)) if parts else TREE_ROOT


class TreePath:
    """A path in a `BuildTree`, with the part of `pathlib.Path` buildpacks use."""

    __slots__ = ("_parts", "_tree")

    def __init__(self, tree: BuildTree, parts: Parts) -> None:
        self._tree = tree
        self._parts = parts

    # --- pure path --------------------------------------------------------------------------------

    def joinpath(self, *others: str | PurePath | TreePath) -> TreePath:
        parts = self._parts
        for other in others:
            if isinstance(other, TreePath):
                parts = other._parts
                continue
            text = other.as_posix() if isinstance(other, PurePath) else str(other)
            if text.startswith("/"):
                # An absolute path: where it is as seen from the tree's root.
                parts = _split(posixpath.relpath(posixpath.normpath(text), TREE_ROOT))
            else:
                parts = parts + _split(text)
        return TreePath(self._tree, parts)

    def __truediv__(self, other: str | PurePath | TreePath) -> TreePath:
        return self.joinpath(other)

    @property
    def name(self) -> str:
        return self._parts[-1] if self._parts else ""

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def parent(self) -> TreePath:
        return TreePath(self._tree, self._parts[:-1]) if self._parts else self

    @property
    def parents(self) -> tuple[TreePath, ...]:
        return tuple(TreePath(self._tree, self._parts[:i]) for i in range(len(self._parts) - 1, -1, -1))

    def resolve(self, strict: bool = False) -> TreePath:
        parts: list[str] = []
        for part in self._parts:
            if part == ".." and parts and parts[-1] != "..":
                parts.pop()
            else:
                parts.append(part)
        resolved = TreePath(self._tree, tuple(parts))
        if strict and not resolved.exists():
            raise FileNotFoundError(str(resolved))
        return resolved

    def relative_to(self, other: TreePath) -> PurePosixPath:
        n = len(other._parts)
        if other._tree is not self._tree or self._parts[:n] != other._parts:
            raise ValueError(f"{self} is not in the subpath of {other}")
        return PurePosixPath(*self._parts[n:])

    def as_posix(self) -> str:
        return _shown(self._parts)

    def __str__(self) -> str:
        return _shown(self._parts)

    def __repr__(self) -> str:
        return f"TreePath({_shown(self._parts)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TreePath) and other._tree is self._tree and other._parts == self._parts

    def __hash__(self) -> int:
        return hash(self._parts)

    def __lt__(self, other: TreePath) -> bool:
        return self._parts < other._parts

    # --- what is there ------------------------------------------------------------------------------

    def _key(self) -> Parts | None:
        """The parts as the tree keys them, or None for a path outside it."""
        parts = self.resolve()._parts
        return None if parts[:1] == ("..",) else parts

    def _file(self) -> _File:
        key = self._key()
        entry = None if key is None else self._tree._files.get(key)
        if entry is None:
            if key is not None and key in self._tree._dirs:
                raise IsADirectoryError(str(self))
            raise FileNotFoundError(f"No such file: {self}")
        return entry

    def exists(self) -> bool:
        key = self._key()
        return key is not None and (key in self._tree._files or key in self._tree._dirs)

    def is_file(self) -> bool:
        key = self._key()
        return key is not None and key in self._tree._files

    def is_dir(self) -> bool:
        key = self._key()
        return key is not None and key in self._tree._dirs

    def is_symlink(self) -> bool:
        return False

    def stat(self) -> TreeStat:
        key = self._key()
        if key is not None and key in self._tree._dirs:
            return TreeStat(stat.S_IFDIR | 0o755, 0)
        entry = self._file()
        return TreeStat(stat.S_IFREG | entry.mode, entry.size)

    def iterdir(self) -> Iterator[TreePath]:
        key = self._key()
        if key is None or key not in self._tree._dirs:
            raise NotADirectoryError(str(self)) if self.is_file() else FileNotFoundError(str(self))
        for name in sorted(self._tree._dirs[key]):
            yield TreePath(self._tree, self._parts + (name,))

    def glob(self, pattern: str) -> Iterator[TreePath]:
        """Names in this directory matching `pattern` (one level: no ``/`` or ``**``)."""
        if "/" in pattern or "**" in pattern:
            raise NotImplementedError(f"a build tree globs one directory level, not {pattern!r}")
        if self.is_dir():
            for child in self.iterdir():
                if fnmatch.fnmatchcase(child.name, pattern):
                    yield child

    def read_bytes(self) -> bytes:
        return self._file().read()

    def read_text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self.read_bytes().decode(encoding, errors)

    def open(self, mode: str = "rb") -> IO[bytes]:
        if mode not in ("r", "rb"):
            raise ValueError(f"a build tree's files open for reading only, not {mode!r}")
        entry = self._file()
        if entry.data is not None:
            return io.BytesIO(entry.data)
        assert entry.spilled is not None
        return open(entry.spilled, "rb")

    # --- changing it -----------------------------------------------------------------------------------

    def _writable(self) -> Parts:
        key = self._key()
        if key is None or not key:
            raise PermissionError(f"{self} is outside the build tree")
        if key[:-1] not in self._tree._dirs:
            raise FileNotFoundError(f"No such directory: {self.parent}")
        if key in self._tree._dirs:
            raise IsADirectoryError(str(self))
        return key

    def write_bytes(self, data: bytes) -> int:
        key = self._writable()
        old = self._tree._files.get(key)
        self._tree._files[key] = _File(bytes(data), old.mode if old else 0o644, len(data))
        self._tree._dirs[key[:-1]].add(key[-1])
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        self.write_bytes(text.encode(encoding))
        return len(text)

    def chmod(self, mode: int) -> None:
        key = self._key()
        if key is not None and key in self._tree._dirs:
            return  # directories are 0755 in a droplet whatever they were
        self._file().mode = stat.S_IMODE(mode)

    def mkdir(self, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None:  # noqa: ARG002 - directories in a droplet are 0755
        key = self._key()
        if key is None:
            raise PermissionError(f"{self} is outside the build tree")
        tree = self._tree
        if key in tree._dirs:
            if exist_ok:
                return
            raise FileExistsError(str(self))
        if key in tree._files:
            raise FileExistsError(str(self))
        if not parents and key[:-1] not in tree._dirs:
            raise FileNotFoundError(f"No such directory: {self.parent}")
        tree._mkdir(key)
