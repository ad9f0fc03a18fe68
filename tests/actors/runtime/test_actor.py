"""The runtime's contract (DESIGN.md section 2), one behaviour per test."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import threading
import warnings

import anyio
import pykka
import pytest

from actors.runtime import ActorNameTaken, ActorSystem, AsyncioActor, VirtualClock, current_system, handles
from actors.runtime.delivery import current_trace
from actors.runtime.errors import ActorDeadError, AskTimeout, GetOnLoopThread

pytestmark = pytest.mark.anyio


@dataclasses.dataclass(frozen=True, slots=True)
class Add:
    amount: int


@dataclasses.dataclass(frozen=True, slots=True)
class Slow:
    seconds: float
    tag: str


@dataclasses.dataclass(frozen=True, slots=True)
class Boom:
    pass


class Counter(AsyncioActor):
    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)
        self.total = 0
        self.seen: list[int] = []

    def on_receive(self, message):
        if isinstance(message, Add):
            self.total += message.amount
            self.seen.append(message.amount)
            return self.total
        if isinstance(message, Boom):
            raise RuntimeError("boom")
        return None

    def current(self) -> int:
        return self.total


class Sleeper(AsyncioActor):
    """Async handlers: records start/end order to prove non-reentrancy."""

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)
        self.log: list[str] = []

    async def on_receive(self, message):
        if isinstance(message, Slow):
            self.log.append(f"start {message.tag}")
            await self.clock.sleep(message.seconds)
            self.log.append(f"end {message.tag}")
            return message.tag
        return None


async def test_tell_delivers_messages_in_the_order_they_were_sent(system):
    ref = Counter.start(name="counter")
    for i in range(100):
        ref.tell(Add(i))
    assert await ref.ask(Add(0), block=False) == sum(range(100))
    assert ref.proxy().seen.get  # proxies stay available
    seen = await ref.proxy().seen
    assert seen[:100] == list(range(100))


async def test_async_handlers_are_awaited_one_message_at_a_time(system):
    ref = Sleeper.start(name="sleeper")
    first = ref.ask(Slow(10, "a"), block=False, timeout=60)
    second = ref.ask(Slow(1, "b"), block=False, timeout=60)
    assert await first == "a"
    assert await second == "b"
    log = await ref.proxy().log
    assert log == ["start a", "end a", "start b", "end b"]


async def test_ask_reply_is_awaitable_on_the_loop(system):
    ref = Counter.start()
    assert await ref.ask(Add(5), block=False) == 5
    assert await ref.ask_async(Add(2)) == 7


async def test_ask_from_another_thread_blocks_that_thread_until_the_reply(real_system):
    ref = Counter.start(name="counter")

    def from_repl_thread() -> tuple[int, int]:
        assert threading.current_thread() is not threading.main_thread()
        ref.tell(Add(1))
        return ref.ask(Add(10)), ref.proxy().current().get(timeout=5)

    assert await anyio.to_thread.run_sync(from_repl_thread) == (11, 11)


async def test_get_on_the_loop_thread_raises_instead_of_hanging(system):
    ref = Sleeper.start()
    future = ref.ask(Slow(1, "x"), block=False)
    with pytest.raises(GetOnLoopThread):
        future.get()
    with pytest.raises(GetOnLoopThread):
        ref.ask(Slow(1, "y"))  # block=True on the loop would deadlock it
    assert await future == "x"


async def test_an_ask_past_its_deadline_raises_ask_timeout(system):
    ref = Sleeper.start()
    with pytest.raises(AskTimeout):
        await ref.ask(Slow(60, "late"), block=False, timeout=2)


async def test_the_default_ask_deadline_applies_when_none_is_given(system):
    assert system.default_ask_timeout == 5.0
    ref = Sleeper.start()
    started = system.clock.monotonic()
    with pytest.raises(AskTimeout):
        await ref.ask(Slow(30, "late"), block=False)
    assert system.clock.monotonic() - started == pytest.approx(5.0)


async def test_ask_timeout_is_also_pykka_timeout_and_builtin_timeout_error():
    assert issubclass(AskTimeout, pykka.Timeout)
    assert issubclass(AskTimeout, TimeoutError)


async def test_an_exception_in_an_ask_goes_back_to_the_asker_and_the_actor_lives(system):
    ref = Counter.start()
    with pytest.raises(RuntimeError, match="boom"):
        await ref.ask(Boom(), block=False)
    assert ref.is_alive()
    assert await ref.ask(Add(1), block=False) == 1


async def test_stopping_an_actor_fails_its_queued_asks_with_actor_dead_error(system):
    ref = Sleeper.start(name="sleeper")
    busy = ref.ask(Slow(5, "busy"), block=False, timeout=60)
    stop = ref.stop(block=False)
    queued = ref.ask(Slow(1, "queued"), block=False, timeout=60)
    assert await busy == "busy"
    assert await stop is True
    with pytest.raises(ActorDeadError):
        await queued
    assert system.seam.dead_letter_count == 1


async def test_a_tell_to_a_stopped_actor_is_a_dead_letter(system):
    ref = Counter.start(name="gone")
    await ref.stop(block=False)
    with pytest.raises(ActorDeadError):
        ref.tell(Add(1))
    assert not system.tell("gone", Add(1))
    letters = list(system.seam.dead_letters)
    assert [(d.receiver, d.message_type) for d in letters] == [("gone", "Add"), ("gone", "Add")]
    assert system.seam.dead_letter_count == 2


async def test_a_message_to_an_unknown_name_is_a_dead_letter_not_lost(system):
    assert system.tell("nobody", Add(1)) is False
    with pytest.raises(ActorDeadError):
        await system.ask("nobody", Add(1))
    assert system.seam.dead_letter_count == 2
    assert system.seam.dead_letters[0].reason == "unknown"


async def test_an_unhandled_exception_in_a_tell_crashes_the_actor_and_calls_on_failure(system):
    failures: list[str] = []

    class Fragile(Counter):
        def on_failure(self, exc_type, exc_value, tb):
            failures.append(str(exc_value))

    ref = Fragile.start(name="fragile")
    ref.tell(Boom())
    await system.clock.advance(0)
    assert not ref.is_alive()
    assert failures == ["boom"]


async def test_async_on_start_and_on_stop_are_awaited(system):
    events: list[str] = []

    class Lifecycle(AsyncioActor):
        async def on_start(self):
            await self.clock.sleep(1)
            events.append("started")

        async def on_stop(self):
            await self.clock.sleep(1)
            events.append("stopped")

        def on_receive(self, message):
            events.append("message")
            return "ok"

    ref = Lifecycle.start()
    assert await ref.ask("hi", block=False) == "ok"
    await ref.stop(block=False)
    assert events == ["started", "message", "stopped"]


async def test_actors_are_found_by_stable_name_and_names_are_unique(system):
    ref = Counter.start(name="ccdb")
    assert system.lookup("ccdb") is ref
    with pytest.raises(ActorNameTaken):
        Counter.start(name="ccdb")
    assert await system.ask("ccdb", Add(3)) == 3
    assert pykka.ActorRegistry.get_by_class(Counter) == [ref]


async def test_the_sender_is_known_without_being_passed(system):
    seen: list[tuple[str, str, str]] = []
    system.seam.add_observer(lambda env, receiver: seen.append((env.sender, receiver, type(env.message).__name__)))

    class Forwarder(AsyncioActor):
        def on_receive(self, message):
            self.tell("counter", message)

    Counter.start(name="counter")
    fwd = Forwarder.start(name="forwarder")
    fwd.tell(Add(1))
    await system.clock.advance(0)
    assert ("user", "forwarder", "Add") in seen
    assert ("forwarder", "counter", "Add") in seen


async def test_a_trace_id_follows_a_conversation_across_actors(system):
    from structlog.testing import capture_logs

    from actors.runtime.tracing import tracing_observer

    recorded: list[tuple[str, str, str]] = []
    system.seam.add_observer(tracing_observer(lambda t, s, r, m: recorded.append((t, s, r))))

    class Relay(AsyncioActor):
        async def on_receive(self, message):
            return await self.ask("counter", message)

    Counter.start(name="counter")
    relay = Relay.start(name="relay")
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as logs:
            token = current_trace.set("push-1")
            try:
                assert await relay.ask(Add(4), block=False) == 4
            finally:
                current_trace.reset(token)
            relay.tell(Add(1))  # no trace: not recorded
            await system.clock.advance(0)
    finally:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    assert recorded == [("push-1", "user", "relay"), ("push-1", "relay", "counter")]
    delivered = [e for e in logs if e["event"] == "message-delivered"]
    assert [(e["trace_id"], e["sender"], e["receiver"], e["message"]) for e in delivered] == [
        ("push-1", "user", "relay", "Add"),
        ("push-1", "relay", "counter", "Add"),
    ]


async def test_shutdown_stops_every_actor_awaits_on_stop_and_leaves_no_task():
    stopped: list[str] = []

    class Tidy(AsyncioActor):
        async def on_stop(self):
            stopped.append(self.actor_name)

        async def on_receive(self, message):
            self.spawn(self.clock.sleep(3600))  # a helper task left running
            self.tell_self_later(3600, "later")  # and a timer
            return "ok"

    before = {t for t in asyncio.all_tasks()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with ActorSystem(clock=VirtualClock()) as system:
            refs = [Tidy.start(name=f"tidy-{i}") for i in range(3)]
            for ref in refs:
                assert await ref.ask("go", block=False) == "ok"
        gc.collect()
    assert stopped == ["tidy-2", "tidy-1", "tidy-0"]
    assert {t for t in asyncio.all_tasks()} - before == set()
    assert pykka.ActorRegistry.get_all() == []
    assert system.clock.pending_timers() == 0
    with pytest.raises(Exception, match="no ActorSystem is running"):
        current_system()


async def test_start_and_tell_work_from_another_thread(real_system):
    def from_thread():
        ref = Counter.start(name="threaded")
        ref.tell(Add(2))
        return ref.ask(Add(3), timeout=5)

    assert await anyio.to_thread.run_sync(from_thread) == 5


async def test_a_deferred_reply_lets_the_actor_serve_other_messages_meanwhile(system):
    from actors.runtime import Deferred

    class Controller(AsyncioActor):
        def __init__(self, name=None):
            super().__init__(name=name)
            self.waiting = None

        def on_receive(self, message):
            if message == "slow":
                self.waiting = asyncio.get_running_loop().create_future()
                return Deferred(self.waiting)
            if message == "finish":
                self.waiting.set_result("done")
                return "finished"
            return "quick"

    ref = Controller.start()
    slow = ref.ask("slow", block=False, timeout=60)
    assert await ref.ask("other", block=False) == "quick"  # not blocked behind "slow"
    assert not slow.done()
    assert await ref.ask("finish", block=False) == "finished"
    assert await slow == "done"


async def test_a_killed_actor_fails_its_queued_asks_and_is_restarted_by_its_supervisor(system):
    from actors.runtime import ChildSpec, Supervisor

    Supervisor.start([ChildSpec("cell-1", lambda n: Sleeper.start(name=n))], name="cells")
    await system.clock.advance(0)
    first = system.lookup("cell-1")
    busy = first.ask(Slow(100, "busy"), block=False, timeout=600)
    await system.clock.advance(1)
    assert system.kill("cell-1")
    with pytest.raises(ActorDeadError):
        await busy
    await system.clock.advance(0)
    second = system.lookup("cell-1")
    assert second is not None and second is not first
    assert not system.kill("nobody")


async def test_a_paused_actor_queues_messages_until_resumed(system):
    ref = Counter.start(name="counter")
    assert system.pause("counter")
    ref.tell(Add(1))
    pending = ref.ask(Add(1), block=False, timeout=600)
    await system.clock.advance(10)
    assert not pending.done()
    assert system.paused() == ["counter"]
    assert system.resume("counter")
    assert await pending == 2


async def test_a_paused_actor_keeps_the_order_of_what_was_queued_and_what_came_later(system):
    ref = Counter.start(name="counter")
    actor = system.actor("counter")
    for n in (1, 2):
        ref.tell(Add(n))
    system.pause("counter")  # before the actor took anything queued
    ref.tell(Add(3))
    system.tell("counter", Add(4))
    await system.clock.advance(10)
    assert actor.seen == []
    assert len(actor.actor_inbox) == 4
    system.resume("counter")
    ref.tell(Add(5))
    assert await ref.ask(Add(6), block=False) == 21
    assert actor.seen == [1, 2, 3, 4, 5, 6]


async def test_an_actor_that_pauses_itself_takes_nothing_more_until_resumed(system):
    class SelfPausing(Counter):
        def on_receive(self, message):
            total = super().on_receive(message)
            if message == Add(2):
                current_system().pause(self.actor_name)
            return total

    ref = SelfPausing.start(name="pauser")
    for n in (1, 2, 3):
        ref.tell(Add(n))
    await system.clock.advance(1)
    actor = system.actor("pauser")
    assert actor.seen == [1, 2]  # the third waits: no flag per message, an empty queue
    system.resume("pauser")
    assert await ref.ask(Add(0), block=False) == 6


@pytest.mark.parametrize("started", [True, False], ids=["running", "killed-before-its-first-step"])
async def test_a_paused_actor_that_is_killed_fails_its_held_asks_and_dead_letters_its_tells(system, started):
    ref = Counter.start(name="counter")
    if started:
        await system.clock.advance(0)
    system.pause("counter")
    ref.tell(Add(1))
    held = ref.ask(Add(2), block=False, timeout=600)
    assert system.kill("counter")
    with pytest.raises(ActorDeadError):
        await held
    assert system.seam.dead_letter_count == 2
    assert not ref.is_alive()
    assert system.lookup("counter") is None  # its name is free again


async def test_an_actor_killed_before_its_first_step_is_restarted_by_its_supervisor(system):
    from actors.runtime import ChildSpec, Supervisor

    births: list[object] = []

    def start(name: str):
        ref = Counter.start(name=name)
        births.append(ref)
        if len(births) == 1:
            births.append(ref.ask(Add(1), block=False, timeout=600))
            assert system.kill(name)  # before its task ran at all
        return ref

    Supervisor.start([ChildSpec("cell-1", start)], name="cells")
    await system.clock.advance(0)
    first, pending = births[0], births[1]
    with pytest.raises(ActorDeadError):
        await pending
    await system.clock.advance(0)
    second = system.lookup("cell-1")
    assert second is not None and second is not first
    assert await second.ask(Add(2), block=False) == 2


async def test_handles_marks_dispatch_by_type_and_an_own_on_receive_sees_everything(system):
    from actors.runtime import handles

    class Marked(AsyncioActor):
        def __init__(self, name: str | None = None) -> None:
            super().__init__(name=name)
            self.log: list[str] = []

        @handles(Add)
        def add(self, message):
            self.log.append(f"add {message.amount}")
            return message.amount

        @handles(Slow, concurrent=True)
        async def slow(self, message):
            await current_system().clock.sleep(message.seconds)
            self.log.append(f"slow {message.tag}")
            return message.tag

        def double(self, n: int) -> int:
            return 2 * n

    class Overriding(Marked):
        @handles(Add)
        def add(self, message):  # by name: the subclass's handler
            return -message.amount

    class OwnReceive(Marked):
        def on_receive(self, message):
            return ("own", type(message).__name__)

    marked = Marked.start(name="marked")
    slow = marked.ask(Slow(5, "s"), block=False, timeout=60)
    assert await marked.ask(Add(2), block=False) == 2  # answered while the slow one waits
    assert await marked.ask("unhandled", block=False) is None  # pykka's on_receive
    assert await marked.proxy().double(4) == 8  # pykka's proxy messages take pykka's path
    await system.clock.advance(5)
    assert await slow == "s"
    assert system.actor("marked").log == ["add 2", "slow s"]
    assert await Overriding.start().ask(Add(3), block=False) == -3
    own = OwnReceive.start()
    assert await own.ask(Add(1), block=False) == ("own", "Add")
    assert await own.proxy().double(5) == 10
    await own.stop(block=False)
    assert not own.is_alive()


async def test_request_is_an_ask_on_asyncio_s_own_future(system):
    ref = Counter.start(name="counter")
    future = ref.request(Add(2))
    assert type(future) is asyncio.Future  # the loop's task waits on it at C speed
    assert await future == 2
    with pytest.raises(RuntimeError, match="boom"):
        await ref.request(Boom())  # the handler's exception, and the actor lives on
    assert await ref.request(Add(1)) == 3
    slow = Sleeper.start(name="sleeper")
    late = slow.request(Slow(10, "late"), timeout=1)
    await system.clock.advance(2)
    with pytest.raises(AskTimeout, match="Slow to sleeper"):
        await late


async def test_asking_by_name_gives_a_future_that_fails_for_an_unknown_name(system):
    Counter.start(name="counter")
    pending = system.ask("counter", Add(5))  # not a coroutine: gathered or awaited as it is
    assert isinstance(pending, asyncio.Future)
    assert await pending == 5
    nobody = system.ask("nobody", Add(1))
    with pytest.raises(ActorDeadError, match="nobody"):
        await nobody
    assert [(d.receiver, d.reason) for d in system.seam.dead_letters] == [("nobody", "unknown")]
    results = await asyncio.gather(system.ask("counter", Add(1)), system.ask("gone", Add(1)), return_exceptions=True)
    assert results[0] == 6 and isinstance(results[1], ActorDeadError)


async def test_an_actor_asks_another_by_name_and_a_stopped_one_fails_its_request(system):
    class Asker(AsyncioActor):
        async def on_receive(self, message):
            return await self.ask("counter", message)

    counter = Counter.start(name="counter")
    asker = Asker.start(name="asker")
    assert await asker.ask(Add(7), block=False) == 7
    pending = counter.request(Slow(1, "x"))  # queued behind the stop below? no: before it
    await counter.stop(block=False)
    assert await pending is None  # Counter ignores Slow: answered before the stop
    with pytest.raises(ActorDeadError):
        await counter.request(Add(1))
    with pytest.raises(ActorDeadError):
        await asker.ask(Add(1), block=False)


async def test_a_deferred_reply_fails_with_actor_dead_error_when_its_actor_stops(system):
    from actors.runtime import Deferred

    class Waiter(AsyncioActor):
        def on_receive(self, message):
            return Deferred(asyncio.get_running_loop().create_future())

    ref = Waiter.start()
    pending = ref.ask("wait", block=False, timeout=600)
    await system.clock.advance(1)
    await ref.stop(block=False)
    with pytest.raises(ActorDeadError):
        await pending


async def test_guids_are_the_uuid4_strings_of_the_seeded_draws():
    import random
    import uuid

    from actors.runtime import ActorSystem

    draws = random.Random(99)
    async with ActorSystem(seed=99) as system:
        for _ in range(200):
            assert system.new_guid() == str(uuid.UUID(int=draws.getrandbits(128), version=4))


async def test_a_running_system_tunes_the_collector_and_puts_it_back():
    import gc

    from actors.runtime import ActorSystem
    from actors.runtime.system import GC_THRESHOLDS

    before = gc.get_threshold()
    async with ActorSystem():
        assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_threshold() == before


# --- the reply future: awaited as asyncio awaits its own, and pykka's too ---------------------


async def test_a_reply_is_a_future_asyncio_takes_as_one_in_gather_and_wait_for(system):
    refs = [Counter.start() for _ in range(3)]
    futures = [ref.ask(Add(i), block=False) for i, ref in enumerate(refs)]
    assert all(asyncio.isfuture(f) for f in futures)
    assert await asyncio.gather(*futures) == [0, 1, 2]
    assert await asyncio.wait_for(refs[0].ask(Add(5), block=False), timeout=5) == 5


async def test_pykkas_combinators_work_awaited_on_the_loop_and_got_off_it(real_system):
    a, b = Counter.start(), Counter.start()
    joined = a.ask(Add(1), block=False).join(b.ask(Add(2), block=False))
    assert await joined.map(sum) == 3
    doubled = a.ask(Add(10), block=False).map(lambda x: 2 * x)
    got = await asyncio.to_thread(doubled.get, timeout=5)
    assert got == 22
    evens = a.ask(Add(0), block=False).map(lambda x: list(range(x))).filter(lambda x: x % 2 == 0)
    assert await evens == [0, 2, 4, 6, 8, 10]


async def test_a_thread_waiting_in_get_hears_of_a_cancel(real_system):
    future = Sleeper.start().ask(Slow(0.5, "slow"), block=False)
    waiting = asyncio.create_task(asyncio.to_thread(future.get, timeout=30))
    await asyncio.sleep(0.05)
    future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, timeout=5)


async def test_an_ask_nobody_waits_for_fails_without_asyncio_complaining(system, caplog):
    ref = Sleeper.start()
    ref.ask(Slow(60, "slow"), block=False, timeout=1)  # dropped: nobody awaits it
    await system.clock.sleep(2)  # past its deadline: AskTimeout set, never read
    gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


async def test_an_ask_deadline_is_in_platform_seconds_on_a_compressed_clock():
    from actors.runtime import RealClock

    async with ActorSystem(clock=RealClock(speed=50)):
        ref = Sleeper.start()
        began = asyncio.get_running_loop().time()
        with pytest.raises(AskTimeout):
            await ref.ask(Slow(10, "slow"), block=False, timeout=2)  # 2 platform s: 0.04 s at 50x
        took = asyncio.get_running_loop().time() - began
        assert 0.035 <= took < 1.0


async def test_answered_asks_do_not_pile_up_waiting_for_their_deadline(system):
    ref = Counter.start()
    for i in range(1000):
        await ref.ask(Add(i), block=False, timeout=30)
    assert len(system.deadlines._queues[30]) <= 64
    assert system.deadlines.pending() == 0


# --- request_all: one round of asks (the auctioneer's bid round) --------------------------


class Bidder(AsyncioActor):
    """Answers a round's message with its own name and the message; `Slow` late."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)

    @handles(Add)
    def bid(self, message: Add) -> tuple[str, int]:
        return (self.actor_name, message.amount)

    @handles(Slow)
    async def slow(self, message: Slow) -> str:
        if self.actor_name in message.tag:
            await self.clock.sleep(message.seconds)
        return self.actor_name


