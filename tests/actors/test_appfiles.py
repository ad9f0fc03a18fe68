from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import appfiles
from actors.appfiles import (
    AppFile,
    CfIgnore,
    build_package,
    extract_package,
    iter_package,
    scan_app,
    scan_small_app,
    write_package,
)
from protocol.errors import BlobCorrupt, FileTooLarge, PathEmpty, PathNotFound, UnsafePath


def make_app(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)
    return root


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def paths(bits) -> list[str]:
    return [f.path for f in bits.files]


def make_zip(path: Path, entries: list[tuple[str, bytes]], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def tar_member(name: str, data: bytes = b"", **attrs) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    if info.type != tarfile.REGTYPE:
        info.size = 0
    return info, data


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


# --- directories ---------------------------------------------------------------------


def test_a_directory_is_listed_sorted_with_sha1_size_and_mode(tmp_path: Path):
    app = make_app(tmp_path / "app", {"b.txt": "bee", "a/z.py": "print()", "a/b.py": ""})
    bits = scan_app(app)
    assert bits.files == (
        AppFile("a/b.py", sha1(b""), 0, 0o644),
        AppFile("a/z.py", sha1(b"print()"), 7, 0o644),
        AppFile("b.txt", sha1(b"bee"), 3, 0o644),
    )
    assert bits.kind == "directory"
    assert bits.total_size == 10


def test_an_executable_file_keeps_only_its_executable_bit(tmp_path: Path):
    app = make_app(tmp_path / "app", {"run": "#!/bin/sh\n", "odd": "x"})
    os.chmod(app / "run", 0o4750)
    os.chmod(app / "odd", 0o600)
    modes = {f.path: f.mode for f in scan_app(app).files}
    assert modes == {"run": 0o755, "odd": 0o644}


def test_read_returns_a_files_bytes_and_iter_contents_returns_all(tmp_path: Path):
    app = make_app(tmp_path / "app", {"a.txt": "alpha", "b.txt": b"\x00\x01"})
    bits = scan_app(app)
    assert bits.read("b.txt") == b"\x00\x01"
    assert [(f.path, data) for f, data in bits.iter_contents()] == [("a.txt", b"alpha"), ("b.txt", b"\x00\x01")]


def test_reading_a_path_that_is_not_one_of_the_apps_files_is_path_not_found(tmp_path: Path):
    bits = scan_app(make_app(tmp_path / "app", {"a.txt": "a"}))
    with pytest.raises(PathNotFound):
        bits.read("../etc/passwd")


def test_a_missing_path_is_path_not_found(tmp_path: Path):
    with pytest.raises(PathNotFound):
        scan_app(tmp_path / "nope")


def test_an_empty_directory_is_path_empty(tmp_path: Path):
    (tmp_path / "app" / "sub").mkdir(parents=True)
    with pytest.raises(PathEmpty):
        scan_app(tmp_path / "app")


def test_a_directory_holding_only_ignored_files_is_path_empty(tmp_path: Path):
    app = make_app(tmp_path / "app", {"manifest.yml": "applications: []", ".git/HEAD": "ref"})
    with pytest.raises(PathEmpty):
        scan_app(app)


def test_git_dirs_the_root_manifest_and_ds_store_are_always_skipped(tmp_path: Path):
    app = make_app(
        tmp_path / "app",
        {
            "app.py": "",
            ".git/config": "",
            "sub/.git/HEAD": "",
            "manifest.yml": "",
            "sub/manifest.yml": "",
            ".DS_Store": "",
            "sub/.DS_Store": "",
            ".gitignore": "",
            ".cfignore": "",
            ".svn/x": "",
        },
    )
    assert paths(scan_app(app)) == ["app.py", "sub/manifest.yml"]


def test_cfignore_excludes_matching_files_and_directories(tmp_path: Path):
    app = make_app(
        tmp_path / "app",
        {
            ".cfignore": "# build output\n*.log\ntmp/\n/build\n**/cache/**\n!keep.log\n",
            "app.py": "",
            "debug.log": "",
            "keep.log": "",
            "sub/trace.log": "",
            "tmp/x": "",
            "sub/tmp/y": "",
            "build/out": "",
            "sub/build/out": "",
            "a/cache/b/c": "",
        },
    )
    assert paths(scan_app(app)) == ["app.py", "keep.log", "sub/build/out"]


def test_cfignore_cannot_bring_back_what_is_always_skipped(tmp_path: Path):
    app = make_app(tmp_path / "app", {".cfignore": "!.git\n!manifest.yml\n", "a": "", ".git/x": "", "manifest.yml": ""})
    assert paths(scan_app(app)) == ["a"]


@pytest.mark.parametrize(
    ("rules", "path", "is_dir", "ignored"),
    [
        ("*.pyc", "a/b/c.pyc", False, True),
        ("/top.txt", "top.txt", False, True),
        ("/top.txt", "sub/top.txt", False, False),
        ("docs/*.md", "docs/a.md", False, True),
        ("docs/*.md", "docs/deep/a.md", False, False),
        ("logs/", "logs", False, False),
        ("logs/", "logs", True, True),
        ("logs/", "logs/today.txt", False, True),
        ("file?.txt", "file1.txt", False, True),
        ("file[0-9].txt", "filex.txt", False, False),
        ("file[!0-9].txt", "filex.txt", False, True),
        ("secret\n!secret", "secret", False, False),
        ("dir\n!dir/keep", "dir/keep", False, True),
        ("\\#hash", "#hash", False, True),
    ],
)
def test_cfignore_follows_gitignore_rules(rules, path, is_dir, ignored):
    assert CfIgnore.from_text(rules).ignored(path, is_dir) is ignored


def test_a_symlink_to_a_file_inside_is_stored_as_that_files_content(tmp_path: Path):
    app = make_app(tmp_path / "app", {"real/config.txt": "cfg"})
    (app / "link.txt").symlink_to("real/config.txt")
    bits = scan_app(app)
    assert paths(bits) == ["link.txt", "real/config.txt"]
    assert bits.read("link.txt") == b"cfg"


def test_a_symlink_to_a_directory_inside_is_walked(tmp_path: Path):
    app = make_app(tmp_path / "app", {"lib/a.py": "a"})
    (app / "vendor").symlink_to("lib", target_is_directory=True)
    assert paths(scan_app(app)) == ["lib/a.py", "vendor/a.py"]


def test_a_symlink_pointing_outside_the_app_is_unsafe(tmp_path: Path):
    make_app(tmp_path, {"secret.txt": "password"})
    app = make_app(tmp_path / "app", {"a.py": ""})
    (app / "leak.txt").symlink_to("../secret.txt")
    with pytest.raises(UnsafePath, match="leak.txt"):
        scan_app(app)


def test_an_absolute_symlink_pointing_outside_the_app_is_unsafe(tmp_path: Path):
    app = make_app(tmp_path / "app", {"a.py": ""})
    (app / "etc").symlink_to("/etc", target_is_directory=True)
    with pytest.raises(UnsafePath, match="outside"):
        scan_app(app)


def test_a_dangling_symlink_is_unsafe(tmp_path: Path):
    app = make_app(tmp_path / "app", {"a.py": ""})
    (app / "gone").symlink_to("missing.txt")
    with pytest.raises(UnsafePath, match="missing"):
        scan_app(app)


def test_a_symlink_to_an_enclosing_directory_is_a_loop_and_unsafe(tmp_path: Path):
    app = make_app(tmp_path / "app", {"sub/a.py": ""})
    (app / "sub" / "up").symlink_to("..", target_is_directory=True)
    with pytest.raises(UnsafePath, match="loop"):
        scan_app(app)


def test_a_cfignored_symlink_is_skipped_before_it_is_judged(tmp_path: Path):
    app = make_app(tmp_path / "app", {"a.py": "", ".cfignore": "leak\n"})
    (app / "leak").symlink_to("/etc", target_is_directory=True)
    assert paths(scan_app(app)) == ["a.py"]


def test_a_fifo_in_the_app_is_unsafe(tmp_path: Path):
    app = make_app(tmp_path / "app", {"a.py": ""})
    os.mkfifo(app / "pipe")
    with pytest.raises(UnsafePath, match="pipe"):
        scan_app(app)


def test_a_file_name_that_is_not_utf8_is_unsafe(tmp_path: Path):
    app = make_app(tmp_path / "app", {"a.py": ""})
    (Path(os.fsdecode(bytes(app) + b"/\xff.txt"))).write_bytes(b"")
    with pytest.raises(UnsafePath, match="UTF-8"):
        scan_app(app)


def test_the_app_path_may_itself_be_a_symlink(tmp_path: Path):
    make_app(tmp_path / "releases" / "1", {"a.py": "a"})
    (tmp_path / "current").symlink_to(tmp_path / "releases" / "1", target_is_directory=True)
    assert paths(scan_app(tmp_path / "current")) == ["a.py"]


def test_a_plain_file_that_is_not_an_archive_is_refused(tmp_path: Path):
    (tmp_path / "app.py").write_text("print()")
    with pytest.raises(PathNotFound, match="not a directory, zip or tar"):
        scan_app(tmp_path / "app.py")


# --- size limits -----------------------------------------------------------------------


def test_a_file_over_the_per_file_limit_is_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(appfiles, "MAX_FILE_BYTES", 10)
    app = make_app(tmp_path / "app", {"small": "x" * 10, "big": "x" * 11})
    with pytest.raises(FileTooLarge, match="big"):
        scan_app(app)


def test_an_app_over_the_total_limit_is_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(appfiles, "MAX_APP_BYTES", 25)
    app = make_app(tmp_path / "app", {"a": "x" * 10, "b": "x" * 10, "c": "x" * 10})
    with pytest.raises(FileTooLarge, match="upload limit"):
        scan_app(app)


def test_an_app_with_too_many_files_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(appfiles, "MAX_APP_FILES", 2)
    app = make_app(tmp_path / "app", {"a": "", "b": "", "c": ""})
    with pytest.raises(FileTooLarge, match="files"):
        scan_app(app)


def test_a_file_inside_a_zip_over_the_limit_is_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(appfiles, "MAX_FILE_BYTES", 10)
    archive = make_zip(tmp_path / "app.zip", [("big", b"\0" * 1000)])
    with pytest.raises(FileTooLarge, match="big"):
        scan_app(archive)


def test_a_file_inside_a_tar_over_the_limit_is_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(appfiles, "MAX_FILE_BYTES", 10)
    archive = make_tar(tmp_path / "app.tgz", [tar_member("big", b"\0" * 1000)])
    with pytest.raises(FileTooLarge, match="big"):
        scan_app(archive)


# --- zip archives -------------------------------------------------------------------------


def test_a_zip_archive_is_read_like_a_directory(tmp_path: Path):
    archive = make_zip(
        tmp_path / "app.zip",
        [("app.py", b"print()"), ("lib/", b""), ("lib/util.py", b"x = 1"), ("manifest.yml", b""), (".git/HEAD", b"")],
    )
    bits = scan_app(archive)
    assert bits.kind == "zip"
    assert paths(bits) == ["app.py", "lib/util.py"]
    assert bits.read("lib/util.py") == b"x = 1"
    assert [d for _, d in bits.iter_contents()] == [b"print()", b"x = 1"]


def test_a_jar_is_a_zip_archive(tmp_path: Path):
    archive = make_zip(tmp_path / "app.jar", [("META-INF/MANIFEST.MF", b"Main-Class: App\n")])
    assert paths(scan_app(archive)) == ["META-INF/MANIFEST.MF"]


def test_a_zip_honours_its_cfignore(tmp_path: Path):
    archive = make_zip(tmp_path / "app.zip", [(".cfignore", b"*.log\n"), ("a.py", b""), ("x.log", b"")])
    assert paths(scan_app(archive)) == ["a.py"]


@pytest.mark.parametrize(
    "name", ["../evil.py", "a/../../evil.py", "/etc/evil", "C:/evil", "..\\evil.py", "a\\..\\..\\evil"]
)
def test_a_zip_entry_that_escapes_is_unsafe(tmp_path: Path, name: str):
    archive = make_zip(tmp_path / "app.zip", [("ok.py", b""), (name, b"boom")])
    with pytest.raises(UnsafePath):
        scan_app(archive)


@pytest.mark.parametrize("target", ["../../etc/passwd", "/etc/passwd", "sub/../../x"])
def test_a_zip_symlink_pointing_outside_is_unsafe(tmp_path: Path, target: str):
    archive = make_zip(tmp_path / "app.zip", [("ok.py", b"")], symlinks={"link": target})
    with pytest.raises(UnsafePath, match="link"):
        scan_app(archive)


def test_a_zip_symlink_pointing_inside_is_stored_as_content(tmp_path: Path):
    archive = make_zip(tmp_path / "app.zip", [("lib/real.py", b"real")], symlinks={"bin/alias.py": "../lib/real.py"})
    bits = scan_app(archive)
    assert paths(bits) == ["bin/alias.py", "lib/real.py"]
    assert bits.read("bin/alias.py") == b"real"


def test_duplicate_zip_entries_are_unsafe(tmp_path: Path):
    with pytest.warns(UserWarning, match="Duplicate name"):
        archive = make_zip(tmp_path / "app.zip", [("a.py", b"one"), ("a.py", b"two")])
    with pytest.raises(UnsafePath, match="more than once"):
        scan_app(archive)


def test_a_zip_whose_data_is_corrupt_is_unsafe(tmp_path: Path):
    archive = tmp_path / "app.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("a.txt", b"hello world")
    raw = bytearray(archive.read_bytes())
    raw[raw.index(b"hello world")] ^= 0xFF
    archive.write_bytes(bytes(raw))
    with pytest.raises(UnsafePath, match="not a readable archive"):
        scan_app(archive)


# --- tar archives ---------------------------------------------------------------------------


def test_a_tgz_archive_is_read_like_a_directory(tmp_path: Path):
    archive = make_tar(
        tmp_path / "app.tgz",
        [
            tar_member("./", type=tarfile.DIRTYPE),
            tar_member("./run", b"#!/bin/sh", mode=0o755),
            tar_member("./lib/a.py", b"a"),
            tar_member("./manifest.yml", b""),
        ],
    )
    bits = scan_app(archive)
    assert bits.kind == "tar"
    assert bits.files == (AppFile("lib/a.py", sha1(b"a"), 1, 0o644), AppFile("run", sha1(b"#!/bin/sh"), 9, 0o755))
    assert bits.read("run") == b"#!/bin/sh"


def test_an_uncompressed_tar_archive_is_read(tmp_path: Path):
    archive = make_tar(tmp_path / "app.tar", [tar_member("a.py", b"a")], mode="w")
    assert paths(scan_app(archive)) == ["a.py"]


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "/abs/evil"])
def test_a_tar_entry_that_escapes_is_unsafe(tmp_path: Path, name: str):
    archive = make_tar(tmp_path / "app.tgz", [tar_member("ok.py"), tar_member(name, b"boom")])
    with pytest.raises(UnsafePath):
        scan_app(archive)


