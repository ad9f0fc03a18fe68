"""Tracing at the delivery seam: which deliveries belong to which
conversation (a push and everything it set off), as data.

`TraceRecorder` is a seam observer that keeps the deliveries of the
conversations it was asked to open (by trace id); `tracing_observer` logs
each traced delivery. A message's seed step and arrow label come from its
`step` / `STEP` and `label` attributes (`step_of`, `label_of`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import structlog

from actors.runtime.clock import Clock
from actors.runtime.delivery import Envelope, Observer, sender_name
from protocol.records import DeliveryRow

__all__ = ["TraceRecorder", "label_of", "step_of", "tracing_observer"]

log = structlog.get_logger("minifoundry.delivery")


def step_of(message: Any) -> int | None:
    """The seed step of a delivered message, if it has one."""
    step = getattr(message, "step", None)
    if isinstance(step, int):
        return step
    return getattr(type(message), "STEP", None)


def label_of(message: Any) -> str:
    label = getattr(message, "label", None)
    if isinstance(label, str):
        return label
    return type(message).__name__


# Per message type: its (label, step) when every message of the type has the
# same (no `label` or `step` of its own, nor a __dict__ to hold one), else None.
_STATIC: dict[type, tuple[str, int | None] | None] = {}


def _static_description(kind: type) -> tuple[str, int | None] | None:
    if kind.__dictoffset__ == 0 and not any("label" in vars(k) or "step" in vars(k) for k in kind.__mro__):
        described: tuple[str, int | None] | None = (kind.__name__, getattr(kind, "STEP", None))
    else:
        described = None
    _STATIC[kind] = described
    return described


def _as_rows(entries: list[Any], from_raw: Callable[[float], float]) -> list[DeliveryRow]:
    """A book's entries as rows: each kept raw (seq, raw time, sender,
    receiver, message, ask) by the seam's fast path, or a row already."""
    rows: list[DeliveryRow] = []
    append = rows.append
    static = _STATIC
    for entry in entries:
        if len(entry) == 7:
            append(entry)
            continue
        seq, raw, sender, receiver, message, ask = entry
        kind = type(message)
        described = static[kind] if kind in static else _static_description(kind)
        if described is None:
            label, step = label_of(message), step_of(message)
        else:
            label, step = described
        append((seq, round(from_raw(raw), 6), sender_name(sender), receiver, label, step, ask))
    return rows


def _same(t: float) -> float:
    return t


