"""Supervision: restart per strategy, intensity, escalation, stable names."""

from __future__ import annotations

import pytest

from actors.runtime import ChildSpec, Supervisor

pytestmark = pytest.mark.anyio

from tests.actors.runtime.test_actor import Add, Boom, Counter  # noqa: E402


def spec(name: str, restart: str = "permanent") -> ChildSpec:
    return ChildSpec(name, lambda n: Counter.start(name=n), restart)  # type: ignore[arg-type]


async def test_a_supervisor_restarts_a_crashed_child_under_the_same_name(system):
    sup = Supervisor.start([spec("ccdb"), spec("blobstore")], name="platform")
    await system.clock.advance(0)
    old = system.lookup("ccdb")
    assert await system.ask("ccdb", Add(5)) == 5
    system.tell("ccdb", Boom())
    await system.clock.advance(0)
    new = system.lookup("ccdb")
    assert new is not None and new is not old and new.is_alive()
    assert not old.is_alive()
    # The restarted child starts fresh and is reachable by its name again.
    assert await system.ask("ccdb", Add(1)) == 1
    assert (await sup.proxy().restart_count) == 1
    # one_for_one: the sibling was left alone.
    assert await system.ask("blobstore", Add(2)) == 2


async def test_a_supervisor_escalates_when_restarts_exceed_its_intensity(system):
    sup = Supervisor.start([spec("cell-1")], name="cells", max_restarts=2, within=10.0)
    await system.clock.advance(0)
    for _ in range(3):
        system.tell("cell-1", Boom())
        await system.clock.advance(1)
    assert not sup.is_alive()
    assert system.lookup("cell-1") is None
    assert [name for name, _ in system.escalations] == ["cells"]
    assert system.failed.is_set()


async def test_restarts_spread_beyond_the_period_do_not_escalate(system):
    sup = Supervisor.start([spec("cell-1")], name="cells", max_restarts=2, within=10.0)
    await system.clock.advance(0)
    for _ in range(5):
        system.tell("cell-1", Boom())
        await system.clock.advance(6)
    assert sup.is_alive()
    assert system.lookup("cell-1") is not None
    assert (await sup.proxy().restart_count) == 5


async def test_one_for_all_restarts_every_child_when_one_crashes(system):
    Supervisor.start([spec("a"), spec("b")], name="sup", strategy="one_for_all")
    await system.clock.advance(0)
    b_before = system.lookup("b")
    await system.ask("b", Add(7))
    system.tell("a", Boom())
    await system.clock.advance(0)
    assert system.lookup("b") is not b_before
    assert await system.ask("b", Add(1)) == 1


async def test_a_nested_supervisor_handles_an_escalation_from_below(system):
    inner = ChildSpec("cells", lambda n: Supervisor.start([spec("cell-1")], name=n, max_restarts=0, within=5))
    outer = Supervisor.start([inner], name="platform", max_restarts=3, within=60)
    await system.clock.advance(0)
    first_cells = system.lookup("cells")
    system.tell("cell-1", Boom())  # inner gives up at once, outer restarts it
    await system.clock.advance(0)
    assert outer.is_alive()
    assert system.lookup("cells") is not first_cells
    assert await system.ask("cell-1", Add(1)) == 1
    assert not system.failed.is_set()


async def test_a_temporary_child_is_not_restarted(system):
    Supervisor.start([spec("once", "temporary")], name="sup")
    await system.clock.advance(0)
    system.tell("once", Boom())
    await system.clock.advance(0)
    assert system.lookup("once") is None


async def test_children_added_later_are_supervised_too(system):
    sup = Supervisor.start([], name="cells")
    await sup.proxy().add_child(spec("cell-9"))
    system.tell("cell-9", Boom())
    await system.clock.advance(0)
    assert await system.ask("cell-9", Add(1)) == 1


async def test_a_supervisor_without_a_restart_limit_never_gives_up(system):
    sup = Supervisor.start([spec("ccdb")], name="root", max_restarts=None, within=60.0)
    await system.clock.advance(0)
    for _ in range(25):
        system.tell("ccdb", Boom())
        await system.clock.advance(0.5)

    assert sup.is_alive()
    assert await system.ask("ccdb", Add(1)) == 1
    assert not system.failed.is_set()


async def test_restart_backoff_spaces_restarts_out_while_crashes_keep_coming(system):
    Supervisor.start([spec("ccdb")], name="root", max_restarts=None, within=60.0, restart_backoff=1.0, max_backoff=4.0)
    await system.clock.advance(0)
    system.tell("ccdb", Boom())
    await system.clock.advance(0.5)
    assert system.lookup("ccdb") is None  # waiting out the first backoff (1 s)
    await system.clock.advance(0.6)
    assert system.lookup("ccdb") is not None
    system.tell("ccdb", Boom())
    await system.clock.advance(1.5)
    assert system.lookup("ccdb") is None  # the second waits twice as long
    await system.clock.advance(0.6)
    assert system.lookup("ccdb") is not None


async def test_a_subtree_past_its_intensity_is_restarted_whole_by_a_root_that_never_gives_up(system):
    inner = ChildSpec(
        "components", lambda n: Supervisor.start([spec("ccdb"), spec("bbs")], name=n, max_restarts=2, within=60)
    )
    Supervisor.start([inner], name="root", max_restarts=None)
    await system.clock.advance(0)
    assert await system.ask("bbs", Add(7)) == 7
    for _ in range(3):
        system.tell("ccdb", Boom())
        await system.clock.advance(1)

    # The sibling was restarted with the subtree: it starts fresh.
    assert await system.ask("bbs", Add(1)) == 1
    assert await system.ask("ccdb", Add(1)) == 1
    assert not system.failed.is_set()


