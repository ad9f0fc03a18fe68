"""The blob store: packages and droplets as content-addressed files, and the
resource pool that lets `cf push` skip uploading files the platform already has.

Layout under ``root``::

    blobs/ab/cd/<sha256>            packages and droplets, keyed by sha256
    resource_pool/ab/cd/<sha1>      single app files, keyed by sha1 (as the CLI hashes them)

Every file is written to a ``.tmp-*`` file on the same filesystem, fsynced,
then renamed into place, so a reader sees the whole blob or none; leftovers of
a crash are removed by `open()`. Every read recomputes the hash: a mismatch is
`BlobCorrupt`, an absent file `BlobNotFound`. A failure of the store's own
disk is `BlobStoreUnavailable`; errors about the caller's paths (the source of
`put_file`, the destination of `copy_to`) pass through unchanged.

File work runs on worker threads (`actors.runtime.offload.in_thread`),
but for the operations that only look at a few small files (`SMALL_BYTES`
at most, nothing written): a lookup, a small blob read or the check that
the content of a small put is already held. Those run where they are
asked, on the loop: a hop to a thread and back costs the platform several
times what they do (about 120 us of CPU against 10-30 us, measured under
`bench push`), and a write, with its fsync, always hops.

Hooks, all injected: ``io_guard()`` is entered around every thread hop, so
a virtual clock does not jump while it is in flight; ``fault(op)`` is
awaited before each operation with one of the ``OP_*`` names below and may
raise `BlobStoreUnavailable` or sleep.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, Self, TypeVar

from actors.appfiles import AppBits, AppFile, build_package, write_package_from
from actors.runtime.offload import in_thread
from protocol.errors import BlobCorrupt, BlobNotFound, BlobStoreUnavailable
from protocol.records import BlobInfo, BlobStoreStats

__all__ = [
    "OP_DELETE",
    "OP_GET",
    "OP_HEAD",
    "OP_LIST",
    "OP_PUT",
    "SMALL_BYTES",
    "BlobInfo",
    "BlobStore",
    "BlobStoreStats",
]

OP_PUT = "blob.put"  # put_bytes, put_file, add_resources
OP_GET = "blob.get"  # get_bytes, copy_to, verify, get_resource
OP_HEAD = "blob.head"  # exists, size, match_resources
OP_DELETE = "blob.delete"  # delete
OP_LIST = "blob.list"  # keys, orphans, missing, stats

IoGuard = Callable[[], AbstractAsyncContextManager[object]]
Fault = Callable[[str], Awaitable[None]]
T = TypeVar("T")

#: An operation reading at most this many bytes (and writing nothing) runs
#: on the loop, not a worker thread (see the module's docstring).
SMALL_BYTES = 64 * 1024
# ... and looking at at most this many files.
_SMALL_FILES = 16

_TMP_PREFIX = ".tmp-"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHA1 = re.compile(r"[0-9a-f]{40}")
_CHUNK = 1 << 20


@contextlib.contextmanager
def _store_disk(what: str) -> Iterator[None]:
    """Turn an OSError of the store's own files into BlobStoreUnavailable."""
    try:
        yield
    except OSError as exc:
        raise BlobStoreUnavailable(f"{what}: {exc}") from exc


def _fanned(base: Path, key: str) -> Path:
    # Two levels of 256 keep any one directory small. One join, not three:
    # pathlib parses each, and every blob operation makes a path.
    return base / f"{key[:2]}/{key[2:4]}/{key}"


