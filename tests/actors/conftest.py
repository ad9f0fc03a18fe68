"""Fixtures for end-to-end tests of the whole platform: real actors, real
SQLite, real blob files and real tar droplets, on a virtual clock.

    async def test_something(platform):
        code, lines = await run(platform, "push", "hello", "-p", str(EXAMPLES / "python"))

Platform time passes only when the loop is idle (the virtual clock's
driver), so a push that waits minutes of platform time takes milliseconds;
`await platform.clock.advance(seconds)` lets time pass on purpose.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from actors.platform import Platform, PlatformConfig
from actors.runtime import VirtualClock
from protocol import blobs, ccdb
from protocol.lrp import ActualLRP
from protocol.messages import GetActualLRPs, ListDesiredLRPs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _by_label(module: Any, base: type) -> dict[str, type]:
    return {
        _snake(name): cls
        for name in module.__all__
        if isinstance(cls := getattr(module, name), type) and issubclass(cls, base) and cls is not base
    }


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# Tests name operations by their store method's name: "find_app" is FindApp.
_CCDB = {**_by_label(ccdb, ccdb.CCDBOperation), "stats": ccdb.CountRows}
_BLOBS = {
    **_by_label(blobs, blobs.BlobOperation),
    "keys": blobs.ListBlobKeys,
    "stats": blobs.BlobStats,
    "delete": blobs.DeleteBlob,
    "verify": blobs.VerifyBlob,
    "size": blobs.BlobSize,
}


async def run(platform: Platform, *argv: str, cwd: str | os.PathLike[str] = ".") -> tuple[int, list[str]]:
    """Run one cf command on the platform; return its exit code and printed
    lines (standard output and error as a terminal shows them, in order)."""
    lines: list[str] = []
    code = await platform.command(list(argv), lines.append, cwd=cwd, timeout=3600)
    return code, lines


async def run_streams(
    platform: Platform, *argv: str, cwd: str | os.PathLike[str] = ".", answers: list[bool | None] | None = None
) -> tuple[int, list[str], list[str]]:
    """Run one cf command; its exit code, standard output lines and standard
    error lines apart (`answers` answer its y/N questions, in order)."""
    out: list[str] = []
    err: list[str] = []
    pending = list(answers or [])

    def confirm(question: str) -> bool | None:
        out.append(f"{question} [yN]: ")  # cf writes the prompt to stdout
        return pending.pop(0) if pending else None

    code = await platform.command(
        list(argv), out.append, cwd=cwd, timeout=3600, err=err.append, confirm=confirm if answers is not None else None
    )
    return code, out, err


async def db(platform: Platform, op: str | ccdb.CCDBOperation, **kwargs: Any) -> Any:
    """One CC_DB operation through the ccdb actor (a message, or its store method's name)."""
    operation = op if isinstance(op, ccdb.CCDBOperation) else _CCDB[op](**kwargs)
    return await platform.system.ask("ccdb", operation)


async def blob(platform: Platform, op: str | blobs.BlobOperation, **kwargs: Any) -> Any:
    """One blob store operation through the blobstore actor."""
    operation = op if isinstance(op, blobs.BlobOperation) else _BLOBS[op](**kwargs)
    return await platform.system.ask("blobstore", operation)


async def blob_keys(platform: Platform) -> set[str]:
    return set(await blob(platform, "keys"))


async def app_guid(platform: Platform, name: str) -> str:
    app = await db(platform, "find_app", name=name)
    assert app is not None, f"no app {name!r} in CC_DB"
    return app.guid


async def actual_lrps(platform: Platform, name: str) -> tuple[ActualLRP, ...]:
    """The BBS's actual LRPs of an app's current desired LRP ((), if none)."""
    guid = await app_guid(platform, name)
    process_guids = [lrp.process_guid for lrp in await platform.system.ask("bbs", ListDesiredLRPs(guid))]
    assert len(process_guids) <= 1, f"{name} is desired more than once: {process_guids}"
    if not process_guids:
        return ()
    return await platform.system.ask("bbs", GetActualLRPs(process_guids[0]))


async def platform_state(platform: Platform) -> dict[str, Any]:
    """Everything a bad command must leave alone: CC_DB's apps and row
    counts, the blob keys and the resource pool's size."""
    return {
        "apps": await db(platform, "list_apps"),
        "rows": await db(platform, "stats"),
        "blobs": await blob_keys(platform),
        "blob_stats": await blob(platform, "stats"),
    }


async def eventually(
    platform: Platform, check: Callable[[], Awaitable[Any]], *, within: float = 120.0, every: float = 1.0
) -> Any:
    """Poll `check` on platform time until it returns something truthy."""
    deadline = platform.clock.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if platform.clock.monotonic() >= deadline:
            raise AssertionError(f"not true within {within} s of platform time: {check}")
        await platform.clock.sleep(every)


def line_starting(lines: list[str], prefix: str) -> str:
    found = [line for line in lines if line.startswith(prefix)]
    assert found, f"no line starts with {prefix!r} in:\n" + "\n".join(lines)
    return found[-1]


@pytest.fixture
async def make_platform(tmp_path: Path) -> AsyncIterator[Callable[..., Platform]]:
    """Build (not start) a platform on a virtual clock; data under tmp_path.
    Any still running when the test ends is stopped (one runs at a time).

    `clock_start` lets a platform restarted on the same data directory go
    on from where the last one's time stopped (virtual time starts at 0)."""
    made: list[Platform] = []

    def make(*, clock_start: float = 0.0, **config: Any) -> Platform:
        config.setdefault("data_dir", tmp_path / "data")
        made.append(Platform(PlatformConfig(**config), clock=VirtualClock(start=clock_start)))
        return made[-1]

    yield make
    for p in reversed(made):
        if p.started:
            await p.stop()


@pytest.fixture
async def platform(make_platform: Callable[..., Platform]) -> Platform:
    """A started platform (4 cells of 8G in 2 zones) on a virtual clock."""
    return await make_platform().start()
