"""`AsyncioActor`: pykka's Actor, run as a task on one asyncio event loop.

pykka leaves three hooks to new runtimes; this module fills them:

- `_create_actor_inbox()` -> a `Mailbox` whose `put` is the delivery seam;
- `_create_future()` -> an `AsyncioFuture` (awaitable on the loop);
- `_start_actor_loop()` -> a task running setup / running / teardown.

Everything else of pykka's face is unchanged: `start()`, `ActorRef.tell/ask`,
`proxy()`, `ActorRegistry`, the `on_start/on_stop/on_failure/on_receive`
hooks. Differences that make sense on a loop: handlers and hooks may be
`async def` (they are awaited, still one message at a time), every ask has a
deadline, and messages that reach no actor are counted as dead letters.

One dispatch style for every actor: a method marked `@handles(MessageType)`
handles that type; the marks of a class and its bases make one table, and
the default `on_receive` looks the message's type up in it. A handler marked
`concurrent=True` runs beside the mailbox (its reply is `Deferred`), for
conversations that wait on something slow without holding up the others.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import sys
import threading
import types
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar

import pykka
import structlog
from pykka import ActorDeadError, ActorRef, ActorRegistry, messages

from actors.runtime.delivery import (
    Envelope,
    Mailbox,
    _current_actor,
    current_actor_name,
    current_trace,
    external_sender,
)
from actors.runtime.future import AsyncioFuture, finish, finish_on_loop
from actors.runtime.system import current_system

if TYPE_CHECKING:
    from actors.runtime.clock import TimerHandle
    from actors.runtime.system import ActorSystem

__all__ = ["AsyncActorRef", "AsyncioActor", "Deferred", "handles"]

log = structlog.get_logger("minifoundry.runtime")

_CoroutineType = types.CoroutineType
_get_ident = threading.get_ident
_current_actor_get = _current_actor.get
_current_trace_get = current_trace.get
_external_sender_get = external_sender.get
_PYKKA_MESSAGES = frozenset({messages._ActorStop, messages.ProxyCall, messages.ProxyGetAttr, messages.ProxySetAttr})
_names = itertools.count(1)
_InvalidState = asyncio.InvalidStateError


class Deferred:
    """Returned by a handler: "the reply comes when this awaitable is done".

    The actor goes on with its next message at once; the asker gets the
    awaitable's result (or exception) when it is ready. For conversations
    that wait on something slow (staging) without holding the mailbox.
    """

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Any) -> None:
        self.awaitable = awaitable


#: What a handler returns when its reply comes later: a coroutine to await, or a Deferred.
_LATER_RESULTS = frozenset({_CoroutineType, Deferred})

Handler = Callable[[Any, Any], Any]
#: How a handler answers an ask it took from the mailbox (`take_queued`):
#: `answer(value, None)` or `answer(None, error)`.
Answer = Callable[[Any, BaseException | None], None]


def handles(*types: type, concurrent: bool = False) -> Callable[[Handler], Handler]:
    """Mark a method as its actor's handler of these message types."""

    def mark(method: Handler) -> Handler:
        method.__handles__ = (types, concurrent)  # type: ignore[attr-defined]
        return method

    return mark


def _concurrently(handler: Handler) -> Handler:
    def receive(actor: Any, message: Any) -> Deferred:
        return Deferred(handler(actor, message))

    return receive


# Per actor class: message type -> what its loop calls, `receive(actor, message)`.
_RECEIVERS: dict[type, dict[type, Handler]] = {}


def _receivers(cls: type[AsyncioActor]) -> dict[type, Handler]:
    """The loop's dispatch table: the class's `@handles` marks (a concurrent
    handler wrapped to return `Deferred`), so a message goes to its handler
    in one lookup and one call. Empty for a class that overrides
    `on_receive`: everything then goes through its `on_receive`. Built on
    the class's first start, after every `__init_subclass__` has run."""
    table = _RECEIVERS.get(cls)
    if table is None:
        table = {}
        if cls.on_receive is AsyncioActor.on_receive:
            for kind, (handler, concurrent) in cls._handlers.items():
                if kind not in _PYKKA_MESSAGES:
                    table[kind] = _concurrently(handler) if concurrent else handler
        _RECEIVERS[cls] = table
    return table


class _Killed(Exception):
    """The reason recorded when an actor is killed from outside (a fault)."""

    def __str__(self) -> str:
        return "killed"