@pytest.mark.parametrize(
    ("kind", "target"),
    [(tarfile.SYMTYPE, "../../etc/passwd"), (tarfile.SYMTYPE, "/etc/passwd"), (tarfile.LNKTYPE, "../outside")],
)
def test_a_tar_link_pointing_outside_is_unsafe(tmp_path: Path, kind: bytes, target: str):
    archive = make_tar(tmp_path / "app.tgz", [tar_member("ok.py"), tar_member("link", type=kind, linkname=target)])
    with pytest.raises(UnsafePath, match="link"):
        scan_app(archive)


def test_tar_links_pointing_inside_are_stored_as_content(tmp_path: Path):
    archive = make_tar(
        tmp_path / "app.tgz",
        [
            tar_member("./lib/real.py", b"real"),
            tar_member("./bin/sym.py", type=tarfile.SYMTYPE, linkname="../lib/real.py"),
            tar_member("./hard.py", type=tarfile.LNKTYPE, linkname="./lib/real.py"),
        ],
    )
    bits = scan_app(archive)
    assert paths(bits) == ["bin/sym.py", "hard.py", "lib/real.py"]
    assert {f.sha1 for f in bits.files} == {sha1(b"real")}
    assert bits.read("hard.py") == b"real"


def test_a_tar_symlink_loop_is_unsafe(tmp_path: Path):
    archive = make_tar(
        tmp_path / "app.tgz",
        [tar_member("a", type=tarfile.SYMTYPE, linkname="b"), tar_member("b", type=tarfile.SYMTYPE, linkname="a")],
    )
    with pytest.raises(UnsafePath, match="loop"):
        scan_app(archive)


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_a_tar_device_or_fifo_entry_is_unsafe(tmp_path: Path, kind: bytes):
    archive = make_tar(tmp_path / "app.tgz", [tar_member("ok.py"), tar_member("dev", type=kind)])
    with pytest.raises(UnsafePath, match="dev"):
        scan_app(archive)


