"""Which workers are alive: a heartbeat row per worker in PostgreSQL, and claims on dead ones.

The table ``tether_fleet_workers`` holds one row per DBOS executor id::

    executor_id  text primary key     the DBOS executor id of the worker
    incarnation  text                 a fresh id per process start: tells a restart from a zombie
    host, pid                         where it runs (for people reading the table)
    started_at, beat_at               timestamps from the database's own clock (now()), never a
                                      worker's, so clock skew between machines does not matter
    state        'running'|'stopped'  'stopped' after a clean shutdown
    claimed_by, claimed_at            set by the live worker that took over its pending runs

A worker is **dead** when its state is ``stopped`` or its last beat is older than ``dead_after``.
A live worker **claims** a dead one with one conditional ``UPDATE … WHERE <still dead and
unclaimed> RETURNING``: PostgreSQL re-checks the condition on the row it locked, so of several
workers racing for the same dead one exactly one gets the row back. A claim older than ``lease``
may be claimed again, in case the claimer died before it finished recovering.

A dead worker's row is **forgotten** (deleted) once it has been dead for ``forget_after`` seconds
and has no pending runs left: workers started under a new executor id each time (the default,
``<host>-<pid>``) would otherwise add a row per start for ever, and every heartbeat would look
through them all.

A claim also **fences** the dead worker: its heartbeat only succeeds while its row is unclaimed
and still names its incarnation. A worker that was merely slow (a stall longer than
``dead_after``) finds its beat refused and stops at once, so that its runs are not carried on by
two workers for longer than one beat.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

TABLE = "tether_fleet_workers"
_LOCK_KEY = 0x7465746865720002  # "tether" + 2: advisory lock for creating the table

_CREATE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    executor_id text PRIMARY KEY,
    incarnation text NOT NULL,
    host text NOT NULL DEFAULT '',
    pid integer NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    beat_at timestamptz NOT NULL DEFAULT now(),
    state text NOT NULL DEFAULT 'running',
    claimed_by text,
    claimed_at timestamptz
)"""

# A row is dead, and free to claim, under this condition (parameters :me, :dead_after, :lease).
_DEAD = """
    executor_id <> :me
    AND (state = 'stopped' OR beat_at < now() - make_interval(secs => :dead_after))
    AND (claimed_at IS NULL OR claimed_at < now() - make_interval(secs => :lease))
"""


@dataclass(frozen=True)
class WorkerRow:
    executor_id: str
    host: str
    pid: int
    state: str
    seconds_since_beat: float
    claimed_by: str | None


class Liveness:
    """The heartbeat table, seen by the worker ``executor_id`` (one ``Liveness`` per worker)."""

    def __init__(self, engine: AsyncEngine, executor_id: str, incarnation: str) -> None:
        self.engine, self.executor_id, self.incarnation = engine, executor_id, incarnation

    async def create_table(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            await conn.execute(sa.text(_CREATE))

    async def register(self) -> None:
        """This process is now the worker ``executor_id``: a restart clears any claim on it."""
        async with self.engine.begin() as conn:
            await conn.execute(sa.text(f"""
                INSERT INTO {TABLE} (executor_id, incarnation, host, pid)
                VALUES (:me, :inc, :host, :pid)
                ON CONFLICT (executor_id) DO UPDATE SET
                    incarnation = EXCLUDED.incarnation, host = EXCLUDED.host, pid = EXCLUDED.pid,
                    started_at = now(), beat_at = now(), state = 'running',
                    claimed_by = NULL, claimed_at = NULL"""),
                {"me": self.executor_id, "inc": self.incarnation, "host": socket.gethostname(),
                 "pid": os.getpid()})

    async def beat(self) -> bool:
        """Record that this worker is alive. False: it was declared dead (or replaced) and must stop."""
        async with self.engine.begin() as conn:
            result = await conn.execute(sa.text(f"""
                UPDATE {TABLE} SET beat_at = now()
                WHERE executor_id = :me AND incarnation = :inc AND state = 'running'
                  AND claimed_by IS NULL"""),
                {"me": self.executor_id, "inc": self.incarnation})
        return result.rowcount == 1

    async def stopped(self) -> None:
        """A clean shutdown: the others may recover what is left at once, without waiting."""
        async with self.engine.begin() as conn:
            await conn.execute(sa.text(f"""
                UPDATE {TABLE} SET state = 'stopped', beat_at = now()
                WHERE executor_id = :me AND incarnation = :inc"""),
                {"me": self.executor_id, "inc": self.incarnation})

    async def dead(self, dead_after: float, lease: float) -> list[str]:
        """Executors that are dead and not claimed (or whose claim has lapsed)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.text(f"SELECT executor_id FROM {TABLE} WHERE {_DEAD}"),
                                      {"me": self.executor_id, "dead_after": dead_after, "lease": lease})
            return [row.executor_id for row in rows]

    async def claim(self, executor_id: str, dead_after: float, lease: float) -> bool:
        """Claim a dead executor's runs. True for exactly one of several workers racing for it."""
        async with self.engine.begin() as conn:
            result = await conn.execute(sa.text(f"""
                UPDATE {TABLE} SET claimed_by = :me, claimed_at = now()
                WHERE executor_id = :dead AND {_DEAD}"""),
                {"me": self.executor_id, "dead": executor_id, "dead_after": dead_after, "lease": lease})
        return result.rowcount == 1

    async def forget(self, executor_ids: list[str], forget_after: float) -> int:
        """Delete the rows of ``executor_ids`` (dead, with no pending runs) dead for ``forget_after`` seconds."""
        if not executor_ids:
            return 0
        async with self.engine.begin() as conn:
            result = await conn.execute(sa.text(f"""
                DELETE FROM {TABLE}
                WHERE executor_id = ANY(:ids) AND executor_id <> :me
                  AND beat_at < now() - make_interval(secs => :after)
                  AND (claimed_at IS NULL OR claimed_at < now() - make_interval(secs => :after))"""),
                {"me": self.executor_id, "ids": executor_ids, "after": forget_after})
        return result.rowcount

    async def workers(self) -> list[WorkerRow]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.text(f"""
                SELECT executor_id, host, pid, state, claimed_by,
                       extract(epoch FROM now() - beat_at)::float AS since
                FROM {TABLE} ORDER BY executor_id"""))
            return [WorkerRow(r.executor_id, r.host, r.pid, r.state, r.since, r.claimed_by) for r in rows]
