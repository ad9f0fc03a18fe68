"""`AsyncioFuture`: a pykka Future that lives on the runtime's event loop.

On the loop it is awaited (`await ref.ask(msg, block=False)`); on any other
thread `.get(timeout=)` blocks that thread. `.get()` on the loop's own thread
would block the very loop that has to produce the value, so it raises
`GetOnLoopThread` at once instead of hanging.

The future speaks asyncio's future protocol itself (`_asyncio_future_blocking`,
`add_done_callback`, `result`), so awaiting it costs no second future object:
this is most of why an ask round trip is cheap.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import sys
import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

import pykka
from pykka._future import _Unset

from actors.runtime.errors import AskTimeout, GetOnLoopThread

if TYPE_CHECKING:
    from pykka._types import OptExcInfo

__all__ = ["AsyncioFuture"]

T = TypeVar("T")

_PENDING, _DONE = 0, 1
_UNSET = _Unset()

# Set while a get-hook (pykka's map/filter/join/reduce) is evaluated inside
# `__await__`: a `.get()` on a not-yet-done future then asks to be awaited
# instead of raising GetOnLoopThread.
_awaiting_hook: contextvars.ContextVar[bool] = contextvars.ContextVar("awaiting_hook", default=False)


class _NotReady(Exception):
    def __init__(self, future: AsyncioFuture[Any]) -> None:
        self.future = future


class AsyncioFuture(pykka.Future[T]):
    """A reply that is set on the loop and read on the loop or off it."""

    # asyncio's Task looks for this attribute to decide it may wait on us.
    _asyncio_future_blocking = False

    # Defaults as class attributes: an ask creates one future per round
    # trip, and each attribute not assigned in __init__ is time saved.
    _get_hook = None
    _get_hook_result = _UNSET
    _value: Any = None
    _exc: BaseException | None = None
    _callbacks: list[tuple[Callable[[Any], Any], contextvars.Context | None]] | None = None
    _event: threading.Event | None = None

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, loop_thread: int | None = None) -> None:
        # pykka's Future.__init__ only sets the two get-hook fields, which
        # are class attributes here.
        if loop is None or loop_thread is None:
            # pykka derives futures with `future.__class__()` (map, filter,
            # join, stop): take the running system's loop.
            from actors.runtime.system import current_system

            system = current_system()
            loop, loop_thread = system.loop, system.loop_thread
        self._loop = loop
        self._loop_thread = loop_thread
        self._state = _PENDING

    def __repr__(self) -> str:
        state = "pending" if self._state == _PENDING else "done"
        return f"<AsyncioFuture {state}>"

    # --- setting ----------------------------------------------------------

    def set(self, value: Any | None = None) -> None:
        if self._get_hook is not None:
            raise queue.Full
        self._finish(value, None)

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        if self._get_hook is not None:
            raise queue.Full
        if exc_info is None:
            exc_info = sys.exc_info()
        exc_type, exc_value, tb = exc_info
        if exc_value is None:
            assert exc_type is not None
            exc_value = exc_type()
        if tb is not None and exc_value.__traceback__ is not tb:
            exc_value = exc_value.with_traceback(tb)
        self._finish(None, exc_value)

    def _finish(self, value: Any, exc: BaseException | None) -> None:
        # All mutation happens on the loop thread, so no lock is needed: a
        # setter on another thread hops over. First answer wins: a duplicated
        # ask (a fault) or a deadline that raced the reply is ignored.
        if threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._finish, value, exc)
            return
        self._finish_on_loop(value, exc)

    def _finish_on_loop(self, value: Any, exc: BaseException | None) -> None:
        if self._state != _PENDING:
            return
        self._value = value
        self._exc = exc
        self._state = _DONE
        # A thread blocked in get() published its event before re-checking
        # the state; reading it after setting the state cannot miss it.
        event = self._event
        if event is not None:
            event.set()
        callbacks = self._callbacks
        if callbacks:
            self._callbacks = None
            call_soon = self._loop.call_soon
            for cb, ctx in callbacks:
                call_soon(cb, self, context=ctx)

    def _expire(self, timeout: float, what: str) -> None:
        """The deadline passed: fail the ask with AskTimeout."""
        self._finish(None, AskTimeout(f"no reply to {what} within {timeout:g} s"))

    def done(self) -> bool:
        return self._state == _DONE

    # --- reading off the loop ----------------------------------------------

    def get(self, *, timeout: float | None = None) -> T:
        if self._get_hook is not None:
            return super().get(timeout=timeout)
        if self._state == _PENDING:
            if threading.get_ident() == self._loop_thread:
                if _awaiting_hook.get():
                    raise _NotReady(self)
                raise GetOnLoopThread(
                    "Future.get() called on the event loop thread would block the loop "
                    "that must produce the reply; use `await future` there instead"
                )
            event = self._event
            if event is None:
                event = threading.Event()
                self._event = event
            if self._state == _PENDING and not event.wait(timeout):
                raise AskTimeout(f"no reply within {timeout:g} s")
        return self._outcome()

    def _outcome(self) -> T:
        if self._exc is not None:
            raise self._exc
        return self._value

    # --- asyncio's future protocol ------------------------------------------

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def add_done_callback(self, fn: Callable[[Any], Any], *, context: contextvars.Context | None = None) -> None:
        # Loop thread only, as with asyncio futures.
        if self._state == _PENDING:
            if self._callbacks is None:
                self._callbacks = []
            self._callbacks.append((fn, context))
            return
        self._loop.call_soon(fn, self, context=context)

    def remove_done_callback(self, fn: Callable[[Any], Any]) -> int:
        if not self._callbacks:
            return 0
        before = len(self._callbacks)
        self._callbacks = [(f, c) for f, c in self._callbacks if f != fn]
        return before - len(self._callbacks)

    def result(self) -> T:
        return self._outcome()

    def exception(self) -> BaseException | None:
        return self._exc

    def cancel(self, msg: Any = None) -> bool:
        # As with asyncio futures: a task cancelled while awaiting its reply
        # cancels the reply; the actor's later answer is then ignored.
        if self._state != _PENDING:
            return False
        self._finish(None, asyncio.CancelledError(msg) if msg is not None else asyncio.CancelledError())
        return True

    def cancelled(self) -> bool:
        return isinstance(self._exc, asyncio.CancelledError)

    def _make_cancelled_error(self) -> BaseException:
        assert self._exc is not None
        return self._exc

    def __await__(self) -> Generator[Any, None, T]:
        if self._get_hook is not None:
            return (yield from self._await_hooked())
        if self._state == _PENDING:
            self._asyncio_future_blocking = True
            yield self
        return self._outcome()

    __iter__ = __await__

    def _await_hooked(self) -> Generator[Any, None, T]:
        """Await a pykka get-hook future (map/filter/join/reduce, stop()).

        The hook is a function of other futures' `.get()`; run it, and each
        time it needs a future that is not done yet, await that one and run
        it again. Hooks are pure, so re-running is safe.
        """
        while True:
            token = _awaiting_hook.set(True)
            try:
                return self.get(timeout=None)
            except _NotReady as pending:
                waiting_on = pending.future
            finally:
                _awaiting_hook.reset(token)
            yield from waiting_on.__await__()
