"""The `ccdb` actor: owns the one CC_DB connection for its whole life.

Cloud Controller sends `Db(op, kwargs)`; `op` names a public `CCDB` method.
Times are the platform clock's, passed in here so the store never reads a
wall clock of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from actors.ccdb.store import CCDB
from actors.runtime import AsyncioActor
from protocol.messages import Db

__all__ = ["CCDBActor"]

# Operations a message may name: the public API, nothing private.
_OPS = frozenset(
    name for name in dir(CCDB) if not name.startswith("_") and callable(getattr(CCDB, name))
) - {"open", "close"}


class CCDBActor(AsyncioActor):
    default_name = "ccdb"

    def __init__(self, path: Path, *, name: str = "ccdb", fault: Any = None) -> None:
        super().__init__(name=name)
        self.path = Path(path)
        self._fault = fault
        self.store: CCDB | None = None

    async def on_start(self) -> None:
        self.store = CCDB(
            self.path,
            io_guard=self.clock.threaded_io,
            fault=self._fault,
            new_guid=self.system.new_guid,
        )
        await self.store.open()

    async def on_stop(self) -> None:
        if self.store is not None:
            await self.store.close()

    def on_failure(self, *exc_info: Any) -> Any:
        if self.store is not None:
            return self.store.close()
        return None

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, Db):
            if message.op not in _OPS:
                raise ValueError(f"ccdb has no operation {message.op!r}")
            assert self.store is not None
            kwargs = dict(message.kwargs)
            if kwargs.get("now", ...) is None:
                kwargs["now"] = self.now()
            return await getattr(self.store, message.op)(**kwargs)
        return super().on_receive(message)
