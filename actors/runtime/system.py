"""`ActorSystem`: the loop, clock, seeded generator, names and seam of one run.

One system is current at a time in a process (pykka's registry is global,
and so is ours). Use it as an async context manager on the loop that will
run the actors:

    async with ActorSystem(clock=VirtualClock(), seed=7) as system:
        ref = Counter.start(name="counter")
        assert await ref.ask(Increment(), block=False) == 1

Leaving the block stops every actor (children before their parent, newest
first, as a supervisor stops its children), awaits their `on_stop`,
cancels anything they left running and checks no task is left behind.
"""

from __future__ import annotations

import asyncio
import gc
import random
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog
from pykka import ActorDeadError, ActorRegistry

from actors.runtime.clock import Clock, RealClock, VirtualClock
from actors.runtime.deadlines import Deadlines
from actors.runtime.delivery import (
    DeliverySeam,
    Envelope,
    _current_actor,
    current_actor_name,
    current_trace,
    external_sender,
)
from actors.runtime.errors import RuntimeNotRunning
from actors.runtime.future import finish, register_loop

if TYPE_CHECKING:
    from actors.runtime.actor import AsyncActorRef, AsyncioActor

__all__ = ["ActorNameTaken", "ActorSystem", "current_system"]

log = structlog.get_logger("minifoundry.runtime")

_current: ActorSystem | None = None
_current_actor_get = _current_actor.get
_current_trace_get = current_trace.get
_external_sender_get = external_sender.get

# The collector's thresholds while a system runs. A running platform makes
# and drops a few objects per message (envelopes, futures, records); at
# Python's default of a collection every 700 new objects, collections were a
# large share of starting 250,000 instances. The middle collections (each
# rescans every object the young ones promoted) mattered most: one per 50
# young ones halved the collector's time against one per 20 (1.6 s -> 0.8 s
# of 250,000 instances RUNNING). Full collections still come every tenth
# middle one (and only once long-lived objects grew by a quarter, Python's
# own rule), so cycles in a long-lived platform are still freed. Put back
# when the system stops.
GC_THRESHOLDS = (100_000, 50, 10)

# RFC 4122 version 4: variant bits 10, version nibble 4 (as uuid.UUID sets them).
_UUID_CLEAR = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
_UUID_SET = (0x8000 << 48) | (4 << 76)


def current_system() -> ActorSystem:
    """The running system; raises RuntimeNotRunning outside one."""
    if _current is None:
        raise RuntimeNotRunning("no ActorSystem is running: start one with `async with ActorSystem()`")
    return _current


class ActorNameTaken(ValueError):
    """Raised by `start()` when a live actor already has that stable name."""


