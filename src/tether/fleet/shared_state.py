"""Fleet state shared by every worker, in Redis: rate-limit buckets (and budgets, below).

``RedisBuckets`` implements ``tether.fleet.buckets.BucketStore``. Each operation is one Lua script,
so it is atomic however many workers call it at once. A key's buckets are one Redis hash,
``<prefix>buckets:<key>``, with fields ``<bucket>:cap``, ``<bucket>:level``, ``<bucket>:at`` and
``paused`` (an instant). Instants are Redis's own clock (``TIME``), the one clock every worker
shares: the ``now`` a caller passes is ignored, as the protocol allows, since each process's
monotonic clock means nothing to the others. A hash not touched for ``ttl`` seconds (a day by
default) expires; its buckets were full long before, and capacities are learned again from the
next response's headers.

Numbers cross the Lua boundary as strings (Redis would truncate a Lua number to an integer).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tether.errors import ConfigError
from tether.fleet.buckets import Amounts, Observed

try:
    import redis.asyncio as aioredis
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
    raise ConfigError("shared fleet state needs Redis: pip install 'tether[distributed]'") from exc

DAY = 86_400

# Shared by every script: the Redis clock, and a bucket read and refilled to now.
_PRELUDE = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local EPS = 1e-9
local function load(name)
  local cap = redis.call('HGET', key, name .. ':cap')
  if not cap then return nil end
  cap = tonumber(cap)
  local level = tonumber(redis.call('HGET', key, name .. ':level'))
  local at = tonumber(redis.call('HGET', key, name .. ':at'))
  if now > at then level = math.min(cap, level + (now - at) * cap / 60) end
  return cap, level
end
local function save(name, cap, level)
  redis.call('HSET', key, name .. ':cap', tostring(cap), name .. ':level', tostring(level), name .. ':at',
             tostring(now))
end
local function num(s) if s == '' then return nil end return tonumber(s) end
"""

# ARGV: ttl, then name, amount pairs. Returns the wait in seconds ('0' when taken, 'inf' if never).
_TAKE = _PRELUDE + """
local wait = math.max(0, tonumber(redis.call('HGET', key, 'paused') or '0') - now)
local seen = {}
for i = 2, #ARGV, 2 do
  local name, amount = ARGV[i], tonumber(ARGV[i + 1])
  local cap, level = load(name)
  if cap then
    local w = 0
    if amount > cap + EPS then return 'inf' end
    if level + EPS < amount then w = (amount - level) / (cap / 60) end
    if w > wait then wait = w end
    seen[#seen + 1] = {name, cap, level - amount}
  end
end
if wait > 0 then return tostring(wait) end
for _, b in ipairs(seen) do save(b[1], b[2], b[3]) end
redis.call('EXPIRE', key, ARGV[1])
return '0'
"""

# ARGV: ttl, then name, amount pairs.
_GIVE = _PRELUDE + """
for i = 2, #ARGV, 2 do
  local name, amount = ARGV[i], tonumber(ARGV[i + 1])
  local cap, level = load(name)
  if cap then save(name, cap, math.min(cap, level + amount)) end
end
redis.call('EXPIRE', key, ARGV[1])
return '0'
"""

# ARGV: ttl, then name, limit, ceiling triples ('' for none). Returns name, capacity, ... of every bucket.
_CORRECT = _PRELUDE + """
for i = 2, #ARGV, 3 do
  local name, limit, ceiling = ARGV[i], num(ARGV[i + 1]), num(ARGV[i + 2])
  local cap, level = load(name)
  if not cap then
    if limit and limit ~= 0 then
      save(name, limit, ceiling and math.min(limit, ceiling) or limit)
    end
  else
    if limit and limit ~= 0 then cap = limit end
    save(name, cap, math.min(level, ceiling and math.min(cap, ceiling) or cap))
  end
end
redis.call('EXPIRE', key, ARGV[1])
local out = {}
for _, field in ipairs(redis.call('HKEYS', key)) do
  local name = string.match(field, '^(.*):cap$')
  if name then out[#out + 1] = name; out[#out + 1] = redis.call('HGET', key, field) end
end
return out
"""

# ARGV: ttl, seconds.
_PAUSE = _PRELUDE + """
local paused = tonumber(redis.call('HGET', key, 'paused') or '0')
redis.call('HSET', key, 'paused', tostring(math.max(paused, now + tonumber(ARGV[2]))))
redis.call('EXPIRE', key, ARGV[1])
return '0'
"""

# No ARGV. Returns name, level, cap, ... for every bucket, refilled to now (nothing written).
_LEVELS = _PRELUDE + """
local out = {}
for _, field in ipairs(redis.call('HKEYS', key)) do
  local name = string.match(field, '^(.*):cap$')
  if name then
    local cap, level = load(name)
    out[#out + 1] = name; out[#out + 1] = tostring(level); out[#out + 1] = tostring(cap)
  end
end
return out
"""


def open_redis(url: str) -> aioredis.Redis:
    """A Redis client for ``url`` (``redis://host:6379/0``). Close it with ``await client.aclose()``."""
    return aioredis.Redis.from_url(url)


class RedisBuckets:
    """``BucketStore`` in Redis, shared by every process that uses the same ``prefix``."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = "tether:", ttl: int = DAY) -> None:
        self.client, self.prefix, self.ttl = client, prefix, ttl
        self._take = client.register_script(_TAKE)
        self._give = client.register_script(_GIVE)
        self._correct = client.register_script(_CORRECT)
        self._pause = client.register_script(_PAUSE)
        self._levels = client.register_script(_LEVELS)

    def _key(self, key: str) -> str:
        return f"{self.prefix}buckets:{key}"

    async def take(self, key: str, amounts: Amounts, now: float) -> float:
        wait = await self._take(keys=[self._key(key)], args=[self.ttl, *_pairs(amounts)])
        return math.inf if _text(wait) == "inf" else float(_text(wait))

    async def give(self, key: str, amounts: Amounts, now: float) -> None:
        await self._give(keys=[self._key(key)], args=[self.ttl, *_pairs(amounts)])

    async def correct(self, key: str, observed: Mapping[str, Observed], now: float) -> dict[str, float]:
        args: list[Any] = [self.ttl]
        for name, seen in observed.items():
            args += [name, _opt(seen.limit), _opt(seen.ceiling)]
        flat = [_text(v) for v in await self._correct(keys=[self._key(key)], args=args)]
        return {flat[i]: float(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def pause(self, key: str, seconds: float, now: float) -> None:
        await self._pause(keys=[self._key(key)], args=[self.ttl, repr(float(seconds))])

    async def levels(self, key: str) -> dict[str, tuple[float, float]]:
        """``{bucket: (level, capacity)}`` of ``key`` now (for metrics and tests)."""
        flat = [_text(v) for v in await self._levels(keys=[self._key(key)])]
        return {flat[i]: (float(flat[i + 1]), float(flat[i + 2])) for i in range(0, len(flat), 3)}


def _pairs(amounts: Amounts) -> list[str]:
    return [part for name, amount in amounts.items() for part in (name, repr(float(amount)))]


def _opt(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
