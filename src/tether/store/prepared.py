"""``Prepared``: a Core statement compiled once per dialect and run on the driver's cursor.

``Connection.execute`` costs SQLAlchemy 10 to 20 µs a statement even when the compiled form is cached
(cache key, execution context, parameter and result processing, a ``Result``); the driver runs the
same statement in 2 or 3 µs. The writes of every turn go through ``Prepared`` instead:

- The statement stays SQLAlchemy Core, compiled on first use with each dialect (so one definition
  serves SQLite and PostgreSQL, whose cursor is SQLAlchemy's asyncpg adapter, inside ``run_sync``).
- Parameters go through the bind processors ``execute`` applies, in the compiled order, so rows are
  written exactly as ``execute`` writes them (on SQLite, datetimes as naive UTC text).
- A driver error is raised as ``execute`` raises it: a ``sa.exc.IntegrityError`` for a unique or
  foreign key violation, and so on.
- It runs inside a transaction SQLAlchemy has begun (the driver's cursor begins none), and takes
  positional paramstyles only (both drivers' are), without expanding (``IN``) parameters. ``first``
  returns the driver's row, so it takes only columns without result processing (integers, text).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

T = TypeVar("T")
Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    binds: tuple[tuple[str, Processor], ...]  # in the order of the placeholders
    defaults: dict[str, Any]  # the values written into the statement

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        given = {**self.defaults, **params} if self.defaults else params
        return [given[name] if process is None else process(given[name]) for name, process in self.binds]


class Prepared:
    def __init__(self, statement: sa.Executable) -> None:
        self.statement = statement
        self._compiled: weakref.WeakKeyDictionary[sa.Dialect, _Compiled] = weakref.WeakKeyDictionary()

    def execute(self, conn: sa.Connection, params: Mapping[str, Any]) -> int:
        """Run the statement once: the number of rows it changed."""
        return self._run(conn, "execute", params, lambda cursor: cursor.rowcount)

    def executemany(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        self._run(conn, "executemany", rows, lambda _: None)

    def first(self, conn: sa.Connection, params: Mapping[str, Any]) -> Sequence[Any] | None:
        """The first row the query returns, as the driver returns it."""
        return self._run(conn, "execute", params, lambda cursor: cursor.fetchone())

    def _run(self, conn: sa.Connection, method: str, params: Any, read: Callable[[Any], T]) -> T:
        assert conn.in_transaction(), "a Prepared statement runs in a transaction SQLAlchemy has begun"
        dialect = conn.dialect
        compiled = self._compiled.get(dialect) or self._compile(dialect)
        args = compiled.args(params) if method == "execute" else [compiled.args(row) for row in params]
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            getattr(cursor, method)(compiled.sql, args)
            return read(cursor)
        except dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(compiled.sql, args, exc, dialect.loaded_dbapi.Error,
                                             dialect=dialect) from exc
        finally:
            cursor.close()

    def _compile(self, dialect: sa.Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        if not compiled.positional or compiled.positiontup is None or compiled.post_compile_params:
            raise TypeError(f"cannot prepare {compiled.string!r} for {dialect.name}: not plain positional")
        for column in getattr(self.statement, "selected_columns", ()):
            if column.type.dialect_impl(dialect).result_processor(dialect, None) is not None:
                raise TypeError(f"cannot prepare {compiled.string!r}: {column} needs result processing")
        names = compiled.positiontup  # a name used twice is there twice on SQLite, once on PostgreSQL
        binds = {name: compiled.binds[name] for name in names}
        self._compiled[dialect] = prepared = _Compiled(
            compiled.string,
            tuple((name, binds[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names),
            {name: bind.effective_value for name, bind in binds.items() if not bind.required})
        return prepared
