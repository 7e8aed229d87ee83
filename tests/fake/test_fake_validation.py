"""The 400s, 404s and 413 of the Messages API, with the real status, type, wording and body shape."""

from __future__ import annotations

import anthropic
import pytest

from tether.testing import FakeAPI, FakeSettings

MODEL = "claude-opus-4-8"
USER = {"role": "user", "content": "hi"}
ALTERNATE = 'messages: roles must alternate between "user" and "assistant"'


def _call(a: str, tool_id: str) -> dict:
    return {
        "role": "assistant",
        "content": [
            {"type": "text", "text": a},
            {"type": "tool_use", "id": tool_id, "name": "f", "input": {}},
        ],
    }


def _result(tool_id: str) -> dict:
    return {"type": "tool_result", "tool_use_id": tool_id, "content": "ok"}


def _bad(client: anthropic.Anthropic, **request) -> anthropic.APIStatusError:
    request = {"model": MODEL, "max_tokens": 100, "messages": [USER], **request}
    stream = request["max_tokens"] > 20_000  # the SDK refuses long non-streaming calls itself
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(**request, stream=stream)
    return caught.value


def test_error_body_shape_and_headers(http, headers):
    response = http.post("/v1/messages", headers=headers, json={"model": MODEL, "messages": [USER]})
    assert response.status_code == 400
    body = response.json()
    assert body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
        "request_id": response.headers["request-id"],
    }
    assert body["request_id"].startswith("req_")
    assert response.headers["anthropic-organization-id"]
    assert response.headers["anthropic-ratelimit-requests-limit"]


def test_body_that_is_not_json_is_400(http, headers):
    response = http.post("/v1/messages", headers=headers, content=b"{not json")
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


def test_max_tokens_above_the_model_limit_names_the_limit(client):
    error = _bad(client, model="claude-haiku-4-5", max_tokens=64_001)
    assert isinstance(error, anthropic.BadRequestError)
    assert error.api_message == (
        "max_tokens: 64001 > 64000, which is the maximum allowed number of output tokens for claude-haiku-4-5-20251001"
    )


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "assistant", "content": "I go first"}, USER],
        [USER, USER],
        [USER, {"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}],
    ],
)
def test_roles_must_alternate_from_user(client, messages):
    assert _bad(client, messages=messages).api_message == ALTERNATE


def test_a_tool_use_needs_results_at_the_start_of_the_next_message(client):
    messages = [
        USER,
        _call("a", "toolu_01A"),
        {"role": "user", "content": [{"type": "text", "text": "well?"}, _result("toolu_01A")]},
    ]
    assert _bad(client, messages=messages).api_message == (
        "messages.2: Did not find 1 tool_result block(s) at the beginning of this message. Messages following "
        "tool_use blocks must begin with a matching number of tool_result blocks."
    )


def test_a_tool_use_answered_with_the_wrong_id(client):
    messages = [USER, _call("a", "toolu_01A"), {"role": "user", "content": [_result("toolu_01B")]}]
    assert _bad(client, messages=messages).api_message.startswith(
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_01A."
    )


def test_a_tool_use_left_unanswered_at_the_end(client):
    error = _bad(client, messages=[USER, _call("a", "toolu_01A")])
    assert (
        "`tool_use` ids were found without `tool_result` blocks immediately after: toolu_01A"
        in error.api_message
    )


def test_a_tool_result_that_answers_nothing(client):
    messages = [
        USER,
        {"role": "assistant", "content": "sure"},
        {"role": "user", "content": [_result("toolu_01X")]},
    ]
    assert _bad(client, messages=messages).api_message.startswith(
        "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_01X."
    )


def test_paired_tools_pass(fake: FakeAPI, key, client):
    messages = [
        USER,
        _call("a", "toolu_01A"),
        {"role": "user", "content": [_result("toolu_01A"), {"type": "text", "text": "and?"}]},
    ]
    fake.script(["fine"], key=key)
    assert client.messages.create(model=MODEL, max_tokens=100, messages=messages).content[0].text == "fine"


