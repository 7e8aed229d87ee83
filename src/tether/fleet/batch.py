"""A batch: one run per line of a JSON Lines file, results appended to another, resumable.

    lines = read_batch(Path("tasks.jsonl"))          # every line checked before anything runs
    summary = await run_batch(lines, ResultsFile(Path("results.jsonl")), fleet)

The file is validated up front: a bad line (not JSON, not a ``RunSpec``, an unknown tool set, a
repeated id) is a ``BatchFileError`` listing every bad line by number, and nothing runs. A batch
half-run because of a typo on line 900 is worse than one that does not start.

Resuming. Each line has a stable id (its ``id`` field, else a hash of its JSON, with ``-2``, ``-3``
for repeats) and a stable session id derived from the batch's key (the file's absolute path) and
that id. The results file is append-only, one JSON object per finished line. Running the same batch
again looks at each line in turn:

- its id is in the results file: finished, skipped;
- its session is ``completed`` in the store but has no result (the process died in between): the
  result is written from the store, without running anything;
- its session exists but is not completed (killed, interrupted, failed): resumed from the store
  (``task=None``; the ledger keeps tool calls from running twice);
- otherwise: a new run.

A line that names its own ``session_id`` (a follow-up to an existing session) is only known to be
finished by its result, so a crash before that result is written sends the follow-up again.

The results file is locked (``flock``) while a batch writes to it, so two processes cannot run the
same batch at once; each result is one ``write`` and an ``fsync``, and a line cut short by a crash
is dropped when the file is next opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether.agent import events as ev
from tether.errors import UserError
from tether.fleet.local import CANCELLED, Fleet, FleetStats, RunHandle
from tether.fleet.spec import RunOutcome, RunSpec
from tether.sessions import Sessions, to_message
from tether.store.base import SessionInfo

TOOL_SETS = ("bash", "editor", "python", "computer")


class BatchFileError(UserError):
    """The batch file has bad lines; ``problems`` names each by line number."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        shown = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{path}: {len(problems)} bad line(s), nothing was run:\n{shown}{more}")
        self.problems = problems


@dataclass
class BatchLine:
    number: int  # 1-based line number in the file
    id: str
    spec: RunSpec
    derived_session: bool = True  # False: the line names its own session_id


