"""`AsyncioFuture`: a pykka Future that lives on the runtime's event loop.

On the loop it is awaited (`await ref.ask(msg, block=False)`); on any other
thread `.get(timeout=)` blocks that thread. `.get()` on the loop's own thread
would block the very loop that has to produce the value, so it raises
`GetOnLoopThread` at once instead of hanging.

It is asyncio's own future (the C one) with pykka's face on it: awaiting it,
its callbacks and its result are asyncio's, at C speed (every ask makes one,
and waiting for it is most of an ask's round trip), and `get`, `set`,
`set_exception(exc_info)`, `map`, `join`, `filter` and `reduce` are pykka's.
A future of pykka's combinators (a get hook) is a `_HookedFuture`, which
awaits by running its hook. An exception set on one is never reported by
asyncio as "never retrieved": whoever asked hears of it, or no longer waits.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import queue
import sys
import threading
import weakref
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import pykka
from pykka._future import _Unset

from actors.runtime.errors import AskTimeout, GetOnLoopThread

if TYPE_CHECKING:
    from pykka._types import OptExcInfo

__all__ = ["AsyncioFuture", "expire", "finish", "finish_on_loop", "register_loop"]

T = TypeVar("T")

_UNSET = _Unset()
_Future = asyncio.Future
_future_set_result = _Future.set_result
_future_set_exception = _Future.set_exception
# Each running loop's thread (`register_loop`): a future set from another
# thread hops over to it, and `get()` there refuses to block.
_LOOP_THREADS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()


def register_loop(loop: asyncio.AbstractEventLoop, thread: int) -> None:
    """Futures of `loop` are set and awaited on `thread` (the actor system's loop thread)."""
    _LOOP_THREADS[loop] = thread


# Set while a get-hook (pykka's map/filter/join/reduce) is evaluated inside
# `__await__`: a `.get()` on a not-yet-done future then asks to be awaited
# instead of raising GetOnLoopThread.
_awaiting_hook: contextvars.ContextVar[bool] = contextvars.ContextVar("awaiting_hook", default=False)


def finish(future: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    """Answer an ask's future (an `AsyncioFuture`, or asyncio's own one of
    `AsyncActorRef.request`) with `value`, or fail it with `exc`, from any
    thread. All mutation happens on the loop thread: a setter on another
    thread hops over."""
    if _LOOP_THREADS.get(future.get_loop()) != threading.get_ident():
        future.get_loop().call_soon_threadsafe(finish_on_loop, future, value, exc)
        return
    finish_on_loop(future, value, exc)


def finish_on_loop(future: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    """`finish` on the loop thread. First answer wins: a duplicated ask (a
    fault) or a deadline that raced the reply is ignored."""
    if future.done():
        return
    if exc is None:
        _future_set_result(future, value)
    else:
        _future_set_exception(future, exc)
        future._log_traceback = False  # the asker hears of it, or no longer waits


def expire(future: asyncio.Future[Any], timeout: float, what: str) -> None:
    """An ask's deadline passed: fail it with AskTimeout."""
    finish(future, None, AskTimeout(f"no reply to {what} within {timeout:g} s"))


class _NotReady(Exception):
    def __init__(self, future: AsyncioFuture[Any]) -> None:
        self.future = future


class AsyncioFuture(asyncio.Future, pykka.Future[T]):
    """A reply that is set on the loop and read on the loop or off it."""

    # pykka's fields, as class attributes: nothing is set per future.
    _get_hook: Callable[[float | None], T] | None = None
    _get_hook_result: Any = _UNSET

    # No __init__ of its own: asyncio's, in C, takes `loop=`, and an ask
    # makes one future each round trip. The loop's thread is looked up only
    # off the fast path (`_on_loop_thread`).

    def _on_loop_thread(self) -> bool:
        return _LOOP_THREADS.get(self.get_loop()) == threading.get_ident()

    # --- setting ----------------------------------------------------------

    def set(self, value: Any | None = None) -> None:
        if self._get_hook is not None:
            raise queue.Full
        self._finish(value, None)

    def set_exception(self, exc_info: OptExcInfo | BaseException | None = None) -> None:  # type: ignore[override]
        """pykka's: `exc_info` a (type, value, traceback) triple, or the one
        being handled; an exception instance is taken as it is too."""
        if self._get_hook is not None:
            raise queue.Full
        if isinstance(exc_info, BaseException):
            self._finish(None, exc_info)
            return
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
        finish(self, value, exc)

    # --- reading off the loop ----------------------------------------------

    def get(self, *, timeout: float | None = None) -> T:
        if self._get_hook is not None:
            return pykka.Future.get(self, timeout=timeout)
        if not self.done():
            if self._on_loop_thread():
                if _awaiting_hook.get():
                    raise _NotReady(self)
                raise GetOnLoopThread(
                    "Future.get() called on the event loop thread would block the loop "
                    "that must produce the reply; use `await future` there instead"
                )
            # Told by a callback added on the loop (where callbacks are added);
            # one added to a future done meanwhile runs at once.
            event = threading.Event()
            self.get_loop().call_soon_threadsafe(self.add_done_callback, lambda _: event.set())
            if not event.wait(timeout) and not self.done():
                raise AskTimeout(f"no reply within {timeout:g} s")
        return self.result()

    def set_get_hook(self, func: Callable[[float | None], T]) -> None:
        self._get_hook = func
        # Awaited, it runs its hook: the class that knows how.
        self.__class__ = _HookedFuture

    # pykka's combinators make `self.__class__()`, which would look for a
    # loop where they are called: made here, on this future's loop.

    def _derived(self, hook: Callable[[float | None], Any]) -> AsyncioFuture[Any]:
        future: AsyncioFuture[Any] = AsyncioFuture(loop=self.get_loop())
        future.set_get_hook(hook)
        return future

    def map(self, func: Callable[[T], Any]) -> AsyncioFuture[Any]:
        return self._derived(lambda timeout: func(self.get(timeout=timeout)))

    def filter(self, func: Callable[[Any], bool]) -> AsyncioFuture[Any]:
        return self._derived(lambda timeout: list(filter(func, self._items(timeout))))

    def join(self, *futures: pykka.Future[Any]) -> AsyncioFuture[Any]:
        return self._derived(lambda timeout: [f.get(timeout=timeout) for f in (self, *futures)])

    def reduce(self, func: Callable[[Any, Any], Any], *args: Any) -> AsyncioFuture[Any]:
        return self._derived(lambda timeout: functools.reduce(func, self._items(timeout), *args))

    def _items(self, timeout: float | None) -> Iterable[Any]:
        return self.get(timeout=timeout)  # type: ignore[return-value]  # an iterable, or the caller's TypeError


class _HookedFuture(AsyncioFuture[T]):
    """A future of pykka's combinators (map, filter, join, reduce, stop):
    its value is a function of other futures' `.get()`."""

    def __await__(self) -> Generator[Any, None, T]:
        """Run the hook, and each time it needs a future that is not done
        yet, await that one and run it again (hooks are pure, so re-running
        is safe)."""
        while True:
            token = _awaiting_hook.set(True)
            try:
                return self.get(timeout=None)
            except _NotReady as pending:
                waiting_on = pending.future
            finally:
                _awaiting_hook.reset(token)
            yield from waiting_on.__await__()

    __iter__ = __await__
