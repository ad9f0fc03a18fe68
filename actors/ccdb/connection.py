"""CC_DB's connection: one aiosqlite connection for its owner's life (WAL,
foreign keys on), the migrations, and the plumbing every table's
operations use (one transaction at a time, the fault hook before each
operation).

Every operation (a method marked `@operation`) is one hop to aiosqlite's
thread: the fault hook runs on the loop, then the whole operation, its
transaction and every statement of it, runs on the connection's thread and
comes back with its result, under one I/O guard. Operations waiting
together go in one hop and one transaction (`perform_batch`, group commit:
each a savepoint, all answered after the one COMMIT). An operation's body is
written as a coroutine (`await self._sql(...)`); on the connection's thread
those awaits never suspend, so the coroutine is run to its end there in one
go. Guids it needs are drawn on the loop beforehand (`_guid`), so the
platform's seeded stream is read in an order that does not depend on
thread timing.

Records read by guid (an app, package, build or droplet: `cached=` on the
operation) are kept once read, and read again from there: Cloud Controller
reads an app several times a push. SQLite itself says when a row changes:
a temporary trigger on each such table calls back into the connection for
every row inserted, updated or deleted, on the connection's thread, as the
statement runs, so no write can leave a stale record behind. A failed
operation or transaction forgets every record (it may have read rows that
were then rolled back). With no operation in flight, a record kept answers
on the loop, after the fault hook, without a hop to the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiosqlite
import anyio

from actors.ccdb.codec import _json
from actors.ccdb.schema import BOOTSTRAP, MIGRATIONS, Migration, check_migrations, pending_migrations
from protocol.errors import AppNotFound, DatabaseUnavailable, ResourceNotFound
from protocol.records import AuditEvent

__all__ = ["OP_READ", "OP_WRITE", "Connection", "EventSpec", "operation"]

OP_READ = "ccdb.read"
OP_WRITE = "ccdb.write"
# Guids drawn ahead for one operation (an operation uses at most two).
_GUIDS_AHEAD = 4
_get_ident = threading.get_ident
_UNDO_SAVEPOINT: tuple[str, ...] = ("ROLLBACK TO operation", "RELEASE operation")
_UNDO_TRANSACTION: tuple[str, ...] = ("ROLLBACK",)

IoGuard = Callable[[], AbstractAsyncContextManager[object]]
Fault = Callable[[str], Awaitable[None]]
EventSpec = AuditEvent


def _new_uuid() -> str:
    return str(uuid.uuid4())


class _Call:
    """One operation on its way through the connection's thread."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False


def _fail_from(done: list[tuple[int, tuple[bool, Any]]], first: int | None, error: BaseException) -> None:
    """Every outcome of a batch from its first write on is `error`: that much was not kept."""
    assert first is not None
    done[first:] = [(index, (False, error)) for index, _ in done[first:]]