def _recorded(system, trace: str) -> list[tuple]:
    # A row without its sequence number and time: (sender, receiver, label, step, ask).
    return [row[2:] for row in system.seam.recorder.rows(trace)]


async def test_a_round_asks_each_ref_as_its_own_request_would(system):
    from actors.runtime.tracing import TraceRecorder

    recorder = TraceRecorder(system.clock)
    system.seam.add_observer(recorder)
    refs = [Bidder.start(name=f"cell-{i}") for i in range(5)]
    for ref in refs:
        await ref.request(Add(0))
    sent = system.seam.sent
    recorder.open("round")
    recorder.open("one-by-one")
    token = current_trace.set("round")
    futures = system.request_all(refs, Add(7))
    current_trace.set("one-by-one")
    reference = [ref.request(Add(7)) for ref in refs]
    current_trace.reset(token)
    assert all(type(f) is asyncio.Future for f in futures)
    assert await asyncio.gather(*futures) == await asyncio.gather(*reference) == [(f"cell-{i}", 7) for i in range(5)]
    assert (
        _recorded(system, "round")
        == _recorded(system, "one-by-one")
        == [("user", f"cell-{i}", "Add", None, True) for i in range(5)]
    )
    seqs = [row[0] for row in recorder.rows("round") + recorder.rows("one-by-one")]
    assert seqs == list(range(seqs[0], seqs[0] + 10))  # in the order sent, as one sequence
    assert system.seam.sent == system.seam.delivered == sent + 10
    assert system.deadlines.pending() == 0


