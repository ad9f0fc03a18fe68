from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actors.appfiles import build_package, iter_package
from actors.blobstore import store as store_module
from actors.blobstore.store import (
    OP_DELETE,
    OP_GET,
    OP_HEAD,
    OP_LIST,
    OP_PUT,
    BlobInfo,
    BlobStore,
    BlobStoreStats,
)
from protocol.errors import BlobCorrupt, BlobNotFound, BlobStoreUnavailable
from protocol.records import AppFile

pytestmark = pytest.mark.anyio


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


class CountingGuard:
    def __init__(self) -> None:
        self.entered = 0
        self.depth = 0

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        self.entered += 1
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


class SwitchableFault:
    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.seen: list[str] = []

    async def __call__(self, op: str) -> None:
        self.seen.append(op)
        if op in self.failing:
            raise BlobStoreUnavailable()


@pytest.fixture
async def store(tmp_path: Path, anyio_backend: str) -> AsyncIterator[BlobStore]:
    async with BlobStore(tmp_path / "store", chunk_size=7) as store:
        yield store


# --- blobs --------------------------------------------------------------------


async def test_put_bytes_then_get_bytes_round_trips(store: BlobStore) -> None:
    info = await store.put_bytes(b"a droplet")
    assert info == BlobInfo(sha256(b"a droplet"), 9)
    assert await store.get_bytes(info.key) == b"a droplet"


async def test_a_blob_lives_under_its_sha256_fanned_out_by_prefix(store: BlobStore) -> None:
    info = await store.put_bytes(b"a package")
    k = info.key
    assert (store.root / "blobs" / k[:2] / k[2:4] / k).read_bytes() == b"a package"


async def test_put_file_streams_a_file_in_and_round_trips(store: BlobStore, tmp_path: Path) -> None:
    data = bytes(range(256)) * 3  # many chunks of 7 bytes, and a short last one
    source = tmp_path / "package.zip"
    source.write_bytes(data)
    info = await store.put_file(source)
    assert info == BlobInfo(sha256(data), len(data))
    assert await store.get_bytes(info.key) == data


async def test_putting_the_same_content_twice_keeps_one_blob(store: BlobStore) -> None:
    first = await store.put_bytes(b"same")
    second = await store.put_bytes(b"same")
    assert first == second
    assert await store.keys() == [first.key]


async def test_a_flipped_byte_on_disk_is_detected_as_corrupt(store: BlobStore) -> None:
    info = await store.put_bytes(b"a droplet of some length")
    flip_a_byte(store.root / "blobs" / info.key[:2] / info.key[2:4] / info.key)
    with pytest.raises(BlobCorrupt):
        await store.get_bytes(info.key)
    assert await store.verify(info.key) is False


