"""Where a cell stages: a small package in memory (the package in and the
droplet out as bytes, nothing on disk), a large one on the cell's disk, the
same droplet either way, and the staging memory always given back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import actors.cell.actor as cell_actor
from actors.blobstore.actor import BlobStoreActor
from protocol import blobs
from protocol.messages import CellInfo
from tests.actors.conftest import EXAMPLES, run

pytestmark = pytest.mark.anyio


def _watch_blob_operations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """(operation, result) of every blob store operation from now on; a
    copy is ("CopyTo", its destination)."""
    seen: list[tuple[str, Any]] = []
    for kind, operation in list(BlobStoreActor.OPERATIONS.items()):

        async def watched(store: Any, *args: Any, _kind: type = kind, _op: Any = operation, **kwargs: Any) -> Any:
            result = await _op(store, *args, **kwargs)
            seen.append((_kind.__name__, Path(kwargs["dest"]) if _kind is blobs.CopyTo else result))
            return result

        monkeypatch.setitem(BlobStoreActor.OPERATIONS, kind, watched)
    return seen


def _droplet_keys(seen: list[tuple[str, Any]]) -> list[str]:
    return [result.key for kind, result in seen if kind in ("PutBytes", "PutFile")]


async def _held(platform: Any) -> list[int]:
    cells = sorted(n for n in platform.system.names() if n.startswith("cell-"))
    return [(await platform.system.ask(n, CellInfo())).staging_memory_held for n in cells]


def _stagings(data: Path) -> list[Path]:
    return list((data / "cells").glob("*/staging/*"))


async def test_a_small_package_is_staged_in_memory_and_nothing_of_it_touches_the_disk(platform, tmp_path, monkeypatch):
    seen = _watch_blob_operations(monkeypatch)
    code, lines = await run(platform, "push", "hello", "-p", str(EXAMPLES / "python"))
    assert code == 0, "\n".join(lines)
    kinds = [kind for kind, _ in seen]
    assert "GetBytes" in kinds and "PutBytes" in kinds and "PutFile" not in kinds
    # The one copy is the droplet, to the cell that runs the instance.
    assert [dest.parent.name for kind, dest in seen if kind == "CopyTo"] == ["droplets"]
    assert not list((tmp_path / "data" / "cells").glob("*/staging"))
    assert await _held(platform) == [0, 0, 0, 0]


async def test_a_package_too_big_for_memory_is_staged_on_disk_to_the_same_droplet(platform, tmp_path, monkeypatch):
    seen = _watch_blob_operations(monkeypatch)
    code, lines = await run(platform, "push", "small", "-p", str(EXAMPLES / "python"))
    assert code == 0, "\n".join(lines)
    monkeypatch.setattr(cell_actor, "STAGE_IN_MEMORY_BYTES", 10)
    code, lines = await run(platform, "push", "large", "-p", str(EXAMPLES / "python"))
    assert code == 0, "\n".join(lines)
    kinds = [kind for kind, _ in seen]
    assert kinds.count("PutBytes") == 1 and kinds.count("PutFile") == 1 and "CopyTo" in kinds
    in_memory, on_disk = _droplet_keys(seen)
    assert in_memory == on_disk
    assert _stagings(tmp_path / "data") == []  # the disk staging's directory is removed


async def test_a_staging_the_cells_memory_has_no_room_for_goes_to_disk(make_platform, tmp_path, monkeypatch):
    platform = await make_platform(cells=1).start()
    seen = _watch_blob_operations(monkeypatch)
    budget = cell_actor.CellConfig("x").staging_memory
    monkeypatch.setattr(cell_actor, "_staging_memory_for", lambda size: budget // 2 + 1)
    import asyncio

    pushes = [run(platform, "push", f"app-{i}", "-p", str(EXAMPLES / "python")) for i in range(2)]
    for code, lines in await asyncio.gather(*pushes):
        assert code == 0, "\n".join(lines)
    kinds = [kind for kind, _ in seen]
    assert kinds.count("PutBytes") == 1 and kinds.count("PutFile") == 1
    assert await _held(platform) == [0]


async def test_a_failed_staging_gives_its_memory_back(platform, monkeypatch):
    code, lines = await run(platform, "push", "nothing", "-p", str(EXAMPLES / "undetectable"))
    assert code == 1 and "NoAppDetectedError" in "\n".join(lines)
    assert await _held(platform) == [0, 0, 0, 0]


def test_what_a_staging_holds_grows_with_its_package_and_stops_at_the_in_memory_limit():
    assert cell_actor._staging_memory_for(0) == 0  # size unknown: on disk
    assert cell_actor._staging_memory_for(1) == 1024 * 1024
    assert cell_actor._staging_memory_for(10 * 1024 * 1024) == 40 * 1024 * 1024
    assert cell_actor._staging_memory_for(cell_actor.STAGE_IN_MEMORY_BYTES + 1) == 0


async def test_a_small_app_stages_on_the_loop_and_a_bigger_one_on_a_thread(platform, monkeypatch):
    staged_on_threads: list[object] = []
    original = cell_actor.in_thread

    async def watched(fn, *args):  # type: ignore[no-untyped-def]
        if fn is cell_actor._run_staging:
            staged_on_threads.append(args[0])
        return await original(fn, *args)

    monkeypatch.setattr(cell_actor, "in_thread", watched)
    code, lines = await run(platform, "push", "small", "-p", str(EXAMPLES / "python"))
    assert code == 0, "\n".join(lines)
    assert staged_on_threads == []
    monkeypatch.setattr(cell_actor, "STAGE_HERE_BYTES", 10)
    code, lines = await run(platform, "push", "bigger", "-p", str(EXAMPLES / "python"))
    assert code == 0, "\n".join(lines)
    assert len(staged_on_threads) == 1 and isinstance(staged_on_threads[0], bytes)  # in memory still
