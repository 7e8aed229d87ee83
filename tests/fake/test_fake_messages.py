"""What the fake model answers: scripts, behaviours, every stop reason, ids, usage, signatures."""

from __future__ import annotations

import re

import anthropic
import pytest

from tether.api.tokens import block_tokens, count_request
from tether.testing import FakeAPI, Turn, refusal, text, thinking, tool_use

MODEL = "claude-opus-4-8"
USER = [{"role": "user", "content": "Hello there"}]


def test_ids_have_the_real_prefixes(fake: FakeAPI, key, client):
    fake.script([Turn([tool_use("t", {})])], key=key)
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=USER)
    message = raw.parse()
    assert re.fullmatch(r"msg_01[1-9A-HJ-NP-Za-km-z]{22}", message.id)
    assert re.fullmatch(r"toolu_01[1-9A-HJ-NP-Za-km-z]{22}", message.content[0].id)
    assert re.fullmatch(r"req_011C[1-9A-HJ-NP-Za-km-z]{20}", raw.headers["request-id"])
    assert message._request_id == raw.headers["request-id"]


def test_echo_answers_when_no_script_remains(fake: FakeAPI, key, client):
    fake.script(["scripted"], key=key)
    first = client.messages.create(model=MODEL, max_tokens=100, messages=USER)
    second = client.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "repeat me"}]
    )
    assert first.content[0].text == "scripted"
    assert second.content[0].text == "repeat me"
    assert second.stop_reason == "end_turn"


def test_a_function_behaviour_sees_the_request(fake: FakeAPI, key, client):
    seen = []
    fake.behave(lambda request: seen.append(request) or f"{len(request['messages'])} message(s)", key=key)
    message = client.messages.create(model=MODEL, max_tokens=100, messages=USER, system="be brief")
    assert message.content[0].text == "1 message(s)"
    assert seen[0]["system"] == "be brief" and seen[0]["model"] == MODEL


def test_scripts_are_per_api_key(fake: FakeAPI, key):
    fake.script(["for A"], key=f"{key}-a")
    fake.script(["for B"], key=f"{key}-b")
    with (
        anthropic.Anthropic(base_url=fake.base_url, api_key=f"{key}-b") as b,
        anthropic.Anthropic(base_url=fake.base_url, api_key=f"{key}-a") as a,
    ):
        assert b.messages.create(model=MODEL, max_tokens=50, messages=USER).content[0].text == "for B"
        assert a.messages.create(model=MODEL, max_tokens=50, messages=USER).content[0].text == "for A"


def test_a_key_without_its_own_script_uses_the_default():
    with FakeAPI() as fake, anthropic.Anthropic(base_url=fake.base_url, api_key="anyone") as client:
        fake.script(["default reply"])
        assert (
            client.messages.create(model=MODEL, max_tokens=50, messages=USER).content[0].text
            == "default reply"
        )


def test_end_turn_and_tool_use_stop_reasons(fake: FakeAPI, key, client):
    fake.script(["plain", Turn([text("calling"), tool_use("f", {"a": 1})])], key=key)
    assert client.messages.create(model=MODEL, max_tokens=100, messages=USER).stop_reason == "end_turn"
    assert client.messages.create(model=MODEL, max_tokens=100, messages=USER).stop_reason == "tool_use"


def test_max_tokens_truncates_the_output(fake: FakeAPI, key, client):
    fake.script(["word " * 200, Turn([text("short"), tool_use("f", {"data": "x" * 400})])], key=key)
    message = client.messages.create(model=MODEL, max_tokens=20, messages=USER)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens <= 20
    assert ("word " * 200).startswith(message.content[0].text) and len(message.content[0].text) > 20
    second = client.messages.create(model=MODEL, max_tokens=30, messages=USER)
    assert second.stop_reason == "max_tokens" and [b.type for b in second.content] == ["text"]


def test_stop_sequence_cuts_the_text_and_is_reported(fake: FakeAPI, key, client):
    fake.script(["Step one. STOP then more text", "no sequence here"], key=key)
    with client.messages.stream(
        model=MODEL, max_tokens=100, messages=USER, stop_sequences=["STOP", "END"]
    ) as s:
        message = s.get_final_message()
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "STOP"
    assert message.content[0].text == "Step one. "
    other = client.messages.create(model=MODEL, max_tokens=100, messages=USER, stop_sequences=["STOP"])
    assert other.stop_reason == "end_turn" and other.stop_sequence is None


