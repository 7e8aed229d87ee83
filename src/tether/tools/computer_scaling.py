"""Coordinates between the real display and the smaller screen the model sees.

Screenshots above XGA/WXGA/FWXGA lose detail the model needs and cost more tokens, so a larger
display is shown to the model scaled down to the largest of those targets with the same aspect
ratio (as Anthropic's computer-use quickstart does). The model's coordinates are scaled up before
they reach the display, and the display's are scaled down before they reach the model. A display
with no matching target, or no larger than it, is shown as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.tools.base import ToolError

# name -> (width, height); a display is scaled down to the one whose aspect ratio it shares.
SCALING_TARGETS: dict[str, tuple[int, int]] = {
    "XGA": (1024, 768),  # 4:3
    "WXGA": (1280, 800),  # 16:10
    "FWXGA": (1366, 768),  # ~16:9
}
_ASPECT_TOLERANCE = 0.02


def model_size(width: int, height: int) -> tuple[int, int]:
    """The size the model sees for a display of ``width`` x ``height`` pixels."""
    ratio = width / height
    for target_width, target_height in SCALING_TARGETS.values():
        if abs(target_width / target_height - ratio) < _ASPECT_TOLERANCE:
            if target_width < width:
                return target_width, target_height
            break
    return width, height


@dataclass(frozen=True, slots=True)
class Scaler:
    """Maps points between the display (``screen_*``) and the model's view of it (``model_*``)."""

    screen_width: int
    screen_height: int

    @property
    def model_width(self) -> int:
        return model_size(self.screen_width, self.screen_height)[0]

    @property
    def model_height(self) -> int:
        return model_size(self.screen_width, self.screen_height)[1]

    def to_screen(self, x: int, y: int, *, name: str = "coordinate") -> tuple[int, int]:
        """A model point on the display; a point outside the model's screen is a ``ToolError``."""
        width, height = self.model_width, self.model_height
        if not (0 <= x < width and 0 <= y < height):
            raise ToolError(
                f"{name} [{x}, {y}] is outside the screen: x must be in 0..{width - 1} and y in "
                f"0..{height - 1} (the screenshot is {width}x{height} pixels)"
            )
        sx = min(round(x * self.screen_width / width), self.screen_width - 1)
        sy = min(round(y * self.screen_height / height), self.screen_height - 1)
        return sx, sy

    def region_to_screen(self, x0: int, y0: int, x1: int, y1: int) -> tuple[int, int, int, int]:
        """A model rectangle ``[x0, y0, x1, y1]`` (x1, y1 exclusive) as display ``(x, y, width, height)``."""
        width, height = self.model_width, self.model_height
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise ToolError(
                f"region [{x0}, {y0}, {x1}, {y1}] is not a rectangle on the screen: it needs "
                f"0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height}"
            )
        left, top = round(x0 * self.screen_width / width), round(y0 * self.screen_height / height)
        right, bottom = round(x1 * self.screen_width / width), round(y1 * self.screen_height / height)
        return left, top, max(right - left, 1), max(bottom - top, 1)

    def to_model(self, x: int, y: int) -> tuple[int, int]:
        """A display point as the model sees it."""
        return (round(x * self.model_width / self.screen_width),
                round(y * self.model_height / self.screen_height))
