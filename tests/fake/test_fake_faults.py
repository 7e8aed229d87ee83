"""Fault injection, seen through the SDK: retries, connection errors, mid-stream failures, timing."""

from __future__ import annotations

import time

import anthropic
import httpx2
import pytest

from tether.testing import (
    ErrorResponse,
    FakeAPI,
    Reset,
    ResetMidStream,
    SlowFirstToken,
    Stall,
    StreamError,
    TokenDelay,
    overloaded,
    rate_limited,
    server_error,
)
from tether.testing.fake.cache import CacheModel

MODEL = "claude-opus-4-8"
USER = [{"role": "user", "content": "hi"}]
LONG = "All work and no play makes a dull stream. " * 8


def _retrying(fake: FakeAPI, key: str, retries: int = 2) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.base_url, api_key=key, max_retries=retries)


@pytest.mark.parametrize(
    "fault", [rate_limited(0.01), overloaded(retry_after=0.01), server_error(retry_after=0.01)]
)
def test_the_sdk_retries_429_529_and_500(fake: FakeAPI, key, fault):
    fake.fail_next(fault, fault, key=key)
    fake.script(["third time lucky"], key=key)
    message = _retrying(fake, key).messages.create(model=MODEL, max_tokens=50, messages=USER)
    assert message.content[0].text == "third time lucky"
    sent = fake.requests_for(key)
    assert [r.status for r in sent] == [fault.status, fault.status, 200]
    assert [r.header("x-stainless-retry-count") for r in sent] == ["0", "1", "2"]


@pytest.mark.parametrize(
    "fault,error_class,error_type",
    [
        (rate_limited(0.01), anthropic.RateLimitError, "rate_limit_error"),
        (overloaded(), anthropic.OverloadedError, "overloaded_error"),
        (server_error(), anthropic.InternalServerError, "api_error"),
        (
            ErrorResponse(504, "timeout_error", "Gateway timeout"),
            anthropic.GatewayTimeoutError,
            "timeout_error",
        ),
        (
            ErrorResponse(402, "billing_error", "Payment required"),
            anthropic.PaymentRequiredError,
            "billing_error",
        ),
        (
            ErrorResponse(403, "permission_error", "Forbidden"),
            anthropic.PermissionDeniedError,
            "permission_error",
        ),
        (ErrorResponse(409, "conflict_error", "Conflict"), anthropic.ConflictError, "conflict_error"),
    ],
)
def test_each_error_status_maps_to_its_sdk_class(fake: FakeAPI, key, client, fault, error_class, error_type):
    fake.fail_next(fault, key=key)
    with pytest.raises(error_class) as caught:
        client.messages.create(model=MODEL, max_tokens=50, messages=USER)
    assert caught.value.type == error_type and caught.value.status_code == fault.status
    assert caught.value.request_id == caught.value.response.headers["request-id"]


def test_429_carries_retry_after(fake: FakeAPI, key, client):
    fake.fail_next(rate_limited(7), key=key)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model=MODEL, max_tokens=50, messages=USER)
    assert caught.value.response.headers["retry-after"] == "7"


def test_x_should_retry_false_stops_the_sdk_retrying(fake: FakeAPI, key):
    fake.fail_next(ErrorResponse(429, "rate_limit_error", "spend cap", should_retry=False), key=key)
    with pytest.raises(anthropic.RateLimitError):
        _retrying(fake, key).messages.create(model=MODEL, max_tokens=50, messages=USER)
    assert len(fake.requests_for(key)) == 1


def test_a_reset_before_the_response_is_a_connection_error(fake: FakeAPI, key, client):
    fake.fail_next(Reset(), key=key)
    with pytest.raises(anthropic.APIConnectionError) as caught:
        client.messages.create(model=MODEL, max_tokens=50, messages=USER)
    assert isinstance(caught.value.__cause__, httpx2.ReadError | httpx2.RemoteProtocolError)


def test_the_sdk_retries_a_reset(fake: FakeAPI, key):
    fake.fail_next(Reset(), key=key)
    fake.script(["after the reset"], key=key)
    message = _retrying(fake, key, retries=1).messages.create(model=MODEL, max_tokens=50, messages=USER)
    assert message.content[0].text == "after the reset"
    assert [r.status for r in fake.requests_for(key)] == [0, 200]


def test_a_reset_mid_stream_breaks_the_iteration(fake: FakeAPI, key, client):
    fake.fail_next(ResetMidStream(after_events=4), key=key)
    fake.script([LONG], key=key)
    seen = []
    with (
        pytest.raises(httpx2.TransportError),
        client.messages.stream(model=MODEL, max_tokens=500, messages=USER) as stream,
    ):
        seen.extend(event.type for event in stream)
    assert seen[0] == "message_start" and "message_stop" not in seen


def test_a_reset_in_a_non_streaming_body_is_a_retried_connection_error(fake: FakeAPI, key, client):
    fake.fail_next(ResetMidStream(), key=key)
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(model=MODEL, max_tokens=50, messages=USER)


def test_an_error_event_mid_stream_raises_status_200_and_is_not_retried(fake: FakeAPI, key):
    fake.fail_next(StreamError(after_events=5, error_type="overloaded_error", message="Overloaded"), key=key)
    fake.script([LONG], key=key)
    client = _retrying(fake, key)
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(model=MODEL, max_tokens=500, messages=USER) as s,
    ):
        s.get_final_message()
    assert caught.value.status_code == 200 and caught.value.type == "overloaded_error"
    assert len(fake.requests_for(key)) == 1


