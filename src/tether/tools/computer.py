"""Anthropic's computer-use tool (``computer_20250124``, ``computer_20251124``) on an X display.

``ComputerTool(":1", 1920, 1080)`` tells the model about a screen of the scaled size
(``computer_scaling``), turns each action into ``xdotool`` commands on the real display, and
answers with a PNG screenshot. It needs the beta header in ``tool.beta`` on every request that
carries it. A bad action, a missing field or a point off the screen is a ``ToolError`` whose
message says what to send instead.

Actions change the screen, so after each one (unless ``screenshot_after_action`` is off) the tool
waits ``settle_delay`` seconds and returns a fresh screenshot with a line saying what it did.
The display is shared, so the tool is ``exclusive``: the runner never runs it beside another call.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Literal

from tether.api.types import ImageBlock, Json, TextBlock, ToolSpec
from tether.tools import computer_input as read
from tether.tools.base import ToolContext, ToolError, ToolOutput
from tether.tools.computer_keys import combos, modifiers
from tether.tools.computer_scaling import Scaler
from tether.tools.computer_x11 import Desktop, X11Desktop

Version = Literal["computer_20250124", "computer_20251124"]
BETAS: dict[str, str] = {
    "computer_20250124": "computer-use-2025-01-24",
    "computer_20251124": "computer-use-2025-11-24",
}
ACTIONS = (
    "screenshot", "left_click", "right_click", "middle_click", "double_click", "triple_click",
    "left_click_drag", "left_mouse_down", "left_mouse_up", "mouse_move", "type", "key", "hold_key",
    "scroll", "cursor_position", "wait", "zoom",
)
_CLICKS: dict[str, tuple[str, ...]] = {
    "left_click": ("1",), "right_click": ("3",), "middle_click": ("2",),
    "double_click": ("--repeat", "2", "--delay", "10", "1"),
    "triple_click": ("--repeat", "3", "--delay", "10", "1"),
}
_WHEEL = {"up": "4", "down": "5", "left": "6", "right": "7"}
TYPING_CHUNK = 50
TYPING_DELAY_MS = 12


class ComputerTool:
    """Mouse, keyboard and screen of one X display, as the model's ``computer`` tool."""

    name = "computer"
    exclusive = True
    idempotent = False

    def __init__(
        self,
        display: str,
        width: int,
        height: int,
        *,
        version: Version = "computer_20251124",
        enable_zoom: bool = True,
        screenshot_after_action: bool = True,
        settle_delay: float = 0.5,
        timeout: float | None = 150.0,
        desktop: Desktop | None = None,
    ) -> None:
        if version not in BETAS:
            raise ValueError(f"unknown computer tool version {version!r}; use one of {', '.join(BETAS)}")
        self.display, self.version = display, version
        self.enable_zoom = enable_zoom and version == "computer_20251124"
        self.screenshot_after_action, self.settle_delay = screenshot_after_action, settle_delay
        self.timeout = timeout
        self.scaler = Scaler(width, height)
        self.desktop: Desktop = desktop or X11Desktop(display)
        actions = [a for a in ACTIONS if a != "zoom" or self.enable_zoom]
        self.input_schema: Json = {
            "type": "object", "properties": {"action": {"type": "string", "enum": actions}}, "required": ["action"],
        }

    @property
    def beta(self) -> str:
        """The ``anthropic-beta`` header a request with this tool needs."""
        return BETAS[self.version]

    @property
    def display_number(self) -> int | None:
        number = self.display.rpartition(":")[2].partition(".")[0]
        return int(number) if number.isdigit() else None

    def spec(self) -> ToolSpec:
        extra: Json = {"display_width_px": self.scaler.model_width, "display_height_px": self.scaler.model_height}
        if self.display_number is not None:
            extra["display_number"] = self.display_number
        if self.enable_zoom:
            extra["enable_zoom"] = True
        return ToolSpec(name=self.name, type=self.version, extra=extra)

    async def call(self, input: Json, context: ToolContext) -> ToolOutput:
        action = input.get("action")
        if action not in ACTIONS or (action == "zoom" and not self.enable_zoom):
            raise ToolError(self._unknown(action))
        handler: Callable[[Json], Awaitable[ToolOutput]] = (
            self._click if action in _CLICKS else getattr(self, f"_{action}")
        )
        return await handler(input)

    def _unknown(self, action: object) -> str:
        if action == "zoom":
            return "zoom is not enabled: it needs computer_20251124 with enable_zoom"
        known = ", ".join(a for a in ACTIONS if a != "zoom" or self.enable_zoom)
        return f"unknown action {action!r}; the actions are: {known}"

    # --- actions -------------------------------------------------------------------------------

    async def _screenshot(self, input: Json) -> ToolOutput:
        return ToolOutput([await self._image()])

    async def _click(self, input: Json) -> ToolOutput:
        x, y = self._screen_point(input)
        keys = modifiers(input.get("text"))
        await self.desktop.xdotool(
            "mousemove", "--sync", str(x), str(y), *_each("keydown", keys),
            "click", *_CLICKS[input["action"]], *_each("keyup", keys),
        )
        return await self._done(f"{input['action']} at {_model(input)}")

    async def _left_click_drag(self, input: Json) -> ToolOutput:
        start, end = self._screen_point(input, "start_coordinate"), self._screen_point(input)
        await self.desktop.xdotool(
            "mousemove", "--sync", *map(str, start), "mousedown", "1",
            "mousemove", "--sync", *map(str, end), "mouseup", "1",
        )
        return await self._done(f"dragged from {_model(input, 'start_coordinate')} to {_model(input)}")

    async def _left_mouse_down(self, input: Json) -> ToolOutput:
        await self.desktop.xdotool(*self._move_if_given(input), "mousedown", "1")
        return await self._done("left mouse button down")

    async def _left_mouse_up(self, input: Json) -> ToolOutput:
        await self.desktop.xdotool(*self._move_if_given(input), "mouseup", "1")
        return await self._done("left mouse button up")

    async def _mouse_move(self, input: Json) -> ToolOutput:
        x, y = self._screen_point(input)
        await self.desktop.xdotool("mousemove", "--sync", str(x), str(y))
        return await self._done(f"moved the mouse to {_model(input)}")

    async def _type(self, input: Json) -> ToolOutput:
        text = read.text(input)
        for start in range(0, len(text), TYPING_CHUNK):
            chunk = text[start:start + TYPING_CHUNK]
            await self.desktop.xdotool("type", "--delay", str(TYPING_DELAY_MS), "--", chunk)
        return await self._done(f"typed {len(text)} characters")

    async def _key(self, input: Json) -> ToolOutput:
        keys = combos(read.text(input))
        await self.desktop.xdotool("key", "--", *keys)
        return await self._done(f"pressed {' '.join(keys)}")

    async def _hold_key(self, input: Json) -> ToolOutput:
        keys, seconds = combos(read.text(input)), read.duration(input)
        await self.desktop.xdotool("keydown", "--", *keys)
        try:
            await asyncio.sleep(seconds)
        finally:
            await asyncio.shield(self.desktop.xdotool("keyup", "--", *keys))
        return await self._done(f"held {' '.join(keys)} for {seconds:g} s")

    async def _scroll(self, input: Json) -> ToolOutput:
        direction, amount = read.scroll(input)
        keys = modifiers(input.get("text"))
        await self.desktop.xdotool(
            *self._move_if_given(input), *_each("keydown", keys),
            "click", "--repeat", str(amount), _WHEEL[direction], *_each("keyup", keys),
        )
        return await self._done(f"scrolled {direction} by {amount}")

    async def _cursor_position(self, input: Json) -> ToolOutput:
        x, y = _location(await self.desktop.xdotool("getmouselocation", "--shell"))
        x, y = self.scaler.to_model(x, y)
        return ToolOutput(f"X={x},Y={y}")

    async def _wait(self, input: Json) -> ToolOutput:
        await asyncio.sleep(read.duration(input))
        return ToolOutput([await self._image()])

    async def _zoom(self, input: Json) -> ToolOutput:
        box = self.scaler.region_to_screen(*read.region(input))
        size = (self.scaler.model_width, self.scaler.model_height)
        return ToolOutput([_png(await self.desktop.screenshot(size, crop=box))])

    # --- helpers -------------------------------------------------------------------------------

    def _screen_point(self, input: Json, field: str = "coordinate") -> tuple[int, int]:
        return self.scaler.to_screen(*read.point(input, field), name=field)

    def _move_if_given(self, input: Json) -> list[str]:
        if input.get("coordinate") is None:
            return []
        x, y = self._screen_point(input)
        return ["mousemove", "--sync", str(x), str(y)]

    async def _image(self) -> ImageBlock:
        size = (self.scaler.model_width, self.scaler.model_height)
        return _png(await self.desktop.screenshot(size))

    async def _done(self, summary: str) -> ToolOutput:
        if not self.screenshot_after_action:
            return ToolOutput(summary)
        await asyncio.sleep(self.settle_delay)
        return ToolOutput([TextBlock(summary), await self._image()])


def _each(command: str, keys: list[str]) -> list[str]:
    return [part for key in keys for part in (command, key)]


def _model(input: Json, field: str = "coordinate") -> str:
    x, y = input[field]
    return f"({x}, {y})"


def _location(shell_output: str) -> tuple[int, int]:
    """``X=..`` and ``Y=..`` of ``xdotool getmouselocation --shell``."""
    fields = dict(line.split("=", 1) for line in shell_output.splitlines() if "=" in line)
    try:
        return int(fields["X"]), int(fields["Y"])
    except (KeyError, ValueError) as exc:
        raise ToolError(f"could not read the mouse position from xdotool: {shell_output!r}") from exc


def _png(data: bytes) -> ImageBlock:
    return ImageBlock(source={"type": "base64", "media_type": "image/png", "data": base64.b64encode(data).decode()})