def test_a_tar_entry_that_is_both_file_and_directory_is_unsafe(tmp_path: Path):
    archive = make_tar(tmp_path / "app.tgz", [tar_member("a", b"file"), tar_member("a/b", b"nested")])
    with pytest.raises(UnsafePath, match="both a file and a directory"):
        scan_app(archive)


# --- the package ------------------------------------------------------------------------------


def test_a_package_round_trips_through_extract(tmp_path: Path):
    app = make_app(tmp_path / "app", {"app.py": "print()", "lib/x.py": "x", "run": "#!/bin/sh"})
    os.chmod(app / "run", 0o755)
    bits = scan_app(app)
    package = build_package(bits.files, bits.read)
    files = extract_package(package, tmp_path / "out")
    assert tuple(files) == bits.files
    assert (tmp_path / "out" / "lib" / "x.py").read_text() == "x"
    assert stat.S_IMODE(os.stat(tmp_path / "out" / "run").st_mode) == 0o755


def test_a_package_is_the_same_bytes_for_the_same_files(tmp_path: Path):
    app = make_app(tmp_path / "app", {"b": "2", "a": "1"})
    bits = scan_app(app)
    first = build_package(bits.files, bits.read)
    os.utime(app / "a", (0, 1_000_000))
    second = build_package(reversed(scan_app(app).files), bits.read)
    assert first == second


