"""The fake API's rate-limit model, driven by a ManualClock (rules in tether.testing.fake.ratelimit)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from tether.api.catalog import default_catalog
from tether.testing.fake.cache import CacheModel
from tether.testing.fake.clock import ManualClock, rfc3339
from tether.testing.fake.ratelimit import Limits, RateLimiter

LIMITS = Limits(requests_per_minute=60, input_tokens_per_minute=60_000, output_tokens_per_minute=6_000)
M = "claude-opus-4-8"
NAMES = ("requests", "tokens", "input-tokens", "output-tokens")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def limiter(clock: ManualClock) -> RateLimiter:
    return RateLimiter(clock, LIMITS, round_remaining=False)


def remaining(headers: dict[str, str], name: str) -> int:
    return int(headers[f"anthropic-ratelimit-{name}-remaining"])


def test_buckets_refill_continuously(limiter: RateLimiter, clock: ManualClock) -> None:
    got = limiter.admit("k", M, input_tokens=30_000, max_tokens=1_000)
    assert got.allowed and got.retry_after is None and got.limited_by is None
    assert (remaining(got.headers, "input-tokens"), remaining(got.headers, "output-tokens")) == (
        30_000,
        5_000,
    )
    assert remaining(got.headers, "requests") == 59
    clock.advance(10)  # +10,000 input, +1,000 output (capped at 6,000), +10 requests (capped at 60)
    now = limiter.headers("k", M)
    assert (remaining(now, "input-tokens"), remaining(now, "output-tokens"), remaining(now, "requests")) == (
        40_000,
        6_000,
        60,
    )
    clock.advance(0.5)
    assert remaining(limiter.headers("k", M), "input-tokens") == 40_500


def test_retry_after_is_exactly_the_time_to_refill(limiter: RateLimiter, clock: ManualClock) -> None:
    assert limiter.admit("k", M, 60_000, 1).allowed
    refused = limiter.admit("k", M, 5_000, 1)
    assert not refused.allowed and refused.limited_by == "input_tokens"
    assert refused.retry_after == pytest.approx(5.0)
    assert refused.headers["retry-after"] == "5"
    clock.advance(4.99)
    assert not limiter.admit("k", M, 5_000, 1).allowed
    clock.advance(refused.retry_after - 4.99)
    assert limiter.admit("k", M, 5_000, 1).allowed


def test_retry_after_header_rounds_up(limiter: RateLimiter) -> None:
    assert limiter.admit("k", M, 59_000, 1).allowed
    refused = limiter.admit("k", M, 1_500, 1)  # short by 500 tokens at 1,000/s
    assert refused.retry_after == pytest.approx(0.5)
    assert refused.headers["retry-after"] == "1"


def test_the_binding_bucket_is_the_one_with_the_longest_wait(clock: ManualClock) -> None:
    limiter = RateLimiter(clock, Limits(2, 60_000, 6_000), round_remaining=False)
    assert limiter.admit("k", M, 59_000, 5_900).allowed
    refused = limiter.admit("k", M, 2_000, 300)  # input short 1 s, output short 2 s, requests fine
    assert (refused.limited_by, refused.retry_after) == ("output_tokens", pytest.approx(2.0))
    assert limiter.admit("k", M, 1, 1).allowed
    requests = limiter.admit("k", M, 1, 1)  # RPM 2 refills one request every 30 s
    assert (requests.limited_by, requests.retry_after) == ("requests", pytest.approx(30.0))


def test_a_refused_request_consumes_nothing(limiter: RateLimiter) -> None:
    assert limiter.admit("k", M, 58_000, 100).allowed
    before = limiter.headers("k", M)
    for _ in range(3):
        assert not limiter.admit("k", M, 10_000, 100).allowed
    assert limiter.headers("k", M) == before
    assert limiter.admit("k", M, 2_000, 100).allowed


def test_cache_reads_do_not_count_toward_input_tokens(limiter: RateLimiter) -> None:
    cache = CacheModel(ManualClock())
    info = replace(default_catalog().get(M), min_cache_tokens=1024)
    prompt = "x" * 4 * 50_000  # a 50,000-token system prompt, cached
    req = {
        "model": M,
        "max_tokens": 10,
        "system": [{"type": "text", "text": prompt, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}],
    }
    for expect_read in (False, True, True):
        plan = cache.lookup("k", req, info)
        plan.commit()
        usage = plan.usage
        assert (usage.cache_read_input_tokens > 0) is expect_read
        counted = usage.input_tokens + usage.cache_creation_input_tokens
        assert limiter.admit("k", M, counted, 10).allowed  # the whole prompt twice would exceed 60,000
    assert remaining(limiter.headers("k", M), "input-tokens") < 10_000 + 10


def test_settle_returns_the_unused_output_estimate(limiter: RateLimiter) -> None:
    got = limiter.admit("k", M, 1_000, 4_000)
    assert remaining(got.headers, "output-tokens") == 2_000
    got.settle(500)
    assert remaining(limiter.headers("k", M), "output-tokens") == 5_500
    got.settle(0)  # a second settlement is ignored
    assert remaining(limiter.headers("k", M), "output-tokens") == 5_500
    refused = limiter.admit("k", M, 100_000, 10)
    refused.settle(0)
    assert remaining(limiter.headers("k", M), "output-tokens") == 5_500


def test_output_beyond_the_estimate_is_debt(clock: ManualClock) -> None:
    limiter = RateLimiter(clock, Limits(60, 60_000, 1_200), round_remaining=False)
    got = limiter.admit("k", M, 10, 64_000)  # estimated as the whole bucket, so it can pass at all
    assert got.allowed and remaining(got.headers, "output-tokens") == 0
    got.settle(1_800)  # 600 tokens of debt
    assert remaining(limiter.headers("k", M), "output-tokens") == 0
    refused = limiter.admit("k", M, 10, 100)
    assert refused.retry_after == pytest.approx(35.0)  # (600 + 100) / 20 per second


def test_input_above_the_limit_can_never_pass(limiter: RateLimiter) -> None:
    refused = limiter.admit("k", M, 60_001, 1)
    assert (refused.allowed, refused.retry_after, refused.limited_by) == (False, None, "input_tokens")
    assert "retry-after" not in refused.headers


def test_headers_are_the_twelve_with_rfc3339_resets(limiter: RateLimiter, clock: ManualClock) -> None:
    got = limiter.admit("k", M, 30_000, 1_000)
    expected = {f"anthropic-ratelimit-{n}-{f}" for n in NAMES for f in ("limit", "remaining", "reset")}
    assert set(got.headers) == expected
    assert got.headers["anthropic-ratelimit-input-tokens-limit"] == "60000"
    assert got.headers["anthropic-ratelimit-requests-limit"] == "60"
    for name in NAMES:
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got.headers[f"anthropic-ratelimit-{name}-reset"]
        )
    # ManualClock's time 0 is 2026-11-21T00:00:00Z; 30,000 tokens refill in 30 s, 1,000 in 10 s.
    assert got.headers["anthropic-ratelimit-input-tokens-reset"] == "2026-11-21T00:00:30Z"
    assert got.headers["anthropic-ratelimit-output-tokens-reset"] == "2026-11-21T00:00:10Z"
    assert got.headers["anthropic-ratelimit-requests-reset"] == "2026-11-21T00:00:01Z"
    clock.advance(0.25)  # 29,750 tokens left to refill: 29.75 s, printed rounded up
    assert limiter.headers("k", M)["anthropic-ratelimit-input-tokens-reset"] == "2026-11-21T00:00:30Z"
    clock.advance(60)
    full = limiter.headers("k", M)
    assert full["anthropic-ratelimit-input-tokens-reset"] == rfc3339(clock.now() + clock.wall_offset)


def test_token_remaining_is_rounded_to_the_nearest_thousand(clock: ManualClock) -> None:
    limiter = RateLimiter(clock, LIMITS)
    got = limiter.admit("k", M, 29_501, 10)  # 30,499 left
    assert got.headers["anthropic-ratelimit-input-tokens-remaining"] == "30000"
    assert got.headers["anthropic-ratelimit-output-tokens-remaining"] == "6000"  # 5,990
    assert got.headers["anthropic-ratelimit-requests-remaining"] == "59"  # requests are never rounded
    clock.advance(0.001)  # +1 token: 30,500 left
    assert limiter.headers("k", M)["anthropic-ratelimit-input-tokens-remaining"] == "31000"


def test_tokens_headers_repeat_the_more_restrictive_bucket(limiter: RateLimiter) -> None:
    fresh = limiter.headers("k", M)  # both full: the smaller one
    assert fresh["anthropic-ratelimit-tokens-limit"] == "6000"
    got = limiter.admit("k", M, 30_000, 600)  # input 50 % left, output 90 % left
    for field in ("limit", "remaining", "reset"):
        assert (
            got.headers[f"anthropic-ratelimit-tokens-{field}"]
            == got.headers[f"anthropic-ratelimit-input-tokens-{field}"]
        )


def test_limits_are_per_model_per_key_and_per_pool(clock: ManualClock) -> None:
    small = Limits(1, 1_000, 1_000)
    limiter = RateLimiter(
        clock,
        LIMITS,
        {"claude-haiku-4-5": small, "opus": small},
        pools={"claude-opus-4-8": "opus", "claude-opus-4-7": "opus"},
    )
    assert limiter.limits_for("claude-haiku-4-5") == small and limiter.limits_for(M) == small
    assert limiter.limits_for("claude-sonnet-4-6") == LIMITS
    assert limiter.admit("k", "claude-haiku-4-5", 10, 10).allowed
    assert not limiter.admit("k", "claude-haiku-4-5", 10, 10).allowed
    assert limiter.admit("other-key", "claude-haiku-4-5", 10, 10).allowed
    assert limiter.admit("k", "claude-sonnet-4-6", 10, 10).allowed
    assert limiter.admit("k", "claude-opus-4-8", 10, 10).allowed
    shared = limiter.admit("k", "claude-opus-4-7", 10, 10)  # same pool as opus-4-8
    assert (shared.allowed, shared.limited_by) == (False, "requests")