def test_empty_content_is_refused(client):
    assert "non-empty content" in _bad(client, messages=[{"role": "user", "content": ""}]).api_message
    error = _bad(client, messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}])
    assert error.api_message == "messages: text content blocks must be non-empty"


def test_more_than_four_cache_breakpoints(client):
    marked = [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]
    error = _bad(client, messages=[{"role": "user", "content": marked}])
    assert error.status_code == 400 and "A maximum of 4 blocks with cache_control" in error.api_message


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    "model", ["claude-does-not-exist", "claude-3-7-sonnet-20250219", "claude-mythos-preview"]
)
def test_unknown_and_retired_models_are_404(client, model):
    error = _bad(client, model=model)
    assert isinstance(error, anthropic.NotFoundError)
    assert error.type == "not_found_error" and error.api_message == f"model: {model}"


def test_an_alias_resolves_to_the_dated_model(fake: FakeAPI, key, client):
    assert (
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[USER]).model
        == "claude-haiku-4-5-20251001"
    )


def test_budget_tokens_on_an_adaptive_only_model(client):
    error = _bad(
        client, model="claude-opus-4-8", max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 2000}
    )
    assert error.api_message.startswith('"thinking.type.enabled" is not supported for this model.')


def test_disabling_thinking_where_it_cannot_be_disabled(client):
    error = _bad(client, model="claude-fable-5-1", thinking={"type": "disabled"})
    assert error.status_code == 400 and "disabled" in error.api_message


def test_budget_must_be_below_max_tokens(client):
    error = _bad(
        client, model="claude-haiku-4-5", max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 2000}
    )
    assert error.api_message.startswith("`max_tokens` must be greater than `thinking.budget_tokens`.")


def test_budget_must_be_at_least_1024(client):
    error = _bad(
        client, model="claude-haiku-4-5", max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 1023}
    )
    assert (
        error.api_message == "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
    )


def test_adaptive_thinking_on_a_manual_model(client):
    assert _bad(client, model="claude-haiku-4-5", thinking={"type": "adaptive"}).api_message == (
        "adaptive thinking is not supported on this model"
    )


def test_valid_thinking_configurations_pass(fake: FakeAPI, key, client):
    ok = client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=4000,
        messages=[USER],
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert ok.stop_reason == "end_turn"
    assert client.messages.create(model=MODEL, max_tokens=100, messages=[USER], thinking={"type": "adaptive"})


def test_prewarm_with_stream_is_refused(client):
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        client.messages.create(model=MODEL, max_tokens=0, messages=[USER], stream=True)


@pytest.mark.parametrize(
    "extra",
    [
        {"model": "claude-haiku-4-5", "thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"tool_choice": {"type": "any"}, "tools": [{"name": "f", "input_schema": {"type": "object"}}]},
        {"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
    ],
)
def test_prewarm_combinations_that_are_refused(client, extra):
    assert "max_tokens: a value of 0 is not supported" in _bad(client, max_tokens=0, **extra).api_message


def test_a_body_over_32_mb_is_413(http, headers):
    body = (
        b'{"model":"claude-opus-4-8","max_tokens":1,"messages":[{"role":"user","content":"'
        + b"x" * (32 * 1024 * 1024)
        + b'"}]}'
    )
    response = http.post("/v1/messages", headers=headers, content=body)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"


def test_the_sdk_maps_413(fake: FakeAPI, key):
    with (
        FakeAPI(settings=FakeSettings(max_body_bytes=1000)) as small,
        anthropic.Anthropic(base_url=small.base_url, api_key=key, max_retries=0) as client,
        pytest.raises(anthropic.ContentTooLargeError),
    ):
        client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x" * 2000}])


def test_system_messages_mid_conversation(fake: FakeAPI, key, client):
    system = {"role": "system", "content": "Now answer in French."}
    messages = [
        USER,
        system,
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "encore"},
    ]
    assert client.messages.create(model="claude-opus-4-8", max_tokens=10, messages=messages)
    assert (
        _bad(client, model="claude-sonnet-4-6", messages=messages).api_message
        == "role 'system' is not supported on this model"
    )
    assert "must follow a 'user' message" in _bad(client, messages=[system, USER]).api_message
