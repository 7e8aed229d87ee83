"""``AnthropicClient`` on the fake API: what a streamed call sends, its retries before the stream
starts (the SDK's rules), and each failure as tether's error."""

from __future__ import annotations

import anthropic
import pytest

from tether import AnthropicClient
from tether.api.client import backoff
from tether.api.stream import MessageComplete
from tether.api.types import Message, MessagesRequest
from tether.errors import APIConnectionError, APIStatusError
from tether.testing import ErrorResponse, Reset, ResetMidStream, overloaded, rate_limited
from tether.testing.process import free_port

REQUEST = MessagesRequest(model="claude-opus-4-8", max_tokens=100, messages=[Message.user("hi")])


async def answer(client: AnthropicClient, request: MessagesRequest = REQUEST) -> str:
    events = [event async for event in client.stream(request)]
    assert isinstance(events[-1], MessageComplete)
    return events[-1].response.message.text


async def test_a_stream_carries_the_sdks_headers_and_the_requests_betas(fake, key):
    fake.script(["hello"], key=key)
    async with AnthropicClient(api_key=key, base_url=fake.base_url, default_headers={"x-team": "blue"}) as client:
        request = MessagesRequest(model="claude-opus-4-8", max_tokens=100, messages=[Message.user("hi")],
                                  betas=["context-1m-2025-08-07"])
        assert await answer(client, request) == "hello"
    [sent] = fake.requests_for(key)
    sdk = anthropic.AsyncAnthropic(api_key=key)
    assert sent.header("anthropic-version") == sdk.default_headers["anthropic-version"]
    assert sent.header("user-agent") == sdk.user_agent
    assert sent.header("x-team") == "blue" and sent.header("anthropic-beta") == "context-1m-2025-08-07"
    assert sent.header("x-stainless-retry-count") == "0"
    assert sent.json()["stream"] is True and sent.json()["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "hi"}]}]


@pytest.mark.parametrize("fault,status", [(rate_limited(0.01), 429), (overloaded(retry_after=0.01), 529),
                                          (Reset(), 0)])  # 0: the connection was reset
async def test_a_stream_refused_before_it_starts_is_retried_up_to_max_retries(fake, key, fault, status):
    fake.fail_next(fault, fault, key=key)
    fake.script(["third time lucky"], key=key)
    async with AnthropicClient(api_key=key, base_url=fake.base_url, max_retries=2) as client:
        assert await answer(client) == "third time lucky"
    sent = fake.requests_for(key)
    assert [r.status for r in sent] == [status, status, 200]
    assert [r.header("x-stainless-retry-count") for r in sent] == ["0", "1", "2"]


async def test_the_last_refusal_is_raised_as_tethers_error_with_what_the_api_said(fake, key):
    fake.fail_next(rate_limited(0.01), rate_limited(7), key=key)
    async with AnthropicClient(api_key=key, base_url=fake.base_url, max_retries=1) as client:
        with pytest.raises(APIStatusError) as caught:
            await answer(client)
    error = caught.value
    assert (error.status_code, error.error_type, error.retry_after) == (429, "rate_limit_error", 7.0)
    assert error.request_id == fake.requests_for(key)[-1].request_id and error.retryable
    assert str(error).startswith("429 rate_limit_error: ")
    assert key not in str(error)


async def test_what_must_not_be_retried_is_raised_at_once(fake, key):
    fake.fail_next(ErrorResponse(429, "rate_limit_error", "spend cap", should_retry=False), key=key)
    fake.fail_next(ErrorResponse(400, "invalid_request_error", "bad field"), key=key)
    async with AnthropicClient(api_key=key, base_url=fake.base_url, max_retries=3) as client:
        for status in (429, 400):
            with pytest.raises(APIStatusError) as caught:
                await answer(client)
            assert caught.value.status_code == status and not caught.value.retryable
    assert len(fake.requests_for(key)) == 2


async def test_a_stream_cut_after_it_started_is_a_connection_error_and_not_retried_here(fake, key):
    fake.fail_next(ResetMidStream(after_events=3), key=key)
    fake.script(["All work and no play makes a dull stream. " * 8], key=key)
    async with AnthropicClient(api_key=key, base_url=fake.base_url, max_retries=2) as client:
        with pytest.raises(APIConnectionError, match="connection"):
            await answer(client)
    assert len(fake.requests_for(key)) == 1  # a retry of a started stream is RetryingClient's to announce


async def test_nothing_listening_is_a_connection_error_after_the_retries():
    async with AnthropicClient(api_key="k", base_url=f"http://127.0.0.1:{free_port()}", max_retries=1) as client:
        with pytest.raises(APIConnectionError, match="connection to the Messages API failed"):
            await answer(client)


def test_backoff_follows_the_sdks_formula_and_the_apis_retry_after():
    limited = APIStatusError("429", status_code=429, error_type="rate_limit_error", retry_after=3.0)
    busy = APIStatusError("529", status_code=529, error_type="overloaded_error")
    assert backoff(limited, 0) == 3.0
    assert backoff(limited, 0, max_retry_after=2.0) is None
    assert [backoff(busy, n, jitter=0.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert 0.375 <= backoff(busy, 0) <= 0.5
    assert backoff(APIStatusError("400", status_code=400, error_type="invalid_request_error"), 0) is None
    assert backoff(APIConnectionError("reset"), 0, jitter=0.0) == 0.5
    assert backoff(ValueError("not the API's"), 0) is None


async def test_a_proxy_named_by_the_environment_carries_the_streams(fake, key, monkeypatch):
    # The fake API stands in for the proxy: the base URL names a port nothing listens on.
    monkeypatch.setenv("HTTP_PROXY", fake.base_url)
    fake.script(["through the proxy"], key=key)
    async with AnthropicClient(api_key=key, base_url=f"http://127.0.0.1:{free_port()}", max_retries=0) as client:
        assert await answer(client) == "through the proxy"
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with AnthropicClient(api_key=key, base_url=f"http://127.0.0.1:{free_port()}", max_retries=0) as client:
        with pytest.raises(APIConnectionError):
            await answer(client)