def test_a_package_holds_regular_files_owned_by_root_with_a_fixed_mtime(tmp_path: Path):
    bits = scan_app(make_app(tmp_path / "app", {"a": "1"}))
    with tarfile.open(fileobj=io.BytesIO(build_package(bits.files, bits.read, mtime=1234))) as tf:
        (member,) = tf.getmembers()
    assert (member.name, member.uid, member.gid, member.uname, member.mtime) == ("a", 0, 0, "", 1234)


def test_write_package_streams_to_a_file(tmp_path: Path):
    bits = scan_app(make_app(tmp_path / "app", {"a": "1"}))
    with open(tmp_path / "pkg.tgz", "wb") as fh:
        write_package(bits.files, bits.read, fh)
    assert extract_package(tmp_path / "pkg.tgz", tmp_path / "out") == list(bits.files)


def test_content_that_does_not_match_its_sha1_is_refused_as_corrupt(tmp_path: Path):
    files = [AppFile("a.txt", sha1(b"expected"), 8, 0o644)]
    with pytest.raises(BlobCorrupt, match="a.txt"):
        build_package(files, lambda _: b"tampered")


@pytest.mark.parametrize("path", ["../x", "/abs", "a/../b", "./a", ""])
def test_a_package_refuses_file_paths_that_are_not_clean(path: str):
    with pytest.raises(UnsafePath):
        build_package([AppFile(path, sha1(b""), 0, 0o644)], lambda _: b"")


