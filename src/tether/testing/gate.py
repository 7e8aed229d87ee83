"""``Gate``: a ``ModelClient`` around another whose calls each wait for a permit.

Tests use it to hold runs in the middle of a model call and count them there, instead of timing:
``gate.waiting`` is how many calls wait now; ``gate.open(n)`` lets ``n`` of them through.
"""

from __future__ import annotations

import asyncio


class Gate:
    def __init__(self, inner) -> None:
        self.inner = inner
        self.permits = asyncio.Semaphore(0)
        self.waiting = 0

    @property
    def base_url(self) -> str:
        return self.inner.base_url

    async def _enter(self) -> None:
        self.waiting += 1
        try:
            await self.permits.acquire()
        finally:
            self.waiting -= 1

    async def stream(self, request):
        await self._enter()
        async for event in self.inner.stream(request):
            yield event

    async def create(self, request):
        await self._enter()
        return await self.inner.create(request)

    async def count_tokens(self, request):
        return await self.inner.count_tokens(request)

    def open(self, n: int = 1) -> None:
        for _ in range(n):
            self.permits.release()