class AsyncActorRef(ActorRef[Any]):
    """pykka's ActorRef, with ask deadlines, dead letters and the actor's name."""

    # Our actors' inbox is a `Mailbox`, which pykka's ActorInbox protocol
    # (typed with pykka's own Envelope) does not describe.
    actor_inbox: Mailbox  # type: ignore[assignment]

    def __init__(self, actor: AsyncioActor) -> None:
        super().__init__(actor)
        self.actor_name = actor.actor_name
        self._system = actor._system
        self._actor = actor  # for the cheap liveness flag on the hot path
        # The mailbox's parts the fast path touches, looked up once.
        mailbox = actor.actor_inbox
        self._mailbox = mailbox
        self._seam = mailbox._seam
        self._queue_append = mailbox._queue.append
        self._create_future = actor._system.loop.create_future

    def is_alive(self) -> bool:
        return self._actor._actor_running

    def __repr__(self) -> str:
        return f"<ActorRef {self.actor_name}>"

    def __str__(self) -> str:
        return self.actor_name

    def tell(self, message: Any) -> None:
        mailbox = self._mailbox
        if _get_ident() == mailbox.fast_thread:
            # Mailbox.put's fast path, inlined: tells are the hottest path.
            # The queue takes a plain (message, reply_to, sender, trace)
            # tuple, its sender the sending actor itself (`sender_name`).
            sender = _current_actor_get()
            if sender is None:
                sender = _external_sender_get()
            trace = _current_trace_get()
            seam = self._seam
            seam.passed += 1
            self._queue_append((message, None, sender, trace))
            if trace is not None:
                book = seam.recording.get(trace)
                if book is not None:
                    # TraceRecorder.record_delivery's own case, inlined (as in request).
                    recorder = seam.recorder
                    recorder._seq = seq = recorder._seq + 1
                    book.append((seq, recorder._raw(), sender, self.actor_name, message, False))
                    if len(book) >= recorder.max_deliveries:
                        del seam.recording[trace]
                elif type(trace) is tuple and seam.recorder is not None:
                    seam.recorder.record_delivery(trace, sender, self.actor_name, message, False)
            waiter = mailbox._waiter
            if waiter is not None:
                mailbox._waiter = None
                if not waiter.done():
                    waiter.set_result(None)
            return
        sender = current_actor_name()
        if not self._actor._actor_running:
            self._system.seam.dead_letter(sender, self.actor_name, message, "stopped")
            raise ActorDeadError(f"{self.actor_name} not found")
        mailbox.put(Envelope(message, None, sender, _current_trace_get()))

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = None) -> Any:
        """Send `message`; the reply comes back on a future.

        `timeout` is the ask's deadline in platform seconds (default: the
        system's `default_ask_timeout`); a missed deadline fails the future
        with `AskTimeout`. With `block=False` the future is returned, to be
        awaited on the loop (`await ref.ask(msg, block=False)`).
        """
        system = self._system
        future: AsyncioFuture[Any] = AsyncioFuture(loop=system.loop)
        self.request(message, timeout=timeout, _future=future)
        if not block:
            return future
        if _get_ident() == system.loop_thread:
            return future.get(timeout=None)  # GetOnLoopThread unless done
        # Off the loop the caller's thread waits; the platform-time deadline
        # normally fires first, this is the backstop.
        deadline = system.default_ask_timeout if timeout is None else timeout
        return future.get(timeout=deadline + 1.0)

    def request(
        self, message: Any, *, timeout: float | None = None, _future: asyncio.Future[Any] | None = None
    ) -> asyncio.Future[Any]:
        """The platform's own ask, on the loop: `await ref.request(msg)`.

        As `ask(block=False)` (the same deadline, delivery and answers), but
        the reply comes on asyncio's own future, which has no pykka face
        (`get`, `map`, ...) and which the loop's task waits on at C speed.
        Actors asking each other by name (`AsyncioActor.ask`) and the
        auctioneer's bid rounds use it. (`ask` sends through here with its
        pykka-faced future as `_future`: one body for both.)
        """
        future: asyncio.Future[Any] = self._create_future() if _future is None else _future
        system = self._system
        deadline = system.default_ask_timeout if timeout is None else timeout
        mailbox = self._mailbox
        if _get_ident() == mailbox.fast_thread:
            # The same inlined fast path as tell, with Deadlines.arm's too;
            # one read of the clock serves the deadline and the trace entry.
            deadlines = system.deadlines
            raw = deadlines._raw
            now = raw()
            queue = deadlines._queues.get(deadline)
            if queue is None or not len(queue) & 63:
                deadlines.arm(future, deadline, message, self.actor_name, now)
            else:
                expiry = now + deadline * deadlines._rate
                queue.append((expiry, future, message, self.actor_name))
                if expiry < deadlines._timer_at:
                    deadlines._schedule(expiry)
            sender = _current_actor_get()
            if sender is None:
                sender = _external_sender_get()
            trace = _current_trace_get()
            seam = self._seam
            seam.passed += 1
            self._queue_append((message, future, sender, trace))
            if trace is not None:
                book = seam.recording.get(trace)
                if book is not None:
                    # TraceRecorder.record_delivery's own case, inlined.
                    recorder = seam.recorder
                    recorder._seq = seq = recorder._seq + 1
                    book.append(
                        (seq, now if recorder._raw is raw else recorder._raw(), sender, self.actor_name, message, True)
                    )
                    if len(book) >= recorder.max_deliveries:
                        del seam.recording[trace]
                elif type(trace) is tuple and seam.recorder is not None:
                    seam.recorder.record_delivery(trace, sender, self.actor_name, message, True)
            waiter = mailbox._waiter
            if waiter is not None:
                mailbox._waiter = None
                if not waiter.done():
                    waiter.set_result(None)
            return future
        sender = current_actor_name()
        if not self._actor._actor_running:
            system.seam.dead_letter(sender, self.actor_name, message, "stopped")
            finish(future, None, ActorDeadError(f"{self.actor_name} not found"))
        else:
            system.arm_deadline(future, deadline, message, self.actor_name)
            mailbox.put(Envelope(message, future, sender, _current_trace_get()))
        return future

    async def ask_async(self, message: Any, *, timeout: float | None = None) -> Any:
        """`await ref.ask_async(msg)`: the loop-side spelling of a blocking ask."""
        return await self.ask(message, block=False, timeout=timeout)

    def stop(self, *, block: bool = True, timeout: float | None = None) -> Any:
        """As pykka's: stop after the messages already queued. On the loop
        thread it never blocks (it returns the awaitable future instead).
        The stop's deadline is `timeout`, else the system's shutdown timeout:
        a stop waits behind work already queued, so the ask default is too
        short for it."""
        system = self._system
        deadline = system.shutdown_timeout if timeout is None else timeout
        ask_future = self.ask(messages._ActorStop(), block=False, timeout=deadline)

        def converter(get_timeout: float | None) -> bool:
            try:
                ask_future.get(timeout=get_timeout)
            except ActorDeadError:
                return False
            return True

        stopped: AsyncioFuture[bool] = AsyncioFuture(loop=system.loop)
        stopped.set_get_hook(converter)
        if block and threading.get_ident() != system.loop_thread:
            return stopped.get(timeout=deadline + 1.0)
        return stopped


