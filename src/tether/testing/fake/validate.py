"""The 400s of ``/v1/messages`` and ``/v1/messages/count_tokens``, in the order the real API gives them.

``check_create`` / ``check_count`` look at the body alone (fields, version rules, conversation,
pre-warm); ``check_for_model`` at what the model allows (``max_tokens``, thinking, system
messages). The conversation rules are in ``conversation``; the cache markers in ``cache``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tether.api.catalog import ModelInfo
from tether.testing.fake.conversation import check_conversation
from tether.testing.fake.errors import invalid
from tether.testing.fake.gate import NEW_VERSION, Caller
from tether.testing.fake.wire import Signer

SAMPLING = ("temperature", "top_p", "top_k")
MIN_BUDGET = 1024
INTERLEAVED = "interleaved-thinking-2025-05-14"
CONTEXT_1M = "context-1m-2025-08-07"
THINKING_TYPES = ("enabled", "disabled", "adaptive", "between_tools")
BUDGET_DOCS = (
    "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
)
# Models that accept mid-conversation {"role": "system"} messages (reference §2).
SYSTEM_MESSAGE_MODELS = frozenset({"claude-opus-4-8", "claude-opus-5", "claude-fable-5-1"})


def check_create(body: Any, caller: Caller, signer: Signer | None) -> dict[str, Any]:
    request = _object(body)
    _require(request, ("model", "messages", "max_tokens"))
    max_tokens = request["max_tokens"]
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
        raise invalid("max_tokens: Input should be a valid integer greater than or equal to 0")
    _check_common(request, caller, signer)
    if max_tokens == 0:
        _check_prewarm(request)
    return request


def check_count(body: Any, caller: Caller, signer: Signer | None) -> dict[str, Any]:
    request = _object(body)
    for name in ("max_tokens", "stream"):
        if name in request:
            raise invalid(f"{name}: Extra inputs are not permitted")
    _require(request, ("model", "messages"))
    _check_common(request, caller, signer)
    return request


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("Input should be a valid dictionary")
    return body


def _require(request: Mapping[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if name not in request:
            raise invalid(f"{name}: Field required")
    if not isinstance(request["model"], str) or not request["model"]:
        raise invalid("model: Input should be a valid string")


def _check_common(request: dict[str, Any], caller: Caller, signer: Signer | None) -> None:
    if caller.version == NEW_VERSION:
        for name in SAMPLING:
            if name in request:
                raise invalid(f"{name}: Extra inputs are not permitted")
    elif isinstance(request.get("temperature"), int | float) and not 0 <= request["temperature"] <= 1:
        raise invalid("temperature: Input should be less than or equal to 1")
    check_conversation(request["messages"], caller.version, signer)
    _check_tools(request.get("tools"))
    stops = request.get("stop_sequences")
    if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
        raise invalid("stop_sequences: Input should be a valid list of strings")


def _check_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list) or not all(isinstance(t, Mapping) for t in tools):
        raise invalid("tools: Input should be a valid list")
    names = [t.get("name") for t in tools if t.get("name") is not None]
    for i, tool in enumerate(tools):
        if tool.get("type") in (None, "custom") and not isinstance(tool.get("input_schema"), Mapping):
            raise invalid(f"tools.{i}.custom.input_schema: Field required")
    if len(names) != len(set(names)):
        raise invalid("tools: Tool names must be unique.")


def _check_prewarm(request: Mapping[str, Any]) -> None:
    """``max_tokens: 0`` only pre-warms the cache; these combinations make no sense with it."""
    thinking = request.get("thinking") or {}
    choice = request.get("tool_choice") or {}
    if request.get("stream"):
        raise invalid("max_tokens: a value of 0 is not supported with `stream: true`")
    if thinking.get("type") == "enabled":
        raise invalid("max_tokens: a value of 0 is not supported with `thinking.type: enabled`")
    if (request.get("output_config") or {}).get("format") is not None:
        raise invalid("max_tokens: a value of 0 is not supported with `output_config.format`")
    if choice.get("type") in ("any", "tool"):
        raise invalid(f"max_tokens: a value of 0 is not supported with `tool_choice.type: {choice['type']}`")


def context_window(info: ModelInfo, caller: Caller) -> int:
    if CONTEXT_1M in caller.betas:
        return max(info.context_window, 1_000_000)
    return info.context_window


def check_for_model(request: Mapping[str, Any], info: ModelInfo, caller: Caller) -> None:
    max_tokens = request.get("max_tokens")
    if max_tokens is not None and max_tokens > info.max_output:
        raise invalid(
            f"max_tokens: {max_tokens} > {info.max_output}, which is the maximum allowed number of "
            f"output tokens for {info.id}"
        )
    if request.get("thinking") is not None:
        _check_thinking(request, info, caller)
    if info.id not in SYSTEM_MESSAGE_MODELS and any(m.get("role") == "system" for m in request["messages"]):
        raise invalid("role 'system' is not supported on this model")


def _check_thinking(request: Mapping[str, Any], info: ModelInfo, caller: Caller) -> None:
    thinking = request["thinking"]
    kind = thinking.get("type") if isinstance(thinking, Mapping) else None
    if kind not in THINKING_TYPES:
        raise invalid(
            f"thinking: Input tag {kind!r} found using 'type' does not match any of the expected tags: "
            + ", ".join(repr(t) for t in THINKING_TYPES)
        )
    if kind == "disabled":
        if not info.can_disable:
            raise invalid('"thinking.type.disabled" is not supported for this model; thinking is always on')
        return
    if info.thinking == "none":
        raise invalid("thinking is not supported on this model")
    if kind in ("adaptive", "between_tools"):
        if info.thinking != "adaptive":
            raise invalid("adaptive thinking is not supported on this model")
        return
    _check_budget(request, thinking, info, caller)


def _check_budget(
    request: Mapping[str, Any], thinking: Mapping[str, Any], info: ModelInfo, caller: Caller
) -> None:
    if not info.budget_allowed:
        raise invalid(
            '"thinking.type.enabled" is not supported for this model. Use "thinking.type.adaptive" and '
            '"output_config.effort" to control thinking behavior.'
        )
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise invalid("thinking.enabled.budget_tokens: Field required")
    if budget < MIN_BUDGET:
        raise invalid(
            f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_BUDGET}"
        )
    interleaved = INTERLEAVED in caller.betas and request.get("tools")
    if "max_tokens" in request and budget >= request["max_tokens"] and not interleaved:
        raise invalid(
            f"`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at {BUDGET_DOCS}"
        )