class ActorSystem:
    """Owns the runtime of one run of the platform."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        seed: int = 0,
        default_ask_timeout: float = 5.0,
        shutdown_timeout: float = 10.0,
        gc_thresholds: tuple[int, int, int] | None = GC_THRESHOLDS,
    ) -> None:
        self.clock: Clock = clock if clock is not None else RealClock()
        self.seed = seed
        self.rng = random.Random(seed)
        self.default_ask_timeout = default_ask_timeout
        self.shutdown_timeout = shutdown_timeout
        self.seam = DeliverySeam(self.clock, self.rng)
        self.deadlines = Deadlines(self.clock)
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.loop_thread = -1
        self._names: dict[str, AsyncActorRef] = {}
        self._starts: dict[str, int] = {}  # name -> how many actors have taken it
        self._actors: dict[str, AsyncioActor] = {}  # by urn, in start order
        self._escalations: list[tuple[str, BaseException | None]] = []
        self.failed: asyncio.Event | None = None  # created on the loop in __aenter__
        self._started_at = 0.0
        self.gc_thresholds = gc_thresholds
        self._gc_before: tuple[int, int, int] | None = None
        self._shutting_down = False

    @property
    def stopping(self) -> bool:
        """Whether `shutdown` has begun: nothing is restarted from then on."""
        return self._shutting_down

    def new_guid(self) -> str:
        """A version-4 style guid drawn from the seeded generator: the same
        seed names everything the same way."""
        # What str(uuid.UUID(int=n, version=4)) gives, without building the
        # UUID object: the variant and version bits set, then the hex groups.
        n = (self.rng.getrandbits(128) & _UUID_CLEAR) | _UUID_SET
        h = n.to_bytes(16, "big").hex()  # the same 32 hex digits, faster than a format
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    # --- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> ActorSystem:
        global _current
        if _current is not None:
            raise RuntimeError("another ActorSystem is already running in this process")
        self.loop = asyncio.get_running_loop()
        self._shutting_down = False
        self.loop_thread = threading.get_ident()
        register_loop(self.loop, self.loop_thread)
        self.failed = asyncio.Event()
        _current = self
        if self.gc_thresholds is not None:
            self._gc_before = gc.get_threshold()
            gc.set_threshold(*self.gc_thresholds)
        if isinstance(self.clock, VirtualClock):
            self.clock.start()
        self._started_at = self.clock.monotonic()
        log.debug("actor-system-started", seed=self.seed, clock=type(self.clock).__name__)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop every actor (children before their parent, newest first:
        `_stop_order`); wait for them; leave nothing running."""
        global _current
        if _current is not self:
            return
        self._shutting_down = True
        try:
            await self._stop_everything()
        finally:
            _current = None
            if self._gc_before is not None:
                gc.set_threshold(*self._gc_before)
                self._gc_before = None
        log.debug("actor-system-stopped", **self.seam.statistics())

    def _stop_order(self) -> list[AsyncioActor]:
        """Every actor in the order shutdown stops them: as a supervisor
        stops its children (OTP's rule), an actor's children before it, the
        newest first, and among actors without a running parent the newest
        first. "Newest" is by when the actor's name was first taken, so a
        restarted actor keeps its place (as a child keeps its place in its
        supervisor's specs). A platform's front (its newest components)
        stops before what it uses, and no component loses its workers while
        it still works."""
        # `_starts` holds every name ever taken, in the order first taken.
        place = {name: i for i, name in enumerate(self._starts)}
        actors = sorted(self._actors.values(), key=lambda a: place.get(a.actor_name, len(place)))
        children: dict[str, list[AsyncioActor]] = {}
        roots: list[AsyncioActor] = []
        for actor in actors:
            parent = actor._actor_parent
            if parent is not None and parent.actor_urn in self._actors:
                children.setdefault(parent.actor_urn, []).append(actor)
            else:
                roots.append(actor)
        order: list[AsyncioActor] = []
        # Post-order, newest first at each level, without recursion.
        stack: list[tuple[AsyncioActor, bool]] = [(root, False) for root in roots]
        while stack:
            actor, expanded = stack.pop()
            if expanded:
                order.append(actor)
                continue
            stack.append((actor, True))
            stack.extend((child, False) for child in children.get(actor.actor_urn, ()))
        return order

    async def _stop_everything(self) -> None:
        actors = self._stop_order()
        for actor in actors:
            await self._stop_actor(actor)
        # Anything still alive after its stop deadline is cancelled.
        leftovers = [a._actor_task for a in actors if a._actor_task is not None and not a._actor_task.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.gather(*leftovers, return_exceptions=True)
        self.deadlines.cancel_all()
        if isinstance(self.clock, VirtualClock):
            await self.clock.stop()
        # Let cancelled helpers and call_soon'd callbacks run out.
        for _ in range(3):
            await asyncio.sleep(0)
        for ref in ActorRegistry.get_all():
            if getattr(ref, "_system", None) is self:
                ActorRegistry.unregister(ref)

    async def _stop_actor(self, actor: AsyncioActor) -> None:
        task = actor._actor_task
        if task is None or task.done():
            return
        if actor.actor_ref.is_alive():
            try:
                actor.actor_ref.tell(_stop_message())
            except ActorDeadError:
                pass
        try:
            async with self.clock.timeout(self.shutdown_timeout):
                await asyncio.shield(task)
        except TimeoutError:
            log.warning("actor-stop-timed-out", actor=actor.actor_name)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        except asyncio.CancelledError:
            raise

    def _track(self, actor: AsyncioActor) -> None:
        self._actors[actor.actor_urn] = actor

    def _untrack(self, actor: AsyncioActor) -> None:
        self._actors.pop(actor.actor_urn, None)

    # --- names ---------------------------------------------------------------------

    def claim_name(self, name: str, ref: AsyncActorRef) -> None:
        holder = self._names.get(name)
        if holder is not None and holder.is_alive():
            raise ActorNameTaken(f"an actor named {name!r} is already running")
        self._names[name] = ref
        self._starts[name] = self._starts.get(name, 0) + 1

    def starts(self, name: str) -> int:
        """How many actors have taken `name` in this system (2 or more: restarted)."""
        return self._starts.get(name, 0)

    def release_name(self, name: str, ref: AsyncActorRef) -> None:
        if self._names.get(name) is ref:
            del self._names[name]

    def lookup(self, name: str) -> AsyncActorRef | None:
        ref = self._names.get(name)
        return ref if ref is not None and ref.is_alive() else None

    def names(self) -> list[str]:
        return [n for n, r in self._names.items() if r.is_alive()]

    def actor(self, name: str) -> AsyncioActor | None:
        """The actor object behind a name (for introspection and faults)."""
        ref = self.lookup(name)
        return None if ref is None else ref._actor

    # --- component faults ---------------------------------------------------------

    def kill(self, name: str) -> bool:
        """Crash the actor now (a fault): its task is cancelled, its queued
        asks fail with ActorDeadError, its supervisor restarts it."""
        actor = self.actor(name)
        if actor is None or actor._actor_task is None or actor._actor_task.done():
            return False
        actor._actor_task.cancel()
        log.warning("actor-killed", actor=name)
        return True

    def pause(self, name: str) -> bool:
        """Stop delivering to the actor: messages queue up until `resume`."""
        actor = self.actor(name)
        if actor is None:
            return False
        actor.actor_inbox.pause()
        log.warning("actor-paused", actor=name)
        return True

    def resume(self, name: str) -> bool:
        actor = self.actor(name)
        if actor is None:
            return False
        actor.actor_inbox.resume()
        log.info("actor-resumed", actor=name)
        return True

    def paused(self) -> list[str]:
        return [a.actor_name for a in self._actors.values() if a.actor_inbox.paused]

    # --- sending by name ---------------------------------------------------------

    def tell(self, name: str, message: Any) -> bool:
        """Send to whoever has `name`; record a dead letter if nobody does.

        Returns whether the message entered a mailbox (it may still be
        dropped by a fault further on).
        """
        ref = self._names.get(name)
        if ref is None:
            self.seam.dead_letter(current_actor_name(), name, message, "unknown")
            return False
        try:
            ref.tell(message)  # a stopped actor: a dead letter ("stopped") and ActorDeadError
        except ActorDeadError:
            return False
        return True

    def ask(self, name: str, message: Any, *, timeout: float | None = None) -> asyncio.Future[Any]:
        """Ask whoever has `name` (`await system.ask(name, msg)`); the reply
        comes on the future (`AsyncActorRef.request`), or ActorDeadError (and
        a dead letter) if nobody has the name."""
        ref = self._names.get(name)
        if ref is None:
            self.seam.dead_letter(current_actor_name(), name, message, "unknown")
            future: asyncio.Future[Any] = self.loop.create_future()
            finish(future, None, ActorDeadError(f"no actor named {name!r}"))
            return future
        return ref.request(message, timeout=timeout)

    def request_all(
        self, refs: Sequence[AsyncActorRef], message: Any, *, timeout: float | None = None
    ) -> list[asyncio.Future[Any]]:
        """Ask every one of `refs` the same `message` at once (a bid round):
        their futures, in order, each as `ref.request(message)` would give.

        Every ask is delivered, counted and recorded as `request`'s is; what
        the round's asks have in common is done once for the round: one
        reading of the sender, the conversation and the clock (the round is
        sent at one instant: its recorded deliveries share that time, and
        its deadlines expire together), and one deadline entry
        (`Deadlines.arm_round`). A ref whose mailbox is off the fast path
        (paused, stopped, a fault rule or observer on the seam, another
        thread) and those after it are asked by `ref.request` itself, after
        the round's record, so the record keeps the refs' order.
        """
        deadline = self.default_ask_timeout if timeout is None else timeout
        thread = threading.get_ident()
        if thread != self.loop_thread:
            return [ref.request(message, timeout=deadline) for ref in refs]
        deadlines = self.deadlines
        now = deadlines._raw()
        create_future = self.loop.create_future
        sender = _current_actor_get()
        if sender is None:
            sender = _external_sender_get()
        trace = _current_trace_get()
        futures: list[asyncio.Future[Any]] = []
        receivers: list[str] = []
        rest = len(refs)
        try:
            for i, ref in enumerate(refs):
                mailbox = ref._mailbox
                if mailbox.fast_thread != thread:
                    rest = i  # this one and those after it: one by one, after the round's record
                    break
                future = create_future()
                ref._queue_append((message, future, sender, trace))
                futures.append(future)
                receivers.append(ref.actor_name)
                waiter = mailbox._waiter
                if waiter is not None:
                    mailbox._waiter = None
                    if not waiter.done():
                        waiter.set_result(None)
        finally:
            # What was sent is counted, recorded and given its deadline even
            # if a later ref was no ref at all.
            if futures:
                deadlines.arm_round(futures[:], deadline, message, receivers, now)
                seam = self.seam
                seam.passed += len(futures)
                recorder = seam.recorder
                if trace is not None and (trace in seam.recording or (type(trace) is tuple and recorder is not None)):
                    recorder.record_round(
                        trace, sender, receivers, message, now if recorder._raw is deadlines._raw else None
                    )
        for ref in refs[rest:]:
            futures.append(ref.request(message, timeout=deadline))
        return futures

    def arm_deadline(self, future: asyncio.Future[Any], deadline: float, message: Any, receiver: str) -> None:
        if threading.get_ident() == self.loop_thread:
            self.deadlines.arm(future, deadline, message, receiver)
        else:
            self.loop.call_soon_threadsafe(self.deadlines.arm, future, deadline, message, receiver)

    # --- supervision glue ------------------------------------------------------------

    def _child_crashed(self, actor: AsyncioActor, reason: BaseException | None) -> None:
        parent = actor._actor_parent
        if self._shutting_down and parent is not None:
            # An actor cancelled because its stop timed out: nobody restarts
            # anything while everything stops (as a stopping supervisor
            # restarts none of the children it stops).
            log.warning("actor-crashed-while-stopping", actor=actor.actor_name, error=repr(reason))
            return
        if parent is not None and parent.actor_ref.is_alive():
            from actors.runtime.supervisor import ChildCrashed

            # Supervision is the runtime's own signal, not platform traffic:
            # it bypasses the delivery seam's fault rules (a partition must not
            # keep a supervisor from restarting its child).
            parent.actor_inbox.deliver_local(
                Envelope(ChildCrashed(actor.actor_name, actor.actor_urn, reason), None, actor.actor_name, None)
            )
        elif parent is None:
            self._escalate(actor.actor_name, reason, top_level=True)

    def _escalate(self, name: str, reason: BaseException | None, *, top_level: bool = False) -> None:
        self._escalations.append((name, reason))
        if top_level and getattr(reason, "_escalation", False):
            log.error("supervision-escalated-to-top", actor=name, error=repr(reason))
            if self.failed is not None:
                self.failed.set()

    @property
    def escalations(self) -> list[tuple[str, BaseException | None]]:
        return list(self._escalations)

    # --- introspection ----------------------------------------------------------------

    def statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = dict(self.seam.statistics())
        stats["actors"] = len(self._actors)
        stats["uptime"] = self.clock.monotonic() - self._started_at
        return stats

    def mailbox_depths(self) -> dict[str, int]:
        return {a.actor_name: len(a.actor_inbox) for a in self._actors.values()}


def _stop_message() -> Any:
    from pykka import messages

    return messages._ActorStop()
