import pytest

from tether.api.catalog import default_catalog
from tether.api.request import INTERLEAVED_THINKING, Refusals, RequestBuilder, size_max_tokens, thinking_for
from tether.api.types import Message, MessagesRequest, ToolSpec
from tether.config import CacheSettings, OutputSettings
from tether.errors import APIStatusError, RequestError

catalog = default_catalog()


def test_max_tokens_is_sized_to_the_model():
    assert size_max_tokens(catalog.get("claude-opus-4-8"), OutputSettings()) == 128_000
    assert size_max_tokens(catalog.get("claude-haiku-4-5"), OutputSettings()) == 64_000
    assert size_max_tokens(catalog.get("claude-opus-4-8"), OutputSettings(extended=False)) == 8_192


def test_max_tokens_above_the_limit_is_an_error_before_any_call():
    with pytest.raises(RequestError, match="above claude-haiku-4-5-20251001's limit of 64000"):
        size_max_tokens(catalog.get("claude-haiku-4-5"), OutputSettings(max_tokens=100_000))


def test_thinking_per_model():
    opus = catalog.get("claude-opus-4-8")
    assert thinking_for(opus, OutputSettings(), 128_000) == ({"type": "adaptive"}, [])
    thinking, warnings = thinking_for(opus, OutputSettings(thinking_budget=4000), 128_000)
    assert thinking == {"type": "adaptive"} and "no thinking budget" in warnings[0]
    haiku = catalog.get("claude-haiku-4-5")
    assert thinking_for(haiku, OutputSettings(), 64_000) == (None, [])
    assert thinking_for(haiku, OutputSettings(thinking_budget=4000), 64_000)[0] == {
        "type": "enabled", "budget_tokens": 4000}
    with pytest.raises(RequestError, match="must be less than max_tokens"):
        thinking_for(haiku, OutputSettings(thinking_budget=8000), 8000)
    with pytest.raises(RequestError, match="below the minimum"):
        thinking_for(haiku, OutputSettings(thinking_budget=100), 8000)
    fable = catalog.get("claude-fable-5-1")
    assert thinking_for(fable, OutputSettings(thinking="off"), 1000)[0] == {"type": "adaptive"}


def test_manual_thinking_with_tools_asks_for_interleaving_and_a_refusal_is_remembered():
    builder = RequestBuilder(catalog.get("claude-haiku-4-5"), OutputSettings(thinking_budget=2048),
                             CacheSettings(), tools=[ToolSpec("t", "T", {"type": "object"})])
    request = builder.build([Message.user("hi")])
    assert INTERLEAVED_THINKING in request.betas
    error = APIStatusError(f"400 invalid_request_error: Unsupported beta header: {INTERLEAVED_THINKING}",
                           status_code=400, error_type="invalid_request_error")
    assert builder.refusals.learn(error, request) == f"beta header {INTERLEAVED_THINKING}"
    assert INTERLEAVED_THINKING not in builder.build([Message.user("hi")]).betas


def test_a_refused_parameter_is_dropped():
    refusals = Refusals()
    request = MessagesRequest("m", 10, [], params={"speed": "fast"})
    error = APIStatusError("400 invalid_request_error: speed: Extra inputs are not permitted",
                           status_code=400, error_type="invalid_request_error")
    assert refusals.learn(error, request) == "parameter speed"
    assert refusals.learn(APIStatusError("x", status_code=500, error_type="api_error"), request) is None
