"""The one delivery seam: every envelope to every actor passes `DeliverySeam`.

It is the only place that sees sender, receiver and message together, so the
things that need all three hook in here and nowhere else:

- statistics (sent, delivered, dropped, duplicated, delayed, dead letters);
- tracing: observers called per delivery (the platform's trace recorder, a
  structlog event carrying the conversation's trace id);
- faults: rules that drop, delay, duplicate or reorder matching messages.

When no observer and no fault rule is installed the seam is a counter and a
queue append (`DeliverySeam.active` is False), which keeps tells cheap. A
trace recorder (an observer with `record_delivery`, such as the platform's
`TraceRecorder`) keeps that fast path: it only keeps deliveries of the
conversations it has open, so the seam hands it the traced ones directly
instead of building an envelope for every message.
"""

from __future__ import annotations

import contextvars
import dataclasses
import fnmatch
import threading
import weakref
from collections import deque
from collections.abc import Callable
from operator import itemgetter as _itemgetter
from typing import TYPE_CHECKING, Any, cast

import structlog
from pykka import ActorDeadError
from pykka._envelope import Envelope as _PykkaEnvelope
from pykka.messages import _ActorStop

from actors.runtime.future import finish

if TYPE_CHECKING:
    import asyncio
    import random

    from actors.runtime.clock import Clock

__all__ = [
    "EXTERNAL",
    "DeadLetter",
    "DeliverySeam",
    "Envelope",
    "FaultRule",
    "Mailbox",
    "current_actor_name",
    "current_trace",
    "external_sender",
    "sender_name",
]

log = structlog.get_logger("minifoundry.delivery")

_get_ident = threading.get_ident
_tuple_new = tuple.__new__

# No thread has this ident (`threading.get_ident` is never negative).
_NO_THREAD = -1

#: The sender name of anything sent from outside every actor (a test, the REPL).
EXTERNAL = "user"

# Set once in each actor's own task: the actor whose handler is running.
_current_actor: contextvars.ContextVar[Any] = contextvars.ContextVar("current_actor", default=None)
# The conversation a message belongs to; follows replies and onward sends.
current_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_trace", default=None)
# Who a message sent from outside every actor is from: the user by default;
# the HTTP API names its client the `cli` participant, as cf is.
external_sender: contextvars.ContextVar[str] = contextvars.ContextVar("external_sender", default=EXTERNAL)


def current_actor_name() -> str:
    actor = _current_actor.get()
    return external_sender.get() if actor is None else actor.actor_name


def sender_name(sender: Any) -> str:
    """A queued sender as a name: the fast path queues the sending actor
    itself (its name is read only if someone asks) or an external name."""
    return sender if type(sender) is str else sender.actor_name


