"""Plausible engineering prose from a seeded generator, for the simulated agent's text and thinking."""

from __future__ import annotations

import random

NOUNS = (
    "parser",
    "ledger",
    "cache",
    "request",
    "session",
    "config",
    "handler",
    "buffer",
    "record",
    "token",
    "schema",
    "report",
    "invoice",
    "queue",
    "batch",
    "index",
    "payload",
    "result",
    "entry",
    "limit",
)
VERBS = ("parse", "load", "merge", "validate", "render", "collect", "normalize", "resolve", "flush", "split")
ADJECTIVES = (
    "stale",
    "empty",
    "nested",
    "partial",
    "duplicate",
    "missing",
    "cached",
    "pending",
    "invalid",
    "large",
)

SENTENCES = (
    "Let me look at how the {noun} is handled before changing anything.",
    "The {adj} {noun} case seems to reach the {noun2} without being checked first.",
    "I'll {verb} the {noun} earlier so that the {noun2} never sees an {adj} value.",
    "That confirms it: the {noun2} is built twice when the {noun} is {adj}.",
    "Next I want to run the checks to make sure nothing else depends on the old {noun} behaviour.",
    "The tests around the {noun} should keep passing after this edit, but the {adj} path needs one more look.",
    "So the fix belongs in the function that {verb}s the {noun}, not in its caller.",
    "Before editing, I'll confirm where the {noun2} comes from and who reads it afterwards.",
    "This matches the error we saw: an {adj} {noun} slips through and the {noun2} ends up out of date.",
    "I'll keep the change small and local so the rest of the {noun} code is untouched.",
)


def sentence(rng: random.Random) -> str:
    template = rng.choice(SENTENCES)
    return template.format(
        noun=rng.choice(NOUNS), noun2=rng.choice(NOUNS), verb=rng.choice(VERBS), adj=rng.choice(ADJECTIVES)
    )


def paragraph(rng: random.Random, low: int, high: int) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(low, high)))


def thinking(rng: random.Random, low: int = 4, high: int = 10) -> str:
    return "\n\n".join(paragraph(rng, 2, 3) for _ in range(rng.randint(max(1, low // 3), max(1, high // 3))))