async def test_a_killed_supervisor_takes_its_children_with_it_and_its_parent_restarts_the_subtree(system):
    def middle(name: str):
        return Supervisor.start([spec("leaf-1"), spec("leaf-2")], name=name)

    root = Supervisor.start([ChildSpec("middle", middle), spec("sibling")], name="root")
    await system.clock.advance(0)
    old_leaf = system.lookup("leaf-1")
    assert system.kill("middle")
    await system.clock.advance(30)
    # The children went with it, and their names were free for the restart.
    assert not old_leaf.is_alive()
    assert [system.starts(n) for n in ("middle", "leaf-1", "leaf-2", "sibling")] == [2, 2, 2, 1]
    assert await system.ask("leaf-1", Add(3)) == 3
    assert (await root.proxy().restart_count) == 1
    assert system.escalations == []


async def test_shutdown_stops_a_restarted_subtree_in_its_first_place_among_its_siblings():
    from actors.runtime import ActorSystem, AsyncioActor, VirtualClock

    stopped: list[str] = []

    class Recording(Supervisor):
        def on_stop(self):
            stopped.append(self.actor_name)
            return super().on_stop()

    class Leaf(AsyncioActor):
        def on_stop(self) -> None:
            stopped.append(self.actor_name)

    def leaf(name: str):
        return Leaf.start(name=name)

    def middle(name: str):
        return Recording.start([ChildSpec("worker", leaf)], name=name)

    async with ActorSystem(clock=VirtualClock()) as system:
        Recording.start([ChildSpec("back", middle), ChildSpec("front", leaf)], name="root")
        await system.clock.advance(0)
        system.kill("back")  # restarted: now the newest incarnation, still the older child
        await system.clock.advance(30)
        assert system.starts("back") == 2
    assert stopped == ["front", "worker", "back", "root"]


async def test_a_child_whose_stop_times_out_at_shutdown_is_not_restarted():
    from actors.runtime import ActorSystem, VirtualClock

    async with ActorSystem(clock=VirtualClock(), shutdown_timeout=1.0) as system:
        Supervisor.start([spec("stuck"), spec("fine")], name="sup")
        await system.clock.advance(0)
        system.pause("stuck")  # its stop waits aside: cancelled after the shutdown timeout
    assert system.starts("stuck") == 1
    assert system.lookup("stuck") is None


async def test_a_killed_root_supervisor_leaves_its_children_running(system):
    # Nobody restarts the root: taking its children down would leave nothing.
    Supervisor.start([spec("a"), spec("b")], name="root", max_restarts=None)
    await system.clock.advance(0)
    assert system.kill("root")
    await system.clock.advance(5)
    assert sorted(system.names()) == ["a", "b"]
    assert await system.ask("a", Add(1)) == 1


async def test_a_restart_delayed_into_the_shutdown_does_not_happen():
    from actors.runtime import ActorSystem, VirtualClock

    async with ActorSystem(clock=VirtualClock()) as system:
        Supervisor.start([spec("c"), spec("stuck")], name="sup", restart_backoff=5.0)
        await system.clock.advance(0)
        system.kill("c")  # restarted 5 s later, by then inside the shutdown below
        await system.clock.advance(1)
        system.pause("stuck")  # the shutdown waits 10 s for it
    assert system.starts("c") == 1


async def test_a_killed_supervisor_takes_down_what_a_stopping_child_supervisor_still_holds(system):
    from actors.runtime import AsyncioActor

    class SlowStop(AsyncioActor):
        async def on_stop(self) -> None:
            await self.clock.sleep(5)

    def slow(name: str):
        return SlowStop.start(name=name)

    def sub(name: str):
        return Supervisor.start([ChildSpec("leaf-1", slow), ChildSpec("leaf-2", slow)], name=name)

    def middle(name: str):
        return Supervisor.start([spec("a"), ChildSpec("sub", sub)], name=name, strategy="one_for_all")

    Supervisor.start([ChildSpec("middle", middle)], name="root", max_restarts=None, restart_backoff=0.5)
    await system.clock.advance(0)
    system.tell("a", Boom())  # one_for_all: middle stops sub, which stops its leaves (5 s each)
    await system.clock.advance(1)
    assert system.lookup("leaf-1") is not None  # not stopped yet
    assert system.kill("middle")
    await system.clock.advance(30)
    assert [system.starts(n) for n in ("middle", "sub", "leaf-1", "leaf-2")] == [2, 2, 2, 2]


async def test_a_killed_supervisor_takes_its_whole_subtree_down_and_it_restarts_once(system):
    def sub(name: str):
        return Supervisor.start([spec("leaf")], name=name)

    def middle(name: str):
        return Supervisor.start([ChildSpec("sub", sub)], name=name)

    Supervisor.start([ChildSpec("middle", middle)], name="root", max_restarts=None, restart_backoff=1.0)
    await system.clock.advance(0)
    assert system.kill("middle")
    await system.clock.advance(30)
    assert [system.starts(n) for n in ("middle", "sub", "leaf")] == [2, 2, 2]
    assert await system.ask("leaf", Add(2)) == 2