def _fsync_dir(path: Path) -> None:
    # The rename is only durable once the directory entry is.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(final: Path, write: Callable[[BinaryIO], object], *, durable: bool = True) -> None:
    """Write through `write` into a temp file beside `final`, fsync, rename into place.

    `durable=False` skips the fsyncs: for the resource pool, a cache whose
    every read verifies the file's sha1, so a copy a crash damaged is found
    and dropped, never served (the package blob holds the same bytes durably)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=final.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(final.parent)


def _verifies(path: Path, key: str, algorithm: str, chunk: int = _CHUNK) -> bool:
    """Whether the file at `path` is there and hashes to `key`."""
    digest = hashlib.new(algorithm)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        # os.read on the descriptor: a file object costs more than hashing
        # a small blob does, and most blobs checked here are small.
        while block := os.read(fd, chunk):
            digest.update(block)
    finally:
        os.close(fd)
    return digest.hexdigest() == key


def _read_whole(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        blocks = []
        while block := os.read(fd, _CHUNK):
            blocks.append(block)
        return b"".join(blocks)
    finally:
        os.close(fd)


def _held_small(path: Path, size: int | None = None) -> bool:
    """Whether a file is at `path` with at most `SMALL_BYTES` (and, if given, `size` bytes)."""
    try:
        held = path.stat().st_size
    except FileNotFoundError:
        return False
    return held <= SMALL_BYTES and (size is None or held == size)


def _read_verified(path: Path, key: str, algorithm: str, kind: str) -> bytes:
    with _store_disk(f"reading {kind} {key}"):
        try:
            data = _read_whole(path)
        except FileNotFoundError:
            raise BlobNotFound(f"{kind} {key} not found") from None
    if hashlib.new(algorithm, data).hexdigest() != key:
        raise BlobCorrupt(f"{kind} {key} does not match its {algorithm}")
    return data


def _walk(base: Path, pattern: re.Pattern[str]) -> Iterator[tuple[str, Path]]:
    """(key, path) of every well-formed entry in a fanned-out tree."""
    if not base.is_dir():
        return
    with os.scandir(base) as level1:
        for first in level1:
            if not first.is_dir(follow_symlinks=False):
                continue
            with os.scandir(first.path) as level2:
                for second in level2:
                    if not second.is_dir(follow_symlinks=False):
                        continue
                    with os.scandir(second.path) as entries:
                        for entry in entries:
                            name = entry.name
                            if (
                                pattern.fullmatch(name)
                                and name[:2] == first.name
                                and name[2:4] == second.name
                                and entry.is_file(follow_symlinks=False)
                            ):
                                yield name, Path(entry.path)


class _Hashing(io.RawIOBase):
    """A write-through to `raw` that hashes (sha256) and counts what passes."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.size += len(view)
        with _store_disk("writing blob"):
            self.raw.write(view)
        return len(view)


@contextlib.contextmanager
def _pool_file(path: Path, f: AppFile) -> Iterator[IO[bytes]]:
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise BlobNotFound(f"resource {f.sha1} for {f.path} is not in the resource pool") from None
    with fh:
        if os.fstat(fh.fileno()).st_size != f.size:
            # The request names the file at another size. If what the pool
            # holds is the file, the pool just does not hold it at that size
            # (the request's mistake); if not, the entry is corrupt.
            digest = hashlib.sha1(usedforsecurity=False)
            while chunk := fh.read(1024 * 1024):
                digest.update(chunk)
            if digest.hexdigest() != f.sha1:
                raise BlobCorrupt(f"Content for {f.path} does not match its SHA1 {f.sha1}")
            raise BlobNotFound(f"resource {f.sha1} for {f.path} is not in the resource pool at {f.size} bytes")
        yield fh


def _copy_verified(src: IO[bytes], out: BinaryIO, f: AppFile) -> None:
    digest = hashlib.sha1(usedforsecurity=False)
    size = 0
    while chunk := src.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        out.write(chunk)
    if size != f.size or digest.hexdigest() != f.sha1:
        raise BlobCorrupt(f"Content for {f.path} does not match its SHA1 {f.sha1}")