class TraceRecorder:
    """Records the deliveries of open conversations (by trace id).

    A seam observer: only messages whose trace id was opened are kept, so
    background chatter (heartbeats, convergence) costs a dictionary lookup.
    The seam calls `record_delivery` from its fast path; a delivery is kept
    as a plain tuple and becomes its row (`protocol.records.DELIVERY_FIELDS`) the
    first time someone reads the conversation.
    """

    def __init__(self, clock: Clock, max_open: int = 256, max_deliveries: int = 20_000) -> None:
        self.clock = clock
        self.max_open = max_open
        self.max_deliveries = max_deliveries
        self._open: OrderedDict[str, list[Any]] = OrderedDict()
        # The open books that still have room, for the seam's fast path.
        self.recording: dict[str, list[Any]] = {}
        self._seq = 0
        # A delivery's time is kept in the clock's raw form (the cheapest to
        # read) and made platform seconds when its row is made.
        self._raw: Callable[[], float] = getattr(clock, "raw_time", clock.monotonic)
        self._from_raw: Callable[[float], float] = getattr(clock, "from_raw", _same)

    def open(self, trace_id: str) -> None:
        book: list[Any] = []
        self._open[trace_id] = book
        self.recording[trace_id] = book
        while len(self._open) > self.max_open:
            evicted, _ = self._open.popitem(last=False)
            self.recording.pop(evicted, None)

    def close(self, trace_id: str) -> None:
        """Stop recording a conversation and forget what it recorded."""
        self.recording.pop(trace_id, None)
        self._open.pop(trace_id, None)

    def _append(self, trace_id: str, book: list[Any], entry: Any) -> None:
        book.append(entry)
        if len(book) >= self.max_deliveries:
            self.recording.pop(trace_id, None)

    def is_open(self, trace_id: str) -> bool:
        return trace_id in self._open

    def ensure_open(self, trace_id: str) -> None:
        """Open the conversation unless it already is (keeping what it holds)."""
        if trace_id not in self._open:
            self.open(trace_id)

    def note(self, trace_id: str, sender: str, receiver: str, label: str, step: int | None) -> None:
        """Record an exchange the seam does not carry (an HTTP request to the
        platform's edge), as an ask from `sender` to `receiver`."""
        book = self._open.get(trace_id)
        if book is not None and len(book) < self.max_deliveries:
            self._seq += 1
            t = round(self.clock.monotonic(), 6)
            self._append(trace_id, book, (self._seq, t, sender, receiver, label, step, True))

    def move(self, source: str, target: str) -> None:
        """Append what `source` recorded to `target` (open), and close `source`."""
        self.recording.pop(source, None)
        moved = self._open.pop(source, [])
        book = self._open.get(target)
        if book is not None:
            book.extend(moved[: max(0, self.max_deliveries - len(book))])
            if len(book) >= self.max_deliveries:
                self.recording.pop(target, None)

    def rows(self, trace_id: str) -> list[DeliveryRow]:
        """What a conversation delivered so far, as rows (`protocol.records.DELIVERY_FIELDS`)."""
        book = self._open.get(trace_id)
        if book is None:
            return []
        # Made rows in place: the next look at the same book is a copy.
        book[:] = _as_rows(book, self._from_raw)
        return list(book)

    def length(self, trace_id: str) -> int:
        """How many deliveries a conversation has recorded."""
        return len(self._open.get(trace_id, ()))

    def record_delivery(self, trace: Any, sender: Any, receiver: str, message: Any, ask: bool) -> None:
        """Keep one delivery if its conversation is open (the seam's fast path)."""
        if type(trace) is tuple:
            for tid in trace:
                self.record_delivery(tid, sender, receiver, message, ask)
            return
        book = self.recording.get(trace)
        if book is not None:
            self._seq = seq = self._seq + 1
            book.append((seq, self._raw(), sender, receiver, message, ask))
            if len(book) >= self.max_deliveries:
                del self.recording[trace]

    def record_round(self, trace: Any, sender: Any, receivers: list[str], message: Any, raw: float | None) -> None:
        """Keep the asks of one round (`ActorSystem.request_all`): one
        delivery of `message` to each of `receivers`, in order, at the
        clock's raw time `raw` (read here if None): what `record_delivery`
        would keep for each in turn."""
        if type(trace) is tuple:
            # Work of several conversations: each ask in every one of them
            # before the next ask, as one by one.
            for receiver in receivers:
                self.record_delivery(trace, sender, receiver, message, True)
            return
        book = self.recording.get(trace)
        if book is None:
            return
        if raw is None:
            raw = self._raw()
        room = min(len(receivers), max(1, self.max_deliveries - len(book)))
        first = self._seq + 1
        self._seq += room
        book.extend(
            [(seq, raw, sender, receiver, message, True) for seq, receiver in enumerate(receivers[:room], first)]
        )
        if len(book) >= self.max_deliveries:
            del self.recording[trace]

    def __call__(self, envelope: Envelope, receiver: str) -> None:
        trace = envelope.trace_id
        if trace is not None:
            self.record_delivery(trace, envelope.sender, receiver, envelope.message, envelope.reply_to is not None)


def tracing_observer(record: Callable[[str, str, str, Any], None] | None = None) -> Observer:
    """An observer that logs each traced delivery (debug level) and, if given,
    hands it to `record(trace_id, sender, receiver, message)`."""

    def observe(envelope: Envelope, receiver: str) -> None:
        trace_id = envelope.trace_id
        if trace_id is None:
            return
        log.debug(
            "message-delivered",
            trace_id=trace_id,
            sender=envelope.sender,
            receiver=receiver,
            message=type(envelope.message).__name__,
        )
        if record is not None:
            record(trace_id, envelope.sender, receiver, envelope.message)

    return observe