class Envelope(tuple):
    """pykka's envelope (`message`, `reply_to`) plus who sent it and which
    conversation it is part of.

    A tuple underneath: an envelope is built for every message, and building
    a tuple costs a fraction of running a Python `__init__`.
    """

    __slots__ = ()

    def __new__(cls, message: Any, reply_to: Any = None, sender: str = EXTERNAL, trace_id: Any = None) -> Envelope:
        return _tuple_new(cls, (message, reply_to, sender, trace_id))

    message = property(_itemgetter(0))
    reply_to = property(_itemgetter(1))
    sender = property(_itemgetter(2))
    trace_id = property(_itemgetter(3))

    @classmethod
    def from_pykka(cls, envelope: _PykkaEnvelope[Any]) -> Envelope:
        """An envelope built by pykka's own ActorRef: sender and trace unknown."""
        actor = _current_actor.get()
        sender = external_sender.get() if actor is None else actor.actor_name
        return cls(envelope.message, envelope.reply_to, sender, current_trace.get())

    def __repr__(self) -> str:
        return f"Envelope({self[2]} -> message={self[0]!r}, trace={self[3]!r})"


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that reached no actor: its receiver was stopped or unknown."""

    time: float
    sender: str
    receiver: str
    message_type: str
    reason: str


@dataclasses.dataclass(slots=True)
class FaultRule:
    """Drop, delay, duplicate or reorder messages that match.

    `sender`, `receiver` and `message_type` are shell-style patterns
    (`cell-*`); a set of names matches any of them. `probability` is drawn
    from the system's seeded generator. `until` is platform time (None:
    until removed). `delay` is seconds, or a callable taking the generator.
    """

    action: str  # "drop" | "delay" | "duplicate" | "reorder"
    sender: str | frozenset[str] = "*"
    receiver: str | frozenset[str] = "*"
    message_type: str = "*"
    probability: float = 1.0
    delay: float | Callable[[random.Random], float] = 0.0
    until: float | None = None
    label: str = ""
    matched: int = 0
    rule_id: int = 0

    ACTIONS = ("drop", "delay", "duplicate", "reorder")

    def __post_init__(self) -> None:
        if self.action not in self.ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}; expected one of {', '.join(self.ACTIONS)}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")

    def matches(self, sender: str, receiver: str, message_type: str) -> bool:
        return (
            _match(self.sender, sender)
            and _match(self.receiver, receiver)
            and (self.message_type == "*" or fnmatch.fnmatchcase(message_type, self.message_type))
        )

    def describe(self) -> str:
        parts = [self.action, f"{_show(self.sender)} -> {_show(self.receiver)}"]
        if self.message_type != "*":
            parts.append(f"type={self.message_type}")
        if self.probability < 1.0:
            parts.append(f"p={self.probability:g}")
        if self.action in ("delay", "reorder") and not callable(self.delay):
            parts.append(f"delay={self.delay:g}s")
        if self.label:
            parts.append(f"({self.label})")
        return " ".join(parts)


def _match(pattern: str | frozenset[str], name: str) -> bool:
    if isinstance(pattern, frozenset):
        return any(p == name or fnmatch.fnmatchcase(name, p) for p in pattern)
    return pattern == "*" or pattern == name or fnmatch.fnmatchcase(name, pattern)


def _show(pattern: str | frozenset[str]) -> str:
    return "{" + ",".join(sorted(pattern)) + "}" if isinstance(pattern, frozenset) else pattern


class Mailbox:
    """An actor's inbox. `put` is where every envelope enters the seam.

    Implements pykka's ActorInbox protocol (`put`, `get`, `empty`) so pykka's
    own code paths keep working.
    """

    __slots__ = (
        "__weakref__",
        "_aside",
        "_loop",
        "_loop_thread",
        "_queue",
        "_seam",
        "_waiter",
        "actor_name",
        "fast_thread",
        "open",
        "paused",
    )

    def __init__(self, seam: DeliverySeam, loop: asyncio.AbstractEventLoop, loop_thread: int) -> None:
        # Envelopes, or plain (message, reply_to, sender, trace) tuples from
        # the fast path (`AsyncActorRef.tell` and `ask`), whose sender is the
        # sending actor or an external name (`sender_name`).
        self._queue: deque[tuple[Any, Any, Any, str | None]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._seam = seam
        self._loop = loop
        self._loop_thread = loop_thread
        self.actor_name = "?"
        # Messages the actor must not take now, in order: while it is paused
        # (a fault), and once it has stopped (for its teardown's dead
        # letters). The queue itself then stays empty, so the actor's loop
        # needs no flag check per message: an empty queue is all it sees.
        self._aside: deque[tuple[Any, Any, Any, str | None]] | None = None
        self.paused = False
        # `open`: its actor still takes messages. `fast_thread`: the loop's
        # thread while the mailbox is open and not paused and the seam has no
        # fault rule nor plain observer, else no thread at all: a send whose
        # thread is `fast_thread` may append to the queue directly. One
        # comparison on the hot path decides both.
        self.open = True
        self.fast_thread = _NO_THREAD
        self.refresh()
        seam._mailboxes.add(self)

    def refresh(self) -> None:
        fast = self.open and not self.paused and not self._seam.active
        self.fast_thread = self._loop_thread if fast else _NO_THREAD

    def close(self) -> None:
        """Its actor stopped: sends take the checked path from now on, and
        what is still queued is set aside for the teardown (not taken)."""
        self.open = False
        self._set_aside()
        self.refresh()

    def pause(self) -> None:
        """Take nothing more until `resume`: what is queued, and whatever
        arrives meanwhile, waits aside in order."""
        self.paused = True
        self._set_aside()
        self.refresh()

    def resume(self) -> None:
        self.paused = False
        aside = self._aside
        if self.open and aside is not None:
            self._aside = None
            self._queue.extendleft(reversed(aside))
        self.refresh()
        self.wake()

    def _set_aside(self) -> None:
        aside = self._aside
        if aside is None:
            aside = self._aside = deque()
        aside.extend(self._queue)
        self._queue.clear()

    def reject_held(self) -> None:
        """Its actor's teardown: everything still held (queued or set aside)
        is rejected, in order, and so is whatever arrives from now on (a
        delayed delivery, a send handed over from another thread)."""
        held = [*(self._aside or ()), *self._queue]
        self._aside = None
        self._queue.clear()
        for item in held:
            self._reject(item)

    def _append(self, item: tuple[Any, Any, Any, str | None]) -> None:
        aside = self._aside
        if aside is not None:
            aside.append(item)
        elif self.open:
            self._queue.append(item)
        else:
            self._reject(item)  # after its actor's teardown: nobody will take it

    def _reject(self, item: tuple[Any, Any, Any, str | None]) -> None:
        """A message its stopped actor will never take: a dead letter, and
        an ask fails with ActorDeadError (a stop is answered: it stopped)."""
        # Plain 4-tuples (the fast path) or Envelopes: unpack either.
        message, reply_to, sender, _ = item
        if isinstance(message, _ActorStop):
            if reply_to is not None:
                finish(reply_to, None, None)
            return
        self._seam.dead_letter(sender_name(sender), self.actor_name, message, "actor stopped")
        if reply_to is not None:
            finish(reply_to, None, ActorDeadError(f"{self.actor_name} stopped before handling the message"))

    def put(self, envelope: Envelope | _PykkaEnvelope[Any], /) -> None:
        if type(envelope) is not Envelope:
            # One built by pykka's own code paths (a pykka Envelope).
            envelope = Envelope.from_pykka(cast("_PykkaEnvelope[Any]", envelope))
        if _get_ident() != self._loop_thread:
            # From another thread (the REPL): hop onto the loop, keep order.
            self._loop.call_soon_threadsafe(self.put, envelope)
            return
        seam = self._seam
        if seam.active:
            seam.sent_slow += 1
            seam.deliver(self, envelope)
            return
        # The fast path counts once: sent and delivered are the same here.
        seam.passed += 1
        self._append(envelope)
        trace = envelope[3]
        if trace is not None and (trace in seam.recording or (type(trace) is tuple and seam.recorder is not None)):
            seam.recorder.record_delivery(trace, envelope[2], self.actor_name, envelope[0], envelope[1] is not None)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def enqueue(self, envelope: Envelope) -> None:
        """Past the seam: put the envelope in the queue and wake the actor."""
        self._seam.delivered_slow += 1
        self._append(envelope)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def deliver_local(self, envelope: Envelope) -> None:
        """The runtime's own signals (timers, supervision): no seam, no counts."""
        self._append(envelope)
        self.wake()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        """Sleep until something is put (or the actor is resumed)."""
        waiter = self._loop.create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None

    def get(self) -> Envelope:
        item = self._queue.popleft()
        if type(item) is Envelope:
            return item
        message, reply_to, sender, trace = item
        return Envelope(message, reply_to, sender_name(sender), trace)

    def empty(self) -> bool:
        return not self._queue

    def __len__(self) -> int:
        return len(self._queue) + len(self._aside or ())


