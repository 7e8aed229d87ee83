"""Who runs next: weighted fair sharing between queues, priorities within a queue, a bound on how
many run at once.

The policy
----------

**Between queues (tenants): start-time fair queuing.** Each queue has a weight (1 unless set) and a
virtual-time tag. The next item comes from the non-empty queue with the smallest tag (ties go to the
queue that became busy first); serving an item of ``cost`` (1 by default) moves that queue's tag on
by ``cost / weight``. A queue that was idle joins at the current virtual time (the tag of the item
last served), so it cannot save up credit while idle, nor is it punished for what it used long ago.
Under sustained load a queue of weight ``w`` gets ``w / Σw`` of the dispatches, and it waits at
most about ``Σ(w_j / w) + n`` dispatches between two of its own: a low-weight queue is slow, never
starved.

Fairness is in run *starts*. Runs of one kind last about as long as each other, so that is also a
fair share of the slots; a caller who knows better can pass a ``cost``.

**Within a queue: priority, with aging.** Higher priority goes first, first-come first-served
within a priority. Aging keeps a steady stream of urgent work from starving the rest: an item is
passed by higher-priority items only if they arrive within ``aging * Δpriority`` pushes (to that
queue) after it. Aging needs no clock: the ordering key of the item pushed ``seq``-th is
``seq / aging - priority``, fixed at push time. ``aging=None`` is strict priority.

**Bound:** ``Scheduler`` admits at most ``concurrency`` holders of a slot at once; waiters are
ordered by a ``FairQueue``. ``FairQueue`` is plain logic (no clock, no I/O): tests drive it step by
step.

Cancellation: a task cancelled while it waits in ``Scheduler.acquire`` leaves the queue and holds
no slot, even if its slot was granted in the same instant (the slot is passed on).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_AGING = 100


@dataclass(eq=False)
class Entry(Generic[T]):
    """An item in a ``FairQueue``: what ``push`` returns and ``pop`` gives back."""

    item: T
    queue: str
    priority: int
    cost: float
    key: tuple[float, int] = (0.0, 0)
    live: bool = True

    def __lt__(self, other: Entry[T]) -> bool:
        return self.key < other.key


@dataclass(eq=False)
class _Queue(Generic[T]):
    name: str
    weight: float
    tag: float = 0.0  # virtual time at which this queue's next item starts
    since: int = 0  # when it last became busy: the tie-break between equal tags
    pushes: int = 0
    live: int = 0
    heap: list[Entry[T]] = field(default_factory=list)


class FairQueue(Generic[T]):
    """Items in named queues; ``pop`` takes the next one by the policy in the module docstring."""

    def __init__(self, weights: Mapping[str, float] | None = None, *, default_weight: float = 1.0,
                 aging: int | None = DEFAULT_AGING) -> None:
        if aging is not None and aging < 1:
            raise ValueError("aging must be a positive number of pushes, or None for strict priority")
        self.default_weight = _check_weight(default_weight)
        self.aging = aging
        self.vtime = 0.0
        self._weights = {name: _check_weight(w) for name, w in (weights or {}).items()}
        self._queues: dict[str, _Queue[T]] = {}
        self._busy: dict[str, _Queue[T]] = {}  # non-empty queues, the only candidates for pop
        self._activations = itertools.count()
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def weight(self, queue: str) -> float:
        return self._weights.get(queue, self.default_weight)

    def set_weight(self, queue: str, weight: float) -> None:
        self._weights[queue] = _check_weight(weight)
        if queue in self._queues:
            self._queues[queue].weight = self._weights[queue]

    def lengths(self) -> dict[str, int]:
        """Items waiting, by queue (busy queues only)."""
        return {name: q.live for name, q in self._busy.items()}

    def push(self, item: T, *, queue: str = "default", priority: int = 0, cost: float = 1.0) -> Entry[T]:
        if cost <= 0:
            raise ValueError("cost must be positive")
        q = self._queue(queue)
        if q.live == 0:  # becoming busy: join at the current virtual time, no credit saved while idle
            q.tag, q.since = max(q.tag, self.vtime), next(self._activations)
            self._busy[queue] = q
        seq = q.pushes
        q.pushes += 1
        rank = -priority if self.aging is None else seq / self.aging - priority
        entry = Entry(item, queue, priority, cost, (rank, seq))
        heapq.heappush(q.heap, entry)
        q.live += 1
        self._len += 1
        return entry

    def pop(self) -> Entry[T]:
        """The next item; ``IndexError`` if there is none."""
        if not self._busy:
            raise IndexError("pop from an empty FairQueue")
        q = min(self._busy.values(), key=lambda q: (q.tag, q.since))
        entry = heapq.heappop(q.heap)
        while not entry.live:
            entry = heapq.heappop(q.heap)
        entry.live = False
        self._serve(q, entry.cost)
        self._taken(q)
        return entry

    def charge(self, queue: str, cost: float = 1.0) -> None:
        """Account for an item of ``queue`` served without waiting (an idle scheduler's fast path)."""
        q = self._queue(queue)
        if q.live == 0:
            q.tag = max(q.tag, self.vtime)
        self._serve(q, cost)

    def _serve(self, q: _Queue[T], cost: float) -> None:
        self.vtime = q.tag
        q.tag += cost / q.weight

    def _queue(self, name: str) -> _Queue[T]:
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = _Queue(name, self.weight(name))
        return q

    def remove(self, entry: Entry[T]) -> bool:
        """Take ``entry`` out (it stays in the heap until popped past). False if it already left."""
        if not entry.live:
            return False
        entry.live = False
        self._taken(self._queues[entry.queue])
        return True

    def _taken(self, q: _Queue[T]) -> None:
        q.live -= 1
        self._len -= 1
        if q.live == 0:
            q.heap.clear()
            del self._busy[q.name]


class Scheduler:
    """At most ``concurrency`` slots held at once; waiters served in ``FairQueue`` order.

        async with scheduler.slot(queue="tenant-a", priority=1):
            ...  # at most `concurrency` of these bodies run at the same time
    """

    def __init__(self, concurrency: int, weights: Mapping[str, float] | None = None, *,
                 aging: int | None = DEFAULT_AGING) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.running = 0
        self.waiting: FairQueue[asyncio.Future[None]] = FairQueue(weights, aging=aging)

    @property
    def queued(self) -> int:
        return len(self.waiting)

    async def acquire(self, queue: str = "default", priority: int = 0, cost: float = 1.0) -> None:
        """Wait for a slot (see the cancellation note in the module docstring)."""
        if self.running < self.concurrency and not self.waiting:
            self.running += 1
            self.waiting.charge(queue, cost)
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = self.waiting.push(granted, queue=queue, priority=priority, cost=cost)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # granted in the same instant: pass the slot on
            else:
                self.waiting.remove(entry)
            raise

    def release(self) -> None:
        self.running -= 1
        while self.running < self.concurrency and self.waiting:
            granted = self.waiting.pop().item
            if granted.done():  # its waiter was cancelled and has not yet left the queue
                continue
            self.running += 1
            granted.set_result(None)

    @asynccontextmanager
    async def slot(self, queue: str = "default", priority: int = 0, cost: float = 1.0) -> AsyncIterator[None]:
        await self.acquire(queue, priority, cost)
        try:
            yield
        finally:
            self.release()


def _check_weight(weight: float) -> float:
    if not weight > 0:
        raise ValueError(f"a queue's weight must be positive, not {weight!r}")
    return float(weight)
