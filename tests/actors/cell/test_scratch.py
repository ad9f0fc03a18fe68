"""Staging scratch: where a cell builds a droplet when there is room (a
RAM-backed directory), the same droplet as on disk, on disk again when
scratch runs out of room, and nothing left behind."""

from __future__ import annotations

import errno
import hashlib
import os
import tarfile
from pathlib import Path

import pytest

import actors.cell.actor as cell_actor
from actors.cell.actor import DROPLET_MTIME, _stage_in_thread
from actors.cell.scratch import Scratch, is_full, ram_scratch_root, reservation_for, scratch_dir_for
from protocol.errors import StagingError
from tests.actors.conftest import EXAMPLES, run

pytestmark = pytest.mark.anyio


def _package(tmp_path: Path) -> Path:
    path = tmp_path / "package.tgz"
    with tarfile.open(path, "w:gz") as tf:
        for file in sorted((EXAMPLES / "python").iterdir()):
            tf.add(file, arcname=file.name)
    return path


def _sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_the_scratch_root_is_a_private_directory_on_a_tmpfs_mount_and_none_elsewhere(tmp_path):
    mounts = tmp_path / "mounts"
    shm = tmp_path / "shm"
    shm.mkdir()
    mounts.write_text(f"/dev/vda / ext4 rw 0 0\ntmpfs {shm} tmpfs rw,relatime 0 0\n")
    root = ram_scratch_root(tmp_path / "data", candidate=str(shm), mounts=str(mounts))
    assert root is not None and root.parent == shm / f"minifoundry-{os.getuid()}"
    assert root != ram_scratch_root(tmp_path / "other", candidate=str(shm), mounts=str(mounts))
    assert root == ram_scratch_root(tmp_path / "data", candidate=str(shm), mounts=str(mounts))
    mounts.write_text(f"/dev/vda {shm} ext4 rw 0 0\n")
    assert ram_scratch_root(tmp_path / "data", candidate=str(shm), mounts=str(mounts)) is None
    assert ram_scratch_root(tmp_path / "data", candidate=str(shm), mounts=str(tmp_path / "absent")) is None