async def test_a_round_s_deadline_fails_only_the_asks_not_answered_each_named(system):
    refs = [Bidder.start(name=f"cell-{i}") for i in range(4)]
    futures = system.request_all(refs, Slow(10, "cell-1 cell-3"), timeout=1)
    await system.clock.advance(0)
    assert [f.done() for f in futures] == [True, False, True, False]
    assert system.deadlines.pending() == 2
    await system.clock.advance(2)
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert results[0] == "cell-0" and results[2] == "cell-2"
    assert isinstance(results[1], AskTimeout) and "Slow to cell-1" in str(results[1])
    assert isinstance(results[3], AskTimeout) and "Slow to cell-3" in str(results[3])
    assert system.deadlines.pending() == 0


async def test_a_round_keeps_its_order_past_a_paused_actor_and_fails_a_stopped_one(system):
    from actors.runtime.tracing import TraceRecorder

    recorder = TraceRecorder(system.clock)
    system.seam.add_observer(recorder)
    refs = [Bidder.start(name=f"cell-{i}") for i in range(5)]
    await refs[3].stop(block=False)
    system.pause("cell-1")
    recorder.open("round")
    token = current_trace.set("round")
    futures = system.request_all(refs, Add(1))
    current_trace.reset(token)
    # Recorded in the refs' order: the round's first, the paused one and
    # those after it one by one (the stopped one is a dead letter, not a delivery).
    assert [row[3] for row in recorder.rows("round")] == ["cell-0", "cell-1", "cell-2", "cell-4"]
    await system.clock.advance(0)
    assert [f.done() for f in futures] == [True, False, True, True, True]
    with pytest.raises(ActorDeadError):
        futures[3].result()
    assert [(d.receiver, d.reason) for d in system.seam.dead_letters] == [("cell-3", "stopped")]
    system.resume("cell-1")
    assert await futures[1] == ("cell-1", 1)


