"""The delivery seam's fault hook: drop, delay, duplicate, reorder; seeded."""

from __future__ import annotations

import pytest

from actors.runtime import ActorSystem, FaultRule, VirtualClock
from actors.runtime.errors import AskTimeout
from tests.actors.runtime.test_actor import Add, Counter

pytestmark = pytest.mark.anyio


async def test_a_drop_rule_drops_matching_messages_and_counts_them(system):
    ref = Counter.start(name="counter")
    system.seam.add_fault(FaultRule("drop", receiver="counter", message_type="Add"))
    ref.tell(Add(1))
    with pytest.raises(AskTimeout):
        await ref.ask(Add(2), block=False, timeout=1)
    assert system.seam.dropped == 2
    system.seam.clear_faults()
    assert await ref.ask(Add(3), block=False) == 3


async def test_a_rule_only_matches_its_sender_receiver_and_type(system):
    Counter.start(name="cell-1")
    Counter.start(name="bbs")
    system.seam.add_fault(FaultRule("drop", receiver="cell-*"))
    assert await system.ask("bbs", Add(1)) == 1
    system.tell("cell-1", Add(1))
    assert system.seam.dropped == 1


async def test_a_duplicate_rule_delivers_the_message_twice(system):
    ref = Counter.start(name="counter")
    system.seam.add_fault(FaultRule("duplicate", receiver="counter"))
    ref.tell(Add(5))
    system.seam.clear_faults()
    assert await ref.ask(Add(0), block=False) == 10
    assert system.seam.duplicated == 1


async def test_a_duplicated_ask_is_answered_once(system):
    ref = Counter.start(name="counter")
    system.seam.add_fault(FaultRule("duplicate", receiver="counter"))
    assert await ref.ask(Add(1), block=False) == 1
    system.seam.clear_faults()
    assert await ref.ask(Add(0), block=False) == 2  # it ran twice; replied once


async def test_a_delay_rule_holds_messages_for_platform_time(system):
    ref = Counter.start(name="counter")
    system.seam.add_fault(FaultRule("delay", receiver="counter", delay=30.0))
    ref.tell(Add(1))
    system.seam.clear_faults()
    assert await ref.ask(Add(0), block=False) == 0
    await system.clock.advance(30)
    assert await ref.ask(Add(0), block=False) == 1
    assert system.seam.delayed == 1


async def test_a_rule_expires_at_its_until_time(system):
    ref = Counter.start(name="counter")
    system.seam.add_fault(FaultRule("drop", receiver="counter", until=system.clock.monotonic() + 10))
    ref.tell(Add(1))
    await system.clock.advance(11)
    ref.tell(Add(1))
    assert await ref.ask(Add(0), block=False) == 1
    assert system.seam.faults == ()


async def test_reorder_lets_later_messages_overtake(system):
    ref = Counter.start(name="counter")
    rule = system.seam.add_fault(FaultRule("reorder", receiver="counter", delay=5.0, message_type="Add"))
    for i in range(1, 6):
        ref.tell(Add(i))
    system.seam.remove_fault(rule)
    await system.clock.advance(6)
    seen = await ref.proxy().seen
    assert sorted(seen) == [1, 2, 3, 4, 5]
    assert seen != [1, 2, 3, 4, 5]


async def _drops_with_seed(seed: int) -> list[int]:
    async with ActorSystem(clock=VirtualClock(), seed=seed) as system:
        ref = Counter.start(name="counter")
        system.seam.add_fault(FaultRule("drop", receiver="counter", probability=0.5))
        for i in range(50):
            ref.tell(Add(i))
        system.seam.clear_faults()
        return list(await ref.proxy().seen)


async def test_the_same_seed_gives_the_same_fault_decisions():
    first = await _drops_with_seed(42)
    again = await _drops_with_seed(42)
    other = await _drops_with_seed(43)
    assert first == again
    assert first != other
    assert 10 < len(first) < 40


async def test_statistics_count_every_delivery(system):
    ref = Counter.start(name="counter")
    for _ in range(10):
        ref.tell(Add(1))
    await ref.ask(Add(0), block=False)
    stats = system.statistics()
    assert stats["sent"] == stats["delivered"] >= 11
    assert system.mailbox_depths()["counter"] == 0


async def test_supervision_and_timers_are_not_subject_to_fault_rules(system):
    from actors.runtime import AsyncioActor, ChildSpec, Supervisor

    ticks: list[str] = []

    class Ticker(AsyncioActor):
        def on_start(self):
            self.tell_self_later(1, "tick")

        def on_receive(self, message):
            if message == "tick":
                ticks.append(self.actor_name)
            return super().on_receive(message) if message != "tick" else None

    Supervisor.start([ChildSpec("counter", lambda n: Counter.start(name=n))], name="sup")
    Ticker.start(name="ticker")
    await system.clock.advance(0)
    system.seam.add_fault(FaultRule("drop"))  # every message, everywhere
    first = system.lookup("counter")
    system.kill("counter")
    await system.clock.advance(2)
    assert ticks == ["ticker"]
    restarted = system.lookup("counter")
    assert restarted is not None and restarted is not first


async def test_a_delivery_delayed_past_its_receiver_s_stop_is_a_dead_letter_and_fails_its_ask(system):
    from actors.runtime.errors import ActorDeadError

    ref = Counter.start(name="counter")
    await system.clock.advance(0)
    system.seam.add_fault(FaultRule("delay", receiver="counter", delay=5.0))
    late = ref.ask(Add(1), block=False, timeout=60)
    late_tell = ref.tell(Add(2))
    system.seam.clear_faults()
    await ref.stop(block=False)  # its teardown runs before the delayed ones land
    await system.clock.advance(6)
    with pytest.raises(ActorDeadError, match="stopped before handling"):
        await late  # not an AskTimeout 54 s later
    assert late_tell is None
    letters = [(d.receiver, d.message_type, d.reason) for d in system.seam.dead_letters]
    assert letters == [("counter", "Add", "actor stopped"), ("counter", "Add", "actor stopped")]
