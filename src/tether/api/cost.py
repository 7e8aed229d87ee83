"""Dollars from usage, exactly: prices are per million tokens, computed in decimal arithmetic."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from tether.api.catalog import ModelInfo, Prices
from tether.api.types import Usage

_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Cost:
    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal

    @property
    def total(self) -> Decimal:
        return self.input + self.output + self.cache_read + self.cache_write_5m + self.cache_write_1h

    @property
    def dollars(self) -> float:
        return float(self.total)


@lru_cache(maxsize=256)
def _per_token(per_million: float) -> Decimal:
    """A catalog price (a float such as 0.3) as the decimal it is written as, per token."""
    return Decimal(str(per_million)) / _MILLION


def _dollars(tokens: int, per_million: float) -> Decimal:
    return tokens * _per_token(per_million)


def cost_of(usage: Usage, model: ModelInfo) -> Cost:
    """The price of one response. The 5m/1h cache-write split is billed at each TTL's rate."""
    prices: Prices = model.prices_for(usage.prompt_tokens)
    unsplit = usage.cache_creation_input_tokens - usage.cache_write_5m_tokens - usage.cache_write_1h_tokens
    return Cost(
        input=_dollars(usage.input_tokens, prices.input),
        output=_dollars(usage.output_tokens, prices.output),
        cache_read=_dollars(usage.cache_read_input_tokens, prices.cache_read),
        cache_write_5m=_dollars(usage.cache_write_5m_tokens + max(unsplit, 0), prices.cache_write_5m),
        cache_write_1h=_dollars(usage.cache_write_1h_tokens, prices.cache_write_1h),
    )
