"""A run's limits: turns, tokens, dollars and wall time, checked before each model call."""

from __future__ import annotations

from dataclasses import dataclass

from tether.config import LimitSettings
from tether.errors import LimitExceeded


@dataclass(slots=True)
class Spent:
    turns: int = 0
    tokens: int = 0
    dollars: float = 0.0
    seconds: float = 0.0


def check(limits: LimitSettings, spent: Spent) -> None:
    """Raise ``LimitExceeded`` naming the first limit ``spent`` has reached."""
    if limits.max_turns is not None and spent.turns >= limits.max_turns:
        raise LimitExceeded(f"the run reached its limit of {limits.max_turns} turns", limit="max_turns")
    if limits.max_tokens is not None and spent.tokens >= limits.max_tokens:
        raise LimitExceeded(
            f"the run used {spent.tokens} tokens, reaching its limit of {limits.max_tokens}", limit="max_tokens"
        )
    if limits.max_dollars is not None and spent.dollars >= limits.max_dollars:
        raise LimitExceeded(
            f"the run spent ${spent.dollars:.4f}, reaching its budget of ${limits.max_dollars:.4f}",
            limit="max_dollars",
        )
    if limits.max_seconds is not None and spent.seconds >= limits.max_seconds:
        raise LimitExceeded(
            f"the run took {spent.seconds:.1f}s, reaching its limit of {limits.max_seconds:g}s", limit="max_seconds"
        )
