from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.cell import droplet as droplet_module
from actors.cell.buildtree import BuildTree
from actors.cell.droplet import (
    STAGING_INFO,
    StagingInfo,
    build_droplet,
    droplet_bytes,
    read_staging_info,
    staging_info_document,
)
from actors.tarstream import header as _header
from protocol.errors import BlobCorrupt, BlobNotFound, UnsafePath

INFO = StagingInfo(
    detected_buildpack="python",
    start_command="python app.py",
    buildpacks=(("python_buildpack", "1.8.23"),),
    process_types=(("web", "python app.py"), ("worker", "python worker.py")),
)


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def staged(tmp_path: Path) -> tuple[Path, Path]:
    app = make_tree(tmp_path / "app", {"app.py": "print()", "lib/util.py": "x = 1"})
    deps = make_tree(tmp_path / "deps", {"0/config.yml": "name: python\n", "0/python/bin/python": "#!/bin/sh\n"})
    os.chmod(deps / "0/python/bin/python", 0o755)
    return app, deps


def names(path: str | Path) -> list[str]:
    with tarfile.open(path) as tf:
        return tf.getnames()


def test_a_droplet_holds_staging_info_app_deps_logs_and_tmp(tmp_path: Path, staged):
    app, deps = staged
    result = build_droplet(app, deps, tmp_path / "droplet.tgz", INFO)
    assert names(result.path) == [
        STAGING_INFO,
        "app",
        "app/app.py",
        "app/lib",
        "app/lib/util.py",
        "deps",
        "deps/0",
        "deps/0/config.yml",
        "deps/0/python",
        "deps/0/python/bin",
        "deps/0/python/bin/python",
        "logs",
        "tmp",
    ]


def test_the_returned_sha256_and_size_describe_the_file(tmp_path: Path, staged):
    result = build_droplet(*staged, tmp_path / "droplet.tgz", INFO)
    data = Path(result.path).read_bytes()
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()


def test_identical_inputs_give_identical_bytes_whatever_the_files_mtimes(tmp_path: Path, staged):
    app, deps = staged
    first = build_droplet(app, deps, tmp_path / "one.tgz", INFO, mtime=1_700_000_000)
    os.utime(app / "app.py", (0, 1))
    os.utime(deps / "0" / "config.yml", (0, 2_000_000_000))
    second = build_droplet(app, deps, tmp_path / "two.tgz", INFO, mtime=1_700_000_000)
    assert first.sha256 == second.sha256
    assert Path(first.path).read_bytes() == Path(second.path).read_bytes()


def test_a_different_start_command_gives_a_different_droplet(tmp_path: Path, staged):
    first = build_droplet(*staged, tmp_path / "one.tgz", INFO)
    other = StagingInfo("python", "gunicorn app:app", INFO.buildpacks, INFO.process_types)
    assert build_droplet(*staged, tmp_path / "two.tgz", other).sha256 != first.sha256


def test_entries_are_owned_by_root_with_the_given_mtime_and_normal_modes(tmp_path: Path, staged):
    result = build_droplet(*staged, tmp_path / "droplet.tgz", INFO, mtime=42)
    with tarfile.open(result.path) as tf:
        members = {m.name: m for m in tf.getmembers()}
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members.values()} == {(0, 0, "", "", 42)}
    assert members["deps/0/python/bin/python"].mode == 0o755
    assert members["app/app.py"].mode == 0o644
    assert members["app/lib"].isdir()


def test_read_staging_info_gives_back_what_was_written(tmp_path: Path, staged):
    result = build_droplet(*staged, tmp_path / "droplet.tgz", INFO)
    assert read_staging_info(result.path) == INFO
    assert read_staging_info(Path(result.path).read_bytes()) == INFO


def test_a_missing_deps_directory_gives_an_empty_deps_entry(tmp_path: Path, staged):
    app, _ = staged
    result = build_droplet(app, tmp_path / "no-deps", tmp_path / "droplet.tgz", INFO)
    assert "deps" in names(result.path)
    assert not any(n.startswith("deps/") for n in names(result.path))


def test_a_symlink_in_the_app_is_refused_and_leaves_no_droplet(tmp_path: Path, staged):
    app, deps = staged
    (app / "link").symlink_to("/etc/passwd")
    with pytest.raises(UnsafePath, match="symlink"):
        build_droplet(app, deps, tmp_path / "droplet.tgz", INFO)
    assert list(tmp_path.glob("*droplet.tgz*")) == []


def test_a_fifo_in_the_deps_is_refused(tmp_path: Path, staged):
    app, deps = staged
    os.mkfifo(deps / "pipe")
    with pytest.raises(UnsafePath, match="pipe"):
        build_droplet(app, deps, tmp_path / "droplet.tgz", INFO)


def test_building_over_an_existing_droplet_replaces_it_whole(tmp_path: Path, staged):
    dest = tmp_path / "droplet.tgz"
    dest.write_bytes(b"old")
    result = build_droplet(*staged, dest, INFO)
    assert read_staging_info(result.path) == INFO
    assert stat.S_ISREG(os.stat(dest).st_mode)


