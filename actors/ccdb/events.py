"""CC_DB's audit events and recorded traces (history: both outlive their app)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from actors.ccdb.codec import (
    _event,
    _json,
    _ts,
)
from actors.ccdb.connection import OP_READ, OP_WRITE, Connection, operation
from protocol.records import (
    DeliveryRow,
    EventRecord,
    TraceRecord,
    delivery_from_row,
)

__all__ = ["EventsTable"]


class EventsTable(Connection):
    # --- events -----------------------------------------------------------

    @operation(OP_WRITE)
    async def record_event(
        self,
        type: str,
        *,
        actor: str,
        actee_guid: str,
        actee_name: str | None = None,
        metadata: dict[str, Any] | None = None,
        now: datetime,
    ) -> EventRecord:
        """Record an audit event on its own (e.g. `audit.app.process.crash`)."""
        ts = _ts(now)
        async with self._write():
            guid = await self._insert_event(type, actor, actee_guid, actee_name, metadata, ts)
            row = await self._row("events", guid)
        return _event(row)

    @operation(OP_READ)
    async def list_events(self, actee_guid: str, limit: int = 50) -> list[EventRecord]:
        """An app's events, newest first (ties in time: latest recorded first)."""
        async with self._read():
            # rowid breaks ties: the injected clock may not move between events.
            rows = await self._sql(
                "SELECT * FROM events WHERE actee_guid = ? ORDER BY time DESC, rowid DESC LIMIT ?",
                (actee_guid, limit),
            )
        return [_event(row) for row in rows]

    # --- traces -----------------------------------------------------------

    @operation(OP_WRITE)
    async def save_trace(
        self,
        trace_id: str,
        *,
        app_guid: str,
        app_name: str,
        kind: str,
        deliveries: Sequence[DeliveryRow],
        now: datetime,
        keep: int = 5,
    ) -> None:
        """Store one recorded conversation (its deliveries as rows, a JSON
        array each); keep the newest `keep` per app."""
        ts = _ts(now)
        async with self._write():
            await self._sql(
                "INSERT OR REPLACE INTO traces (trace_id, app_guid, app_name, kind, created_at, deliveries)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (trace_id, app_guid, app_name, kind, ts, _json(deliveries)),
            )
            await self._sql(
                "DELETE FROM traces WHERE app_guid = ? AND trace_id NOT IN ("
                " SELECT trace_id FROM traces WHERE app_guid = ?"
                " ORDER BY created_at DESC, rowid DESC LIMIT ?)",
                (app_guid, app_guid, keep),
            )

    @operation(OP_READ)
    async def latest_trace(self, app_guid: str) -> TraceRecord | None:
        """The newest stored trace of an app, or None."""
        async with self._read():
            row = await self._one(
                "SELECT trace_id, app_name, kind, created_at, deliveries FROM traces"
                " WHERE app_guid = ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
                (app_guid,),
            )
        if row is None:
            return None
        return TraceRecord(
            trace_id=row[0],
            app_name=row[1],
            kind=row[2],
            created_at=row[3],
            # Rows, or (stored by earlier versions) an object per delivery.
            deliveries=tuple(delivery_from_row(d) for d in json.loads(row[4])),
        )
