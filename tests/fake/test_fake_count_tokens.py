"""``POST /v1/messages/count_tokens``: the documented approximation, and the same validation."""

from __future__ import annotations

import anthropic
import pytest

from tether.api.tokens import count_request

MODEL = "claude-opus-4-8"
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


def test_count_matches_the_documented_approximation(fake, key, client):
    request = {
        "model": MODEL,
        "system": "You are a weather bot.",
        "tools": TOOLS,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather in Paris?", "cache_control": {"type": "ephemeral"}}
                ],
            }
        ],
    }
    assert client.messages.count_tokens(**request).input_tokens == count_request(request)
    assert fake.last_request(key).path == "/v1/messages/count_tokens"


def test_count_agrees_with_message_usage(client):
    request = {"model": MODEL, "messages": [{"role": "user", "content": "How many tokens is this?"}]}
    counted = client.messages.count_tokens(**request).input_tokens
    assert client.messages.create(**request, max_tokens=5).usage.input_tokens == counted


def test_count_refuses_max_tokens(client):
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: Extra inputs are not permitted"):
        client.messages.count_tokens(
            model=MODEL, messages=[{"role": "user", "content": "x"}], extra_body={"max_tokens": 5}
        )


def test_count_validates_like_messages(client):
    with pytest.raises(anthropic.BadRequestError, match="roles must alternate"):
        client.messages.count_tokens(model=MODEL, messages=[{"role": "assistant", "content": "x"}])
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="claude-nope", messages=[{"role": "user", "content": "x"}])