def test_a_package_refuses_files_over_the_limit(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(appfiles, "MAX_FILE_BYTES", 3)
    with pytest.raises(FileTooLarge):
        build_package([AppFile("a", sha1(b"four"), 4, 0o644)], lambda _: b"four")


def test_iter_package_yields_each_file_and_its_bytes(tmp_path: Path):
    bits = scan_app(make_app(tmp_path / "app", {"a": "1", "b/c": "2"}))
    pairs = list(iter_package(build_package(bits.files, bits.read)))
    assert pairs == [(bits.files[0], b"1"), (bits.files[1], b"2")]


@pytest.mark.parametrize(
    "member",
    [
        tar_member("../escape", b"x"),
        tar_member("/abs/escape", b"x"),
        tar_member("a/../../escape", b"x"),
        tar_member("link", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
        tar_member("inside-link", type=tarfile.SYMTYPE, linkname="ok"),
        tar_member("hard", type=tarfile.LNKTYPE, linkname="ok"),
        tar_member("dev", type=tarfile.CHRTYPE),
        tar_member("fifo", type=tarfile.FIFOTYPE),
    ],
    ids=["dotdot", "absolute", "nested-dotdot", "symlink-out", "symlink-in", "hardlink", "device", "fifo"],
)
def test_extract_refuses_a_hostile_package_and_writes_nothing(tmp_path: Path, member):
    package = tar_bytes([tar_member("ok", b"fine"), member])
    with pytest.raises(UnsafePath):
        extract_package(package, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "escape").exists()


def test_iter_package_refuses_a_hostile_package(tmp_path: Path):
    with pytest.raises(UnsafePath):
        list(iter_package(tar_bytes([tar_member("../escape", b"x")])))


def test_extract_refuses_a_destination_that_is_not_empty(tmp_path: Path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("")
    with pytest.raises(UnsafePath, match="not empty"):
        extract_package(tar_bytes([tar_member("a", b"x")]), tmp_path / "out")


def test_extract_refuses_a_destination_that_is_a_symlink(tmp_path: Path):
    (tmp_path / "real").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "real", target_is_directory=True)
    with pytest.raises(UnsafePath, match="symlink"):
        extract_package(tar_bytes([tar_member("a", b"x")]), tmp_path / "out")


def test_extract_of_garbage_is_blob_corrupt(tmp_path: Path):
    with pytest.raises(BlobCorrupt):
        extract_package(b"this is not a tar archive at all" * 20, tmp_path / "out")


def test_extract_of_a_truncated_package_is_blob_corrupt(tmp_path: Path):
    package = tar_bytes([tar_member("a", os.urandom(50_000))])
    with pytest.raises(BlobCorrupt):
        extract_package(package[: len(package) // 2], tmp_path / "out")


def test_extract_of_a_missing_package_file_is_path_not_found(tmp_path: Path):
    with pytest.raises(PathNotFound):
        extract_package(tmp_path / "nope.tgz", tmp_path / "out")


def test_extract_refuses_a_package_over_the_app_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(appfiles, "MAX_APP_BYTES", 100)
    package = tar_bytes([tar_member("a", b"x" * 60), tar_member("b", b"x" * 60)])
    with pytest.raises(FileTooLarge):
        extract_package(package, tmp_path / "out")


def test_extract_refuses_duplicate_entries(tmp_path: Path):
    with pytest.raises(UnsafePath, match="more than once"):
        extract_package(tar_bytes([tar_member("a", b"1"), tar_member("./a", b"2")]), tmp_path / "out")


# --- small apps, gathered where asked ------------------------------------------------------------


def test_a_small_app_is_gathered_as_scan_app_gathers_it(tmp_path):
    app = make_app(
        tmp_path / "app", {"app.py": "print()", "lib/util.py": "x = 1", ".cfignore": "lib/skip\n", "lib/skip": "no"}
    )
    small = scan_small_app(app)
    assert small is not None
    assert small.files == scan_app(app).files


def test_an_app_past_the_small_bounds_or_an_archive_is_left_to_scan_app(tmp_path, monkeypatch):
    import actors.appfiles as appfiles

    many = make_app(tmp_path / "many", {f"f{i}.txt": "x" for i in range(appfiles.SMALL_APP_ENTRIES + 1)})
    assert scan_small_app(many) is None and len(scan_app(many).files) == appfiles.SMALL_APP_ENTRIES + 1
    deep = make_app(tmp_path / "deep", {"/".join(f"d{i}" for i in range(appfiles.SMALL_APP_ENTRIES)) + "/f": "x"})
    assert scan_small_app(deep) is None
    big = make_app(tmp_path / "big", {"blob.bin": b"b" * (appfiles.SMALL_APP_BYTES + 1)})
    assert scan_small_app(big) is None
    archive = tmp_path / "app.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("app.py", "print()")
    assert scan_small_app(archive) is None
    with pytest.raises(PathNotFound):
        scan_small_app(tmp_path / "missing")


def _reference_package(files: list[AppFile], contents: dict[str, bytes], mtime: int) -> bytes:
    """A package as tarfile and GzipFile write it."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=mtime, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tf,
    ):
        for f in sorted(files, key=lambda f: f.path):
            info = tarfile.TarInfo(f.path)
            info.size, info.mode, info.mtime, info.uname, info.gname = f.size, f.mode, mtime, "", ""
            tf.addfile(info, io.BytesIO(contents[f.path]))
    return buffer.getvalue()


@settings(max_examples=50, deadline=None)
@given(
    contents=st.dictionaries(
        st.lists(st.sampled_from(["a", "b", "lib", "x" * 60, "\u00fc"]), min_size=1, max_size=3).map("/".join),
        st.binary(max_size=2000),
        min_size=1,
        max_size=8,
    ),
    executable=st.booleans(),
    mtime=st.integers(0, 2**32 - 1),
)
def test_a_package_is_the_archive_tarfile_and_gzip_write(contents, executable, mtime):
    names = sorted(contents)
    if any(other.startswith(name + "/") for name in names for other in names):
        return  # a name that is a file and a directory: refused, as the tests above show
    mode = 0o755 if executable else 0o644
    files = [AppFile(n, hashlib.sha1(d).hexdigest(), len(d), mode) for n, d in contents.items()]
    assert build_package(files, contents.__getitem__, mtime=mtime) == _reference_package(files, contents, mtime)
