"""Fleet state shared by every worker, in Redis: rate-limit buckets and dollar budgets.

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
from collections.abc import Mapping, Sequence
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from typing import Any

from tether.errors import ConfigError
from tether.fleet.buckets import Amounts, Observed
from tether.fleet.budget import BudgetStatus

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


# Budgets. Amounts are integers of nano-dollars (exact in Lua's doubles up to $9M, and in HINCRBY).
# KEYS: limits (hash scope -> nanos, '' for "no limit"), spent (hash), held (hash), holds (hash
# hold -> "amount\nscope\nscope…"), deadlines (zset hold -> instant it lapses).
_BUDGET_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function limit_of(scope)
  local own = redis.call('HGET', KEYS[1], scope)
  if own then return tonumber(own) end  -- '' (no limit) is nil
  local best, length = nil, -1
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local k = all[i]
    if string.sub(k, -1) == '*' and #k - 1 > length and string.sub(scope, 1, #k - 1) == string.sub(k, 1, -2) then
      best, length = all[i + 1], #k - 1
    end
  end
  return best and tonumber(best)
end
local function used(scope)
  return tonumber(redis.call('HGET', KEYS[2], scope) or '0') + tonumber(redis.call('HGET', KEYS[3], scope) or '0')
end
local function settle(hold, amount)
  local record = redis.call('HGET', KEYS[4], hold)
  if not record then return end
  local held, spent = nil, amount
  for part in string.gmatch(record, '[^\\n]+') do
    if held == nil then
      held = tonumber(part)
      if spent == nil then spent = held end
    else
      redis.call('HINCRBY', KEYS[3], part, -held)
      redis.call('HINCRBY', KEYS[2], part, spent)
    end
  end
  redis.call('HDEL', KEYS[4], hold)
  redis.call('ZREM', KEYS[5], hold)
end
-- Holds whose worker never settled them (it died mid-call) lapse, spent at what they held.
for _, hold in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, 100)) do settle(hold, nil) end
"""

# ARGV: hold, amount, ttl, scopes... Returns the first scope it does not fit, or nil.
_RESERVE = _BUDGET_PRELUDE + """
local amount = tonumber(ARGV[2])
for i = 4, #ARGV do
  local limit = limit_of(ARGV[i])
  if limit and used(ARGV[i]) + amount > limit then return ARGV[i] end
end
local record = ARGV[2]
for i = 4, #ARGV do
  redis.call('HINCRBY', KEYS[3], ARGV[i], amount)
  record = record .. '\\n' .. ARGV[i]
end
redis.call('HSET', KEYS[4], ARGV[1], record)
redis.call('ZADD', KEYS[5], now + tonumber(ARGV[3]), ARGV[1])
return false
"""

# ARGV: hold, amount.
_SETTLE = _BUDGET_PRELUDE + """
settle(ARGV[1], tonumber(ARGV[2]))
return 0
"""

# ARGV: scope. Returns limit ('' for none), spent, held.
_STATUS = _BUDGET_PRELUDE + """
local limit = limit_of(ARGV[1])
return {limit and string.format('%.0f', limit) or '', redis.call('HGET', KEYS[2], ARGV[1]) or '0',
        redis.call('HGET', KEYS[3], ARGV[1]) or '0'}
"""

NANO = Decimal(10) ** 9


class RedisBudgets:
    """``BudgetLedger`` in Redis, shared by every process that uses the same ``prefix``.

    Limits work as in ``Budgets``: a scope's own limit (``None`` included: no limit), else the
    longest ``"<prefix>*"`` limit that matches it.
    A hold not settled within ``hold_ttl`` seconds (its worker died during the call) lapses and is
    counted as spent in full: the call may have been billed, and a budget is a ceiling, so the
    ledger errs on the side of spending less. Lapsed holds are swept by every operation.
    """

    def __init__(self, client: aioredis.Redis, *, prefix: str = "tether:", hold_ttl: float = 900.0) -> None:
        self.client, self.hold_ttl = client, hold_ttl
        self._keys = [f"{prefix}budget:{name}" for name in ("limits", "spent", "held", "holds", "deadlines")]
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._status = client.register_script(_STATUS)

    async def reserve(self, hold: str, scopes: Sequence[str], amount: Decimal) -> str | None:
        if bad := [s for s in scopes if not s or "\n" in s]:
            raise ValueError(f"a budget scope is a non-empty name without line breaks, not {bad[0]!r}")
        refused = await self._reserve(keys=self._keys,
                                      args=[hold, _nanos(amount, ROUND_CEILING), repr(self.hold_ttl), *scopes])
        return None if refused is None else _text(refused)

    async def settle(self, hold: str, amount: Decimal) -> None:
        await self._settle(keys=self._keys, args=[hold, _nanos(amount)])

    async def status(self, scope: str) -> BudgetStatus:
        limit, spent, held = (_text(v) for v in await self._status(keys=self._keys, args=[scope]))
        return BudgetStatus(scope, Decimal(limit) / NANO if limit else None, Decimal(spent) / NANO,
                            Decimal(held) / NANO)

    async def set_limit(self, scope: str, limit: Decimal | float | str | None) -> None:
        await self.client.hset(self._keys[0], scope, "" if limit is None else _nanos(Decimal(str(limit))))


def _nanos(amount: Decimal, rounding: str = ROUND_HALF_EVEN) -> str:
    return str(int((Decimal(amount) * NANO).to_integral_value(rounding=rounding)))