def operation(
    kind: str, *, cached: str | None = None
) -> Callable[[Callable[..., Coroutine[Any, Any, Any]]], Callable[..., Any]]:
    """Mark a CC_DB operation (`OP_READ` or `OP_WRITE`): called on the loop,
    it is the fault hook and then one hop to the connection's thread.
    `cached`: a read of one row of that table by its guid (the operation's
    first argument, `guid`), whose record is kept (see the module's docstring)."""
    if cached is not None and (kind != OP_READ or cached not in _CACHED_TABLES):
        raise ValueError(f"only reads of {', '.join(_CACHED_TABLES)} by guid are cached, not {kind} of {cached}")

    def mark(method: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
        @functools.wraps(method)
        async def run(self: Connection, *args: Any, **kwargs: Any) -> Any:
            return await self._perform(kind, method, args, kwargs, cached)

        run.ccdb_operation = (kind, method, cached)  # type: ignore[attr-defined]  # for `perform_batch`
        return run

    return mark


#: The tables whose rows an operation may read by guid and keep (`cached=`).
_CACHED_TABLES = ("apps", "packages", "builds", "droplets")
_ROW_CHANGED = "minifoundry_row_changed"


def _guid_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs["guid"]


class Connection:
    """The one connection, its transactions, and the helpers the tables share."""

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        io_guard: IoGuard | None = None,
        fault: Fault | None = None,
        new_guid: Callable[[], str] | None = None,
        migrations: Sequence[Migration] = MIGRATIONS,
        synchronous: str = "NORMAL",
    ) -> None:
        check_migrations(migrations)
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"unknown synchronous level {synchronous!r}")
        self._path = Path(path)
        self._io_guard: IoGuard = io_guard or contextlib.nullcontext
        self._fault = fault
        self._new_guid = new_guid or _new_uuid
        self._migrations = tuple(migrations)
        # NORMAL in WAL mode survives a process crash; only a power cut can
        # lose the last commits. FULL trades speed for that too.
        self._synchronous = synchronous.upper()
        self._conn: aiosqlite.Connection | None = None
        self._sqlite: sqlite3.Connection | None = None  # the same connection, on its thread
        self._worker = -1  # the connection thread's ident, once known
        self._call: _Call | None = None  # the operation (or batch) running on that thread
        # On that thread, during a batch of several operations (`_run_batch`):
        # each write is a savepoint inside one transaction, open once begun.
        self._batched = False
        self._batch_open = False
        self._guids: deque[str] = deque()
        self._version = 0
        # Records read by guid, by (table, guid); see the module's docstring.
        self._records: dict[tuple[str, str], Any] = {}
        self._in_flight = 0  # operations (or batches) on their way through the thread
        # One connection, one transaction at a time: without this, a second
        # task's statements would land inside the first task's transaction.
        self._lock = anyio.Lock()

    # --- lifecycle --------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    @property
    def schema_version(self) -> int:
        """The highest migration applied to the open database."""
        return self._version

    async def open(self) -> None:
        """Connect, set the pragmas, and apply any migrations not yet applied."""
        if self._conn is not None:
            raise RuntimeError("ccdb is already open")
        conn = aiosqlite.connect(self._path, isolation_level=None)
        try:
            async with self._io_guard():
                await conn
        except BaseException:
            # Cancelled (its actor killed) while connecting or just after:
            # the connection's thread must end all the same, or it keeps
            # the process alive.
            conn.stop()
            raise
        self._conn = conn
        try:
            async with self._lock:
                conn.row_factory = sqlite3.Row
                async with self._io_guard():
                    self._worker = await conn._execute(_get_ident)
                self._sqlite = conn._conn
                (mode,) = (await self._sql("PRAGMA journal_mode = WAL"))[0]
                if str(mode).lower() != "wal":
                    raise DatabaseUnavailable(f"cannot put {self._path} in WAL mode ({mode})")
                await self._sql("PRAGMA foreign_keys = ON")
                await self._sql(f"PRAGMA synchronous = {self._synchronous}")
                await self._sql("PRAGMA busy_timeout = 5000")
                await self._migrate()
                async with self._io_guard():
                    await conn._execute(self._watch_rows)
        except BaseException:
            await self._disconnect()
            raise

    async def close(self) -> None:
        """Close the connection; a second close does nothing."""
        if self._conn is None:
            return
        with anyio.CancelScope(shield=True):
            async with self._lock:
                await self._disconnect()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        self._sqlite = None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                async with self._io_guard():
                    await conn.close()

    async def _migrate(self) -> None:
        await self._sql(BOOTSTRAP)
        rows = await self._sql("SELECT coalesce(max(version), 0) FROM schema_version")
        current = rows[0][0]
        known = self._migrations[-1][0] if self._migrations else 0
        if current > known:
            # Running old code on a newer file would write rows the newer
            # schema's constraints never expected.
            raise DatabaseUnavailable(f"{self._path} is at schema version {current}, newer than this code ({known})")
        for version, statements in pending_migrations(self._migrations, current):
            async with self._transaction():
                for statement in statements:
                    await self._sql(statement)
                await self._sql("INSERT INTO schema_version (version) VALUES (?)", (version,))
            current = version
        self._version = current

    def _watch_rows(self) -> None:
        """On the connection's thread: temporary triggers that tell
        `_row_changed` of every row written in the cached tables."""
        conn = self._sqlite
        assert conn is not None
        conn.create_function(_ROW_CHANGED, 3, self._row_changed)
        for table in _CACHED_TABLES:
            tell = f"SELECT {_ROW_CHANGED}('{table}'"
            for event, body in (
                ("INSERT", f"{tell}, NEW.guid, 0);"),
                # A guid never changes; should one, both are told.
                ("UPDATE", f"{tell}, OLD.guid, 0); {tell}, NEW.guid, 0) WHERE NEW.guid IS NOT OLD.guid;"),
                ("DELETE", f"{tell}, OLD.guid, 1);"),
            ):
                conn.execute(
                    f"CREATE TEMP TRIGGER IF NOT EXISTS minifoundry_{table}_{event.lower()}"
                    f" AFTER {event} ON main.{table} BEGIN {body} END"
                )

    def _row_changed(self, table: str, guid: str, deleted: int) -> None:
        if deleted and table == "apps":
            # An app's packages, builds and droplets may go with it (cascades).
            self._records.clear()
        else:
            self._records.pop((table, guid), None)

    def _kept(self, cached: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The record a cached read would give, if it is kept (else None)."""
        if cached is None:
            return None
        return self._records.get((cached, _guid_of(args, kwargs)))

    # --- one operation, one hop --------------------------------------------

    async def _perform(
        self,
        kind: str,
        method: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: Any,
        cached: str | None,
    ) -> Any:
        if _get_ident() == self._worker:
            return await method(self, *args, **kwargs)  # an operation inside another
        conn = self._conn
        if conn is None:
            raise RuntimeError("ccdb is not open")
        if self._fault is not None:
            await self._fault(kind)
        if not self._in_flight:
            kept = self._kept(cached, args, kwargs)
            if kept is not None:
                return kept  # nothing is on its way to change it: no hop
        if kind == OP_WRITE:
            guids = self._guids
            while len(guids) < _GUIDS_AHEAD:
                guids.append(self._new_guid())
        return await self._hop(conn, self._run_here, method, args, kwargs, cached)

    async def _hop(self, conn: Any, run: Callable[..., Any], *args: Any) -> Any:
        """`run(call, *args)` on the connection's thread, counted in flight
        (no record kept answers on the loop meanwhile)."""
        call = _Call()
        self._in_flight += 1
        try:
            async with self._io_guard():
                return await conn._execute(run, call, *args)
        except asyncio.CancelledError:
            # Still queued or running on the thread: it rolls back rather
            # than commit (unless its COMMIT already ran).
            call.cancelled = True
            raise
        finally:
            self._in_flight -= 1

    def _run_here(
        self,
        call: _Call,
        method: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: Any,
        cached: str | None,
    ) -> Any:
        """On the connection's thread: the whole operation, to its end."""
        self._call = call
        try:
            return self._to_end(method, args, kwargs, cached)
        finally:
            self._call = None

    def _to_end(
        self, method: Callable[..., Coroutine[Any, Any, Any]], args: Any, kwargs: Any, cached: str | None
    ) -> Any:
        kept = self._kept(cached, args, kwargs)
        if kept is not None:
            return kept
        coro = method(self, *args, **kwargs)
        try:
            coro.send(None)
        except StopIteration as done:
            if cached is not None:
                self._records[(cached, _guid_of(args, kwargs))] = done.value
            return done.value
        except BaseException:
            self._records.clear()  # it may have read what its rollback undid
            raise
        coro.close()
        raise RuntimeError(f"CC_DB's {method.__name__} waited for something off its connection's thread")

    # --- several operations, one hop, one commit ----------------------------------

    async def perform_batch(self, calls: Sequence[tuple[Callable[..., Any], dict[str, Any]]]) -> list[tuple[bool, Any]]:
        """Run operations (each an `@operation` method with its keyword
        arguments) in this order, in one hop and one transaction: group
        commit. What each gives is `(True, result)` or `(False, error)`.

        Each is what it would be alone: its fault hook runs (in order, before
        the hop), a failing one changes nothing (its writes are a savepoint,
        rolled back), and it sees every write before it. All are answered
        after the one COMMIT, so none is acknowledged before it is durable; if
        the COMMIT fails, every operation from the first write on fails with
        it (a read after a write may have seen what was not kept).
        """
        conn = self._conn
        if conn is None:
            raise RuntimeError("ccdb is not open")
        outcomes: list[tuple[bool, Any]] = [(False, None)] * len(calls)
        todo: list[tuple[int, Callable[..., Coroutine[Any, Any, Any]], dict[str, Any], str | None]] = []
        writes = 0
        guids = self._guids
        for index, (op, kwargs) in enumerate(calls):
            kind, method, cached = getattr(op, "ccdb_operation")  # noqa: B009 - set by `operation`, unknown to mypy
            if self._fault is not None:
                try:
                    await self._fault(kind)
                except Exception as exc:  # noqa: BLE001 - the operation's own outcome
                    outcomes[index] = (False, exc)
                    continue
            if not todo and not self._in_flight:
                # Ahead of every write of the batch: a record kept is the answer.
                kept = self._kept(cached, (), kwargs)
                if kept is not None:
                    outcomes[index] = (True, kept)
                    continue
            if kind == OP_WRITE:
                writes += 1
                while len(guids) < _GUIDS_AHEAD * writes:
                    guids.append(self._new_guid())
            todo.append((index, method, kwargs, cached))
        if todo:
            for index, outcome in await self._hop(conn, self._run_batch, todo):
                outcomes[index] = outcome
        return outcomes

    def _run_batch(
        self,
        call: _Call,
        todo: list[tuple[int, Callable[..., Coroutine[Any, Any, Any]], dict[str, Any], str | None]],
    ) -> list[tuple[int, tuple[bool, Any]]]:
        """On the connection's thread: the operations of a batch, then the COMMIT."""
        conn = self._sqlite
        assert conn is not None
        self._call = call
        self._batched = len(todo) > 1
        self._batch_open = False
        done: list[tuple[int, tuple[bool, Any]]] = []
        first_write: int | None = None
        try:
            for index, method, kwargs, cached in todo:
                try:
                    outcome: tuple[bool, Any] = (True, self._to_end(method, (), kwargs, cached))
                except BaseException as exc:  # noqa: BLE001 - the operation's own outcome
                    outcome = (False, exc)
                done.append((index, outcome))
                if first_write is None and self._batch_open:
                    first_write = len(done) - 1
                if self._batch_open and not conn.in_transaction:
                    # SQLite ended the whole transaction (a full disk, an I/O
                    # error): nothing of the batch so far was kept.
                    self._records.clear()
                    _fail_from(done, first_write, outcome[1])
                    self._batch_open = False
                    first_write = None
            if self._batch_open:
                try:
                    if call.cancelled:
                        raise asyncio.CancelledError()
                    conn.execute("COMMIT")
                except BaseException as exc:  # noqa: BLE001 - every write's outcome
                    with contextlib.suppress(sqlite3.OperationalError):
                        conn.execute("ROLLBACK")
                    self._records.clear()  # what the batch read may have been rolled back
                    _fail_from(done, first_write, exc)
        finally:
            self._call = None
            self._batched = self._batch_open = False
        return done

    def _guid(self) -> str:
        """A new guid: on the connection's thread, one drawn ahead on the loop."""
        if _get_ident() == self._worker:
            return self._guids.popleft()
        return self._new_guid()

    # --- plumbing ---------------------------------------------------------

    async def _sql(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if _get_ident() == self._worker and self._sqlite is not None:
            return self._sqlite.execute(sql, params).fetchall()
        if self._conn is None:
            raise RuntimeError("ccdb is not open")
        async with self._io_guard():
            return list(await self._conn.execute_fetchall(sql, params))

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self._sql(sql, params)
        return rows[0] if rows else None

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """BEGIN IMMEDIATE ... COMMIT; any exception (or cancellation) rolls back."""
        try:
            # Inside the try: if we are cancelled while BEGIN is queued, it
            # still runs on the worker thread, and the ROLLBACK queued behind
            # it must undo it.
            await self._sql("BEGIN IMMEDIATE")
            yield
            # Shielded: once COMMIT is queued on the worker thread it runs
            # anyway, and the caller must not be told it failed when it did not.
            with anyio.CancelScope(shield=True):
                await self._sql("COMMIT")
        except BaseException:
            with anyio.CancelScope(shield=True):
                # A failed COMMIT may already have ended the transaction.
                with contextlib.suppress(sqlite3.OperationalError, RuntimeError):
                    await self._sql("ROLLBACK")
            raise

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[None]:
        if _get_ident() == self._worker:
            # On the connection's thread, inside `_perform` (which ran the
            # fault hook): the transaction, statement by statement, here.
            conn = self._sqlite
            assert conn is not None and self._call is not None
            if self._batched:
                # One of several in this hop: a savepoint in the batch's
                # transaction, which `_run_batch` commits after the last.
                if not self._batch_open:
                    conn.execute("BEGIN IMMEDIATE")
                    self._batch_open = True
                begin, done, undo = "SAVEPOINT operation", "RELEASE operation", _UNDO_SAVEPOINT
            else:
                begin, done, undo = "BEGIN IMMEDIATE", "COMMIT", _UNDO_TRANSACTION
            conn.execute(begin)
            try:
                yield
                if self._call.cancelled:
                    raise asyncio.CancelledError()
                conn.execute(done)
            except BaseException:
                # A failed COMMIT may already have ended the transaction.
                with contextlib.suppress(sqlite3.OperationalError):
                    for statement in undo:
                        conn.execute(statement)
                raise
            return
        if self._conn is None:
            raise RuntimeError("ccdb is not open")
        if self._fault is not None:
            await self._fault(OP_WRITE)
        async with self._lock, self._transaction():
            yield

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[None]:
        if _get_ident() == self._worker:
            yield  # one operation at a time on the connection's thread
            return
        if self._conn is None:
            raise RuntimeError("ccdb is not open")
        if self._fault is not None:
            await self._fault(OP_READ)
        async with self._lock:
            yield

    async def _insert_event(
        self,
        type: str,
        actor: str,
        actee_guid: str,
        actee_name: str | None,
        metadata: dict[str, Any] | None,
        ts: str,
    ) -> str:
        guid = self._guid()
        await self._sql(
            "INSERT INTO events (guid, time, type, actor, actee_guid, actee_name, metadata)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (guid, ts, type, actor, actee_guid, actee_name, _json(metadata or {})),
        )
        return guid

    async def _app_row(self, guid: str) -> sqlite3.Row:
        row = await self._one("SELECT * FROM apps WHERE guid = ?", (guid,))
        if row is None:
            raise AppNotFound(guid)
        return row

    async def _row(self, table: str, guid: str) -> sqlite3.Row:
        row = await self._one(f"SELECT * FROM {table} WHERE guid = ?", (guid,))
        if row is None:
            raise ResourceNotFound(f"{table[:-1]} {guid} not found")
        return row

    async def _name_taken(self, name: str) -> bool:
        return bool(await self._sql("SELECT 1 FROM apps WHERE name = ?", (name,)))

    async def _still_referenced(self, keys: Iterable[str]) -> set[str]:
        wanted = _json(sorted(set(keys)))
        rows = await self._sql(
            "SELECT blob_key FROM packages WHERE blob_key IN (SELECT value FROM json_each(?))"
            " UNION"
            " SELECT blob_key FROM droplets WHERE blob_key IN (SELECT value FROM json_each(?))",
            (wanted, wanted),
        )
        return {row[0] for row in rows}

    async def _expire(self, table: str, expired: str, rows: list[sqlite3.Row], ts: str) -> set[str]:
        if not rows:
            return set()
        await self._sql(
            f"UPDATE {table} SET state = ?, blob_key = NULL, updated_at = ?"
            " WHERE guid IN (SELECT value FROM json_each(?))",
            (expired, ts, _json([row["guid"] for row in rows])),
        )
        keys = {row["blob_key"] for row in rows if row["blob_key"] is not None}
        return keys - await self._still_referenced(keys)
