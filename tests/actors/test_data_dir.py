"""What the platform keeps on disk: a data directory holding something that is
not minifoundry's is refused by name before anything boots, everything it
writes is its owner's alone, and what a user's shell does to its output (a
closed pipe, a very long path) never ends in a traceback."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from actors.platform import Platform, PlatformConfig
from actors.repl.attach import AttachServer, socket_path
from actors.runtime import VirtualClock
from protocol.errors import DataDirUnusable
from tests.actors.conftest import EXAMPLES, db, run
from tests.actors.repl.background import stop_background

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


def _garbage(d: Path) -> None:
    (d / "ccdb.sqlite3").write_bytes(os.urandom(4096))


def _truncated(d: Path) -> None:
    path = d / "ccdb.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 2000)
    conn.commit()
    conn.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _newer(d: Path) -> None:
    conn = sqlite3.connect(d / "ccdb.sqlite3")
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY)")
    conn.execute("INSERT INTO schema_version VALUES (99)")
    conn.commit()
    conn.close()


BROKEN = {
    "garbage CC_DB": (_garbage, "ccdb.sqlite3 is not an SQLite database"),
    "truncated CC_DB": (_truncated, "ccdb.sqlite3 is damaged"),
    "newer CC_DB": (_newer, "ccdb.sqlite3 is at CC_DB schema version 99, newer than this minifoundry"),
    "blob store is a file": (lambda d: (d / "blobstore").write_text("x"), "blobstore should be a directory"),
    "lock is a directory": (lambda d: (d / "lock").mkdir(), "lock is a directory, not minifoundry's lock file"),
    "CC_DB is a directory": (lambda d: (d / "ccdb.sqlite3").mkdir(), "ccdb.sqlite3 should be CC_DB's SQLite file"),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=[c.replace(" ", "-") for c in BROKEN])
async def test_a_data_dir_holding_something_else_is_refused_by_name_and_left_alone(tmp_path, case):
    data = tmp_path / "data"
    data.mkdir()
    make, words = BROKEN[case]
    make(data)
    before = sorted((p.relative_to(data), p.stat().st_size if p.is_file() else -1) for p in data.rglob("*"))
    platform = Platform(PlatformConfig(data_dir=data), clock=VirtualClock())

    with pytest.raises(DataDirUnusable, match=words):
        await platform.start()

    assert not platform.started
    after = sorted((p.relative_to(data), p.stat().st_size if p.is_file() else -1) for p in data.rglob("*"))
    assert after == before


def test_one_shot_commands_say_what_is_wrong_with_the_data_dir_and_exit_1(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _garbage(data)

    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--data-dir", str(data), "apps"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )

    assert done.returncode == 1
    assert "DataDirUnusable - " in done.stderr and "ccdb.sqlite3" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (data / "platform.json").exists()  # the platform it tried to start is not serving


async def test_everything_the_platform_writes_is_owner_only(make_platform, tmp_path):
    platform = await make_platform().start()
    code, lines = await run(platform, "push", "private", "-f", str(EXAMPLES / "python" / "manifest.yml"), "-m", "64M")
    assert code == 0, lines
    await platform.clock.advance(5)  # logs flushed
    data = tmp_path / "data"

    shared = [p for p in [data, *data.rglob("*")] if stat.S_IMODE(p.stat().st_mode) & 0o077]

    assert shared == []
    assert (data / "ccdb.sqlite3").is_file() and list((data / "logs").iterdir())


async def test_a_data_dir_too_long_for_a_unix_socket_gets_a_short_one(tmp_path):
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    path = socket_path(deep)

    assert len(str(path)) <= 100
    assert socket_path(deep) == path  # serve and attach find the same one
    assert socket_path(tmp_path) == tmp_path / "repl.sock"
    server = AttachServer(object(), path)
    await server.start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        await server.close()


@pytest.mark.parametrize("argv", [["help"], ["apps"]])
def test_a_closed_pipe_on_stdout_ends_a_command_quietly(tmp_path, argv):
    data = tmp_path / "d"
    try:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "--data-dir", str(data), "--api-port", "0", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.readline()
        proc.stdout.close()  # as `| head -1` does
        err = proc.stderr.read().decode()
        proc.stderr.close()
        assert proc.wait(timeout=60) == 0
        assert "Traceback" not in err and "BrokenPipe" not in err
    finally:
        stop_background(data)  # the command started the platform in the background


def test_fifty_thousand_small_files_are_gathered_without_reserving_the_size_limit_for_each(tmp_path):
    from actors.appfiles import scan_app

    src = tmp_path / "many"
    src.mkdir()
    for n in range(50_000):
        (src / f"f{n:05d}.txt").write_text(f"file {n}\n")

    bits = scan_app(src)
    total = sum(len(data) for _, data in bits.iter_contents())

    assert len(bits.files) == 50_000 and total == bits.total_size


async def test_an_app_of_thousands_of_small_files_is_pushed(platform, tmp_path):
    src = tmp_path / "many"
    src.mkdir()
    (src / "index.html").write_text("<p>many</p>\n")
    for n in range(5_000):
        (src / f"f{n:05d}.txt").write_text(f"file {n}\n")

    code, lines = await run(platform, "push", "many", "-p", str(src), "-m", "64M", "-i", "1")

    assert code == 0, "\n".join(lines[-20:])
    assert any(re.fullmatch(r" \d+\.\d\d KiB / \d+\.\d\d KiB  100\.00% \d+s", line) for line in lines), lines
    app = await db(platform, "find_app", name="many")
    [package] = await db(platform, "list_packages", app_guid=app.guid)
    assert package.state.value == "READY"