def test_an_error_event_on_the_wire(fake: FakeAPI, key, raw_stream):
    fake.fail_next(StreamError(after_events=3, error_type="api_error", message="boom"), key=key)
    events = raw_stream()
    assert events[-1] == ("error", {"type": "error", "error": {"type": "api_error", "message": "boom"}})
    assert [name for name, _ in events[:3]] == ["message_start", "ping", "content_block_start"]


def test_a_stalled_stream_times_the_reader_out(fake: FakeAPI, key):
    fake.fail_next(Stall(seconds=5, after_events=3), key=key)
    fake.script([LONG], key=key)
    client = anthropic.Anthropic(
        base_url=fake.base_url, api_key=key, max_retries=0, timeout=httpx2.Timeout(5, read=0.2)
    )
    started = time.monotonic()
    with (
        pytest.raises(httpx2.ReadTimeout),
        client.messages.stream(model=MODEL, max_tokens=500, messages=USER) as s,
    ):
        s.get_final_message()
    assert time.monotonic() - started < 2


def test_a_short_stall_then_the_stream_completes(fake: FakeAPI, key, client):
    fake.fail_next(Stall(seconds=0.2, after_events=3), key=key)
    fake.script([LONG], key=key)
    started = time.monotonic()
    with client.messages.stream(model=MODEL, max_tokens=500, messages=USER) as s:
        assert s.get_final_message().content[0].text == LONG
    assert time.monotonic() - started >= 0.2


def test_slow_first_token_delays_message_start_after_the_headers(fake: FakeAPI, key, client):
    fake.fail_next(SlowFirstToken(0.3), key=key)
    started = time.monotonic()
    stream = client.messages.create(model=MODEL, max_tokens=50, messages=USER, stream=True)
    headers_at = time.monotonic() - started
    next(iter(stream))
    first_event_at = time.monotonic() - started
    stream.close()
    assert headers_at < 0.25 <= first_event_at


def test_the_first_tokens_delay_counts_from_the_requests_arrival(fake: FakeAPI, key, client, monkeypatch):
    lookup = CacheModel.lookup

    def slow_lookup(*args, **kwargs):  # the fake's own work on the request, before the model "thinks"
        time.sleep(0.5)
        return lookup(*args, **kwargs)

    monkeypatch.setattr(CacheModel, "lookup", slow_lookup)
    fake.fail_next(SlowFirstToken(0.6), key=key)
    started = time.monotonic()
    stream = client.messages.create(model=MODEL, max_tokens=50, messages=USER, stream=True)
    next(iter(stream))
    first_event_at = time.monotonic() - started
    stream.close()
    assert 0.6 <= first_event_at < 1.0  # 0.6 s from arrival, not 0.5 s of work and then 0.6 s more


def test_token_delay_paces_the_stream(fake: FakeAPI, key, client):
    fake.fail_next(TokenDelay(0.004), key=key)
    fake.script([LONG], key=key)
    started = time.monotonic()
    with client.messages.stream(model=MODEL, max_tokens=500, messages=USER) as s:
        message = s.get_final_message()
    assert time.monotonic() - started >= 0.004 * message.usage.output_tokens * 0.8


def test_latency_setting_applies_to_every_request(fake: FakeAPI, key, client):
    fake.set_latency(first_token=0.15, key=key)
    started = time.monotonic()
    client.messages.create(model=MODEL, max_tokens=50, messages=USER)
    assert time.monotonic() - started >= 0.15


def test_a_script_may_hold_faults_between_turns(fake: FakeAPI, key, client):
    fake.script(["first", overloaded(), StreamError(after_events=2), "second", "third"], key=key)
    assert client.messages.create(model=MODEL, max_tokens=50, messages=USER).content[0].text == "first"
    with pytest.raises(anthropic.OverloadedError):
        client.messages.create(model=MODEL, max_tokens=50, messages=USER)
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(model=MODEL, max_tokens=50, messages=USER) as s,
    ):
        s.get_final_message()  # the stream fault strikes the turn after it ("second")
    assert client.messages.create(model=MODEL, max_tokens=50, messages=USER).content[0].text == "third"


def test_random_faults_are_reproducible_from_the_seed(fake: FakeAPI, key, client):
    def outcomes() -> list[str]:
        fake.random_faults(0.5, seed=42, kinds=[overloaded(), rate_limited(1)], key=key)
        result = []
        for _ in range(16):
            try:
                client.messages.create(model=MODEL, max_tokens=10, messages=USER)
                result.append("ok")
            except anthropic.APIStatusError as error:
                result.append(str(error.status_code))
        return result

    first, second = outcomes(), outcomes()
    assert first == second
    assert {"ok", "529", "429"} <= set(first)
    fake.clear_faults(key=key)
    assert client.messages.create(model=MODEL, max_tokens=10, messages=USER)


async def test_async_client_sees_the_same_faults(fake: FakeAPI, key, aclient):
    fake.fail_next(Reset(), overloaded(), key=key)
    with pytest.raises(anthropic.APIConnectionError):
        await aclient.messages.create(model=MODEL, max_tokens=10, messages=USER)
    with pytest.raises(anthropic.OverloadedError):
        await aclient.messages.create(model=MODEL, max_tokens=10, messages=USER)