async def test_a_round_asked_from_another_thread_is_answered_on_the_loop(real_system):
    # The real clock: the virtual one would count the loop idle while the thread works.
    refs = [Bidder.start(name=f"cell-{i}") for i in range(3)]
    futures = await anyio.to_thread.run_sync(real_system.request_all, refs, Add(2))
    assert await asyncio.gather(*futures) == [(f"cell-{i}", 2) for i in range(3)]


async def test_a_round_records_no_more_than_its_conversation_has_room_for(system):
    from actors.runtime.tracing import TraceRecorder

    recorder = TraceRecorder(system.clock, max_deliveries=3)
    system.seam.add_observer(recorder)
    refs = [Bidder.start(name=f"cell-{i}") for i in range(5)]
    recorder.open("round")
    token = current_trace.set("round")
    answers = await asyncio.gather(*system.request_all(refs, Add(3)))
    current_trace.reset(token)
    assert len(answers) == 5
    assert [row[3] for row in recorder.rows("round")] == ["cell-0", "cell-1", "cell-2"]
    assert "round" not in recorder.recording  # full: no longer recording


async def test_a_round_of_several_conversations_numbers_its_asks_as_one_by_one(system):
    from actors.runtime.tracing import TraceRecorder

    recorder = TraceRecorder(system.clock, max_deliveries=5)
    system.seam.add_observer(recorder)
    refs = [Bidder.start(name=f"cell-{i}") for i in range(3)]
    for trace in "abcd":
        recorder.open(trace)
    token = current_trace.set(("a", "b"))  # work of two conversations: each ask in both
    await asyncio.gather(*system.request_all(refs, Add(1)))
    await asyncio.gather(*system.request_all(refs, Add(1)))  # past the books' room
    current_trace.set(("c", "d"))
    await asyncio.gather(*[ref.request(Add(1)) for ref in refs])
    await asyncio.gather(*[ref.request(Add(1)) for ref in refs])
    current_trace.reset(token)

    def numbered(first: str, second: str) -> list[list[tuple[int, str]]]:
        base = recorder.rows(first)[0][0]
        return [[(row[0] - base, row[3]) for row in recorder.rows(trace)] for trace in (first, second)]

    assert numbered("a", "b") == numbered("c", "d")
    assert numbered("a", "b")[0] == [(0, "cell-0"), (2, "cell-1"), (4, "cell-2"), (6, "cell-0"), (8, "cell-1")]


