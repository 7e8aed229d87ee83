"""The cache model as a client sees it: usage fields, TTL on the fake clock, visibility, isolation.

The rules themselves are pinned by ``test_cache_model.py``; this checks the server wires them in.
"""

from __future__ import annotations

import threading
import time

import anthropic

from tether.testing import FakeAPI, Limits, ManualClock, SlowFirstToken

MODEL = "claude-opus-4-8"  # minimum cacheable prompt: 1024 tokens
SYSTEM = [
    {"type": "text", "text": "You follow the house rules. " * 400, "cache_control": {"type": "ephemeral"}}
]
HOUR_SYSTEM = [{**SYSTEM[0], "cache_control": {"type": "ephemeral", "ttl": "1h"}}]


def _ask(client: anthropic.Anthropic, system=SYSTEM, question: str = "hi") -> anthropic.types.Usage:
    return client.messages.create(
        model=MODEL, max_tokens=10, system=system, messages=[{"role": "user", "content": question}]
    ).usage


def test_write_then_read_then_expire_on_the_fake_clock():
    clock = ManualClock()
    with FakeAPI(clock=clock) as fake, anthropic.Anthropic(base_url=fake.base_url, api_key="k") as client:
        first = _ask(client)
        assert first.cache_creation_input_tokens > 1024 and first.cache_read_input_tokens == 0
        assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
        second = _ask(client, question="another question")
        assert second.cache_read_input_tokens == first.cache_creation_input_tokens
        assert second.cache_creation_input_tokens == 0
        clock.advance(299)
        assert _ask(client).cache_read_input_tokens > 0  # the read refreshed the entry
        clock.advance(301)
        expired = _ask(client)
        assert expired.cache_read_input_tokens == 0 and expired.cache_creation_input_tokens > 0


def test_one_hour_entries_are_reported_in_their_own_field(fake: FakeAPI, client):
    usage = _ask(client, system=HOUR_SYSTEM)
    assert usage.cache_creation.ephemeral_1h_input_tokens == usage.cache_creation_input_tokens > 0
    assert usage.cache_creation.ephemeral_5m_input_tokens == 0


def test_cache_entries_are_per_api_key(fake: FakeAPI, key):
    with (
        anthropic.Anthropic(base_url=fake.base_url, api_key=f"{key}-1") as one,
        anthropic.Anthropic(base_url=fake.base_url, api_key=f"{key}-2") as two,
    ):
        _ask(one)
        assert _ask(one).cache_read_input_tokens > 0
        assert _ask(two).cache_read_input_tokens == 0


def test_an_entry_is_visible_only_once_the_writing_response_begins(fake: FakeAPI, key, client):
    fake.fail_next(SlowFirstToken(0.4), key=key)
    results = {}

    def slow_writer() -> None:
        with client.messages.stream(
            model=MODEL, max_tokens=10, system=SYSTEM, messages=[{"role": "user", "content": "hi"}]
        ) as s:
            results["writer"] = s.get_final_message().usage

    writer = threading.Thread(target=slow_writer)
    writer.start()
    while not (fake.requests_for(key) and fake.requests_for(key)[0].body):  # the writer has looked up
        time.sleep(0.001)
    results["parallel"] = _ask(client)  # arrives while the writer is still waiting for its first token
    writer.join()
    assert results["writer"].cache_creation_input_tokens > 0
    assert results["parallel"].cache_read_input_tokens == 0
    assert _ask(client).cache_read_input_tokens > 0


def test_cache_reads_do_not_count_toward_input_token_limits():
    with (
        FakeAPI(limits=Limits(100, 5_000, 100_000)) as fake,
        anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0) as client,
    ):
        _ask(client)  # writes ~2.8K tokens: counted
        for _ in range(3):  # reads: free, so three more fit in a 5K budget
            assert _ask(client).cache_read_input_tokens > 0


def test_below_the_model_minimum_nothing_is_cached_and_nothing_fails(fake: FakeAPI, client):
    short = [{"type": "text", "text": "Short rules.", "cache_control": {"type": "ephemeral"}}]
    for _ in range(2):
        usage = _ask(client, system=short)
        assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0


def test_a_breakpoint_more_than_twenty_blocks_past_the_entry_misses(fake: FakeAPI, client):
    def ask(n: int) -> anthropic.types.Usage:
        content = [{"type": "text", "text": f"block {i} " + "filler " * 60} for i in range(n)]
        content[-1] = {**content[-1], "cache_control": {"type": "ephemeral"}}
        return client.messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": content}]
        ).usage

    written = ask(30).cache_creation_input_tokens
    assert written > 0
    assert ask(45).cache_read_input_tokens == written  # the entry is 15 blocks back: found
    assert ask(70).cache_read_input_tokens == 0  # the nearest entry is 25 blocks back: missed
