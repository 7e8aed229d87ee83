"""The loop's decisions, fed responses by hand (no I/O)."""

from tether.agent.decide import Continue, Fail, Finish, RunTools, decide, merge, prefill
from tether.api.types import Response, TextBlock, ThinkingBlock, ToolUseBlock, Usage


def response(stop_reason, *content, stop_details=None):
    return Response("msg_1", "claude-opus-4-8", list(content), stop_reason, Usage(), stop_details=stop_details)


def test_tool_use_runs_the_tools():
    call = ToolUseBlock("toolu_1", "bash", {"command": "ls"})
    assert decide(response("tool_use", TextBlock("x"), call), 0, 3) == RunTools([call])


def test_end_turn_and_stop_sequence_finish():
    assert decide(response("end_turn", TextBlock("done")), 0, 3) == Finish("completed")
    assert decide(response("stop_sequence", TextBlock("done")), 0, 3) == Finish("completed")


def test_max_tokens_continues_until_the_bound():
    assert decide(response("max_tokens", TextBlock("abc")), 0, 3) == Continue("max_tokens")
    assert isinstance(decide(response("max_tokens", TextBlock("abc")), 3, 3), Fail)


def test_pause_turn_continues():
    assert decide(response("pause_turn"), 0, 3) == Continue("pause_turn")


def test_refusal_ends_with_its_category():
    decision = decide(response("refusal", stop_details={"type": "refusal", "category": "cyber",
                                                        "explanation": "no"}), 0, 3)
    assert decision == Finish("refusal", "cyber", "no")


def test_context_window_exceeded_fails():
    decision = decide(response("model_context_window_exceeded"), 0, 3)
    assert isinstance(decision, Fail) and decision.reason == "context_window"


def test_a_continuation_prefill_has_no_trailing_whitespace_and_merges_at_the_seam():
    head = prefill([ThinkingBlock("t", "s"), TextBlock("Hello wor  \n")])
    assert head[-1] == TextBlock("Hello wor")
    assert merge(head, [TextBlock("ld!")]) == [ThinkingBlock("t", "s"), TextBlock("Hello world!")]
    assert prefill([TextBlock("  ")]) == []
