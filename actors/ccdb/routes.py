"""CC_DB's routes that no app maps (a mapped route lives in its apps' rows)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from actors.ccdb.codec import _ts
from actors.ccdb.connection import OP_READ, OP_WRITE, Connection, operation

__all__ = ["RoutesTable"]


class RoutesTable(Connection):
    @operation(OP_READ)
    async def list_unmapped_routes(self) -> list[str]:
        """The routes no app maps, oldest first."""
        async with self._read():
            rows = await self._sql("SELECT url FROM unmapped_routes ORDER BY created_at, url")
        return [row[0] for row in rows]

    @operation(OP_WRITE)
    async def update_unmapped_routes(
        self, *, added: Sequence[str] = (), removed: Sequence[str] = (), now: datetime
    ) -> None:
        """Keep `added` as unmapped routes and forget `removed`, in one transaction."""
        ts = _ts(now)
        async with self._write():
            for url in removed:
                await self._sql("DELETE FROM unmapped_routes WHERE url = ?", (url,))
            for url in added:
                await self._sql("INSERT OR IGNORE INTO unmapped_routes (url, created_at) VALUES (?, ?)", (url, ts))
