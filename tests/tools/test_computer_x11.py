"""ComputerTool on a real X server: Xvfb at 1920x1200 (shown to the model as 1280x800) with a Tk app.

Needs the Debian packages xvfb, xdotool and imagemagick, and a Python with tkinter (this one, or
Debian's with python3-tk); skipped without them.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.api.types import ImageBlock
from tether.tools.base import ToolContext, ToolError, ToolOutput
from tether.tools.computer import ComputerTool

SCREEN = (1920, 1200)
MODEL = (1280, 800)
APP = Path(__file__).parent / "servers" / "tk_app.py"
CONTEXT = ToolContext(run_id="run", tool_use_id="toolu_1")

def _python_with_tk() -> str | None:
    """The app runs in its own process, so any Python with tkinter will do (Debian: python3-tk)."""
    for python in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if python and subprocess.run([python, "-c", "import tkinter"], capture_output=True).returncode == 0:
            return python
    return None


TK_PYTHON = _python_with_tk()
_missing = [p for p in ("Xvfb", "xdotool", "import", "convert") if shutil.which(p) is None]
if TK_PYTHON is None:
    _missing.append("a Python with tkinter for the test app")
pytestmark = pytest.mark.skipif(
    bool(_missing),
    reason=f"computer-use tests need {', '.join(_missing)}: apt-get install xvfb xdotool imagemagick python3-tk",
)


def _start_xvfb() -> tuple[subprocess.Popen, str]:
    """Xvfb on a display it picks itself (``-displayfd``), so parallel runs never collide."""
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    if not number:
        xvfb.kill()
        pytest.fail("Xvfb did not report a display number")
    return xvfb, f":{number}"


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    xvfb, name = _start_xvfb()
    app = subprocess.Popen([str(TK_PYTHON), str(APP), *map(str, SCREEN)], stdout=subprocess.PIPE,
                           env={**os.environ, "DISPLAY": name}, text=True)
    try:
        assert app.stdout is not None and app.stdout.readline().strip() == "READY"
        yield name
    finally:
        for process in (app, xvfb):
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def tool(display: str) -> ComputerTool:
    return ComputerTool(display, *SCREEN, settle_delay=0.2)


def _image(output: ToolOutput) -> bytes:
    assert isinstance(output.content, list)
    image = output.content[-1]
    assert isinstance(image, ImageBlock) and image.source["media_type"] == "image/png"
    return base64.b64decode(image.source["data"])


class Picture:
    """A PNG decoded to 8-bit RGB through ImageMagick's ``convert``."""

    def __init__(self, png: bytes) -> None:
        ppm = subprocess.run(["convert", "png:-", "-depth", "8", "ppm:-"], input=png,
                             capture_output=True, check=True).stdout
        magic, width, height, _, self.pixels = ppm.split(maxsplit=4)
        assert magic == b"P6"
        self.width, self.height = int(width), int(height)

    def __getitem__(self, point: tuple[int, int]) -> tuple[int, int, int]:
        start = 3 * (point[1] * self.width + point[0])
        return tuple(self.pixels[start:start + 3])  # type: ignore[return-value]

    def dark(self, x0: int, y0: int, x1: int, y1: int) -> int:
        """How many pixels of the rectangle are nearly black."""
        return sum(1 for y in range(y0, y1) for x in range(x0, x1) if sum(self[x, y]) < 200)


async def _shot(tool: ComputerTool) -> Picture:
    return Picture(_image(await tool.call({"action": "screenshot"}, CONTEXT)))


async def test_screenshot_is_scaled_to_the_model_size(tool: ComputerTool):
    picture = await _shot(tool)
    assert (picture.width, picture.height) == MODEL
    assert tool.spec().extra["display_width_px"] == MODEL[0]


async def test_click_turns_the_square_green(tool: ComputerTool):
    # The square covers screen pixels 100..399, i.e. model pixels 67..266.
    assert (await _shot(tool))[160, 160] == (255, 0, 0)
    output = await tool.call({"action": "left_click", "coordinate": [160, 160]}, CONTEXT)
    assert Picture(_image(output))[160, 160] == (0, 128, 0)


async def test_typed_text_appears_in_the_entry(tool: ComputerTool):
    entry = (80, 340, 720, 395)  # screen 100..1099 x 500..599, in model pixels
    before = (await _shot(tool)).dark(*entry)
    output = await tool.call({"action": "type", "text": "Hello, tether"}, CONTEXT)
    after = Picture(_image(output)).dark(*entry)
    assert after > before + 200


async def test_cursor_position_after_mouse_move_is_in_model_coordinates(tool: ComputerTool):
    await tool.call({"action": "mouse_move", "coordinate": [700, 150]}, CONTEXT)
    assert (await tool.call({"action": "cursor_position"}, CONTEXT)).content == "X=700,Y=150"


async def test_zoom_returns_the_region_at_the_model_size(tool: ComputerTool):
    picture = Picture(_image(await tool.call({"action": "zoom", "region": [0, 0, 640, 400]}, CONTEXT)))
    assert (picture.width, picture.height) == MODEL
    # The square's corner (model 67, 67) is doubled to about (134, 134).
    assert picture[120, 120] == (255, 255, 255)
    assert picture[150, 150] != (255, 255, 255)


async def test_a_point_off_the_screen_is_refused(tool: ComputerTool):
    with pytest.raises(ToolError, match=r"coordinate \[1280, 0\] is outside the screen"):
        await tool.call({"action": "left_click", "coordinate": [1280, 0]}, CONTEXT)


async def test_a_dead_display_is_a_tool_error():
    tool = ComputerTool(":4093", *SCREEN)
    with pytest.raises(ToolError, match="import failed with exit status"):
        await tool.call({"action": "screenshot"}, CONTEXT)