class BlobStore:
    """Content-addressed packages and droplets, plus the resource pool, on local disk."""

    def __init__(
        self,
        root: str | PathLike[str],
        *,
        io_guard: IoGuard | None = None,
        fault: Fault | None = None,
        chunk_size: int = _CHUNK,
    ) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self._root = Path(root)
        self._blobs = self._root / "blobs"
        self._pool = self._root / "resource_pool"
        self._io_guard: IoGuard = io_guard or contextlib.nullcontext
        self._fault = fault
        self._chunk = chunk_size

    @property
    def root(self) -> Path:
        return self._root

    # --- lifecycle --------------------------------------------------------

    async def open(self) -> int:
        """Create the directories and remove temp files a crash left; returns how many."""
        await self._thread(self._blobs.mkdir, parents=True, exist_ok=True)
        await self._thread(self._pool.mkdir, parents=True, exist_ok=True)
        return await self.startup_cleanup()

    async def close(self) -> None:
        """Nothing is held open between operations; here for symmetry with `open`."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def startup_cleanup(self) -> int:
        """Remove leftover ``.tmp-*`` files; returns how many were removed."""

        def clean() -> int:
            removed = 0
            for base in (self._blobs, self._pool):
                for dirpath, _dirs, files in os.walk(base):
                    for name in files:
                        if name.startswith(_TMP_PREFIX):
                            with contextlib.suppress(FileNotFoundError):
                                os.unlink(os.path.join(dirpath, name))
                                removed += 1
            return removed

        with _store_disk("cleaning temp files"):
            return await self._thread(clean)

    # --- plumbing ---------------------------------------------------------

    async def _thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async with self._io_guard():
            return await in_thread(lambda: fn(*args, **kwargs))

    async def _before(self, op: str) -> None:
        if self._fault is not None:
            await self._fault(op)

    def _blob_path(self, key: str) -> Path:
        if not isinstance(key, str) or not _SHA256.fullmatch(key):
            # Also what keeps a key from naming a path outside the store.
            raise ValueError(f"not a sha256 blob key: {key!r}")
        return _fanned(self._blobs, key)

    def _resource_path(self, sha1: str) -> Path:
        if not isinstance(sha1, str) or not _SHA1.fullmatch(sha1):
            raise ValueError(f"not a sha1 resource key: {sha1!r}")
        return _fanned(self._pool, sha1)

    # --- blobs ------------------------------------------------------------

    async def put_bytes(self, data: bytes) -> BlobInfo:
        """Store `data` under its sha256; storing the same content again is harmless."""
        await self._before(OP_PUT)
        held = self._held_already(data)
        if held is not None:
            return held
        return await self._thread(self._put_bytes_here, data)

    def _held_already(self, data: bytes) -> BlobInfo | None:
        """A small content's blob, if the store holds it whole already (here,
        not on a thread: most small puts are of content held already, the
        same app's package or droplet made again, and that is a small read)."""
        if len(data) > SMALL_BYTES:
            return None
        key = hashlib.sha256(data).hexdigest()
        final = _fanned(self._blobs, key)
        with _store_disk(f"writing blob {key}"):
            if _held_small(final, len(data)) and _verifies(final, key, "sha256", self._chunk):
                return BlobInfo(key, len(data))
        return None

    def _put_bytes_here(self, data: bytes) -> BlobInfo:
        key = hashlib.sha256(data).hexdigest()
        final = _fanned(self._blobs, key)
        with _store_disk(f"writing blob {key}"):
            # Content addressing makes a second write of the same bytes
            # redundant, unless the stored copy no longer verifies: then
            # the rename over it is what heals it.
            if not _verifies(final, key, "sha256", self._chunk):
                _write_atomic(final, lambda out: out.write(data))
        return BlobInfo(key, len(data))

    async def put_file(self, path: str | PathLike[str]) -> BlobInfo:
        """Stream the file at `path` into the store, hashing as it goes."""
        await self._before(OP_PUT)
        source = Path(path)

        def put() -> BlobInfo:
            digest = hashlib.sha256()
            size = 0
            with source.open("rb") as src:
                with _store_disk("writing blob"):
                    # The key is known only at the end, so the temp file lives
                    # in blobs/ (same filesystem, so the rename is still atomic).
                    self._blobs.mkdir(parents=True, exist_ok=True)
                    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self._blobs)
                try:
                    with os.fdopen(fd, "wb") as out:
                        while chunk := src.read(self._chunk):
                            digest.update(chunk)
                            size += len(chunk)
                            with _store_disk("writing blob"):
                                out.write(chunk)
                        with _store_disk("writing blob"):
                            out.flush()
                            os.fsync(out.fileno())
                    key = digest.hexdigest()
                    final = _fanned(self._blobs, key)
                    with _store_disk(f"writing blob {key}"):
                        if _verifies(final, key, "sha256", self._chunk):
                            os.unlink(tmp)  # a good copy is already there
                        else:
                            final.parent.mkdir(parents=True, exist_ok=True)
                            os.replace(tmp, final)  # new, or over a damaged copy
                            _fsync_dir(final.parent)
                except BaseException:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                    raise
            return BlobInfo(key, size)

        return await self._thread(put)

    async def get_bytes(self, key: str) -> bytes:
        """The blob's content, verified; `BlobNotFound` or `BlobCorrupt` otherwise."""
        path = self._blob_path(key)
        await self._before(OP_GET)
        with _store_disk(f"reading blob {key}"):
            small = _held_small(path)
        if small:
            return _read_verified(path, key, "sha256", "blob")
        return await self._thread(_read_verified, path, key, "sha256", "blob")

    async def copy_to(self, key: str, dest: str | PathLike[str]) -> BlobInfo:
        """Copy the blob to `dest`, verified as it streams; `dest` appears only if it matched."""
        path = self._blob_path(key)
        await self._before(OP_GET)
        target = Path(dest)

        def copy() -> BlobInfo:
            with _store_disk(f"reading blob {key}"):
                try:
                    src = path.open("rb")
                except FileNotFoundError:
                    raise BlobNotFound(f"blob {key} not found") from None
            with src:
                fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=target.parent)
                try:
                    digest = hashlib.sha256()
                    size = 0
                    with os.fdopen(fd, "wb") as out:
                        while True:
                            with _store_disk(f"reading blob {key}"):
                                chunk = src.read(self._chunk)
                            if not chunk:
                                break
                            digest.update(chunk)
                            size += len(chunk)
                            out.write(chunk)
                    if digest.hexdigest() != key:
                        raise BlobCorrupt(f"blob {key} does not match its sha256")
                    os.replace(tmp, target)
                except BaseException:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                    raise
            return BlobInfo(key, size)

        return await self._thread(copy)

    async def exists(self, key: str) -> bool:
        """Whether a blob with this key is on disk (its content is not checked)."""
        path = self._blob_path(key)
        await self._before(OP_HEAD)
        with _store_disk(f"looking up blob {key}"):
            return path.is_file()  # one stat: here, not on a thread

    async def size(self, key: str) -> int:
        """The blob's size in bytes; `BlobNotFound` if absent."""
        path = self._blob_path(key)
        await self._before(OP_HEAD)

        with _store_disk(f"looking up blob {key}"):  # one stat: here, not on a thread
            try:
                return path.stat().st_size
            except FileNotFoundError:
                raise BlobNotFound(f"blob {key} not found") from None

    async def verify(self, key: str) -> bool:
        """True if the blob is present and matches its key; False if absent or corrupt."""
        path = self._blob_path(key)
        await self._before(OP_GET)

        def verify() -> bool:
            digest = hashlib.sha256()
            with _store_disk(f"reading blob {key}"):
                try:
                    with path.open("rb") as src:
                        while chunk := src.read(self._chunk):
                            digest.update(chunk)
                except FileNotFoundError:
                    return False
            return digest.hexdigest() == key

        return await self._thread(verify)

    async def delete(self, key: str) -> bool:
        """Remove the blob; True if it was there."""
        path = self._blob_path(key)
        await self._before(OP_DELETE)

        def delete() -> bool:
            with _store_disk(f"deleting blob {key}"):
                try:
                    path.unlink()
                except FileNotFoundError:
                    return False
            return True

        return await self._thread(delete)

    async def keys(self) -> list[str]:
        """Every blob key on disk, sorted (so runs with one seed list them alike)."""
        await self._before(OP_LIST)
        return await self._list_keys()

    async def _list_keys(self) -> list[str]:
        with _store_disk("listing blobs"):
            return await self._thread(lambda: sorted(key for key, _ in _walk(self._blobs, _SHA256)))

    async def orphans(self, referenced: Iterable[str]) -> set[str]:
        """Keys on disk that nothing in `referenced` points to."""
        await self._before(OP_LIST)
        return set(await self._list_keys()) - set(referenced)

    async def missing(self, referenced: Iterable[str]) -> set[str]:
        """Keys in `referenced` with no blob on disk."""
        await self._before(OP_LIST)
        return set(referenced) - set(await self._list_keys())

    async def stats(self) -> BlobStoreStats:
        """How many blobs and resources are held, and their bytes."""
        await self._before(OP_LIST)

        def count() -> BlobStoreStats:
            blobs = [p.stat().st_size for _, p in _walk(self._blobs, _SHA256)]
            resources = [p.stat().st_size for _, p in _walk(self._pool, _SHA1)]
            return BlobStoreStats(len(blobs), sum(blobs), len(resources), sum(resources))

        with _store_disk("counting blobs"):
            return await self._thread(count)

    # --- resource pool ----------------------------------------------------

    async def match_resources(self, resources: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
        """Those ``(sha1, size)`` pairs the pool already holds, in the order given.

        Entries that are not well-formed sha1s never match (the list comes
        from the CLI), and a held file of another size does not match either.
        Nor does a held file that no longer hashes to its sha1: it is dropped
        from the pool, so the CLI uploads it again and the pool is healed.
        """
        wanted = list(resources)
        await self._before(OP_HEAD)

        def match() -> list[tuple[str, int]]:
            held = []
            for sha1, size in wanted:
                if not isinstance(sha1, str) or not _SHA1.fullmatch(sha1):
                    continue
                path = _fanned(self._pool, sha1)
                try:
                    if path.stat().st_size != size:
                        continue
                except FileNotFoundError:
                    continue
                if _verifies(path, sha1, "sha1", self._chunk):
                    held.append((sha1, size))
                else:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            return held

        with _store_disk("matching resources"):
            if len(wanted) <= _SMALL_FILES and sum(size for _, size in wanted if isinstance(size, int)) <= SMALL_BYTES:
                return match()
            return await self._thread(match)

    async def add_resources(self, resources: Iterable[tuple[str, bytes]]) -> list[str]:
        """Add files to the pool; returns the sha1s newly stored.

        Every file is checked against its sha1 before any is written, so a
        bad entry (`BlobCorrupt`) leaves the pool as it was.
        """
        items = list(resources)
        self._check_resources(items)
        await self._before(OP_PUT)
        return await self._thread(self._add_resources_here, items)

    def _check_resources(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Every file to add is a well-formed sha1 and matches it (`BlobCorrupt`)."""
        for sha1, data in items:
            self._resource_path(sha1)
            if hashlib.sha1(data).hexdigest() != sha1:
                raise BlobCorrupt(f"resource {sha1} does not match its content")

    def _add_resources_here(self, items: Sequence[tuple[str, bytes]]) -> list[str]:
        added = []
        with _store_disk("adding resources"):
            for sha1, data in items:
                final = _fanned(self._pool, sha1)
                if _verifies(final, sha1, "sha1", self._chunk):
                    continue

                def write(out: BinaryIO, data: bytes = data) -> int:
                    return out.write(data)

                _write_atomic(final, write, durable=False)
                added.append(sha1)
        return added

    async def assemble_package(self, files: Sequence[AppFile], uploaded: Mapping[str, bytes]) -> BlobInfo:
        """Build the package of `files` (all of the app's, in order) from the
        bytes the CLI uploaded (`uploaded`, by path) and, for the rest, the
        pooled files resource matching found; store it under its sha256 and
        add the uploaded files to the pool: one thread hop for all of it.

        Each part is a storage operation as if asked for alone (the fault hook
        runs for every pooled file read, the put, and the pool's additions),
        and every hook runs before any file is touched, so a failing one
        leaves the store as it was. A pooled file that is gone is
        `BlobNotFound`; one that no longer matches its sha1 is dropped from
        the pool and the package fails (`BlobCorrupt`), as `get_resource` does.
        """
        files = tuple(files)
        pooled = [f for f in files if f.path not in uploaded]
        new = {f.sha1: uploaded[f.path] for f in files if f.path in uploaded}
        paths = {f.sha1: self._resource_path(f.sha1) for f in pooled}
        self._check_resources(new.items())
        for _ in pooled:
            await self._before(OP_GET)
        await self._before(OP_PUT)
        if new:
            await self._before(OP_PUT)

        def package() -> bytes:
            contents = dict(uploaded)
            for f in pooled:
                try:
                    contents[f.path] = self._get_resource_here(paths[f.sha1], f.sha1)
                except BlobNotFound:
                    raise BlobNotFound(f"resource {f.sha1} for {f.path} is not in the resource pool") from None
            return build_package(files, contents.__getitem__)

        def store(data: bytes) -> BlobInfo:
            info = self._put_bytes_here(data)
            if new:
                self._add_resources_here(list(new.items()))
            return info

        if len(files) <= _SMALL_FILES and sum(f.size for f in files) <= SMALL_BYTES:
            # A small app: its package made here, and kept without a write if
            # the store holds that very package, and every uploaded file, already.
            data = package()
            held = self._held_already(data)
            if held is not None and all(self._resource_held(sha1, content) for sha1, content in new.items()):
                return held
            return await self._thread(store, data)
        return await self._thread(lambda: store(package()))

    def _resource_held(self, sha1: str, data: bytes) -> bool:
        path = _fanned(self._pool, sha1)
        with _store_disk(f"reading resource {sha1}"):
            return _held_small(path, len(data)) and _verifies(path, sha1, "sha1", self._chunk)

    async def put_package(self, uploaded: AppBits | None, matched: Sequence[AppFile]) -> BlobInfo:
        """Build a package from an upload's files and the pooled files it
        matched, streaming (nothing is held whole, so memory stays flat for
        any size), store it under its sha256, and add the uploaded files to
        the resource pool. A pooled file that no longer matches its sha1 is
        dropped from the pool and the whole package fails (`BlobCorrupt`)."""
        for f in matched:
            self._resource_path(f.sha1)
        await self._before(OP_PUT)
        files = [*(uploaded.files if uploaded is not None else ()), *matched]
        pooled = {f.path for f in matched}

        def put() -> BlobInfo:
            current: list[AppFile] = []
            with contextlib.ExitStack() as stack:
                open_upload = stack.enter_context(uploaded.opened()) if uploaded is not None else None

                def open_file(f: AppFile) -> contextlib.AbstractContextManager[IO[bytes]]:
                    current[:] = [f]
                    if f.path not in pooled:
                        assert open_upload is not None
                        return open_upload(f)
                    return _pool_file(_fanned(self._pool, f.sha1), f)

                try:
                    info = self._put_stream(lambda out: write_package_from(files, open_file, out, mtime=0))
                except BlobCorrupt:
                    if current and current[0].path in pooled:
                        with contextlib.suppress(OSError):
                            _fanned(self._pool, current[0].sha1).unlink()
                    raise
                if uploaded is not None and open_upload is not None:
                    for f in uploaded.files:
                        final = _fanned(self._pool, f.sha1)
                        if f.size == 0 or final.exists():
                            continue
                        with open_upload(f) as src, _store_disk("adding resources"):

                            def copy(out: BinaryIO, src: IO[bytes] = src, f: AppFile = f) -> None:
                                _copy_verified(src, out, f)

                            _write_atomic(final, copy, durable=False)
            return info

        return await self._thread(put)

    def _put_stream(self, write: Callable[[BinaryIO], object]) -> BlobInfo:
        """Store what `write` writes under its sha256 (in the calling thread)."""
        with _store_disk("writing blob"):
            self._blobs.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self._blobs)
        try:
            with os.fdopen(fd, "wb") as raw:
                out = _Hashing(raw)
                write(out)  # type: ignore[arg-type]  # a writable binary stream
                with _store_disk("writing blob"):
                    raw.flush()
                    os.fsync(raw.fileno())
            key = out.digest.hexdigest()
            final = _fanned(self._blobs, key)
            with _store_disk(f"writing blob {key}"):
                if _verifies(final, key, "sha256", self._chunk):
                    os.unlink(tmp)
                else:
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp, final)
                    _fsync_dir(final.parent)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return BlobInfo(key, out.size)

    async def get_resource(self, sha1: str) -> bytes:
        """A pooled file's content, verified.

        A corrupt entry is dropped from the pool before `BlobCorrupt` is
        raised: the pool is a cache, and the next push then uploads the file
        again instead of matching the damaged copy forever.
        """
        path = self._resource_path(sha1)
        await self._before(OP_GET)
        return await self._thread(self._get_resource_here, path, sha1)

    @staticmethod
    def _get_resource_here(path: Path, sha1: str) -> bytes:
        try:
            return _read_verified(path, sha1, "sha1", "resource")
        except BlobCorrupt:
            # Best effort: failing to drop it must not hide the corruption.
            with contextlib.suppress(OSError):
                path.unlink()
            raise