def test_reading_a_missing_droplet_is_blob_not_found(tmp_path: Path):
    with pytest.raises(BlobNotFound):
        read_staging_info(tmp_path / "nope.tgz")


def test_reading_garbage_is_blob_corrupt(tmp_path: Path):
    (tmp_path / "bad.tgz").write_bytes(b"not a droplet" * 100)
    with pytest.raises(BlobCorrupt):
        read_staging_info(tmp_path / "bad.tgz")


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_a_droplet_without_staging_info_is_blob_corrupt():
    with pytest.raises(BlobCorrupt, match="no staging_info"):
        read_staging_info(_tar([_file("app/app.py", b"")]))


def test_a_staging_info_that_is_a_link_is_blob_corrupt():
    link = tarfile.TarInfo(STAGING_INFO)
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    with pytest.raises(BlobCorrupt):
        read_staging_info(_tar([(link, b"")]))


def test_an_oversized_staging_info_is_blob_corrupt(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(droplet_module, "MAX_STAGING_INFO_BYTES", 10)
    with pytest.raises(BlobCorrupt):
        read_staging_info(_tar([_file(STAGING_INFO, b"detected_buildpack: python\n")]))


@pytest.mark.parametrize(
    "text",
    [
        b"[unclosed",
        b"- a list\n",
        b"detected_buildpack: python\n",
        b"detected_buildpack: x\nstart_command: y\nbuildpacks: [1]\n",
    ],
)
def test_a_malformed_staging_info_is_blob_corrupt(text: bytes):
    with pytest.raises(BlobCorrupt):
        read_staging_info(_tar([_file(STAGING_INFO, text)]))


def test_yaml_tags_in_staging_info_are_not_executed():
    evil = b"detected_buildpack: !!python/object/apply:os.system ['true']\nstart_command: x\n"
    with pytest.raises(BlobCorrupt):
        read_staging_info(_tar([_file(STAGING_INFO, evil)]))


# --- the fast tar writer is tarfile's output, byte for byte -------------------------------------

_NAME = st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789._-/ü"), min_size=1, max_size=180).filter(
    lambda n: not n.startswith("/") and "//" not in n and not n.endswith("/")
)


@settings(max_examples=300, deadline=None)
@given(
    name=_NAME,
    size=st.one_of(st.integers(0, 1 << 20), st.just(0o77777777777), st.just(1 << 34)),
    mode=st.sampled_from([0o644, 0o755]),
    mtime=st.one_of(st.just(0), st.integers(0, 2**33)),
    directory=st.booleans(),
)
def test_a_droplet_entry_header_is_the_one_tarfile_writes(name, size, mode, mtime, directory):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.size = 0 if directory else size
    info.mode = 0o755 if directory else mode
    info.mtime = mtime
    info.uname = info.gname = ""
    expected = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    assert _header(name, info.size, info.mode, mtime, directory) == expected


def _reference(tree: BuildTree, info: StagingInfo, mtime: int) -> bytes:
    """The droplet as tarfile and GzipFile would write it."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=mtime, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tf,
    ):

        def add(name: str, data: bytes | None, mode: int) -> None:
            entry = tarfile.TarInfo(name)
            entry.type = tarfile.REGTYPE if data is not None else tarfile.DIRTYPE
            entry.size = len(data or b"")
            entry.mode = mode
            entry.mtime = mtime
            entry.uname = entry.gname = ""
            tf.addfile(entry, io.BytesIO(data) if data is not None else None)

        add(STAGING_INFO, staging_info_document(info), 0o644)
        for top in ("app", "deps"):
            for parts, file in tree.walk((top,)):
                if file is None:
                    add("/".join(parts), None, 0o755)
                else:
                    add("/".join(parts), file.read(), 0o755 if file.mode & 0o100 else 0o644)
        add("logs", None, 0o755)
        add("tmp", None, 0o755)
    return buffer.getvalue()


@settings(max_examples=60, deadline=None)
@given(
    files=st.dictionaries(
        st.lists(st.sampled_from(["a", "b", "lib", "x" * 60, "ü", "main.py"]), min_size=1, max_size=4).map("/".join),
        st.tuples(st.binary(max_size=3000), st.booleans()),
        max_size=12,
    ),
    mtime=st.integers(0, 2**32 - 1),
)
def test_a_droplet_is_the_archive_tarfile_and_gzip_write(files, mtime):
    tree = BuildTree()
    tree.path("app").mkdir()
    for rel, (data, executable) in files.items():
        path = tree.path("app", *rel.split("/"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except (FileExistsError, IsADirectoryError, NotADirectoryError):
            continue  # a name used as both a file and a directory
        if executable:
            path.chmod(0o755)
    assert droplet_bytes(tree, INFO, mtime=mtime) == _reference(tree, INFO, mtime)