def test_pause_turn_is_scripted(fake: FakeAPI, key, client):
    fake.script([Turn([text("searching...")], stop_reason="pause_turn")], key=key)
    assert client.messages.create(model=MODEL, max_tokens=100, messages=USER).stop_reason == "pause_turn"


def test_refusal_carries_stop_details(fake: FakeAPI, key, client):
    fake.script([refusal("I can't help with that.", category="cyber")], key=key)
    with client.messages.stream(model=MODEL, max_tokens=100, messages=USER) as s:
        message = s.get_final_message()
    assert message.stop_reason == "refusal"
    assert message.stop_details.type == "refusal" and message.stop_details.category == "cyber"
    assert message.stop_details.explanation == "I can't help with that."


def test_model_context_window_exceeded_when_output_would_overflow(fake: FakeAPI, key, client):
    big = "x" * (4 * 196_000)  # ~196K tokens of a 200K window
    fake.script(["y " * 30_000], key=key)
    with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=20_000, messages=[{"role": "user", "content": big}]
    ) as stream:
        message = stream.get_final_message()
    assert message.stop_reason == "model_context_window_exceeded"
    total = (
        message.usage.input_tokens
        + message.usage.cache_read_input_tokens
        + message.usage.cache_creation_input_tokens
    )
    assert total + message.usage.output_tokens <= 200_000


def test_prompt_larger_than_the_window_is_refused(fake: FakeAPI, key, client):
    big = "x" * (4 * 201_000)
    with pytest.raises(anthropic.BadRequestError, match=r"prompt is too long: \d+ tokens > 200000 maximum"):
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": big}]
        )


def test_output_tokens_are_counted_over_the_produced_blocks(fake: FakeAPI, key, client):
    blocks = [
        thinking("Reasoning " * 20, signature="sig-given"),
        text("Result text"),
        tool_use("f", {"k": "v"}, id="toolu_01Z"),
    ]
    fake.script([Turn(blocks)], key=key)
    message = client.messages.create(model=MODEL, max_tokens=1000, messages=USER)
    produced = [b.model_dump(exclude_none=True, exclude={"parsed_output"}) for b in message.content]
    assert message.usage.output_tokens == sum(block_tokens(b) for b in produced)
    assert message.usage.output_tokens_details.thinking_tokens == block_tokens(produced[0])


def test_input_tokens_follow_the_documented_approximation(fake: FakeAPI, key, client):
    request = {"model": MODEL, "max_tokens": 10, "messages": USER, "system": "You are terse."}
    message = client.messages.create(**request)
    assert message.usage.input_tokens == count_request(request)


def test_max_tokens_zero_prewarms_without_output(fake: FakeAPI, key, client):
    message = client.messages.create(model=MODEL, max_tokens=0, messages=USER)
    assert message.content == [] and message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 0 and message.usage.input_tokens > 0


def test_thinking_signature_round_trip(fake: FakeAPI, key, client):
    fake.script([Turn([thinking("private reasoning"), tool_use("f", {})]), "thanks"], key=key)
    with client.messages.stream(model=MODEL, max_tokens=1000, messages=USER) as stream:
        first = stream.get_final_message()
    signed, call = first.content
    assert signed.signature.startswith("Eq")
    follow_up = [
        *USER,
        {"role": "assistant", "content": [signed.model_dump(), call.model_dump()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "done"}]},
    ]
    assert client.messages.create(model=MODEL, max_tokens=100, messages=follow_up).content[0].text == "thanks"
    tampered = [
        follow_up[0],
        {"role": "assistant", "content": [{**signed.model_dump(), "thinking": "edited"}, call.model_dump()]},
        follow_up[2],
    ]
    with pytest.raises(
        anthropic.BadRequestError, match=r"messages\.1\.content\.0: Invalid `signature` in `thinking` block"
    ):
        client.messages.create(model=MODEL, max_tokens=100, messages=tampered)


def test_diagnostics_report_a_cache_miss_reason(fake: FakeAPI, key, client):
    long_system = "Rules. " * 1000
    common = {"model": MODEL, "max_tokens": 10, "messages": USER}
    client.messages.create(
        **common, system=[{"type": "text", "text": long_system, "cache_control": {"type": "ephemeral"}}]
    )
    second = client.messages.create(
        **common,
        system=[{"type": "text", "text": long_system + "!", "cache_control": {"type": "ephemeral"}}],
        diagnostics={"previous_message_id": None},
    )
    assert second.diagnostics is not None
    assert second.diagnostics.cache_miss_reason.type == "system_changed"
