"""Reading the computer tool's input: each helper returns a checked value or raises a ``ToolError``
that names the action, the field and what a good value looks like."""

from __future__ import annotations

from typing import Any

from tether.api.types import Json
from tether.tools.base import ToolError

SCROLL_DIRECTIONS = ("up", "down", "left", "right")
MAX_DURATION = 100.0


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def point(input: Json, field: str = "coordinate") -> tuple[int, int]:
    """``[x, y]`` in the model's pixels (bounds are the scaler's to check)."""
    value = input.get(field)
    if value is None:
        raise ToolError(f"{input['action']} needs {field} [x, y] in screenshot pixels")
    if not (isinstance(value, list | tuple) and len(value) == 2 and all(map(_is_int, value))):
        raise ToolError(f"{field} must be [x, y], two integers, got {value!r}")
    return value[0], value[1]


def text(input: Json) -> str:
    value = input.get("text")
    if not isinstance(value, str) or not value:
        raise ToolError(f"{input['action']} needs text, a non-empty string; got {value!r}")
    return value


def duration(input: Json) -> float:
    value = input.get("duration")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ToolError(f"{input['action']} needs duration, a number of seconds; got {value!r}")
    if not 0 <= value <= MAX_DURATION:
        raise ToolError(f"duration must be between 0 and {MAX_DURATION:g} seconds, got {value}")
    return float(value)


def scroll(input: Json) -> tuple[str, int]:
    direction, amount = input.get("scroll_direction"), input.get("scroll_amount")
    if direction not in SCROLL_DIRECTIONS:
        raise ToolError(f"scroll_direction must be one of {', '.join(SCROLL_DIRECTIONS)}; got {direction!r}")
    if not _is_int(amount) or amount < 0:
        raise ToolError(f"scroll needs scroll_amount, a non-negative integer (clicks of the wheel); got {amount!r}")
    return direction, amount


def region(input: Json) -> tuple[int, int, int, int]:
    value = input.get("region")
    if not (isinstance(value, list | tuple) and len(value) == 4 and all(map(_is_int, value))):
        raise ToolError(f"zoom needs region [x0, y0, x1, y1], four integers; got {value!r}")
    return value[0], value[1], value[2], value[3]
