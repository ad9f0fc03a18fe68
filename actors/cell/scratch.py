"""Scratch space for staging: where a cell extracts the package, runs the
buildpacks and builds the droplet, all of which is deleted when the staging
ends. Nothing there is ever read again, so it needs no disk: on a machine
with a RAM-backed filesystem (Linux's `/dev/shm` tmpfs) the platform stages
there and spares the disk the staging's churn (a few dozen files and
directories created, written and deleted for every push, each a journal
entry on the disk). The droplet itself is uploaded to the blob store, which
keeps it on disk, fsync'd, as before: no durability promise rests on scratch.

Room is reserved before a staging starts: one that might not fit (with what
the stagings in flight have reserved) builds on disk instead, and one that
still runs out of room there is staged again on disk (`is_full` tells).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import stat
from pathlib import Path

__all__ = ["Scratch", "is_full", "ram_scratch_root", "reservation_for", "scratch_dir_for"]

# What a staging may need, from its package's (compressed) size: the files
# unpacked, what the buildpacks add, and the droplet.
_FACTOR = 8
_FLOOR = 4 * 1024 * 1024
_MOUNTS = "/proc/self/mounts"
_RAM_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})
_LOCK = ".lock"  # held (flock) by the platform using the directory


def reservation_for(package_bytes: int) -> int:
    return max(_FLOOR, _FACTOR * max(0, package_bytes))


def ram_scratch_root(data_dir: Path, *, candidate: str = "/dev/shm", mounts: str = _MOUNTS) -> Path | None:
    """This platform's scratch directory on a RAM-backed filesystem, or None.

    `candidate` must be a mount point of a tmpfs (read from `mounts`) that
    this user may write; the directory is named after this user and the data
    directory, so two platforms never share one.
    """
    try:
        with open(mounts, encoding="utf-8", errors="replace") as fh:
            table = [line.split() for line in fh]
    except OSError:
        return None
    if not any(len(f) >= 3 and f[1] == candidate and f[2] in _RAM_FILESYSTEMS for f in table):
        return None
    if not os.access(candidate, os.W_OK | os.X_OK):
        return None
    return scratch_dir_for(Path(candidate), data_dir)


def scratch_dir_for(base: Path, data_dir: Path) -> Path:
    """The platform's scratch directory under `base`: named after this user
    and the data directory, so two platforms never share one. It is this
    directory, never `base`, that is emptied at start and removed at stop."""
    digest = hashlib.sha1(str(Path(data_dir).resolve()).encode(), usedforsecurity=False).hexdigest()[:16]
    return Path(base) / f"minifoundry-{os.getuid()}" / digest


class Scratch:
    """One platform's scratch directory and the room its stagings reserved.

    Used on the loop thread only (reservations are made and given back
    there); the files below it are written from worker threads.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.reserved = 0
        self._lock: int | None = None

    def clear(self) -> None:
        """Remove whatever is there (a stopped or crashed platform's leftovers)
        and make the directory, private to this user, locked while in use.
        Siblings no platform holds any more (their platform was killed, so
        never removed them) are removed too: scratch is memory."""
        parent = self.root.parent
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # A shared place (/dev/shm is everyone's): the user's directory must
        # be a real one of theirs that no one else may enter.
        st = os.lstat(parent)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise PermissionError(f"{parent} is not a directory private to this user")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(mode=0o700)
        fd = os.open(self.root / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            os.close(fd)
            raise
        self._lock = fd
        _remove_unheld(self.root.parent, keep=self.root)

    def remove(self) -> None:
        """Remove the directory, and its parent if no other platform uses it."""
        shutil.rmtree(self.root, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
        with contextlib.suppress(OSError):
            self.root.parent.rmdir()

    def free(self) -> int:
        try:
            return shutil.disk_usage(self.root).free
        except OSError:
            return 0

    def reserve(self, nbytes: int) -> bool:
        """Room for `nbytes` more, beside what is reserved already? Then it is
        reserved (give it back with `release`)."""
        if self.free() - self.reserved < nbytes:
            return False
        self.reserved += nbytes
        return True

    def release(self, nbytes: int) -> None:
        self.reserved = max(0, self.reserved - nbytes)


def _remove_unheld(parent: Path, keep: Path) -> None:
    """Remove the scratch directories under `parent` whose lock no process holds."""
    try:
        children = [p for p in parent.iterdir() if p != keep and p.is_dir() and not p.is_symlink()]
    except OSError:
        return
    for child in children:
        try:
            fd = os.open(child / _LOCK, os.O_RDWR)
        except OSError:
            continue  # not one of ours, or just being made: leave it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a running platform's
        try:
            shutil.rmtree(child, ignore_errors=True)  # holding its lock meanwhile
        finally:
            os.close(fd)


def is_full(exc: BaseException) -> bool:
    """Did this error come from a filesystem out of room (itself or its cause)?"""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
