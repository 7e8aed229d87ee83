"""Who may call, and how (reference §5, §6, §9.1): keys, versions, betas, sampling params."""

from __future__ import annotations

import anthropic
import httpx2
import pytest

from tether.testing import FakeAPI, FakeSettings

MODEL = "claude-opus-4-8"
BODY = {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}


def _post(http: httpx2.Client, headers: dict[str, str], body: dict | None = None) -> httpx2.Response:
    return http.post("/v1/messages", headers=headers, json=body or BODY)


def test_the_sdk_sends_bearer_auth_and_the_new_version(fake: FakeAPI, key, client):
    client.messages.create(**BODY)
    sent = fake.last_request(key)
    assert sent.header("authorization") == f"Bearer {key}"
    assert sent.header("anthropic-version") == "2026-10-21"
    assert sent.header("x-api-key") is None
    assert sent.json() == BODY


def test_x_api_key_with_the_old_version_is_accepted(fake: FakeAPI, key):
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    with anthropic.Anthropic(base_url=fake.base_url, api_key="ignored", default_headers=headers) as client:
        fake.script(["old but fine"], key=key)
        message = client.messages.create(**BODY)
    assert message.content[0].text == "old but fine"
    assert fake.last_request(key).header("anthropic-version") == "2023-06-01"


def test_raw_x_api_key_and_bearer_both_work(http, key):
    for auth in ({"x-api-key": key}, {"authorization": f"Bearer {key}"}):
        response = _post(http, {**auth, "anthropic-version": "2023-06-01"})
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "auth", [{}, {"x-api-key": ""}, {"authorization": "Bearer"}, {"authorization": "Basic abc"}]
)
def test_a_missing_key_is_401(http, auth):
    response = _post(http, {**auth, "anthropic-version": "2026-10-21"})
    assert response.status_code == 401
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert body["request_id"] == response.headers["request-id"]


def test_the_sdk_raises_authentication_error_for_an_unknown_key(key):
    with (
        FakeAPI(settings=FakeSettings(accepted_keys=frozenset({"good"}))) as fake,
        anthropic.Anthropic(base_url=fake.base_url, api_key="bad", max_retries=0) as client,
        pytest.raises(anthropic.AuthenticationError) as caught,
    ):
        client.messages.create(**BODY)
    assert caught.value.type == "authentication_error" and caught.value.status_code == 401


def test_a_missing_version_is_400(http, key):
    response = _post(http, {"x-api-key": key})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }


def test_an_unknown_version_is_400(http, key):
    response = _post(http, {"x-api-key": key, "anthropic-version": "2024-01-01"})
    assert response.status_code == 400 and "2024-01-01" in response.json()["error"]["message"]


@pytest.mark.parametrize("param,value", [("temperature", 1.0), ("top_p", 0.9), ("top_k", 5)])
def test_sampling_params_are_refused_under_2026_10_21(client, param, value):
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**BODY, extra_body={param: value})
    assert caught.value.api_message == f"{param}: Extra inputs are not permitted"
    assert caught.value.type == "invalid_request_error"


def test_sampling_params_are_accepted_under_2023_06_01(http, key):
    body = {**BODY, "temperature": 0.2, "top_p": 0.9, "top_k": 5}
    assert _post(http, {"x-api-key": key, "anthropic-version": "2023-06-01"}, body).status_code == 200


def test_documents_in_assistant_messages_are_refused_under_the_new_version(http, key, client):
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}}
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [document]},
        {"role": "user", "content": "go"},
    ]
    with pytest.raises(anthropic.BadRequestError, match="document"):
        client.messages.create(model=MODEL, max_tokens=50, messages=messages)
    old = _post(http, {"x-api-key": key, "anthropic-version": "2023-06-01"}, {**BODY, "messages": messages})
    assert old.status_code == 200


def test_citations_on_user_text_are_refused_under_the_new_version(http, key, client):
    citation = {
        "type": "char_location",
        "cited_text": "a",
        "document_index": 0,
        "start_char_index": 0,
        "end_char_index": 1,
    }
    nested = {
        "type": "search_result",
        "source": "s",
        "title": "t",
        "content": [{"type": "text", "text": "x", "citations": [citation]}],
    }
    for block in ({"type": "text", "text": "x", "citations": [citation]}, nested):
        messages = [{"role": "user", "content": [block]}]
        with pytest.raises(anthropic.BadRequestError, match="citations"):
            client.messages.create(model=MODEL, max_tokens=50, messages=messages)
    empty = [{"role": "user", "content": [{"type": "text", "text": "x", "citations": []}]}]
    assert client.messages.create(model=MODEL, max_tokens=50, messages=empty)
    old = _post(
        http,
        {"x-api-key": key, "anthropic-version": "2023-06-01"},
        {**BODY, "messages": [{"role": "user", "content": [nested]}]},
    )
    assert old.status_code == 200


def test_known_betas_pass_and_unknown_ones_are_400(fake: FakeAPI, key, client):
    ok = client.beta.messages.create(
        **BODY, betas=["context-management-2025-06-27", "interleaved-thinking-2025-05-14"]
    )
    assert ok.content
    assert (
        fake.last_request(key).header("anthropic-beta")
        == "context-management-2025-06-27,interleaved-thinking-2025-05-14"
    )
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**BODY, extra_headers={"anthropic-beta": "made-up-2099-01-01"})
    assert caught.value.api_message == "Unsupported beta header: made-up-2099-01-01"
