"""The `ccdb` actor: operations waiting together in its mailbox share one hop
and one COMMIT, and every asker still gets its own operation's answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actors.ccdb.actor import CCDBActor
from actors.ccdb.store import CCDB
from actors.runtime import ActorSystem, VirtualClock
from protocol import ccdb
from protocol.errors import AppNameTaken, AppNotFound

pytestmark = pytest.mark.anyio


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The operations of every `perform_batch`, by message type."""
    seen: list[list[str]] = []
    original = CCDB.perform_batch

    async def recorded(self: CCDB, calls: Any) -> Any:
        seen.append([op.__name__ for op, _ in calls])
        return await original(self, calls)

    monkeypatch.setattr(CCDB, "perform_batch", recorded)
    return seen


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[ActorSystem]:
    """A system with the ccdb actor on a fresh file."""
    async with ActorSystem(clock=VirtualClock(), seed=3) as system:
        CCDBActor.start(tmp_path / "ccdb.sqlite")
        yield system


async def _queued(system: ActorSystem, messages: list[Any]) -> list[Any]:
    """Send `messages`, in order, while the actor is paused (asks, and
    `("tell", message)` for a tell), then let it go; each ask's answer or error."""
    system.pause("ccdb")
    asks = []
    for message in messages:
        if isinstance(message, tuple):  # ("tell", message)
            system.tell("ccdb", message[1])
        else:
            asks.append(asyncio.ensure_future(system.ask("ccdb", message, timeout=30)))
            await asyncio.sleep(0)  # the ask is in the mailbox before the next send
    system.resume("ccdb")
    return list(await asyncio.gather(*asks, return_exceptions=True))


async def test_asks_waiting_together_are_answered_from_one_batch_each_with_its_own_outcome(
    system: ActorSystem, batches: list[list[str]]
) -> None:
    answers = await _queued(
        system,
        [
            ccdb.CreateApp("app-1", "one", actor="user"),
            ccdb.FindApp("one"),
            ccdb.CreateApp("app-2", "one", actor="user"),
            ccdb.GetApp("nope"),
            ccdb.UpdateApp("app-1", {"instances": 2}),
        ],
    )
    assert batches == [["create_app", "find_app", "create_app", "get_app", "update_app"]]
    assert answers[0].guid == "app-1" and answers[1].guid == "app-1"
    assert isinstance(answers[2], AppNameTaken) and isinstance(answers[3], AppNotFound)
    assert answers[4].instances == 2
    # The actor goes on, one at a time when nothing waits.
    assert (await system.ask("ccdb", ccdb.GetApp("app-1"))).instances == 2
    assert await system.ask("ccdb", ccdb.FindApp("two")) is None
    assert len(batches) == 1


async def test_a_tell_in_the_mailbox_is_never_overtaken(system: ActorSystem, batches: list[list[str]]) -> None:
    answers = await _queued(
        system,
        [
            ccdb.CreateApp("app-1", "one", actor="user"),
            ccdb.GetApp("app-1"),
            ("tell", ccdb.UpdateApp("app-1", {"instances": 5})),
            ccdb.GetApp("app-1"),
            ccdb.FindApp("one"),
        ],
    )
    # The first two together; no ask is taken past the tell, which then
    # takes the asks behind it along.
    assert batches == [["create_app", "get_app"], ["update_app", "get_app", "find_app"]]
    assert [a.instances for a in answers] == [1, 1, 5, 5]
