"""The local fleet: many runs in one process, admitted by a fair ``Scheduler``, each a recorded session.

    async with Fleet(client, sessions, settings, concurrency=32, weights={"paying": 3}) as fleet:
        handle = fleet.submit(RunSpec("fix the tests", queue="paying"))
        async for event in handle.events(): ...
        outcome = await handle
        outcomes = await fleet.map(specs)  # in the order of specs

Runs start a few at a time (``starting``): a run holds a start slot from its admission until its first
model call, so each run's first call leaves as soon as that run is set up (workspace, tools,
session) instead of after every admitted run is: asyncio would otherwise interleave the setups of
a thousand runs and send all their first calls at the end, in one wave that comes back as one.

Every run goes through ``execute`` (so it is a session in the store) and ends in a ``RunOutcome``:
"completed", "refusal", an error category, or "cancelled". An exception inside a run, ours or the
model's, becomes its outcome; it never reaches the fleet or the other runs.

Cancellation contract (the fleet owns one task per submitted run and awaits every one of them):

- Leaving the ``async with`` normally waits for every submitted run to end.
- Leaving it with an exception, or cancelling the task that is inside it, cancels every run still
  queued or running and waits until each has wound down; then the exception propagates.
- ``handle.cancel()`` cancels one run; ``fleet.cancel()`` all of them. A run cancelled while queued
  never starts; a running one is stopped the way the agent loop documents (its conversation left
  valid, interrupted tool calls answered) and its session is marked ``interrupted``, so it can be
  resumed. Either way its outcome is "cancelled" and ``await handle`` returns it: awaiting a handle
  never raises, and cancelling the awaiter does not cancel the run.
- ``map`` and ``pipeline`` own the runs they submit: cancelling the caller cancels those runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from tether.agent import events as ev
from tether.api.client import ModelClient
from tether.api.stream import StreamEvent
from tether.api.types import MessagesRequest, Response
from tether.config import Settings
from tether.fleet.execute import execute
from tether.fleet.scheduler import DEFAULT_AGING, Scheduler
from tether.fleet.spec import RunOutcome, RunSpec
from tether.sessions import Sessions, new_id

ClientFactory = Callable[[RunSpec], ModelClient]
FleetObserver = Callable[["RunHandle", ev.Event], Awaitable[None] | None]
Then = Callable[[RunOutcome], "RunSpec | Awaitable[RunSpec | None] | None"]
State = Literal["queued", "running", "done"]
CANCELLED = "cancelled"
TRANSIENT = ("api_error", "rate_limited")  # outcomes worth resuming after the client's own retries
START_HOLD = 1.0  # seconds a run may hold its start slot without making a model call (a resumed
# run may first finish tool calls, which can take long)


@dataclass
class FleetStats:
    """Counters for metrics: runs by state, finished runs by outcome, and what the finished ones spent."""

    submitted: int = 0
    resumed: int = 0  # attempts resumed after an outcome in ``resume_on``
    queued: int = 0
    running: int = 0
    finished: Counter[str] = field(default_factory=Counter)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    dollars: float = 0.0

    def add(self, outcome: RunOutcome) -> None:
        self.finished[outcome.outcome] += 1
        self.input_tokens += outcome.input_tokens
        self.output_tokens += outcome.output_tokens
        self.cache_read_tokens += outcome.cache_read_tokens
        self.cache_write_tokens += outcome.cache_write_tokens
        self.dollars += outcome.dollars


class RunHandle:
    """One submitted run: ``await handle`` for its ``RunOutcome``, ``events()`` to watch it live."""

    def __init__(self, spec: RunSpec) -> None:
        assert spec.session_id is not None
        self.spec = spec
        self.session_id: str = spec.session_id
        self.state: State = "queued"
        self._outcome: asyncio.Future[RunOutcome] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None
        self._watchers: list[asyncio.Queue[ev.Event | None]] = []

    def __repr__(self) -> str:
        return f"<RunHandle {self.spec.id or self.session_id} {self.state}>"

    def __await__(self) -> Generator[object, None, RunOutcome]:
        return asyncio.shield(self._outcome).__await__()

    def done(self) -> bool:
        return self._outcome.done()

    def result(self) -> RunOutcome:
        """The outcome of a finished run (``asyncio.InvalidStateError`` before it ends; await the handle)."""
        return self._outcome.result()

    def cancel(self) -> bool:
        """Stop the run (see the fleet's cancellation contract). False if it had already ended."""
        if self.done() or self._task is None:
            return False
        return self._task.cancel()

    def events(self) -> AsyncIterator[ev.Event]:
        """The run's events from now on, live, ending after ``RunEnd`` (or at once if it is over).

        Subscribe before the run starts (right after ``submit``) to see all of them. Events wait
        in an unbounded queue for a slow reader; the run never waits for its watchers.
        """
        return _Watch(self)

    def _publish(self, event: ev.Event | None) -> None:
        for queue in self._watchers:
            queue.put_nowait(event)

    def _finish(self, outcome: RunOutcome) -> None:
        self.state = "done"
        if not self._outcome.done():
            self._outcome.set_result(outcome)
        self._publish(None)


class _Watch:
    def __init__(self, handle: RunHandle) -> None:
        self._handle = handle
        self._queue: asyncio.Queue[ev.Event | None] | None = None
        if not handle.done():
            self._queue = asyncio.Queue()
            handle._watchers.append(self._queue)

    def __aiter__(self) -> _Watch:
        return self

    async def __anext__(self) -> ev.Event:
        if self._queue is None:
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None:
            self._handle._watchers.remove(self._queue)
            self._queue = None
            raise StopAsyncIteration
        return event


class Fleet:
    """Runs ``RunSpec``s concurrently, fairly, each as a recorded session (see the module docstring).

    ``client`` is a ``ModelClient`` shared by every run, or a factory called with each spec (for
    per-tenant keys or wrappers); the fleet never closes clients. ``weights`` weigh queues against
    each other and ``aging`` bounds priority inversion (see ``tether.fleet.scheduler``). ``observe``
    sees every event of every run, with its handle.

    ``resume_attempts``: a run that ends in a category of ``resume_on`` (after the client's own
    retries) is resumed from the store up to this many times; its completed turns and finished
    tool calls are kept, so nothing is done twice. Its watchers see each attempt, ``RunStarted``
    to ``RunEnd``, and its outcome sums what the attempts spent. Off (0) by default: an
    ``api_error`` may be a bad request that fails again.

    ``starting``: how many admitted runs may be setting up at once, before their first model call
    (see the module docstring); a run that makes no call within ``START_HOLD`` seconds frees its
    slot all the same.
    """

    def __init__(self, client: ModelClient | ClientFactory, sessions: Sessions, settings: Settings | None = None,
                 *, concurrency: int = 16, starting: int = 16, weights: Mapping[str, float] | None = None,
                 aging: int | None = DEFAULT_AGING, observe: FleetObserver | None = None,
                 resume_attempts: int = 0, resume_on: Iterable[str] = TRANSIENT) -> None:
        self._client_for: ClientFactory = _factory(client)
        self.sessions = sessions
        self.settings = settings or Settings()
        self.scheduler = Scheduler(concurrency, weights, aging=aging)
        if starting < 1:
            raise ValueError(f"starting must be at least 1, not {starting}")
        self._starting = asyncio.Semaphore(starting)
        self.observe = observe
        self.resume_attempts, self.resume_on = resume_attempts, frozenset(resume_on)
        self.stats = FleetStats()
        self._tasks: set[asyncio.Task[None]] = set()
        self._handles: set[RunHandle] = set()
        self._entered = self._closed = False

    async def __aenter__(self) -> Fleet:
        if self._entered:
            raise RuntimeError("a Fleet is entered once")
        self._entered = True
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        if kind is not None:
            self.cancel()
        cancelled = False
        while self._tasks:
            try:
                await asyncio.wait(set(self._tasks))
            except asyncio.CancelledError:  # cancelled while draining: stop the runs, keep waiting for them
                cancelled = True
                self.cancel()
        self._closed = True
        if cancelled and kind is None:
            raise asyncio.CancelledError

    def submit(self, spec: RunSpec) -> RunHandle:
        """Queue ``spec``; the run starts when the scheduler gives it a slot."""
        if not self._entered or self._closed:
            raise RuntimeError("submit() needs a running fleet: use `async with Fleet(...) as fleet`")
        handle = RunHandle(dataclasses.replace(spec, session_id=spec.session_id or new_id()))
        task = asyncio.get_running_loop().create_task(self._run(handle), name=f"tether-run-{handle.session_id}")
        handle._task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._handles.add(handle)
        self.stats.submitted += 1
        self.stats.queued += 1
        return handle

    async def map(self, specs: Iterable[RunSpec]) -> list[RunOutcome]:
        """Run ``specs`` concurrently (as the scheduler allows); their outcomes in the same order."""
        handles = [self.submit(spec) for spec in specs]
        async with _owning(handles):
            return [await handle for handle in handles]

    async def pipeline(self, spec: RunSpec, then: Then) -> list[RunOutcome]:
        """Run ``spec``, then ``then(outcome)``'s spec, and so on until ``then`` returns None.

        ``then`` (plain or async) sees failed outcomes too, and decides whether to go on.
        """
        outcomes: list[RunOutcome] = []
        next_spec: RunSpec | None = spec
        while next_spec is not None:
            handle = self.submit(next_spec)
            async with _owning([handle]):
                outcomes.append(await handle)
            following = then(outcomes[-1])
            next_spec = await following if inspect.isawaitable(following) else following
        return outcomes

    def cancel(self) -> None:
        """Cancel every run that has not ended."""
        for handle in list(self._handles):
            handle.cancel()

    async def _run(self, handle: RunHandle) -> None:
        spec = handle.spec
        outcome = RunOutcome(spec.id, handle.session_id, CANCELLED, error="cancelled while queued")
        try:
            await self.scheduler.acquire(spec.queue, spec.priority)
            handle.state = "running"
            self.stats.queued -= 1
            self.stats.running += 1
            try:
                outcome = await self._attempts(handle)
            except asyncio.CancelledError:
                outcome = RunOutcome(spec.id, handle.session_id, CANCELLED, error="cancelled while running")
                await self._interrupted(handle)
                raise
            except Exception as exc:
                outcome = failed(spec, handle.session_id, exc)
            finally:
                self.scheduler.release()
        finally:
            self._done(handle, outcome)

    async def _attempts(self, handle: RunHandle) -> RunOutcome:
        """Execute the run; resume it from the store while it ends in a category of ``resume_on``."""
        spec, total = handle.spec, None
        for attempt in range(self.resume_attempts + 1):
            async with self._start_slot() as started:
                client = _Starting(self._client_for(spec), started)
                outcome = await execute(spec, client=client, sessions=self.sessions, settings=self.settings,
                                        observe=lambda event: self._event(handle, event))
            total = outcome if total is None else _plus(total, outcome)
            if outcome.outcome not in self.resume_on or attempt == self.resume_attempts:
                break
            self.stats.resumed += 1
            spec = dataclasses.replace(spec, task=None)
        assert total is not None
        return total

    @contextlib.asynccontextmanager
    async def _start_slot(self) -> AsyncIterator[Callable[[], None]]:
        """A start slot, held until the function it yields is called (or ``START_HOLD`` passes)."""
        await self._starting.acquire()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                timer.cancel()
                self._starting.release()

        timer = asyncio.get_running_loop().call_later(START_HOLD, release)
        try:
            yield release
        finally:
            release()

    def _event(self, handle: RunHandle, event: ev.Event) -> Awaitable[None] | None:
        handle._publish(event)
        return self.observe(handle, event) if self.observe is not None else None

    async def _interrupted(self, handle: RunHandle) -> None:
        """Mark a cancelled run's session resumable (best effort: it may not exist yet)."""
        with contextlib.suppress(Exception):
            await self.sessions.store.update(handle.session_id, status="interrupted")

    def _done(self, handle: RunHandle, outcome: RunOutcome) -> None:
        if handle.state == "running":
            self.stats.running -= 1
        else:
            self.stats.queued -= 1
        self.stats.add(outcome)
        self._handles.discard(handle)
        handle._finish(outcome)


def failed(spec: RunSpec, session_id: str, exc: Exception) -> RunOutcome:
    """The outcome of a run that raised: its error category (``system_error`` for a bug) and message."""
    category = getattr(exc, "category", None)
    if not isinstance(category, str):
        category = "system_error"
    return RunOutcome(spec.id, session_id, category, error=f"{type(exc).__name__}: {exc}")


def _plus(before: RunOutcome, after: RunOutcome) -> RunOutcome:
    """The outcome of a resumed run: the last attempt's ending, the attempts' spending summed."""
    return dataclasses.replace(
        after, turns=before.turns + after.turns, input_tokens=before.input_tokens + after.input_tokens,
        output_tokens=before.output_tokens + after.output_tokens,
        cache_read_tokens=before.cache_read_tokens + after.cache_read_tokens,
        cache_write_tokens=before.cache_write_tokens + after.cache_write_tokens, dollars=before.dollars + after.dollars)


class _Starting:
    """A run's client that calls ``started`` when the run makes a model call (its first frees its start slot)."""

    def __init__(self, inner: ModelClient, started: Callable[[], None]) -> None:
        self.inner, self.started = inner, started

    def stream(self, request: MessagesRequest) -> AsyncIterator[StreamEvent]:
        self.started()
        return self.inner.stream(request)

    async def create(self, request: MessagesRequest) -> Response:
        self.started()
        return await self.inner.create(request)

    async def count_tokens(self, request: MessagesRequest) -> int:
        return await self.inner.count_tokens(request)


def _factory(client: ModelClient | ClientFactory) -> ClientFactory:
    if hasattr(client, "stream") and hasattr(client, "create"):
        shared: ModelClient = client  # type: ignore[assignment]
        return lambda spec: shared
    if callable(client):
        return client
    raise TypeError(f"expected a ModelClient or a factory of them, not {type(client).__name__}")


@contextlib.asynccontextmanager
async def _owning(handles: list[RunHandle]) -> AsyncIterator[None]:
    """Cancel ``handles`` if the body is cancelled or fails."""
    try:
        yield
    except BaseException:
        for handle in handles:
            handle.cancel()
        raise
