"""`StorageActor`: an actor that owns one store for its whole life and runs
its operations, one message type per operation.

CC_DB and the blob store are both this: the store is opened in `on_start`
and closed in `on_stop` (and on a crash), and `OPERATIONS` maps each message
type to the store method that carries it out, with the message's fields as
its arguments. That table is this actor's handler table: they dispatch like
every other actor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol

from actors.runtime import AsyncioActor

__all__ = ["StorageActor", "Store"]


class Store(Protocol):
    async def open(self) -> Any: ...
    async def close(self) -> None: ...


class StorageActor(AsyncioActor):
    """Owns one `Store`; runs the operations `OPERATIONS` names."""

    #: message type -> the store method (unbound) that carries it out
    OPERATIONS: ClassVar[dict[type, Callable[..., Awaitable[Any]]]] = {}

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
        operation = self.OPERATIONS[type(message)]
        return await operation(self.store, **self.arguments(message))
