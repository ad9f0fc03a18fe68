"""`StorageActor`: an actor that owns one store for its whole life and runs
its operations, one message type per operation.

CC_DB and the blob store are both this: the store is opened in `on_start`
and closed in `on_stop` (and on a crash), and `OPERATIONS` maps each message
type to the store method that carries it out, with the message's fields as
its arguments. That table is this actor's handler table: they dispatch like
every other actor.

A store that can run several operations in one go (`perform_batch`: CC_DB's
group commit) sets `BATCH`: an operation received takes the asks for
operations waiting right behind it in the mailbox (up to `BATCH` of them,
never past a message of another kind) and the store runs them all, in
order; each asker gets its own operation's answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol

from actors.runtime import ActorDeadError, AsyncioActor
from actors.runtime.future import finish_on_loop

__all__ = ["StorageActor", "Store"]


class Store(Protocol):
    async def open(self) -> Any: ...
    async def close(self) -> None: ...


class StorageActor(AsyncioActor):
    """Owns one `Store`; runs the operations `OPERATIONS` names."""

    #: message type -> the store method (unbound) that carries it out
    OPERATIONS: ClassVar[dict[type, Callable[..., Awaitable[Any]]]] = {}
    #: how many waiting operations one received may take along (0: none)
    BATCH: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table = dict(cls._handlers)
        for kind in cls.OPERATIONS:
            table[kind] = (StorageActor._operate, False)
        cls._handlers = table

    def __init__(self, *, name: str, fault: Any = None) -> None:
        super().__init__(name=name)
        self._fault = fault
        self.store: Any = None

    def open_store(self) -> Store:
        raise NotImplementedError

    async def on_start(self) -> None:  # type: ignore[override]  # pykka types hooks -> None
        self.store = self.open_store()
        await self.store.open()

    async def on_stop(self) -> None:  # type: ignore[override]  # pykka types hooks -> None
        if self.store is not None:
            await self.store.close()

    def on_failure(self, *exc_info: Any) -> Any:
        if self.store is not None:
            return self.store.close()
        return None

    def arguments(self, message: Any) -> dict[str, Any]:
        """The store method's arguments for `message` (subclasses stamp them)."""
        return message.arguments()

    async def _operate(self, message: Any) -> Any:
        if self.BATCH:
            waiting = self.take_queued(self._batches, self.BATCH)
            if waiting:
                return await self._operate_together(message, waiting)
        operation = self.OPERATIONS[type(message)]
        return await operation(self.store, **self.arguments(message))

    def _batches(self, message: Any) -> bool:
        return type(message) in self.OPERATIONS

    async def _operate_together(self, first: Any, waiting: list[tuple[Any, Any]]) -> Any:
        """`first` and the operations taken from behind it, in one `perform_batch`."""
        messages = [first, *(message for message, _ in waiting)]
        outcomes: list[tuple[bool, Any]] = [(False, None)] * len(messages)
        calls: list[tuple[Callable[..., Awaitable[Any]], dict[str, Any]]] = []
        where: list[int] = []
        for index, message in enumerate(messages):
            try:
                calls.append((self.OPERATIONS[type(message)], self.arguments(message)))
            except Exception as exc:  # noqa: BLE001 - that operation's own answer
                outcomes[index] = (False, exc)
            else:
                where.append(index)
        # Every ask is answered here, in the order the operations ran, the
        # batch's first too (its reply is the one the loop owes while this
        # handler runs): where two asks share a reply (a message delivered
        # twice), the first answer wins as it would one by one, whatever the
        # loop does next.
        first_reply = self._actor_owed
        try:
            done = await self.store.perform_batch(calls) if calls else []
        except asyncio.CancelledError:
            for _, answer in waiting:
                answer(None, ActorDeadError(f"{self.actor_name} stopped before replying"))
            raise
        except Exception as exc:
            if first_reply is not None:
                finish_on_loop(first_reply, None, exc)
            for _, answer in waiting:
                answer(None, exc)
            raise
        for index, outcome in zip(where, done, strict=True):
            outcomes[index] = outcome
        if first_reply is not None:
            ok, value = outcomes[0]
            finish_on_loop(first_reply, value, None) if ok else finish_on_loop(first_reply, None, value)
        for (_, answer), (ok, value) in zip(waiting, outcomes[1:], strict=True):
            answer(value, None) if ok else answer(None, value)
        ok, value = outcomes[0]
        if ok:
            return value
        raise value
