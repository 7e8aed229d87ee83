"""A faithful fake of the Anthropic Messages API, served over a real socket (see ``server``)."""

from tether.testing.fake.app import FakeApp, FakeSettings
from tether.testing.fake.behaviour import Behaviour, Script, echo, last_user_text
from tether.testing.fake.clock import ManualClock, SystemClock
from tether.testing.fake.coding_agent import CodingAgent
from tether.testing.fake.faults import (
    ErrorResponse,
    Fault,
    Reset,
    ResetMidStream,
    SlowFirstToken,
    Stall,
    StreamError,
    TokenDelay,
    overloaded,
    rate_limited,
    server_error,
)
from tether.testing.fake.ratelimit import Limits
from tether.testing.fake.render import Pieces
from tether.testing.fake.server import FakeAPI, serve
from tether.testing.fake.state import Latency, RecordedRequest
from tether.testing.fake.turns import (
    Turn,
    redacted_thinking,
    refusal,
    server_tool_use,
    text,
    thinking,
    tool_use,
)

__all__ = [
    "Behaviour",
    "CodingAgent",
    "ErrorResponse",
    "FakeAPI",
    "FakeApp",
    "FakeSettings",
    "Fault",
    "Latency",
    "Limits",
    "ManualClock",
    "Pieces",
    "RecordedRequest",
    "Reset",
    "ResetMidStream",
    "Script",
    "SlowFirstToken",
    "Stall",
    "StreamError",
    "SystemClock",
    "TokenDelay",
    "Turn",
    "echo",
    "last_user_text",
    "overloaded",
    "rate_limited",
    "redacted_thinking",
    "refusal",
    "serve",
    "server_error",
    "server_tool_use",
    "text",
    "thinking",
    "tool_use",
]