def read_batch(path: Path, *, defaults: Mapping[str, Any] | None = None, key: str | None = None,
               workspaces: Path | None = None) -> list[BatchLine]:
    """Every line of ``path`` as a spec, or a ``BatchFileError`` naming every bad line.

    ``defaults`` fill fields a line leaves out (they do not change its id); ``key`` names the batch
    for session ids (the file's absolute path by default); ``workspaces`` gives each line without a
    workspace its own directory ``workspaces/<id>``, kept across restarts.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read the batch file {path}: {exc.strerror or exc}") from None
    key = key or str(path.resolve())
    lines: list[BatchLine] = []
    problems: list[str] = []
    ids: dict[str, int] = {}
    seen: Counter[str] = Counter()
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = _line(number, raw, defaults or {}, seen)
        except UserError as exc:
            problems.append(str(exc))
            continue
        if line.id in ids:
            problems.append(f"line {number}: id {line.id!r} is already used on line {ids[line.id]}")
            continue
        ids[line.id] = number
        if line.spec.session_id is None:
            line.spec.session_id = session_id_for(key, line.id)
        else:
            line.derived_session = False
        if workspaces is not None and line.spec.workspace is None:
            line.spec.workspace = str(workspaces / _safe(line.id))
        lines.append(line)
    if problems:
        raise BatchFileError(path, problems)
    return lines


def _line(number: int, raw: str, defaults: Mapping[str, Any], seen: Counter[str]) -> BatchLine:
    where = f"line {number}"
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(data).__name__}")
    if isinstance(data.get("id"), int):
        data["id"] = str(data["id"])
    if data.get("id") is not None and (not isinstance(data["id"], str) or not data["id"]):
        raise UserError(f"{where}: id must be a non-empty string")
    line_id = data.get("id") or _content_id(data, seen)
    spec = RunSpec.from_dict({**defaults, **data, "id": line_id}, where=where)
    if bad := [t for t in spec.tools if t not in TOOL_SETS and not t.startswith("mcp:")]:
        raise UserError(f"{where}: unknown tool set(s) {bad}; known: {[*TOOL_SETS, 'mcp:NAME']}")
    spec.tags = [*spec.tags, "batch"]
    return BatchLine(number, line_id, spec)


def _content_id(data: Mapping[str, Any], seen: Counter[str]) -> str:
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    seen[digest] += 1
    return digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"


def session_id_for(key: str, line_id: str) -> str:
    """The session of line ``line_id`` of the batch named ``key``: the same on every re-run."""
    return "bat_" + hashlib.sha256(f"{key}\0{line_id}".encode()).hexdigest()[:24]


def _safe(line_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in line_id)[:80] or "line"


class ResultsFile:
    """The append-only results: one JSON object per finished line, written whole or not at all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.finished: dict[str, dict[str, Any]] = {}  # results by line id, once open
        self._fd: int | None = None

    def open(self) -> dict[str, dict[str, Any]]:
        """Lock the file, drop a last line cut short by a crash, and return the results by id."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{self.path} is in use by another `tether batch`; wait for it to finish") from None
        self._fd = fd
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            os.ftruncate(fd, data.rfind(b"\n") + 1)
            data = data[: data.rfind(b"\n") + 1]
        done: dict[str, dict[str, Any]] = {}
        for line in data.splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and isinstance(record.get("id"), str):
                    done.setdefault(record["id"], record)
        self.finished = done
        return done

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one result durably (call it in a thread: it fsyncs)."""
        assert self._fd is not None, "open() the results file first"
        os.write(self._fd, (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode())
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class BatchProgress:
    """What a progress display shows; ``run_batch`` keeps it up to date."""

    total: int = 0
    skipped: int = 0  # already in the results file when the batch started
    recovered: int = 0  # finished in the store, result written now
    resumed: int = 0  # resumed from the store
    done: int = 0  # finished successfully by this invocation
    failed: int = 0
    stats: FleetStats | None = None  # the fleet's counters: queued and running
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    dollars: float = 0.0
    started: float = field(default_factory=time.monotonic)
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def queued(self) -> int:
        return self.stats.queued if self.stats else 0

    @property
    def running(self) -> int:
        return self.stats.running if self.stats else 0

    @property
    def finished(self) -> int:
        return self.skipped + self.done + self.failed

    @property
    def cache_hit_share(self) -> float:
        prompt = self.input_tokens + self.cache_read_tokens + self.cache_write_tokens
        return self.cache_read_tokens / prompt if prompt else 0.0

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the rate runs have finished so far in this invocation (None before the first)."""
        ran = self.done + self.failed - self.recovered
        left = self.total - self.finished
        if ran <= 0 or left <= 0:
            return None if left > 0 else 0.0
        return (((now or time.monotonic()) - self.started) / ran) * left

    def usage(self, report: ev.UsageReport) -> None:
        u = report.usage
        self.input_tokens += u.input_tokens
        self.output_tokens += u.output_tokens
        self.cache_read_tokens += u.cache_read_input_tokens
        self.cache_write_tokens += u.cache_creation_input_tokens
        self.dollars += report.dollars

    def finish(self, outcome: RunOutcome) -> None:
        self.outcomes[outcome.outcome] += 1
        if outcome.ok:
            self.done += 1
        else:
            self.failed += 1


Listener = Callable[[BatchLine, RunOutcome], None]


async def run_batch(lines: list[BatchLine], results: ResultsFile, fleet: Fleet, *,
                    progress: BatchProgress | None = None, on_result: Listener | None = None) -> BatchProgress:
    """Run every line not yet finished (see the module docstring); returns the final counts.

    ``results`` must be open; ``fleet`` a running ``Fleet`` over the batch's store (its ``observe``
    is set here, to count usage). A run cancelled by the fleet's shutdown has no result written:
    the next invocation resumes it.
    """
    progress = progress or BatchProgress()
    progress.total, progress.stats = len(lines), fleet.stats
    fleet.observe = _counting(progress)

    async def finish(line: BatchLine, handle: RunHandle, resumed: bool) -> None:
        outcome = await handle
        if outcome.outcome == CANCELLED:
            return
        if resumed:  # the result covers the whole session, not only the part run this time
            outcome = await _session_totals(outcome, fleet.sessions)
        await _record(results, line, outcome, progress, on_result)

    async with asyncio.TaskGroup() as group:
        for line in lines:
            if line.id in results.finished:
                progress.skipped += 1
                continue
            spec = await _resumable(line, fleet.sessions)
            if isinstance(spec, RunOutcome):
                progress.recovered += 1
                await _record(results, line, spec, progress, on_result)
                continue
            resumed = spec is not line.spec
            progress.resumed += resumed
            group.create_task(finish(line, fleet.submit(spec), resumed))
    return progress


async def _resumable(line: BatchLine, sessions: Sessions) -> RunSpec | RunOutcome:
    """The spec to run for ``line`` (``line.spec`` itself only for a new run), or its outcome if its
    session completed without a result."""
    spec = line.spec
    if not line.derived_session:
        return spec
    assert spec.session_id is not None
    info = await sessions.store.get(spec.session_id)
    if info is None:
        return spec
    if info.status == "completed":
        return await _from_store(line, info, sessions)
    if not await sessions.store.messages(spec.session_id):
        return dataclasses.replace(spec)  # created, then killed before its task was recorded
    return dataclasses.replace(spec, task=None)


async def _session_totals(outcome: RunOutcome, sessions: Sessions) -> RunOutcome:
    info = await sessions.store.get(outcome.session_id)
    if info is None:
        return outcome
    return dataclasses.replace(outcome, turns=info.turns, input_tokens=info.input_tokens,
                               output_tokens=info.output_tokens, cache_read_tokens=info.cache_read_tokens,
                               cache_write_tokens=info.cache_write_tokens, dollars=info.dollars)


async def _from_store(line: BatchLine, info: SessionInfo, sessions: Sessions) -> RunOutcome:
    text = ""
    for stored in reversed(await sessions.store.messages(info.id)):
        if stored.role == "assistant":
            text = to_message(stored).text
            break
    return RunOutcome(line.id, info.id, "completed", text, info.turns, info.input_tokens, info.output_tokens,
                      info.cache_read_tokens, info.cache_write_tokens, info.dollars)


async def _record(results: ResultsFile, line: BatchLine, outcome: RunOutcome, progress: BatchProgress,
                  on_result: Listener | None) -> None:
    record = {"id": line.id, "line": line.number, **outcome.to_dict()}
    await asyncio.to_thread(results.append, record)
    results.finished[line.id] = record
    progress.finish(outcome)
    if on_result is not None:
        on_result(line, outcome)


def _counting(progress: BatchProgress) -> Callable[[RunHandle, ev.Event], None]:
    def observe(handle: RunHandle, event: ev.Event) -> None:
        if isinstance(event, ev.UsageReport):
            progress.usage(event)

    return observe
