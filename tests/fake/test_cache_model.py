"""The fake API's prompt-cache model, driven by a ManualClock (rules in tether.testing.fake.cache)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from tether.api.catalog import default_catalog
from tether.api.tokens import block_tokens, count_request
from tether.testing.fake.cache import CacheModel, CacheUsage, diagnose
from tether.testing.fake.clock import ManualClock

INFO = replace(default_catalog().get("claude-opus-4-8"), min_cache_tokens=1024)
OTHER_MODEL = replace(INFO, id="claude-sonnet-4-6")
EPHEMERAL = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}


def _padded(block: dict[str, Any], field: str, tokens: int) -> dict[str, Any]:
    """``block`` with ``field`` padded so that it counts exactly ``tokens``."""
    size = len(json.dumps(block, separators=(",", ":"), ensure_ascii=False).encode())
    block = {**block, field: block[field] + "x" * (4 * tokens - size)}
    assert block_tokens(block) == tokens
    return block


def text(tokens: int, tag: str = "", cache: dict[str, str] | None = None) -> dict[str, Any]:
    block = _padded({"type": "text", "text": tag}, "text", tokens)
    return {**block, "cache_control": cache} if cache else block


def tool(tokens: int, name: str, cache: dict[str, str] | None = None) -> dict[str, Any]:
    block = _padded(
        {"name": name, "description": "", "input_schema": {"type": "object"}}, "description", tokens
    )
    return {**block, "cache_control": cache} if cache else block


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def request(messages: list[dict[str, Any]], **rest: Any) -> dict[str, Any]:
    return {"model": INFO.id, "max_tokens": 100, "messages": messages, **rest}


def usage(
    cache: CacheModel, req: dict[str, Any], key: str = "k", info=INFO, commit: bool = True
) -> CacheUsage:
    plan = cache.lookup(key, req, info)
    got = plan.usage
    assert got.input_tokens + got.cache_creation_input_tokens + got.cache_read_input_tokens == count_request(
        req
    )
    assert got.ephemeral_5m_input_tokens + got.ephemeral_1h_input_tokens == got.cache_creation_input_tokens
    if commit:
        plan.commit()
    return got


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def cache(clock: ManualClock) -> CacheModel:
    return CacheModel(clock)


def test_a_write_then_a_read_of_the_same_prefix(cache: CacheModel) -> None:
    req = request([user(text(100, "q"))], system=[text(2000, "sys", EPHEMERAL)])
    first = usage(cache, req)
    assert (first.cache_creation_input_tokens, first.cache_read_input_tokens, first.input_tokens) == (
        2000,
        0,
        103,
    )
    assert first.usage_dict() == {
        "input_tokens": 103,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 0},
    }
    second = usage(cache, req)
    assert (second.cache_creation_input_tokens, second.cache_read_input_tokens, second.input_tokens) == (
        0,
        2000,
        103,
    )


@pytest.mark.parametrize(
    "req",
    [
        request([user(text(50))]),
        request(
            [{"role": "user", "content": "hello " * 400}], system="be brief " * 500, cache_control=EPHEMERAL
        ),
        request([user(), user(text(1200, "a")), {"role": "user", "content": []}], cache_control=EPHEMERAL),
        request(
            [user(text(900, "q")), assistant({"type": "thinking", "thinking": "hm" * 900, "signature": "s"})],
            tools=[tool(300, "t", HOUR)],
            cache_control=HOUR,
        ),
        request(
            [
                user(
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://x/y.png"},
                        "cache_control": HOUR,
                    },
                    {"type": "document", "source": {"type": "base64", "data": "JVBE" * 900}},
                    {"type": "document", "source": {"type": "text", "data": "é€😀" * 300}},
                    text(700, "ünïcode ✓"),
                )
            ],
            cache_control=EPHEMERAL,
        ),
    ],
    ids=["no-cache", "strings", "empty-messages", "thinking-last", "media-and-unicode"],
)
def test_the_three_input_counts_always_add_up_to_the_prompt(cache: CacheModel, req: dict[str, Any]) -> None:
    assert cache.validate(req) is None
    for _ in range(3):
        usage(cache, req)  # the helper asserts the invariant on every call


def test_automatic_caching_skips_a_trailing_thinking_block(cache: CacheModel) -> None:
    thinking = {"type": "thinking", "thinking": "hm" * 400, "signature": "s"}
    req = request([user(text(1500, "q")), assistant(text(200, "a"), thinking)], cache_control=EPHEMERAL)
    got = usage(cache, req)
    assert got.input_tokens == block_tokens(thinking)
    assert got.cache_creation_input_tokens == 1500 + 3 + 200 + 3


def test_a_turn_bills_only_the_delta_past_the_highest_hit(cache: CacheModel) -> None:
    system = [text(2000, "sys")]
    turn1 = [user(text(500, "q1"))]
    usage(cache, request(turn1, system=system, cache_control=EPHEMERAL))
    turn2 = [*turn1, assistant(text(300, "a1")), user(text(400, "q2"))]
    got = usage(cache, request(turn2, system=system, cache_control=EPHEMERAL))
    assert got.cache_read_input_tokens == 2000 + 503
    assert got.cache_creation_input_tokens == 303 + 403
    assert got.input_tokens == 0


def _blocks(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [text(50, f"b{i}") for i in range(start, start + count)]


@pytest.mark.parametrize(("added", "hit"), [(19, True), (20, False), (25, False)])
def test_a_breakpoint_looks_back_twenty_positions_including_its_own(
    cache: CacheModel, added: int, hit: bool
) -> None:
    system = [text(2000, "sys")]
    usage(cache, request([user(*_blocks(10))], system=system, cache_control=EPHEMERAL))
    grown = request([user(*_blocks(10 + added))], system=system, cache_control=EPHEMERAL)
    got = usage(cache, grown)
    previous_prefix = 2000 + 3 + 10 * 50
    assert got.cache_read_input_tokens == (previous_prefix if hit else 0)
    assert got.cache_creation_input_tokens == count_request(grown) - got.cache_read_input_tokens


def test_an_intermediate_breakpoint_bridges_a_long_turn(cache: CacheModel) -> None:
    system = [text(2000, "sys")]
    usage(cache, request([user(*_blocks(10))], system=system, cache_control=EPHEMERAL))
    blocks = _blocks(35)
    blocks[24] = {**blocks[24], "cache_control": EPHEMERAL}  # 15 blocks past the previous entry
    got = usage(cache, request([user(*blocks)], system=system, cache_control=EPHEMERAL))
    assert got.cache_read_input_tokens == 2000 + 3 + 10 * 50
    assert got.cache_creation_input_tokens == 25 * 50


def test_a_prefix_below_the_minimum_is_neither_written_nor_read(cache: CacheModel) -> None:
    req = request([user(text(100, "q"))], system=[text(1000, "sys", EPHEMERAL)])
    for _ in range(2):
        got = usage(cache, req)
        assert (got.cache_creation_input_tokens, got.cache_read_input_tokens) == (0, 0)
        assert got.input_tokens == count_request(req)
    exactly = request([user(text(100, "q"))], system=[text(1024, "sys", EPHEMERAL)])
    assert usage(cache, exactly).cache_creation_input_tokens == 1024


def test_tokens_before_a_too_short_breakpoint_go_to_the_next_one_that_writes(cache: CacheModel) -> None:
    req = request([user(text(100, "q"))], tools=[tool(500, "t", HOUR)], system=[text(1500, "sys", HOUR)])
    got = usage(cache, req)
    assert got.ephemeral_1h_input_tokens == 2000
    assert got.input_tokens == 103


def test_an_entry_expires_ttl_after_the_start_of_its_last_read(cache: CacheModel, clock: ManualClock) -> None:
    req = request([user(text(100, "q"))], system=[text(2000, "sys", EPHEMERAL)])
    usage(cache, req)  # written at t=0, dies at t=300
    clock.advance(299)
    assert usage(cache, req).cache_read_input_tokens == 2000  # read at t=299: now dies at t=599
    clock.advance(299)
    assert usage(cache, req).cache_read_input_tokens == 2000  # t=598: alive only thanks to the refresh
    clock.advance(300)
    assert usage(cache, req).cache_read_input_tokens == 0  # t=898: exactly 300 s after the last read


def test_an_uncommitted_read_does_not_refresh(cache: CacheModel, clock: ManualClock) -> None:
    req = request([user(text(100, "q"))], system=[text(2000, "sys", EPHEMERAL)])
    usage(cache, req)
    clock.advance(200)
    assert usage(cache, req, commit=False).cache_read_input_tokens == 2000
    clock.advance(101)
    assert usage(cache, req).cache_read_input_tokens == 0


def test_one_hour_and_five_minute_writes_are_split_and_expire_apart(
    cache: CacheModel, clock: ManualClock
) -> None:
    req = request([user(text(500, "q", EPHEMERAL))], system=[text(2000, "sys", HOUR)])
    first = usage(cache, req)
    assert (first.ephemeral_1h_input_tokens, first.ephemeral_5m_input_tokens) == (2000, 503)
    clock.advance(600)
    later = usage(cache, req)
    assert later.cache_read_input_tokens == 2000
    assert (later.ephemeral_1h_input_tokens, later.ephemeral_5m_input_tokens) == (0, 503)
    clock.advance(3600)
    assert usage(cache, req).cache_read_input_tokens == 0


def test_writes_are_visible_only_after_commit(cache: CacheModel) -> None:
    req = request([user(text(100, "q"))], system=[text(2000, "sys", EPHEMERAL)])
    a = cache.lookup("k", req, INFO)
    b = cache.lookup("k", req, INFO)
    assert a.usage.cache_creation_input_tokens == b.usage.cache_creation_input_tokens == 2000
    a.commit()
    assert cache.lookup("k", req, INFO).usage.cache_read_input_tokens == 2000
    b.commit()  # a late duplicate write changes nothing
    assert cache.lookup("k", req, INFO).usage.cache_read_input_tokens == 2000


def test_each_api_key_has_its_own_cache(cache: CacheModel) -> None:
    req = request([user(text(100, "q"))], system=[text(2000, "sys", EPHEMERAL)])
    usage(cache, req, key="a")
    assert usage(cache, req, key="b").cache_read_input_tokens == 0
    assert usage(cache, req, key="a").cache_read_input_tokens == 2000


def _layered(tool_name: str = "t", system: str = "sys", last: str = "q2", **rest: Any) -> dict[str, Any]:
    messages = [
        user(text(1000, "q1", EPHEMERAL)),
        assistant(text(100, "a1")),
        user(text(100, last, EPHEMERAL)),
    ]
    return request(
        messages, tools=[tool(1500, tool_name, EPHEMERAL)], system=[text(1500, system, EPHEMERAL)], **rest
    )


@pytest.mark.parametrize(
    ("change", "read"),
    [
        ({"tool_name": "other"}, 0),
        ({"system": "other"}, 1500),
        ({"tool_choice": {"type": "any"}}, 3000),
        ({"last": "other"}, 3000 + 1003),
        ({}, 3000 + 1003 + 103 + 103),
    ],
    ids=["tools", "system", "tool_choice", "message", "nothing"],
)
def test_invalidation_runs_tools_then_system_then_messages(
    cache: CacheModel, change: dict[str, Any], read: int
) -> None:
    usage(cache, _layered())
    assert usage(cache, _layered(**change)).cache_read_input_tokens == read


def test_a_model_switch_loses_everything(cache: CacheModel) -> None:
    usage(cache, _layered())
    assert usage(cache, _layered(), info=OTHER_MODEL).cache_read_input_tokens == 0


def test_miss_reasons_compare_with_the_previous_request(cache: CacheModel) -> None:
    cache.lookup("k", _layered(), INFO).commit()
    tools = cache.lookup("k", _layered(tool_name="other"), INFO)
    assert tools.miss_reason == {"type": "tools_changed", "cache_missed_input_tokens": 4209}
    system = cache.lookup("k", _layered(tool_name="other", system="other"), INFO)
    assert system.miss_reason is not None and system.miss_reason["type"] == "system_changed"
    assert cache.lookup("k", _layered(tool_name="other", system="other", last="x"), INFO).miss_reason == {
        "type": "messages_changed",
        "cache_missed_input_tokens": 4209,
    }
    grown = _layered(tool_name="other", system="other", last="x")
    grown["messages"] += [assistant(text(50, "a2")), user(text(50, "q3"))]
    assert cache.lookup("k", grown, INFO).miss_reason is None
    assert cache.lookup("k", grown, OTHER_MODEL).miss_reason["type"] == "model_changed"
    thinking = cache.lookup("k", {**grown, "thinking": {"type": "adaptive"}}, OTHER_MODEL)
    assert thinking.miss_reason == {"type": "unavailable"}
    assert diagnose(thinking.fingerprint, thinking.fingerprint) is None


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (
            request([user(*(text(10, str(i), EPHEMERAL) for i in range(5)))]),
            "A maximum of 4 blocks with cache_control may be provided. Found 5.",
        ),
        (
            request([user(*(text(10, str(i), EPHEMERAL) for i in range(4)))], cache_control=EPHEMERAL),
            "A maximum of 4 blocks with cache_control may be provided. Found 5.",
        ),
        (
            request(
                [
                    user(text(10)),
                    assistant(
                        {"type": "thinking", "thinking": "t", "signature": "s", "cache_control": EPHEMERAL}
                    ),
                ]
            ),
            "messages.1.content.0.thinking.cache_control: Extra inputs are not permitted",
        ),
        (
            request([user(text(10))], system=[text(10, "s", {"type": "ephemeral", "ttl": "10m"})]),
            "system.0.cache_control.ttl: Input should be '5m' or '1h'",
        ),
        (
            request([user(text(10))], tools=[tool(20, "t", {"type": "persistent"})]),
            "tools.0.cache_control.type: Input should be 'ephemeral'",
        ),
        (
            request([user(text(10), text(10, "b", HOUR))], system=[text(10, "s", EPHEMERAL)]),
            "messages.0.content.1.cache_control.ttl: a ttl='1h' cache_control block must not come after a "
            "ttl='5m' cache_control block. Note that blocks are processed in the following order: "
            "`tools`, `system`, `messages`.",
        ),
        (
            request([user(text(10, "q", HOUR))], cache_control=EPHEMERAL),
            "Top-level cache_control has ttl='5m' but the target block already has cache_control with ttl='1h'",
        ),
        (
            request([user(text(10, "q"))], system=[text(10, "s", EPHEMERAL)], cache_control=HOUR),
            "messages.0.content.0.cache_control.ttl: a ttl='1h' cache_control block must not come after a "
            "ttl='5m' cache_control block. Note that blocks are processed in the following order: "
            "`tools`, `system`, `messages`.",
        ),
        (request([user(text(10, "q", HOUR))], tools=[tool(20, "t", HOUR)], cache_control=HOUR), None),
        (request([user(text(10, "q"))], system=[text(10, "s", HOUR)], cache_control=EPHEMERAL), None),
    ],
    ids=[
        "five",
        "four-plus-top",
        "thinking",
        "ttl",
        "type",
        "order",
        "top-mismatch",
        "top-order",
        "ok",
        "ok-mixed",
    ],
)
def test_validate_gives_the_real_api_messages(
    cache: CacheModel, req: dict[str, Any], message: str | None
) -> None:
    assert cache.validate(req) == message
