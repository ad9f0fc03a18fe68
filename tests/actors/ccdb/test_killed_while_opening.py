"""A CC_DB actor killed (with the supervisor above it) while its store is
still opening leaves no connection thread behind."""

from __future__ import annotations

import asyncio

import pytest

from actors.ccdb import connection as connection_module
from actors.ccdb.actor import CCDBActor
from actors.runtime import ActorSystem, ChildSpec, Supervisor, VirtualClock
from protocol import ccdb

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_store_killed_while_opening_ends_its_connection_thread(tmp_path, monkeypatch):
    made = []
    connect = connection_module.aiosqlite.connect

    def recording_connect(*args, **kwargs):
        made.append(connect(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(connection_module.aiosqlite, "connect", recording_connect)
    path = tmp_path / "ccdb.sqlite3"
    async with ActorSystem(clock=VirtualClock(), seed=3, default_ask_timeout=30) as system:

        def middle(name: str):
            return Supervisor.start([ChildSpec("ccdb", lambda n: CCDBActor.start(path, name=n))], name=name)

        Supervisor.start([ChildSpec("middle", middle)], name="root", max_restarts=None)
        await system.clock.advance(0)
        await system.ask("ccdb", ccdb.ListApps())
        for _ in range(6):
            # Kill the subtree again while the restarted store is opening.
            asks = [system.ask("ccdb", ccdb.CreateApp(f"guid-{i}", f"app-{i}", actor="u")) for i in range(10)]
            for _ in range(3):
                await asyncio.sleep(0)
            assert system.kill("middle")
            await asyncio.gather(*asks, return_exceptions=True)
            for _ in range(200):
                if system.lookup("ccdb") is not None:
                    break
                await system.clock.advance(0.01)
        await system.clock.advance(1)
    assert len(made) > 2
    for conn in made:
        if conn._thread.ident is not None:  # started
            conn._thread.join(timeout=10)
        assert not conn._thread.is_alive()
