"""Building each request for a model: max_tokens and thinking sized to it, betas, cache breakpoints,
and what the API refused earlier in the run left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tether.api.caching import CachePlanner
from tether.api.catalog import ModelInfo
from tether.api.types import Json, Message, MessagesRequest, TextBlock, ToolSpec
from tether.config import CacheSettings, OutputSettings
from tether.errors import APIStatusError, RequestError

DEFAULT_MAX_TOKENS = 8_192
MIN_THINKING_BUDGET = 1_024
# Manual thinking with tools on Claude 4.x interleaves only with this beta (UNCONFIRMED for 2026-10-21;
# a 400 for it is remembered and the header dropped).
INTERLEAVED_THINKING = "interleaved-thinking-2025-05-14"
# The SDK refuses a non-streamed call that may run longer than 10 minutes: 3600 * max_tokens / 128000 > 600.
NON_STREAMING_MAX_TOKENS = 21_333


def size_max_tokens(model: ModelInfo, output: OutputSettings) -> int:
    """max_tokens for ``model``; a value above the model's limit is an error before any call."""
    if output.max_tokens is None:
        return model.max_output if output.extended else min(model.max_output, DEFAULT_MAX_TOKENS)
    if output.max_tokens > model.max_output:
        raise RequestError(
            f"max_tokens {output.max_tokens} is above {model.id}'s limit of {model.max_output} output tokens; "
            f"lower MAX_TOKENS / output.max_tokens to at most {model.max_output}"
        )
    if output.max_tokens < 1:
        raise RequestError(f"max_tokens must be at least 1, not {output.max_tokens}")
    return output.max_tokens


def thinking_for(model: ModelInfo, output: OutputSettings, max_tokens: int) -> tuple[Json | None, list[str]]:
    """The thinking parameter for ``model``, and warnings about settings it cannot honour."""
    warnings: list[str] = []
    budget = output.thinking_budget
    if output.thinking == "off":
        if model.thinking == "adaptive" and not model.can_disable:
            return {"type": "adaptive"}, [f"{model.id} always thinks; thinking stays adaptive"]
        return None, warnings
    if budget is not None:
        if model.thinking == "none":
            return None, [f"{model.id} does not think; THINKING_BUDGET is ignored"]
        if not model.budget_allowed:
            return {"type": "adaptive"}, [f"{model.id} takes no thinking budget; using adaptive thinking"]
        if budget < MIN_THINKING_BUDGET:
            raise RequestError(f"thinking budget {budget} is below the minimum of {MIN_THINKING_BUDGET} tokens")
        if budget >= max_tokens:
            raise RequestError(
                f"thinking budget {budget} must be less than max_tokens {max_tokens}; "
                "lower THINKING_BUDGET or raise MAX_TOKENS"
            )
        return {"type": "enabled", "budget_tokens": budget}, warnings
    if model.thinking == "adaptive":
        return {"type": "adaptive"}, warnings
    return None, warnings


@dataclass
class Refusals:
    """Parameters and beta headers the API refused with a 400 during this run."""

    params: set[str] = field(default_factory=set)
    betas: set[str] = field(default_factory=set)

    def learn(self, error: APIStatusError, request: MessagesRequest) -> str | None:
        """If ``error`` refuses something tether added, remember it and say what; else None."""
        if error.status_code != 400:
            return None
        message = str(error)
        beta = re.search(r"Unsupported beta header: ([\w.-]+)", message)
        if beta and beta.group(1) in request.betas:
            self.betas.add(beta.group(1))
            return f"beta header {beta.group(1)}"
        for name in ("thinking", "cache_control", *request.params):
            present = getattr(request, name, None) if name in ("thinking", "cache_control") else True
            if present and re.search(rf"\b{re.escape(name)}\b", message) and name not in self.params:
                self.params.add(name)
                return f"parameter {name}"
        return None


@dataclass
class RequestBuilder:
    """Makes the ``MessagesRequest`` of each turn of one run."""

    model: ModelInfo
    output: OutputSettings
    cache: CacheSettings
    system: list[TextBlock] | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    betas: list[str] = field(default_factory=list)
    params: Json = field(default_factory=dict)
    refusals: Refusals = field(default_factory=Refusals)

    def __post_init__(self) -> None:
        self.max_tokens = size_max_tokens(self.model, self.output)
        self.thinking, self.warnings = thinking_for(self.model, self.output, self.max_tokens)
        if self.thinking and self.thinking.get("type") == "enabled" and self.tools:
            self.betas = [*self.betas, INTERLEAVED_THINKING]
        self.planner = CachePlanner(self.model, self.cache.ttl) if self.cache.enabled else None

    @property
    def must_stream(self) -> bool:
        return self.output.streaming or self.max_tokens > NON_STREAMING_MAX_TOKENS

    def build(self, messages: list[Message]) -> MessagesRequest:
        """The request for ``messages``, with its cache breakpoints chosen."""
        skip = self.refusals.params
        request = MessagesRequest(
            model=self.model.id,
            max_tokens=self.max_tokens,
            messages=messages,
            system=self.system,
            tools=self.tools,
            thinking=None if "thinking" in skip else self.thinking,
            params={k: v for k, v in self.params.items() if k not in skip},
            betas=[b for b in self.betas if b not in self.refusals.betas],
        )
        if self.planner and "cache_control" not in skip:
            request.cache = self.planner.plan(request.body())
        return request
