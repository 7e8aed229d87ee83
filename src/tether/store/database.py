"""Where the store's SQL runs: plain functions of a ``sa.Connection``, in one transaction each.

``Database.write(op, *args)`` runs ``op(conn, *args)`` in a write transaction and returns what it
returns; ``read`` does the same in a read transaction. Two ways to do that:

- ``ThreadedSQLite``: SQLite answers in microseconds, so the cost is in getting there. Its ops run
  in threads on the plain ``sqlite3`` driver, and writes are **group-committed**: one writer
  thread, and every write that arrives while a transaction is committing goes into the next one;
  one op's error undoes only that op and reaches only its caller (see ``_commit``). A thousand
  runs writing at once pay for one thread hop and one commit per batch, instead of a hop per
  statement (the async driver's way) and a queue for the file lock.
- ``AsyncDatabase`` (PostgreSQL): each op in a transaction of its own on the async engine
  (``run_sync``), since the server handles concurrent writers itself.

Either way, the store's writes run their statements as ``Prepared`` ones, on the driver's cursor
of the transaction's connection (see ``tether.store.prepared``): 2 or 3 µs a statement instead of
SQLAlchemy's 10 to 20 (on SQLite, CPU the writer thread spends holding the GIL against the event
loop). A unique or foreign key violation is a ``StoreConflict`` either way: ``Prepared`` raises
SQLAlchemy's errors, as ``conn.execute`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tether.store import engine as engines
from tether.store.base import StoreConflict

T = TypeVar("T")
Op = Callable[..., T]


class Database(Protocol):
    async def write(self, op: Op[T], *args: Any) -> T: ...

    async def read(self, op: Op[T], *args: Any) -> T: ...

    async def close(self) -> None: ...


def database_for(engine: AsyncEngine) -> Database:
    if engine.dialect.name == "sqlite":
        return ThreadedSQLite(engines.sync_twin(engine))
    return AsyncDatabase(engine)


@contextlib.contextmanager
def _conflicts() -> Iterator[None]:
    try:
        yield
    except sa.exc.IntegrityError as exc:
        raise StoreConflict(f"another writer got there first: {exc.orig}") from exc


class AsyncDatabase:
    def __init__(self, engine: AsyncEngine) -> None:
        self._reader, self._writer = engines.reader(engine), engines.writer(engine)

    async def write(self, op: Op[T], *args: Any) -> T:
        with _conflicts():
            async with self._writer.begin() as conn:
                return await conn.run_sync(op, *args)

    async def read(self, op: Op[T], *args: Any) -> T:
        async with self._reader.connect() as conn:
            return await conn.run_sync(op, *args)

    async def close(self) -> None:
        """The engine is its owner's to dispose of."""


class ThreadedSQLite:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._write_engine = engine.execution_options(**{engines.WRITE: True})
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="tether-store-writer")
        self._pending: list[tuple[Op[Any], tuple[Any, ...], asyncio.Future[Any]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def write(self, op: Op[T], *args: Any) -> T:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((op, args, future))
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain())
        return await future

    async def read(self, op: Op[T], *args: Any) -> T:
        return await asyncio.to_thread(self._read, op, args)

    async def close(self) -> None:
        if self._draining is not None:
            await self._draining
        self._writer.shutdown()
        self._engine.dispose()

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    outcomes = await loop.run_in_executor(self._writer, self._commit,
                                                          [(op, args) for op, args, _ in batch])
                except BaseException:  # cancelled (the loop is closing): the batch may or may not be written
                    for _, _, future in batch:
                        future.cancel()
                    raise
                for (_, _, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if not future.done():  # a caller that stopped waiting: its write happened all the same
                        future.set_result(value) if ok else future.set_exception(value)
        finally:
            self._draining = None

    def _commit(self, batch: list[tuple[Op[Any], tuple[Any, ...]]]) -> list[tuple[bool, Any]]:
        """The batch in one transaction. If anything fails, the batch runs again with each op in a
        savepoint of its own, so that a failing op is undone alone (errors are rare: savepoints
        cost a third of a write)."""
        try:
            with self._begin() as conn:
                return [(True, _run(conn, op, args)) for op, args in batch]
        except Exception as exc:
            if len(batch) == 1:
                return [(False, exc)]
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self._begin() as conn:
                for op, args in batch:
                    conn.exec_driver_sql("SAVEPOINT tether_op")  # one name, one at a time: no compiling
                    try:
                        outcomes.append((True, _run(conn, op, args)))
                    except Exception as exc:
                        conn.exec_driver_sql("ROLLBACK TO tether_op")
                        outcomes.append((False, exc))
                    conn.exec_driver_sql("RELEASE tether_op")
        except Exception as exc:  # the commit itself failed: nothing of the batch was written
            return [(False, exc)] * len(batch)
        return outcomes

    def _begin(self) -> contextlib.AbstractContextManager[sa.Connection]:
        return self._write_engine.begin()

    def _read(self, op: Op[T], args: tuple[Any, ...]) -> T:
        with self._engine.connect() as conn:
            return op(conn, *args)


def _run(conn: sa.Connection, op: Op[T], args: tuple[Any, ...]) -> T:
    with _conflicts():
        return op(conn, *args)