Observer = Callable[[Envelope, str], None]

_NOTHING_RECORDED: dict[Any, Any] = {}


class DeliverySeam:
    """Statistics, observers and fault rules for every delivery in a system."""

    def __init__(self, clock: Clock, rng: random.Random, dead_letter_history: int = 1000) -> None:
        self.clock = clock
        self.rng = rng
        self.passed = 0  # fast path: sent and delivered in one step
        self.sent_slow = 0
        self.delivered_slow = 0
        self.dropped = 0
        self.duplicated = 0
        self.delayed = 0
        self.dead_letter_count = 0
        self.dead_letters: deque[DeadLetter] = deque(maxlen=dead_letter_history)
        self._observers: list[Observer] = []
        self._rules: list[FaultRule] = []
        self._next_rule_id = 1
        self.active = False
        # The trace recorder on the fast path (see the module's docstring).
        self.recorder: Any = None
        # The recorder's conversations that still have room (`recording`):
        # a trace id not in it costs the fast path one dictionary lookup.
        self.recording: dict[Any, Any] = _NOTHING_RECORDED
        self._mailboxes: weakref.WeakSet[Mailbox] = weakref.WeakSet()

    # --- configuration --------------------------------------------------------

    def add_observer(self, observer: Observer) -> None:
        if self.recorder is None and callable(getattr(observer, "record_delivery", None)):
            self.recorder = observer
            self.recording = observer.recording  # type: ignore[attr-defined]
        else:
            self._observers.append(observer)
        self._refresh()

    def remove_observer(self, observer: Observer) -> None:
        if observer is self.recorder:
            self.recorder = None
            self.recording = _NOTHING_RECORDED
        elif observer in self._observers:
            self._observers.remove(observer)
        self._refresh()

    def add_fault(self, rule: FaultRule) -> FaultRule:
        rule.rule_id = self._next_rule_id
        self._next_rule_id += 1
        self._rules.append(rule)
        self._refresh()
        log.info("fault-added", rule=rule.describe(), rule_id=rule.rule_id)
        return rule

    def remove_fault(self, rule_or_id: FaultRule | int) -> bool:
        rid = rule_or_id if isinstance(rule_or_id, int) else rule_or_id.rule_id
        before = len(self._rules)
        self._rules = [r for r in self._rules if r.rule_id != rid]
        self._refresh()
        removed = len(self._rules) != before
        if removed:
            log.info("fault-removed", rule_id=rid)
        return removed

    def clear_faults(self, label: str | None = None) -> int:
        before = len(self._rules)
        self._rules = [r for r in self._rules if label is not None and r.label != label]
        self._refresh()
        return before - len(self._rules)

    @property
    def faults(self) -> tuple[FaultRule, ...]:
        now = self.clock.monotonic()
        return tuple(r for r in self._rules if r.until is None or r.until > now)

    def _refresh(self) -> None:
        self.active = bool(self._observers or self._rules)
        for mailbox in self._mailboxes:
            mailbox.refresh()

    # --- delivery ---------------------------------------------------------------

    def deliver(self, mailbox: Mailbox, envelope: Envelope) -> None:
        """The slow path: faults decide, observers see, then the queue."""
        if self._rules:
            receiver = mailbox.actor_name
            mtype = type(envelope.message).__name__
            now = self.clock.monotonic()
            expired = False
            for rule in self._rules:
                if rule.until is not None and rule.until <= now:
                    expired = True
                    continue
                if not rule.matches(envelope.sender, receiver, mtype):
                    continue
                if rule.probability < 1.0 and self.rng.random() >= rule.probability:
                    continue
                rule.matched += 1
                if expired:
                    self._expire(now)
                self._apply(rule, mailbox, envelope)
                return
            if expired:
                self._expire(now)
        self._observe(mailbox, envelope)

    def _expire(self, now: float) -> None:
        self._rules = [r for r in self._rules if r.until is None or r.until > now]
        self._refresh()

    def _apply(self, rule: FaultRule, mailbox: Mailbox, envelope: Envelope) -> None:
        action = rule.action
        if action == "drop":
            self.dropped += 1
            log.debug(
                "message-dropped",
                sender=envelope.sender,
                receiver=mailbox.actor_name,
                message=type(envelope.message).__name__,
                trace_id=envelope.trace_id,
            )
            return
        if action == "duplicate":
            self.duplicated += 1
            self._observe(mailbox, envelope)
            self._observe(mailbox, envelope)
            return
        delay = rule.delay(self.rng) if callable(rule.delay) else rule.delay
        if action == "reorder":
            # Hold it back by a random part of the window so later messages
            # on the same link overtake it.
            delay = self.rng.uniform(0.0, max(delay, 0.0))
        self.delayed += 1
        self.clock.call_later(delay, self._observe, mailbox, envelope)

    def _observe(self, mailbox: Mailbox, envelope: Envelope) -> None:
        recorder = self.recorder
        trace = envelope[3]
        if trace is not None and (trace in self.recording or (type(trace) is tuple and recorder is not None)):
            recorder.record_delivery(envelope[3], envelope[2], mailbox.actor_name, envelope[0], envelope[1] is not None)
        for observer in self._observers:
            observer(envelope, mailbox.actor_name)
        mailbox.enqueue(envelope)

    # --- dead letters --------------------------------------------------------------

    def dead_letter(self, sender: str, receiver: str, message: Any, reason: str) -> None:
        self.dead_letter_count += 1
        letter = DeadLetter(self.clock.monotonic(), sender, receiver, type(message).__name__, reason)
        self.dead_letters.append(letter)
        log.info(
            "dead-letter",
            sender=sender,
            receiver=receiver,
            message=letter.message_type,
            reason=reason,
        )

    @property
    def sent(self) -> int:
        return self.passed + self.sent_slow

    @property
    def delivered(self) -> int:
        return self.passed + self.delivered_slow

    def statistics(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "dropped": self.dropped,
            "duplicated": self.duplicated,
            "delayed": self.delayed,
            "dead_letters": self.dead_letter_count,
        }