class AsyncioActor(pykka.Actor):
    """An actor that runs as a task on the system's event loop.

    Subclasses handle messages in `on_receive` (sync or `async def`) or expose
    methods through `proxy()`. Stable names: pass `name=` to `start()`; the
    system finds the actor by it, and a restarted actor takes the same name.
    """

    #: Used when no `name=` is given: "<default_name>-<n>".
    default_name: str | None = None
    #: Message type -> (handler, concurrent), from the `@handles` marks.
    _handlers: ClassVar[dict[type, tuple[Handler, bool]]] = {}

    # Narrower than pykka's declarations: the inbox is a `Mailbox` (which
    # pykka's ActorInbox protocol, typed with pykka's Envelope, does not
    # describe) and the ref an `AsyncActorRef`.
    actor_inbox: Mailbox  # type: ignore[assignment]
    _actor_ref: AsyncActorRef

    if TYPE_CHECKING:
        # pykka's hooks return None; ours may also be `async def` (awaited).
        def on_start(self) -> Any: ...
        def on_stop(self) -> Any: ...
        def on_failure(
            self,
            exception_type: type[BaseException] | None,
            exception_value: BaseException | None,
            traceback: types.TracebackType | None,
        ) -> Any: ...

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table: dict[type, tuple[Handler, bool]] = {}
        for klass in reversed(cls.__mro__):
            for name, attr in vars(klass).items():
                marked = getattr(attr, "__handles__", None)
                if marked is not None:
                    types, concurrent = marked
                    # By name: a subclass that overrides the method overrides the handler.
                    for kind in types:
                        table[kind] = (getattr(cls, name), concurrent)
        cls._handlers = table

    def on_receive(self, message: Any) -> Any:
        """Dispatch by the message's type through the `@handles` table."""
        entry = self._handlers.get(type(message))
        if entry is None:
            return super().on_receive(message)
        handler, concurrent = entry
        if concurrent:
            return Deferred(handler(self, message))
        return handler(self, message)

    def __init__(self, *, name: str | None = None) -> None:
        system = current_system()
        self._system: ActorSystem = system
        base = self.default_name or type(self).__name__.lower()
        self.actor_name = name if name is not None else f"{base}-{next(_names)}"
        super().__init__()
        self.actor_inbox.actor_name = self.actor_name
        self._actor_ref = AsyncActorRef(self)
        self._actor_parent: AsyncioActor | None = _current_actor.get()
        self._actor_task: asyncio.Task[None] | None = None
        self._actor_running = True
        self._actor_started = False
        self._actor_timers: set[TimerHandle] = set()
        self._actor_children: set[asyncio.Task[Any]] = set()
        self.crash_reason: BaseException | None = None
        self._actor_owed: asyncio.Future[Any] | None = None
        system.claim_name(self.actor_name, self._actor_ref)

    @property
    def system(self) -> ActorSystem:
        return self._system

    @property
    def clock(self) -> Any:
        return self._system.clock

    @property
    def rng(self) -> Any:
        return self._system.rng

    # --- pykka's three hooks ----------------------------------------------------

    @staticmethod
    def _create_actor_inbox() -> Mailbox:  # type: ignore[override]
        system = current_system()
        return Mailbox(system.seam, system.loop, system.loop_thread)

    @staticmethod
    def _create_future() -> AsyncioFuture[Any]:
        system = current_system()
        return AsyncioFuture(loop=system.loop)

    def _start_actor_loop(self) -> None:
        system = self._system
        if threading.get_ident() == system.loop_thread:
            self._actor_spawn_main()
        else:
            system.loop.call_soon_threadsafe(self._actor_spawn_main)

    def _actor_spawn_main(self) -> None:
        # A fresh context: the actor's own task is where `_current_actor` is
        # this actor for its whole life, at no cost per message.
        import contextvars

        self._actor_task = task = self._system.loop.create_task(
            self._actor_main(), name=f"actor:{self.actor_name}", context=contextvars.Context()
        )
        task.add_done_callback(self._actor_never_ran)
        self._system._track(self)

    def _actor_kill_now(self) -> None:
        """Crash this actor at once, from outside its task (its supervisor
        died): stopped and its name free before this returns, its failure
        hooks run, its task cancelled (which fails the ask it was serving)."""
        if not self._actor_running:
            return
        log.warning("actor-killed", actor=self.actor_name)
        self._actor_crash((_Killed, _Killed(), None))
        task = self._actor_task
        if task is not None and not task.done():
            task.cancel()

    def _actor_never_ran(self, _task: asyncio.Task[None]) -> None:
        # A task cancelled (killed) before its first step never enters
        # `_actor_main`, whose teardown would fail the queued asks and tell
        # the supervisor: do both here.
        if self._actor_started:
            return
        if self._actor_running:
            self._actor_crash((_Killed, _Killed(), None))
        self._actor_loop_teardown()

    # --- the loop: setup / running / teardown ----------------------------------------

    async def _actor_main(self) -> None:
        self._actor_started = True
        _current_actor.set(self)
        try:
            try:
                result = self.on_start()
                if type(result) is _CoroutineType:
                    await result
            except Exception:  # noqa: BLE001 - a failed on_start crashes the actor, for its supervisor
                self._actor_crash(sys.exc_info())
                return
            await self._actor_loop_running()
        except asyncio.CancelledError:
            owed, self._actor_owed = self._actor_owed, None
            if owed is not None:
                finish_on_loop(owed, None, ActorDeadError(f"{self.actor_name} was killed while handling the message"))
            if self._actor_running:
                self._actor_crash((_Killed, _Killed(), None))
            # else: cancelled during shutdown after a stop: nothing to report
        finally:
            self._actor_loop_teardown()

    async def _actor_loop_running(self) -> None:  # type: ignore[override]  # pykka's is sync
        mailbox = self.actor_inbox
        queue = mailbox._queue
        popleft = queue.popleft
        create_future = self._system.loop.create_future
        receiver = _receivers(type(self)).get
        handle = self._handle_receive
        later = _LATER_RESULTS
        trace_var = current_trace
        trace = None
        # No flag is read per message: a paused or stopped actor's mailbox
        # sets its queue aside, so an empty queue is all the loop looks at,
        # and whether the actor still runs is asked only then.
        while True:
            if not queue:
                if not self._actor_running:
                    return
                # Inlined Mailbox.wait(): this is the hottest await there is.
                waiter = create_future()
                mailbox._waiter = waiter
                await waiter
                continue
            message, reply_to, _, envelope_trace = popleft()
            if envelope_trace is not trace:
                trace = envelope_trace
                trace_var.set(trace)
            try:
                # A handled type goes straight to its handler; anything else
                # (stop and proxy messages, or every message of a class with
                # its own on_receive) takes pykka's path.
                receive = receiver(type(message))
                result = handle(message) if receive is None else receive(self, message)
                if type(result) in later:
                    if type(result) is _CoroutineType:
                        # Remember whom we owe a reply while we wait: if the actor
                        # is killed meanwhile, that ask fails with ActorDeadError.
                        self._actor_owed = reply_to
                        result = await result
                        self._actor_owed = None
                    if type(result) is Deferred:
                        self._defer(result.awaitable, reply_to)
                        continue
            except Exception as exc:  # noqa: BLE001 - pykka's rule: to the asker, or the actor crashes
                if reply_to is not None:
                    # pykka's rule: an ask's exception goes back to the asker
                    # and the actor lives on.
                    finish_on_loop(reply_to, None, exc)
                    continue
                self._actor_crash(sys.exc_info())
                return
            if reply_to is not None:
                # Our refs only ever attach asyncio futures (an AsyncioFuture
                # is one underneath), and this is the loop thread.
                try:
                    reply_to.set_result(result)
                except _InvalidState:
                    pass  # the asker stopped waiting (cancelled), or its deadline answered first

    def _actor_crash(self, exc_info: Any) -> None:
        exc_type, exc_value, tb = exc_info
        self.crash_reason = exc_value
        log.error(
            "actor-crashed",
            actor=self.actor_name,
            error=f"{exc_type.__name__}: {exc_value}" if exc_type else "unknown",
            exc_info=exc_info if tb is not None else None,
        )
        self._actor_mark_stopped()
        try:
            result = self.on_failure(exc_type, exc_value, tb)
            if type(result) is _CoroutineType:
                # on_failure may be async; run it, but nothing waits for it
                # longer than the actor's own teardown.
                self._system.loop.create_task(self._actor_finish_failure(result))
        except Exception:
            log.exception("actor-on-failure-failed", actor=self.actor_name)
        self._system._child_crashed(self, exc_value)

    async def _actor_finish_failure(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except Exception:
            log.exception("actor-on-failure-failed", actor=self.actor_name)

    def _actor_mark_stopped(self) -> None:
        if not self._actor_running and self.actor_stopped.is_set():
            return
        self._actor_running = False
        self.actor_inbox.close()
        ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        self._system.release_name(self.actor_name, self._actor_ref)
        for timer in self._actor_timers:
            timer.cancel()
        self._actor_timers.clear()
        for task in self._actor_children:
            task.cancel()

    def _stop(self) -> Any:
        """Handle `_ActorStop`: stop after this message; await an async on_stop."""
        self._actor_mark_stopped()
        try:
            result = self.on_stop()
        except Exception:
            log.exception("actor-on-stop-failed", actor=self.actor_name)
            return None
        if type(result) is _CoroutineType:
            return self._actor_await_on_stop(result)
        return None

    async def _actor_await_on_stop(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except Exception:
            log.exception("actor-on-stop-failed", actor=self.actor_name)

    def _actor_loop_teardown(self) -> None:
        self._actor_mark_stopped()
        self.actor_inbox.reject_held()
        self._system._untrack(self)

    def _handle_receive(self, message: Any) -> Any:
        # One set lookup decides the common case: an ordinary message goes
        # straight to on_receive, skipping pykka's chain of isinstance checks.
        kind = type(message)
        if kind not in _PYKKA_MESSAGES:
            return self.on_receive(message)
        if kind is messages._ActorStop:
            return self._stop()
        return super()._handle_receive(message)

    # --- helpers for subclasses ---------------------------------------------------------

    def tell(self, name: str, message: Any) -> None:
        """Send to the actor that has `name` now (a dead letter if none)."""
        self._system.tell(name, message)

    def ask(self, name: str, message: Any, *, timeout: float | None = None) -> asyncio.Future[Any]:
        """Ask the actor that has `name` now: `await self.ask(name, msg)`."""
        return self._system.ask(name, message, timeout=timeout)

    def tell_self_later(self, delay: float, message: Any) -> TimerHandle:
        """A timer on the platform clock that sends this actor `message`.

        Cancelled automatically when the actor stops.
        """
        timers = self._actor_timers
        mailbox = self.actor_inbox
        name = self.actor_name

        def fire() -> None:
            # A timer is the actor's own clock, not a message on a link: it
            # goes straight into the mailbox, past the fault rules (a dropped
            # tick would end a periodic loop for good), with the actor as sender.
            timers.discard(handle)
            if self._actor_running:
                mailbox.deliver_local(Envelope(message, None, name, None))

        handle = self._system.clock.call_later(delay, fire)
        timers.add(handle)
        return handle

    def take_queued(self, accept: Callable[[Any], bool], limit: int) -> list[tuple[Any, Answer]]:
        """Take the asks waiting at the front of the mailbox, in order, while
        `accept(message)` holds (at most `limit`), for a handler that serves
        several at once (CC_DB's group commit): each as `(message, answer)`,
        and the caller owes every one an answer, `answer(value, None)` or
        `answer(None, error)`.

        A tell, a message `accept` refuses, a runtime message or a paused
        mailbox ends the taking, so nothing is served before a message that
        arrived earlier. The sends were recorded and let through the seam when
        they entered the mailbox; taking them is receiving them.
        """
        mailbox = self.actor_inbox
        queue = mailbox._queue
        taken: list[tuple[Any, Answer]] = []
        while queue and len(taken) < limit:
            envelope = queue[0]
            message, reply_to = envelope[0], envelope[1]
            if reply_to is None or type(message) in _PYKKA_MESSAGES or not accept(message):
                break
            queue.popleft()
            taken.append((message, functools.partial(finish_on_loop, reply_to)))
        return taken

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        """Run `coro` beside the actor (it does not hold the mailbox); it is
        cancelled when the actor stops. Its failures are logged."""
        task = self._system.loop.create_task(coro, name=name or f"{self.actor_name}:task")
        self._actor_children.add(task)
        task.add_done_callback(self._actor_task_done)
        return task

    def _defer(self, awaitable: Any, reply_to: asyncio.Future[Any] | None) -> None:
        """Reply when `awaitable` is done, beside the mailbox. If the actor
        stops before that task even starts, the asker still hears (ActorDeadError)."""
        task = self.spawn(_reply_later(awaitable, reply_to, self.actor_name), name=f"{self.actor_name}:reply")
        name = self.actor_name

        def cancelled(done: asyncio.Task[Any]) -> None:
            if done.cancelled():
                if reply_to is not None:
                    finish_on_loop(reply_to, None, ActorDeadError(f"{name} stopped before replying"))
                close = getattr(awaitable, "close", None)
                if close is not None:
                    close()  # a coroutine that never ran: no "never awaited" warning

        task.add_done_callback(cancelled)

    def _actor_task_done(self, task: asyncio.Task[Any]) -> None:
        self._actor_children.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("actor-task-failed", actor=self.actor_name, task=task.get_name(), error=repr(exc))

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> AsyncActorRef:
        return super().start(*args, **kwargs)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.actor_name}>"


async def _reply_later(awaitable: Any, reply_to: asyncio.Future[Any] | None, actor_name: str = "") -> None:
    """Await a deferred result and answer the asker (if it was an ask)."""
    try:
        result = await awaitable
    except asyncio.CancelledError:
        # The actor stopped (or was killed) before the reply was ready.
        if reply_to is not None:
            finish_on_loop(reply_to, None, ActorDeadError(f"{actor_name} stopped before replying"))
        raise
    except Exception as exc:
        if reply_to is None:
            raise  # a tell's failure: logged by the actor's task bookkeeping
        finish_on_loop(reply_to, None, exc)
    else:
        if reply_to is not None:
            finish_on_loop(reply_to, result, None)
