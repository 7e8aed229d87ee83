"""The fake Messages API with token-bucket rate limits, in its own process, on the real clock.

``tether fake-api`` has no option for rate limits, so ``bench/rate_limits.py`` starts this instead:

    python bench/_fake_limited.py --rpm 6000 --itpm 300000 --otpm 300000 --first-token 0.05

It prints ``READY <base url>`` once listening, then answers commands on stdin, one a line:
``stats <key>`` prints one JSON line ``{"<status>": count, ...}`` of the requests received with that
API key so far (0: the connection was reset); ``quit`` stops it.

The model calls one tool, ``add``, then answers ``done`` once the tool's result is in.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from typing import Any

from tether.testing import FakeAPI, Limits, SystemClock, Turn, text, tool_use


def add_then_answer(request: dict[str, Any]) -> Turn:
    last = request["messages"][-1]
    content = last["content"] if isinstance(last["content"], list) else []
    if any(block.get("type") == "tool_result" for block in content):
        return Turn([text("done")])
    return Turn([tool_use("add", {"a": 1, "b": 2})])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rpm", type=int, required=True)
    parser.add_argument("--itpm", type=int, required=True)
    parser.add_argument("--otpm", type=int, required=True)
    parser.add_argument("--first-token", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakeAPI(behaviour=add_then_answer, clock=SystemClock(), limits=Limits(args.rpm, args.itpm, args.otpm),
                   record_limit=None)
    fake.set_latency(first_token=args.first_token)
    with fake:
        print(f"READY {fake.base_url}", flush=True)
        for line in sys.stdin:
            command, _, key = line.strip().partition(" ")
            if command == "stats":
                counts = collections.Counter(str(r.status) for r in fake.requests_for(key))
                print(json.dumps(counts), flush=True)
            elif command == "quit":
                break


if __name__ == "__main__":
    main()
