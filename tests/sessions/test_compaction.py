"""Context compaction over real runs: old tool results cleared, older turns summarised, the
store's record of it, and a retry after model_context_window_exceeded."""

from __future__ import annotations

import itertools
import json

from tether import Settings, tool
from tether.agent.compaction import CLEARED, SUMMARY_HEADER, SUMMARY_PROMPT
from tether.api.catalog import Catalog
from tether.config import CompactionSettings
from tether.sessions import Sessions
from tether.testing import Turn, text, tool_use

SMALL = Catalog.load({"claude-opus-4-8": {"context_window": 12_000}})
SETTINGS = Settings(compaction=CompactionSettings(trigger=0.5, keep_tool_results=2, keep_messages=4))
WORDS = "lorem ipsum dolor sit amet " * 60  # ~1,600 characters, ~400 tokens


@tool
def read(n: int) -> str:
    """Read part n.

    Args:
        n: which part
    """
    return f"part {n}: " + WORDS * 2


def agent_behaviour(turns: int, exceed_at: int | None = None):
    """Reads part after part (counted here: compaction shortens the conversation), then finishes."""
    state = {"step": 0, "exceeded": False}

    def answer(request):
        last = request["messages"][-1]["content"]
        if any(b.get("type") == "text" and SUMMARY_PROMPT in b.get("text", "") for b in last):
            return Turn([text("SUMMARY: parts were read; keep reading.")])
        step = state["step"]
        if step == exceed_at and not state["exceeded"]:
            state["exceeded"] = True
            return Turn([text("...")], stop_reason="model_context_window_exceeded")
        state["step"] += 1
        if step >= turns:
            return Turn([text("All parts read.")])
        return Turn([text(f"Reading part {step}. " + WORDS), tool_use("read", {"n": step})])

    return answer


def prefix_breaks(requests) -> int:
    """How many times a request's messages were not the previous request's plus new ones."""
    bodies = [r.json()["messages"] for r in requests]
    strip = lambda ms: json.dumps([[{k: v for k, v in b.items() if k != "cache_control"} for b in m["content"]]  # noqa: E731
                                   for m in ms])
    return sum(1 for a, b in itertools.pairwise(bodies)
               if strip(b[:len(a)]) != strip(a) and SUMMARY_PROMPT not in json.dumps(b[-1:]))


async def test_a_long_run_clears_then_summarises_and_the_store_can_rebuild_it(fake, key, store, make_agent):
    fake.behave(agent_behaviour(turns=14), key=key)
    sessions = Sessions(store)
    run = await sessions.new(make_agent(tools=[read], settings=SETTINGS, catalog=SMALL))
    events = [e async for e in run.events("read all the parts")]
    assert events[-1].outcome == "completed", events[-1].error
    compactions = [e for e in events if e.type == "compacted"]
    kinds = {e.kind for e in compactions}
    assert {"cleared", "summarized"} <= kinds
    assert all(e.tokens_after < e.tokens_before for e in compactions)
    assert run.messages[0].text.startswith(SUMMARY_HEADER + "SUMMARY:")
    cleared = [b for m in run.messages for b in m.content if getattr(b, "content", None) == CLEARED]
    assert cleared, "old tool results were cleared"
    main_requests = [r for r in fake.requests_for(key) if SUMMARY_PROMPT not in r.body.decode()]
    # Between compactions the conversation only grows: its prefix (and so the cache) holds.
    assert prefix_breaks(main_requests) <= len(compactions)
    info = await store.get(run.id)
    assert info.metadata["compaction"]["summary"] is not None
    stored = await store.messages(run.id)
    assert len(stored) > len(run.messages), "the store keeps the whole history"
    resumed = await sessions.resume(make_agent(tools=[read], settings=SETTINGS, catalog=SMALL), run.id)
    assert [m.to_wire() for m in resumed.messages] == [m.to_wire() for m in run.messages]


async def test_context_window_exceeded_compacts_and_retries(fake, key, store, make_agent):
    fake.behave(agent_behaviour(turns=6, exceed_at=4), key=key)
    settings = Settings(compaction=CompactionSettings(trigger=0.99, keep_tool_results=1, keep_messages=2))
    events = [e async for e in make_agent(tools=[read], settings=settings, catalog=SMALL).stream("read")]
    assert events[-1].outcome == "completed", events[-1].error
    assert [e.kind for e in events if e.type == "compacted"] == ["cleared"]
    stops = [e.stop_reason for e in events if e.type == "turn_end"]
    assert "model_context_window_exceeded" not in stops and stops[-1] == "end_turn"
