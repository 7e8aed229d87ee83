"""Headers on every response (reference §5, §9.3) and the rate-limit model behind them."""

from __future__ import annotations

import datetime as dt
import re

import anthropic
import pytest

from tether.testing import FakeAPI, Limits, ManualClock

MODEL = "claude-opus-4-8"
USER = [{"role": "user", "content": "hi"}]
KINDS = ("requests", "tokens", "input-tokens", "output-tokens")
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def assert_standard_headers(headers) -> None:
    assert headers["request-id"].startswith("req_")
    assert headers["anthropic-organization-id"]
    for kind in KINDS:
        assert int(headers[f"anthropic-ratelimit-{kind}-limit"]) > 0
        assert int(headers[f"anthropic-ratelimit-{kind}-remaining"]) >= 0
        assert RFC3339.fullmatch(headers[f"anthropic-ratelimit-{kind}-reset"])
    assert len([h for h in headers if h.startswith("anthropic-ratelimit-")]) == 12


def test_successful_responses_carry_all_headers(client):
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=10, messages=USER)
    assert_standard_headers(raw.headers)
    with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=10, messages=USER, stream=True
    ) as r:
        assert_standard_headers(r.headers)
    assert_standard_headers(
        client.messages.with_raw_response.count_tokens(model=MODEL, messages=USER).headers
    )
    assert_standard_headers(client.models.with_raw_response.list().headers)


@pytest.mark.parametrize(
    "headers,body,status",
    [
        ({}, {"model": MODEL, "max_tokens": 1, "messages": USER}, 401),
        ({"anthropic-version": "2026-10-21"}, {"model": MODEL, "messages": USER}, 400),
        (
            {"anthropic-version": "2026-10-21"},
            {"model": "claude-nope", "max_tokens": 1, "messages": USER},
            404,
        ),
    ],
)
def test_error_responses_carry_all_headers(http, key, headers, body, status):
    auth = {"x-api-key": key} if status != 401 else {}
    response = http.post("/v1/messages", headers={**auth, **headers}, json=body)
    assert response.status_code == status
    assert_standard_headers(response.headers)
    assert response.json()["request_id"] == response.headers["request-id"]


def test_rate_limits_refuse_with_retry_after_and_recover_when_the_clock_moves():
    clock = ManualClock()
    with FakeAPI(clock=clock, limits=Limits(2, 1_000_000, 100_000)) as fake:
        client = anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0)
        for expected_remaining in ("1", "0"):
            raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=10, messages=USER)
            assert raw.headers["anthropic-ratelimit-requests-remaining"] == expected_remaining
        with pytest.raises(anthropic.RateLimitError) as caught:
            client.messages.create(model=MODEL, max_tokens=10, messages=USER)
        error = caught.value
        assert error.type == "rate_limit_error" and "2 requests per minute" in error.api_message
        assert int(error.response.headers["retry-after"]) == 30
        assert_standard_headers(error.response.headers)
        reset = dt.datetime.fromisoformat(error.response.headers["anthropic-ratelimit-requests-reset"])
        assert reset.timestamp() == pytest.approx(clock.wall_offset + 60, abs=1)
        clock.advance(30)
        assert client.messages.create(model=MODEL, max_tokens=10, messages=USER).content


def test_limits_are_per_key(fake: FakeAPI, key):
    fake.set_limits(Limits(1, 1_000_000, 100_000), key=key)
    limited = anthropic.Anthropic(base_url=fake.base_url, api_key=key, max_retries=0)
    other = anthropic.Anthropic(base_url=fake.base_url, api_key=f"{key}-other", max_retries=0)
    limited.messages.create(model=MODEL, max_tokens=10, messages=USER)
    with pytest.raises(anthropic.RateLimitError):
        limited.messages.create(model=MODEL, max_tokens=10, messages=USER)
    assert other.messages.create(model=MODEL, max_tokens=10, messages=USER).content


def test_output_tokens_are_reserved_then_settled():
    clock = ManualClock()
    with FakeAPI(clock=clock, limits=Limits(100, 1_000_000, 50_000)) as fake:
        fake.script(["tiny"])
        client = anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0)
        client.messages.create(model=MODEL, max_tokens=20_000, messages=USER)
        after = client.messages.with_raw_response.count_tokens(model=MODEL, messages=USER).headers
        assert (
            after["anthropic-ratelimit-output-tokens-remaining"] == "50000"
        )  # 20K reserved, ~4 used, rounded
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(model=MODEL, max_tokens=60_000, messages=USER, stream=True)
