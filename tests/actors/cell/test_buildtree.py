"""The build tree: a staging's file system in memory, answering what the
buildpacks ask of `pathlib.Path` as a real directory does, spilling big files
to disk, and refusing what a package may not hold."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from actors.appfiles import build_package, extract_package, scan_app
from actors.cell.buildpacks import stage
from actors.cell.buildpacks.lifecycle import stage_tree
from actors.cell.buildtree import BuildTree, TreePath
from actors.cell.droplet import droplet_bytes, write_droplet_file
from protocol.errors import BlobCorrupt, UnsafePath
from tests.actors.conftest import EXAMPLES

FILES = {
    "app.py": "print('hi')\n",
    "requirements.txt": "flask\n",
    "lib/util.py": "x = 1\n",
    "lib/deep/more.txt": "more\n",
    "static/index.html": "<html></html>\n",
}


def _real(root: Path) -> Path:
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _tree(tmp_path: Path) -> tuple[Path, TreePath]:
    """The same app as a real directory and in a tree, each as its app dir."""
    real = _real(tmp_path / "real" / "app")
    return real, BuildTree.from_directory(real, "app").path("app")


def _shape(path: Path | TreePath) -> dict[str, object]:
    """Everything a buildpack could learn of `path` and what is below it."""
    seen: dict[str, object] = {}
    for rel in ("app.py", "lib", "lib/util.py", "lib/deep", "missing", "lib/missing.py", "../escape", "lib/../app.py"):
        p = path / rel
        seen[rel] = (p.exists(), p.is_file(), p.is_dir(), p.name, p.suffix, p.stem, p.parent.name)
    seen["iterdir"] = sorted(p.name for p in path.iterdir())
    seen["glob"] = sorted(p.name for p in path.glob("*.py"))
    seen["lib/glob"] = sorted(p.name for p in (path / "lib").glob("*"))
    seen["text"] = (path / "lib" / "util.py").read_text()
    seen["size"] = (path / "requirements.txt").stat().st_size
    seen["is_reg"] = stat.S_ISREG((path / "app.py").stat().st_mode)
    inner = (path / "lib" / "deep" / ".." / "util.py").resolve()
    seen["resolve"] = (inner.is_file(), path.resolve() in inner.parents, inner.relative_to(path.resolve()).as_posix())
    seen["relative_to self"] = path.resolve().relative_to(path.resolve()).as_posix()
    seen["join pure"] = (path / PurePosixPath("lib") / "util.py").is_file()
    return seen


def test_a_tree_path_answers_what_a_real_path_answers(tmp_path):
    real, tree = _tree(tmp_path)
    assert _shape(tree) == _shape(real)


def test_writing_in_a_tree_works_as_on_disk_and_fails_alike(tmp_path):
    real, tree = _tree(tmp_path)
    for path in (real, tree):
        (path / "bin").mkdir()
        (path / "bin" / "run").write_text("#!/bin/sh\n")
        (path / "bin" / "run").chmod(0o755)
        (path / "a" / "b").mkdir(parents=True)
        (path / "a" / "b").mkdir(parents=True, exist_ok=True)
        assert (path / "bin" / "run").stat().st_mode & 0o100
        with pytest.raises(FileExistsError):
            (path / "bin").mkdir()
        with pytest.raises(FileNotFoundError):
            (path / "no" / "such").mkdir()
        with pytest.raises(FileNotFoundError):
            (path / "no" / "file.txt").write_text("x")
        with pytest.raises(FileNotFoundError):
            (path / "missing").read_text()
        with pytest.raises(IsADirectoryError):
            (path / "lib").read_bytes()
    assert sorted(p.name for p in tree.iterdir()) == sorted(p.name for p in real.iterdir())


def test_paths_read_as_a_staging_containers_tmp(tmp_path):
    _, tree = _tree(tmp_path)
    assert str(tree / "requirements.txt") == "/tmp/app/requirements.txt"
    assert (tree / "../../etc/passwd").resolve().as_posix() == "/etc/passwd"
    assert not (tree / "../../etc/passwd").exists()
    assert (tree / "/etc/passwd").resolve() == (tree / "../../etc/passwd").resolve()
    with pytest.raises(PermissionError):
        (tree / "../../evil").write_text("x")


def test_a_tree_holds_a_package_as_its_files(tmp_path):
    bits = scan_app(EXAMPLES / "python")
    tree = BuildTree()
    tree.add_package(build_package(bits.files, bits.read))
    app = tree.path("app")
    assert sorted(p.name for p in app.iterdir()) == sorted(f.path for f in bits.files)
    for f in bits.files:
        assert (app / f.path).read_bytes() == bits.read(f.path)
    assert not tree.spilled


def _tar(entries: list[tarfile.TarInfo], data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for info in entries:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    return info


@pytest.mark.parametrize(
    "hostile",
    [
        [_info("ok.txt", size=2), _info("../escape", size=2)],
        [_info("ok.txt", size=2), _info("/etc/passwd", size=2)],
        [_info("ok.txt", size=2), _info("link", tarfile.SYMTYPE)],
        [_info("ok.txt", size=2), _info("dev", tarfile.CHRTYPE)],
    ],
    ids=["dotdot", "absolute", "symlink", "device"],
)
def test_a_hostile_package_is_refused_before_anything_is_added(hostile):
    tree = BuildTree()
    with pytest.raises(UnsafePath):
        tree.add_package(_tar(hostile, b"hi"))
    assert list(tree.path("app").iterdir()) == []


def test_a_damaged_package_is_blob_corrupt():
    data = _tar([_info("app.py", size=2000)], b"x" * 2000)
    with pytest.raises(BlobCorrupt):
        BuildTree().add_package(data[: len(data) // 2])


def test_big_files_spill_to_disk_and_read_back_the_same(tmp_path):
    big = os.urandom(300_000)
    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(big)
    (source / "small.txt").write_text("small")
    spill = tmp_path / "spill"
    tree = BuildTree.from_directory(source, "app", spill_dir=spill, spill_over=100_000)
    assert tree.spilled and len(list(spill.iterdir())) == 1
    assert tree.path("app", "big.bin").read_bytes() == big
    with tree.path("app", "big.bin").open() as fh:
        assert fh.read() == big
    assert tree.path("app", "small.txt").read_text() == "small"
    in_memory = BuildTree.from_directory(source, "app")
    assert not in_memory.spilled
    from actors.cell.droplet import StagingInfo

    info = StagingInfo("binary", "./big.bin")
    assert droplet_bytes(tree, info) == droplet_bytes(in_memory, info)
    written = write_droplet_file(tree, info, tmp_path / "droplet.tgz")
    assert Path(written.path).read_bytes() == droplet_bytes(in_memory, info)


@pytest.mark.parametrize("example", ["python", "node", "static", "go", "binary"])
def test_staging_in_a_tree_gives_the_droplet_staging_a_directory_gives(tmp_path, example):
    bits = scan_app(EXAMPLES / example)
    package = build_package(bits.files, bits.read)
    names = ["binary"] if example == "binary" else []
    command = "./app" if example == "binary" else None
    tree = BuildTree()
    tree.add_package(package)
    lines_tree: list[str] = []
    info = stage_tree(tree.root, names, command, lines_tree.append)
    work = tmp_path / "work"
    extract_package(package, work / "app")
    lines_dir: list[str] = []
    result = stage(work / "app", work, names, command, lines_dir.append)
    assert lines_tree == lines_dir
    assert (info.start_command, info.buildpacks) == (result.start_command, result.buildpacks)
    assert droplet_bytes(tree, info, mtime=0) == Path(result.droplet_path).read_bytes()