def test_a_reservation_must_fit_beside_the_others_and_is_given_back(tmp_path):
    scratch = Scratch(tmp_path / "scratch")
    scratch.clear()
    free = scratch.free()
    assert not scratch.reserve(free + 1)
    assert scratch.reserve(free // 2)
    assert not scratch.reserve(free - free // 2 + 1)
    scratch.release(free // 2)
    assert scratch.reserved == 0 and scratch.reserve(free - 1)
    assert reservation_for(0) == reservation_for(1) > 0 and reservation_for(10**9) == 8 * 10**9


def test_out_of_room_is_told_apart_from_other_errors():
    full = OSError(errno.ENOSPC, "No space left on device")
    wrapped = StagingError("Staging error: No space left on device")
    wrapped.__cause__ = full
    assert is_full(full) and is_full(wrapped)
    assert not is_full(OSError(errno.EACCES, "Permission denied")) and not is_full(StagingError("no"))


def test_a_droplet_staged_in_scratch_is_the_droplet_staged_on_disk(tmp_path):
    package = _package(tmp_path)
    on_disk, in_scratch = [], []
    disk = _stage_in_thread(package, tmp_path / "disk", (), None, on_disk.append, DROPLET_MTIME)
    scratch = _stage_in_thread(
        package, tmp_path / "unused", (), None, in_scratch.append, DROPLET_MTIME, tmp_path / "scratch"
    )
    assert Path(scratch.droplet_path).is_relative_to(tmp_path / "scratch")
    assert not (tmp_path / "unused").exists()
    assert _sha(disk.droplet_path) == _sha(scratch.droplet_path)
    assert on_disk == in_scratch and on_disk


def test_a_staging_out_of_room_in_scratch_is_staged_again_on_disk_its_lines_shown_once(tmp_path, monkeypatch):
    build = cell_actor._build
    scratch_work = tmp_path / "scratch"

    def build_until_full(package, work, buildpacks, command, out, mtime):
        if work == scratch_work:
            out("-----> half a staging")
            (work / "partial").write_text("x")
            raise StagingError("Staging error: out of room") from OSError(errno.ENOSPC, "No space left on device")
        return build(package, work, buildpacks, command, out, mtime)

    monkeypatch.setattr(cell_actor, "_build", build_until_full)
    lines: list[str] = []
    staged = _stage_in_thread(
        _package(tmp_path), tmp_path / "disk", (), None, lines.append, DROPLET_MTIME, scratch_work
    )
    assert Path(staged.droplet_path).is_relative_to(tmp_path / "disk")
    assert "-----> half a staging" not in lines and lines
    # the half-built tree is gone (the cell removes the rest, a package it
    # downloaded there, when the staging ends)
    assert not (scratch_work / "build").exists()


def test_a_staging_that_fails_in_scratch_for_another_reason_fails_with_its_lines(tmp_path, monkeypatch):
    def build_fails(package, work, buildpacks, command, out, mtime):
        out("-----> compiling")
        raise StagingError("Staging error: the buildpack failed")

    monkeypatch.setattr(cell_actor, "_build", build_fails)
    lines: list[str] = []
    with pytest.raises(StagingError, match="buildpack failed"):
        _stage_in_thread(_package(tmp_path), tmp_path / "disk", (), None, lines.append, 0, tmp_path / "scratch")
    assert lines == ["-----> compiling"]


def _watch_fresh_dirs(monkeypatch) -> list[Path]:
    """Every directory a cell makes afresh for a staging."""
    made: list[Path] = []
    original = cell_actor._fresh_dir

    def watch(path):
        made.append(Path(path))
        return original(path)

    monkeypatch.setattr(cell_actor, "_fresh_dir", watch)
    return made


def _watch_builds(monkeypatch) -> list[Path]:
    """Where each staging builds (the work directory `_build` is handed)."""
    built: list[Path] = []
    original = cell_actor._build

    def watch(package, work, *args):
        built.append(Path(work))
        return original(package, work, *args)

    monkeypatch.setattr(cell_actor, "_build", watch)
    return built


async def test_the_platform_stages_in_its_scratch_clears_it_at_start_and_removes_it_at_stop(
    make_platform, tmp_path, monkeypatch
):
    root = scratch_dir_for(tmp_path / "scratch", tmp_path / "data")
    (root / "left-by-a-crash").mkdir(parents=True)
    root.parent.chmod(0o700)  # as the crashed platform made it
    (tmp_path / "scratch" / "mine").mkdir()  # the directory given is not the platform's to empty
    platform = await make_platform(staging_scratch=str(tmp_path / "scratch")).start()
    assert platform.scratch is not None and platform.scratch.root == root
    assert [p.name for p in root.iterdir()] == [".lock"]
    built = _watch_builds(monkeypatch)
    made = _watch_fresh_dirs(monkeypatch)
    code, lines = await run(platform, "push", "hello", "-p", str(EXAMPLES / "python"))
    assert code == 0, "\n".join(lines)
    assert len(built) == 1 and built[0].parent == root
    # the package was downloaded there too: the staging made nothing on disk
    assert made and all(path.is_relative_to(root) for path in made), made
    assert [p.name for p in root.iterdir()] == [".lock"] and platform.scratch.reserved == 0
    assert not any((tmp_path / "data" / "cells").glob("*/staging/*"))
    await platform.stop()
    assert not root.exists() and (tmp_path / "scratch" / "mine").is_dir()


async def test_a_package_that_scratch_has_no_room_for_is_downloaded_and_staged_on_disk(
    make_platform, tmp_path, monkeypatch
):
    from actors.blobstore.actor import BlobStoreActor
    from actors.blobstore.store import BlobStore
    from protocol import blobs

    root = scratch_dir_for(tmp_path / "scratch", tmp_path / "data")
    copied: list[Path] = []

    async def copy_to(store, key, dest):
        copied.append(Path(dest))
        if Path(dest).is_relative_to(root):
            raise OSError(errno.ENOSPC, "No space left on device")
        return await BlobStore.copy_to(store, key, dest)

    monkeypatch.setitem(BlobStoreActor.OPERATIONS, blobs.CopyTo, copy_to)
    platform = await make_platform(staging_scratch=str(tmp_path / "scratch")).start()
    built = _watch_builds(monkeypatch)
    code, lines = await run(platform, "push", "hello", "-p", str(EXAMPLES / "python"))
    assert code == 0, "\n".join(lines)
    packages = [p for p in copied if p.name == "package.tgz"]
    assert [p.is_relative_to(root) for p in packages] == [True, False]
    assert len(built) == 1 and built[0].is_relative_to(tmp_path / "data" / "cells")
    assert platform.scratch is not None and platform.scratch.reserved == 0
    assert [p.name for p in root.iterdir()] == [".lock"]
    assert not any((tmp_path / "data" / "cells").glob("*/staging/*"))


async def test_a_platform_without_scratch_stages_on_disk(make_platform, tmp_path, monkeypatch):
    platform = await make_platform(staging_scratch=None).start()
    assert platform.scratch is None
    built = _watch_builds(monkeypatch)
    code, lines = await run(platform, "push", "hello", "-p", str(EXAMPLES / "python"))
    assert code == 0, "\n".join(lines)
    assert len(built) == 1 and built[0].parent.name == "staging"
    assert built[0].is_relative_to(tmp_path / "data" / "cells")


def test_a_killed_platforms_scratch_is_removed_by_the_next_to_start_and_a_running_ones_is_kept(tmp_path):
    parent = tmp_path / "shm" / "minifoundry-user"
    running = Scratch(parent / "running")
    running.clear()
    (running.root / "staging-in-flight").mkdir()
    killed = parent / "killed"  # its platform died holding the lock: the lock went with it
    (killed / "half-staged").mkdir(parents=True)
    (killed / ".lock").write_text("")
    stranger = parent / "not-ours"  # no lock file: not a scratch directory we made
    stranger.mkdir()
    mine = Scratch(parent / "mine")
    mine.clear()
    assert not killed.exists()
    assert (running.root / "staging-in-flight").is_dir() and stranger.is_dir()
    mine.remove()
    running.remove()
    assert not mine.root.exists() and not running.root.exists() and parent.exists()  # the stranger keeps it


def test_scratch_under_a_directory_others_may_enter_is_refused(tmp_path):
    parent = tmp_path / "shm" / "minifoundry-user"
    parent.mkdir(parents=True)
    parent.chmod(0o755)
    with pytest.raises(PermissionError, match="private"):
        Scratch(parent / "mine").clear()
    assert not (parent / "mine").exists()
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "shm" / "minifoundry-linked"
    link.symlink_to(target)
    with pytest.raises(PermissionError, match="private"):
        Scratch(link / "mine").clear()
    assert list(target.iterdir()) == []


def test_the_environment_picks_where_platforms_stage_by_default(tmp_path, monkeypatch):
    from actors.platform import PlatformConfig

    monkeypatch.delenv("MINIFOUNDRY_STAGING_SCRATCH", raising=False)
    assert PlatformConfig(data_dir=tmp_path).staging_scratch == "auto"
    monkeypatch.setenv("MINIFOUNDRY_STAGING_SCRATCH", "disk")
    assert PlatformConfig(data_dir=tmp_path).staging_scratch is None
    assert PlatformConfig(data_dir=tmp_path).scratch_root() is None
    monkeypatch.setenv("MINIFOUNDRY_STAGING_SCRATCH", str(tmp_path / "fast"))
    config = PlatformConfig(data_dir=tmp_path / "data")
    assert config.scratch_root() == scratch_dir_for(tmp_path / "fast", tmp_path / "data")
    assert PlatformConfig(data_dir=tmp_path, staging_scratch="auto").staging_scratch == "auto"  # given wins
