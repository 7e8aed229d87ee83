"""A process that competes for shared fleet state in Redis, for the two-process tests.

argv: redis URL, key prefix, seconds.

It connects, prints ``ready``, and waits for a line on stdin. Then, for ``seconds``, it takes one
request at a time from the bucket set ``shared`` (waiting as ``take`` says); then it reserves $0.10
at a time from the scopes ``run:x`` and ``fleet``, settling each at the full amount, until refused.
It prints how many requests and how many reservations it got.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from decimal import Decimal

from tether.fleet.shared_state import RedisBuckets, RedisBudgets, open_redis


async def take(buckets: RedisBuckets, seconds: float) -> int:
    got, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        wait = await buckets.take("shared", {"requests": 1}, time.monotonic())
        if wait == 0:
            got += 1
        else:
            await asyncio.sleep(min(wait, 0.02))
    return got


async def spend(budgets: RedisBudgets) -> int:
    got = 0
    while True:
        hold = uuid.uuid4().hex
        if await budgets.reserve(hold, ["run:x", "fleet"], Decimal("0.10")) is not None:
            return got
        got += 1
        await budgets.settle(hold, Decimal("0.10"))


async def main(url: str, prefix: str, seconds: float) -> tuple[int, int]:
    redis = open_redis(url)
    try:
        await redis.ping()
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        requests = await take(RedisBuckets(redis, prefix=prefix), seconds)
        return requests, await spend(RedisBudgets(redis, prefix=prefix))
    finally:
        await redis.aclose()


if __name__ == "__main__":
    url, prefix, seconds = sys.argv[1:4]
    print(*asyncio.run(main(url, prefix, float(seconds))))