async def test_a_round_holds_no_more_answered_asks_than_one_by_one_would(system):
    from actors.runtime.deadlines import _Round

    def held() -> int:
        queues = system.deadlines._queues.values()
        return sum(len(f.futures) if type(f) is _Round else 1 for queue in queues for _, f, _, _ in queue)

    refs = [Bidder.start(name=f"cell-{i}") for i in range(100)]
    for _ in range(63):
        await asyncio.gather(*system.request_all(refs, Add(1), timeout=30))
    assert system.deadlines.pending() == 0
    # The futures (and replies) of answered rounds go when the next round is
    # armed: no more than the last round's are held until its deadline.
    assert held() <= 100


async def test_a_round_that_meets_something_not_a_ref_keeps_what_it_sent(system):
    refs = [Bidder.start(name=f"cell-{i}") for i in range(2)]
    sent = system.seam.sent
    with pytest.raises(AttributeError):
        system.request_all([*refs, "cell-9"], Slow(10, "cell-0 cell-1"), timeout=1)
    # The two asks sent before it are counted and have their deadline.
    assert system.seam.sent == sent + 2
    assert system.deadlines.pending() == 2
    await system.clock.advance(2)
    assert system.deadlines.pending() == 0


async def test_shutdown_stops_children_before_their_parent_and_the_newest_first():
    stopped: list[str] = []

    class Node(AsyncioActor):
        def __init__(self, name: str) -> None:
            super().__init__(name=name)

        @handles(str)
        def start_child(self, child: str) -> None:
            Node.start(name=child)  # started inside this actor's handler: its child

        def on_stop(self) -> None:
            stopped.append(self.actor_name)

    async with ActorSystem(clock=VirtualClock()) as system:
        back = Node.start(name="back")
        await back.request("back-worker-1")
        front = Node.start(name="front")
        await back.request("back-worker-2")  # newer than front, but back's
        await front.request("front-worker")
        assert sorted(system.names()) == ["back", "back-worker-1", "back-worker-2", "front", "front-worker"]
    # The newest root (front) and its child first; then back's children, newest first, then back.
    assert stopped == ["front-worker", "front", "back-worker-2", "back-worker-1", "back"]