async def test_a_missing_blob_raises_blob_not_found(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await store.get_bytes(sha256(b"never stored"))
    with pytest.raises(BlobNotFound):
        await store.size(sha256(b"never stored"))


async def test_verify_is_true_only_for_a_present_intact_blob(store: BlobStore) -> None:
    info = await store.put_bytes(b"fine")
    assert await store.verify(info.key) is True
    assert await store.verify(sha256(b"absent")) is False


async def test_copy_to_writes_a_verified_copy(store: BlobStore, tmp_path: Path) -> None:
    info = await store.put_bytes(b"droplet contents, longer than a chunk")
    dest = tmp_path / "cell" / "droplet.tgz"
    dest.parent.mkdir()
    assert await store.copy_to(info.key, dest) == info
    assert dest.read_bytes() == b"droplet contents, longer than a chunk"


async def test_copy_to_of_a_corrupt_blob_leaves_nothing_at_the_destination(store: BlobStore, tmp_path: Path) -> None:
    info = await store.put_bytes(b"droplet contents, longer than a chunk")
    flip_a_byte(store.root / "blobs" / info.key[:2] / info.key[2:4] / info.key)
    cell = tmp_path / "cell"
    cell.mkdir()
    with pytest.raises(BlobCorrupt):
        await store.copy_to(info.key, cell / "droplet.tgz")
    assert files_under(cell) == []


async def test_a_failed_write_leaves_no_partial_file(
    store: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    source = tmp_path / "package.zip"
    source.write_bytes(b"package bytes")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(BlobStoreUnavailable):
        await store.put_bytes(b"droplet bytes")
    with pytest.raises(BlobStoreUnavailable):
        await store.put_file(source)
    with pytest.raises(BlobStoreUnavailable):
        await store.add_resources([(sha1(b"app.py"), b"app.py")])
    monkeypatch.undo()
    assert files_under(store.root) == []


async def test_leftover_temp_files_are_removed_on_open(tmp_path: Path, anyio_backend: str) -> None:
    root = tmp_path / "store"
    async with BlobStore(root) as store:
        info = await store.put_bytes(b"kept")
    fan = root / "blobs" / info.key[:2] / info.key[2:4]
    leftovers = [
        fan / ".tmp-abc",
        root / "blobs" / ".tmp-def",
        root / "resource_pool" / "aa" / "bb" / ".tmp-ghi",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a blob")

    store = BlobStore(root)
    assert await store.open() == 3
    assert files_under(root) == [fan / info.key]
    await store.close()


async def test_delete_removes_a_blob_and_reports_whether_it_was_there(
    store: BlobStore,
) -> None:
    info = await store.put_bytes(b"gone soon")
    assert await store.delete(info.key) is True
    assert await store.delete(info.key) is False
    assert await store.exists(info.key) is False


async def test_orphans_and_missing_are_computed_against_the_referenced_keys(
    store: BlobStore,
) -> None:
    orphan = await store.put_bytes(b"nobody points here")
    kept = await store.put_bytes(b"ccdb points here")
    lost = sha256(b"ccdb points here too, but it is gone")
    referenced = {kept.key, lost}
    assert await store.orphans(referenced) == {orphan.key}
    assert await store.missing(referenced) == {lost}


async def test_keys_ignore_files_that_are_not_blobs(store: BlobStore) -> None:
    info = await store.put_bytes(b"real")
    (store.root / "blobs" / "README").write_text("not a blob")
    misplaced = store.root / "blobs" / "00" / "00" / info.key
    misplaced.parent.mkdir(parents=True)
    misplaced.write_bytes(b"real")
    assert await store.keys() == [info.key]


async def test_a_malformed_key_is_refused_before_touching_the_disk(store: BlobStore) -> None:
    with pytest.raises(ValueError, match="sha256"):
        await store.get_bytes("../../etc/passwd")


async def test_size_and_stats_count_what_is_held(store: BlobStore) -> None:
    a = await store.put_bytes(b"12345")
    await store.put_bytes(b"1234567890")
    await store.add_resources([(sha1(b"abc"), b"abc")])
    assert await store.size(a.key) == 5
    assert await store.stats() == BlobStoreStats(blobs=2, blob_bytes=15, resources=1, resource_bytes=3)


# --- resource pool --------------------------------------------------------------


async def test_the_resource_pool_matches_only_held_files_of_the_same_size(
    store: BlobStore,
) -> None:
    app_py, reqs = b"print('hi')", b"flask\n"
    assert await store.add_resources([(sha1(app_py), app_py), (sha1(reqs), reqs)]) == [
        sha1(app_py),
        sha1(reqs),
    ]
    asked = [
        (sha1(reqs), len(reqs)),
        (sha1(app_py), len(app_py) + 1),
        (sha1(b"unknown"), 7),
        ("not-a-sha1", 3),
    ]
    assert await store.match_resources(asked) == [(sha1(reqs), len(reqs))]
    assert await store.get_resource(sha1(app_py)) == app_py


async def test_adding_a_held_resource_again_stores_nothing_new(store: BlobStore) -> None:
    await store.add_resources([(sha1(b"x"), b"x")])
    assert await store.add_resources([(sha1(b"x"), b"x")]) == []


async def test_a_resource_not_matching_its_sha1_is_refused_and_nothing_is_added(
    store: BlobStore,
) -> None:
    with pytest.raises(BlobCorrupt):
        await store.add_resources([(sha1(b"good"), b"good"), (sha1(b"claimed"), b"actual")])
    assert (await store.stats()).resources == 0


async def test_a_corrupt_resource_is_dropped_from_the_pool(store: BlobStore) -> None:
    data = b"a file in the pool"
    await store.add_resources([(sha1(data), data)])
    key = sha1(data)
    flip_a_byte(store.root / "resource_pool" / key[:2] / key[2:4] / key)
    with pytest.raises(BlobCorrupt):
        await store.get_resource(key)
    assert await store.match_resources([(key, len(data))]) == []
    with pytest.raises(BlobNotFound):
        await store.get_resource(key)


# --- hooks ------------------------------------------------------------------------


async def test_io_guard_is_entered_around_every_thread_hop(
    tmp_path: Path, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard = CountingGuard()
    hops = 0
    unguarded = 0
    original = store_module.in_thread

    async def checked(func, *args):  # type: ignore[no-untyped-def]
        nonlocal hops, unguarded
        hops += 1
        unguarded += guard.depth == 0
        return await original(func, *args)

    monkeypatch.setattr(store_module, "in_thread", checked)
    source = tmp_path / "src"
    source.write_bytes(b"file")
    async with BlobStore(tmp_path / "store", io_guard=guard) as store:
        info = await store.put_bytes(b"data")
        await store.put_file(source)
        await store.get_bytes(info.key)
        await store.copy_to(info.key, tmp_path / "copy")
        await store.exists(info.key)
        await store.size(info.key)
        await store.verify(info.key)
        await store.orphans(set())
        await store.missing(set())
        await store.stats()
        await store.add_resources([(sha1(b"r"), b"r")])
        await store.match_resources([(sha1(b"r"), 1)])
        await store.get_resource(sha1(b"r"))
        await store.delete(info.key)
    assert unguarded == 0
    assert hops >= 10
    assert guard.entered == hops
    assert guard.depth == 0


def _count_hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    hops: list[str] = []
    original = store_module.in_thread

    async def counted(func, *args):  # type: ignore[no-untyped-def]
        hops.append(getattr(func, "__name__", "?"))
        return await original(func, *args)

    monkeypatch.setattr(store_module, "in_thread", counted)
    return hops


async def test_small_lookups_and_reads_run_here_and_writes_and_big_reads_hop(
    tmp_path: Path, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = b"b" * (store_module.SMALL_BYTES + 1)
    async with BlobStore(tmp_path / "store") as store:
        hops = _count_hops(monkeypatch)
        small = await store.put_bytes(b"small")  # new content: written on a thread
        assert len(hops) == 1
        large = await store.put_bytes(big)
        assert len(hops) == 2
        await store.add_resources([(sha1(b"r"), b"r")])
        del hops[:]
        assert await store.put_bytes(b"small") == small  # held already: nothing to write
        assert await store.get_bytes(small.key) == b"small"
        assert await store.exists(small.key) and await store.size(small.key) == 5
        assert await store.match_resources([(sha1(b"r"), 1), (sha1(b"x"), 1)]) == [(sha1(b"r"), 1)]
        assert hops == []
        assert await store.get_bytes(large.key) == big
        assert await store.put_bytes(big) == large
        assert len(hops) == 2
        many = [(sha1(bytes([i])), 1) for i in range(20)]
        await store.match_resources(many)
        assert len(hops) == 3


async def test_a_package_of_small_pooled_files_held_already_is_assembled_without_a_hop(
    tmp_path: Path, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = (AppFile("a.txt", sha1(b"a"), 1, 0o644), AppFile("b.txt", sha1(b"b"), 1, 0o644))
    async with BlobStore(tmp_path / "store") as store:
        hops = _count_hops(monkeypatch)
        first = await store.assemble_package(files, {"a.txt": b"a", "b.txt": b"b"})  # uploads join the pool
        assert len(hops) == 1
        assert await store.assemble_package(files, {}) == first  # all pooled, package held: nothing to write
        assert await store.assemble_package(files, {"a.txt": b"a"}) == first  # uploaded again, held already
        assert len(hops) == 1
        other = (files[0], AppFile("c.txt", sha1(b"c"), 1, 0o644))
        await store.add_resources([(sha1(b"c"), b"c")])
        await store.assemble_package(other, {})  # a package not held yet: written on a thread
        assert len(hops) == 3
        assert {f.path: data for f, data in iter_package(await store.get_bytes(first.key))} == {
            "a.txt": b"a",
            "b.txt": b"b",
        }


async def test_a_small_blob_damaged_on_disk_is_refused_on_read_and_healed_by_a_put(
    tmp_path: Path, anyio_backend: str
) -> None:
    async with BlobStore(tmp_path / "store") as store:
        info = await store.put_bytes(b"precious")
        path = store._blob_path(info.key)
        path.write_bytes(b"PRECIOUS")  # same size, other bytes
        with pytest.raises(BlobCorrupt):
            await store.get_bytes(info.key)
        assert await store.put_bytes(b"precious") == info
        assert await store.get_bytes(info.key) == b"precious"


async def test_a_raising_fault_hook_propagates_its_error_and_changes_nothing(
    tmp_path: Path, anyio_backend: str
) -> None:
    fault = SwitchableFault()
    async with BlobStore(tmp_path / "store", fault=fault) as store:
        kept = await store.put_bytes(b"kept")
        fault.failing = {OP_PUT, OP_DELETE}
        with pytest.raises(BlobStoreUnavailable):
            await store.put_bytes(b"new")
        with pytest.raises(BlobStoreUnavailable):
            await store.add_resources([(sha1(b"r"), b"r")])
        with pytest.raises(BlobStoreUnavailable):
            await store.delete(kept.key)
        fault.failing = set()
        assert await store.stats() == BlobStoreStats(1, 4, 0, 0)


async def test_the_fault_hook_is_told_which_kind_of_operation_runs(tmp_path: Path, anyio_backend: str) -> None:
    fault = SwitchableFault()
    async with BlobStore(tmp_path / "store", fault=fault) as store:
        info = await store.put_bytes(b"x")
        await store.get_bytes(info.key)
        await store.exists(info.key)
        await store.keys()
        await store.delete(info.key)
    assert fault.seen == [OP_PUT, OP_GET, OP_HEAD, OP_LIST, OP_DELETE]


async def test_putting_bytes_again_rewrites_a_damaged_copy(store: BlobStore) -> None:
    info = await store.put_bytes(b"a package")
    path = store.root / "blobs" / info.key[:2] / info.key[2:4] / info.key
    flip_a_byte(path)

    again = await store.put_bytes(b"a package")

    assert again == info
    assert await store.verify(info.key)
    assert await store.get_bytes(info.key) == b"a package"


async def test_putting_a_file_again_rewrites_a_damaged_copy(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "droplet.tgz"
    source.write_bytes(b"a droplet" * 1000)
    info = await store.put_file(source)
    flip_a_byte(store.root / "blobs" / info.key[:2] / info.key[2:4] / info.key)

    await store.put_file(source)

    assert await store.verify(info.key)
    assert not [p for p in files_under(store.root) if p.name.startswith(".tmp")]


async def test_an_intact_copy_is_not_written_again(store: BlobStore) -> None:
    info = await store.put_bytes(b"a package")
    path = store.root / "blobs" / info.key[:2] / info.key[2:4] / info.key
    before = path.stat().st_ino

    await store.put_bytes(b"a package")

    assert path.stat().st_ino == before


async def test_resource_matching_never_offers_a_damaged_pool_file(store: BlobStore) -> None:
    good, bad = b"good file", b"bad file!"
    await store.add_resources([(sha1(good), good), (sha1(bad), bad)])
    flip_a_byte(store.root / "resource_pool" / sha1(bad)[:2] / sha1(bad)[2:4] / sha1(bad))

    matched = await store.match_resources([(sha1(good), len(good)), (sha1(bad), len(bad))])

    assert matched == [(sha1(good), len(good))]
    # Dropped, so the next upload stores it again and the pool is whole.
    assert await store.add_resources([(sha1(bad), bad)]) == [sha1(bad)]
    assert await store.get_resource(sha1(bad)) == bad


# --- a package from an upload and the pool -------------------------------------------------


def _app_files(contents: dict[str, bytes]) -> list[AppFile]:
    return [AppFile(path, sha1(data), len(data), 0o644) for path, data in sorted(contents.items())]


async def test_a_package_is_assembled_from_the_upload_and_the_pool_in_one_hop(
    tmp_path: Path, anyio_backend: str
) -> None:
    guard = CountingGuard()
    fault = SwitchableFault()
    contents = {"app.py": b"print('hi')\n", "requirements.txt": b"flask\n", "static/a.css": b"body {}\n"}
    files = _app_files(contents)
    async with BlobStore(tmp_path / "store", io_guard=guard, fault=fault) as store:
        await store.add_resources([(sha1(contents["app.py"]), contents["app.py"])])
        guard.entered, fault.seen = 0, []
        uploaded = {p: d for p, d in contents.items() if p != "app.py"}
        info = await store.assemble_package(files, uploaded)
        assert guard.entered == 1
        # One hook per part: the pooled file read, the put, the pool's additions.
        assert fault.seen == [OP_GET, OP_PUT, OP_PUT]
        assert info == BlobInfo(sha256(build_package(files, contents.__getitem__)), info.size)
        assert [(f.path, data) for f, data in iter_package(await store.get_bytes(info.key))] == sorted(contents.items())
        # The uploaded files are in the pool now: a second push uploads nothing.
        held = await store.match_resources([(f.sha1, f.size) for f in files])
        assert held == [(f.sha1, f.size) for f in files]
        assert await store.assemble_package(files, {}) == info


@pytest.mark.parametrize("damage", ["gone", "corrupt", "upload-lies", "put-fails"])
async def test_a_package_that_cannot_be_assembled_writes_nothing(
    tmp_path: Path, anyio_backend: str, damage: str
) -> None:
    fault = SwitchableFault()
    pooled, sent = b"pooled file\n", b"sent file\n"
    files = _app_files({"a.py": pooled, "b.py": sent})
    async with BlobStore(tmp_path / "store", fault=fault) as store:
        if damage != "gone":
            await store.add_resources([(sha1(pooled), pooled)])
        pool_file = store.root / "resource_pool" / sha1(pooled)[:2] / sha1(pooled)[2:4] / sha1(pooled)
        if damage == "corrupt":
            flip_a_byte(pool_file)
        uploaded = {"b.py": b"not what the sha1 says\n" if damage == "upload-lies" else sent}
        if damage == "put-fails":
            fault.failing = {OP_PUT}
        expected = {"gone": BlobNotFound, "corrupt": BlobCorrupt, "upload-lies": BlobCorrupt}.get(
            damage, BlobStoreUnavailable
        )
        with pytest.raises(expected) as raised:
            await store.assemble_package(files, uploaded)
        if damage == "gone":
            assert "a.py" in str(raised.value)
        fault.failing = set()
        stats = await store.stats()
        assert stats.blobs == 0
        # Nothing uploaded entered the pool; a damaged pooled copy left it.
        assert await store.match_resources([(sha1(sent), len(sent))]) == []
        assert pool_file.exists() == (damage in ("upload-lies", "put-fails"))


async def test_a_pooled_file_claimed_at_another_size_is_not_found_and_stays_but_a_truncated_one_is_dropped(
    store: BlobStore,
) -> None:
    data = b"a pooled file\n" * 10
    key = sha1(data)
    await store.add_resources([(key, data)])
    with pytest.raises(BlobNotFound, match="at 999 bytes"):
        await store.put_package(None, [AppFile("a.py", key, 999, 0o644)])
    # The request's mistake: the pool still holds the file.
    assert await store.match_resources([(key, len(data))]) == [(key, len(data))]
    pool_file = store.root / "resource_pool" / key[:2] / key[2:4] / key
    pool_file.write_bytes(data[:-3])
    with pytest.raises(BlobCorrupt):
        await store.put_package(None, [AppFile("a.py", key, len(data), 0o644)])
    assert not pool_file.exists()
