"""The process every ``tether`` command runs in.

- The event loop is uvloop when it is installed (everywhere but Windows), which costs about half as
  much CPU per socket operation as asyncio's own loop.
- The garbage collector is told what a long-running agent process looks like: what is alive when the
  command starts (modules, settings, catalogs) lives as long as the process, so it is frozen out of
  every collection, and the young generation is collected every 10,000 allocations instead of 700.
  A fleet holds many runs' conversations: with Python's defaults, full collections scanned them all
  over and over and took a quarter of a busy fleet's CPU, in pauses of up to half a second
  (``bench/concurrency.py``). Code that embeds a ``Fleet`` in its own process can call ``tune_gc()``.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
YOUNG_GENERATION = 10_000


def tune_gc(young: int = YOUNG_GENERATION) -> None:
    """Freeze what is alive now out of the garbage collector's scans; collect the young generation
    every ``young`` allocations."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, *gc.get_threshold()[1:])


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` after ``tune_gc()``, on uvloop if it is installed."""
    tune_gc()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
