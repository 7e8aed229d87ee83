"""ComputerTool's decisions, against a fake desktop that records commands (no X server)."""

from __future__ import annotations

import asyncio
import base64

import pytest

from tether.api.types import ImageBlock, TextBlock, ToolUseBlock
from tether.tools.base import Tool, ToolContext, ToolError
from tether.tools.computer import ComputerTool
from tether.tools.computer_keys import combo, combos, modifiers
from tether.tools.computer_scaling import Scaler, model_size
from tether.tools.runner import ToolRunner

CONTEXT = ToolContext(run_id="run", tool_use_id="toolu_1")


class FakeDesktop:
    def __init__(self, mouse: tuple[int, int] = (0, 0)) -> None:
        self.commands: list[tuple[str, ...]] = []
        self.shots: list[tuple[tuple[int, int], object]] = []
        self.mouse = mouse

    async def xdotool(self, *args: str) -> str:
        self.commands.append(args)
        if args[0] == "getmouselocation":
            return f"X={self.mouse[0]}\nY={self.mouse[1]}\nSCREEN=0\nWINDOW=1\n"
        return ""

    async def screenshot(self, size, crop=None) -> bytes:
        self.shots.append((size, crop))
        return b"\x89PNG fake"


def computer(width=1920, height=1200, **options) -> tuple[ComputerTool, FakeDesktop]:
    desktop = FakeDesktop()
    options.setdefault("settle_delay", 0)
    return ComputerTool(":7", width, height, desktop=desktop, **options), desktop


async def act(tool: ComputerTool, **input):
    return await tool.call(input, CONTEXT)


# --- scaling -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("screen", "model"), [
    ((1920, 1200), (1280, 800)),   # 16:10 -> WXGA
    ((2048, 1536), (1024, 768)),   # 4:3 -> XGA
    ((1920, 1080), (1366, 768)),   # 16:9 -> FWXGA
    ((1280, 800), (1280, 800)),    # already WXGA
    ((800, 600), (800, 600)),      # smaller than XGA
    ((1000, 1000), (1000, 1000)),  # no target with this aspect ratio
])
def test_model_size_picks_the_target_of_the_same_aspect_ratio(screen, model):
    assert model_size(*screen) == model


def test_scaler_maps_both_ways_and_rejects_points_off_the_screen():
    scaler = Scaler(1920, 1200)
    assert scaler.to_screen(640, 400) == (960, 600)
    assert scaler.to_screen(1279, 799) == (1918, 1198)
    assert scaler.to_model(960, 600) == (640, 400)
    with pytest.raises(ToolError, match=r"coordinate \[1280, 10\] is outside the screen: x must be in 0..1279"):
        scaler.to_screen(1280, 10)
    with pytest.raises(ToolError, match="outside the screen"):
        scaler.to_screen(-1, 0)
    assert scaler.region_to_screen(0, 0, 640, 400) == (0, 0, 960, 600)
    with pytest.raises(ToolError, match="not a rectangle on the screen"):
        scaler.region_to_screen(10, 10, 5, 20)


# --- spec ----------------------------------------------------------------------------------------

def test_spec_declares_the_scaled_display_and_the_beta():
    tool, _ = computer()
    assert isinstance(tool, Tool)
    assert tool.spec().to_wire() == {
        "type": "computer_20251124", "name": "computer",
        "display_width_px": 1280, "display_height_px": 800, "display_number": 7, "enable_zoom": True,
    }
    assert tool.beta == "computer-use-2025-11-24"
    assert tool.exclusive


def test_older_version_has_no_zoom():
    tool, _ = computer(version="computer_20250124")
    assert tool.beta == "computer-use-2025-01-24"
    assert tool.spec().to_wire()["type"] == "computer_20250124"
    assert "enable_zoom" not in tool.spec().to_wire()
    assert "zoom" not in tool.input_schema["properties"]["action"]["enum"]


async def test_zoom_is_refused_when_not_enabled():
    tool, _ = computer(version="computer_20250124")
    with pytest.raises(ToolError, match="zoom is not enabled"):
        await act(tool, action="zoom", region=[0, 0, 10, 10])


def test_unknown_version_is_a_developer_error():
    with pytest.raises(ValueError, match="unknown computer tool version"):
        ComputerTool(":1", 1024, 768, version="computer_20241022")  # type: ignore[arg-type]


# --- actions -------------------------------------------------------------------------------------

async def test_click_scales_the_point_up_and_holds_modifiers():
    tool, desktop = computer()
    output = await act(tool, action="left_click", coordinate=[640, 400], text="ctrl+shift")
    assert desktop.commands == [
        ("mousemove", "--sync", "960", "600", "keydown", "ctrl", "keydown", "shift",
         "click", "1", "keyup", "ctrl", "keyup", "shift"),
    ]
    assert isinstance(output.content, list)
    assert output.content[0] == TextBlock("left_click at (640, 400)")
    image = output.content[1]
    assert isinstance(image, ImageBlock)
    assert image.source == {"type": "base64", "media_type": "image/png",
                            "data": base64.b64encode(b"\x89PNG fake").decode()}
    assert desktop.shots == [((1280, 800), None)]


async def test_double_and_triple_click_repeat():
    tool, desktop = computer(screenshot_after_action=False)
    await act(tool, action="double_click", coordinate=[0, 0])
    await act(tool, action="triple_click", coordinate=[0, 0])
    assert desktop.commands[0][-5:] == ("--repeat", "2", "--delay", "10", "1")
    assert desktop.commands[1][-5:] == ("--repeat", "3", "--delay", "10", "1")


@pytest.mark.parametrize(("input", "message"), [
    ({"action": "left_click"}, r"left_click needs coordinate \[x, y\]"),
    ({"action": "right_click", "coordinate": [1, 2, 3]}, r"coordinate must be \[x, y\], two integers"),
    ({"action": "mouse_move", "coordinate": ["1", 2]}, r"coordinate must be \[x, y\]"),
    ({"action": "middle_click", "coordinate": [5000, 2]}, r"coordinate \[5000, 2\] is outside the screen"),
    ({"action": "left_click_drag", "coordinate": [1, 2]}, r"left_click_drag needs start_coordinate"),
    ({"action": "type"}, r"type needs text, a non-empty string; got None"),
    ({"action": "key", "text": 5}, r"key needs text"),
    ({"action": "scroll", "scroll_direction": "sideways", "scroll_amount": 3},
     r"scroll_direction must be one of up, down, left, right; got 'sideways'"),
    ({"action": "scroll", "scroll_direction": "up"}, r"scroll needs scroll_amount"),
    ({"action": "wait"}, r"wait needs duration"),
    ({"action": "hold_key", "text": "a", "duration": 500}, r"duration must be between 0 and 100"),
    ({"action": "zoom", "region": [0, 0, 10]}, r"zoom needs region \[x0, y0, x1, y1\]"),
    ({"action": "zoom", "region": [0, 0, 1281, 10]}, r"not a rectangle on the screen"),
    ({"action": "fly"}, r"unknown action 'fly'; the actions are: screenshot, left_click"),
])
async def test_bad_input_is_a_precise_tool_error(input, message):
    tool, desktop = computer()
    with pytest.raises(ToolError, match=message):
        await tool.call(input, CONTEXT)
    assert desktop.commands == []


async def test_drag_moves_between_both_scaled_points():
    tool, desktop = computer(screenshot_after_action=False)
    output = await act(tool, action="left_click_drag", start_coordinate=[10, 20], coordinate=[100, 200])
    assert desktop.commands == [
        ("mousemove", "--sync", "15", "30", "mousedown", "1", "mousemove", "--sync", "150", "300", "mouseup", "1"),
    ]
    assert output.content == "dragged from (10, 20) to (100, 200)"


async def test_type_goes_in_chunks_and_key_maps_names():
    tool, desktop = computer(screenshot_after_action=False)
    await act(tool, action="type", text="x" * 120)
    await act(tool, action="key", text="Enter")
    await act(tool, action="key", text="cmd+s ctrl+a Backspace")
    assert [c[-1] for c in desktop.commands[:3]] == ["x" * 50, "x" * 50, "x" * 20]
    assert desktop.commands[0][:4] == ("type", "--delay", "12", "--")
    assert desktop.commands[3] == ("key", "--", "Return")
    assert desktop.commands[4] == ("key", "--", "super+s", "ctrl+a", "BackSpace")


def test_key_names():
    assert combo("ctrl+s") == "ctrl+s"
    assert combo("Return") == "Return"
    assert combo("ctrl++") == "ctrl+plus"
    assert combo("PageDown") == "Page_Down"
    assert combos("Esc  Tab") == ["Escape", "Tab"]
    assert modifiers("Ctrl+Shift") == ["ctrl", "shift"]
    assert modifiers(None) == []


async def test_scroll_moves_first_and_repeats_the_wheel_button():
    tool, desktop = computer(screenshot_after_action=False)
    await act(tool, action="scroll", coordinate=[100, 100], scroll_direction="down", scroll_amount=3, text="shift")
    assert desktop.commands == [
        ("mousemove", "--sync", "150", "150", "keydown", "shift", "click", "--repeat", "3", "5", "keyup", "shift"),
    ]


async def test_cursor_position_is_in_model_coordinates():
    tool, desktop = computer()
    desktop.mouse = (960, 600)
    assert (await act(tool, action="cursor_position")).content == "X=640,Y=400"
    assert desktop.shots == []


async def test_zoom_crops_the_scaled_region_and_fits_the_model_size():
    tool, desktop = computer()
    output = await act(tool, action="zoom", region=[100, 100, 420, 300])
    assert desktop.shots == [((1280, 800), (150, 150, 480, 300))]
    assert isinstance(output.content, list) and isinstance(output.content[0], ImageBlock)


async def test_hold_key_releases_the_key_when_cancelled():
    tool, desktop = computer()
    task = asyncio.create_task(act(tool, action="hold_key", text="shift", duration=30))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert desktop.commands == [("keydown", "--", "shift"), ("keyup", "--", "shift")]


async def test_wait_and_screenshot_return_only_an_image():
    tool, desktop = computer()
    for input in ({"action": "screenshot"}, {"action": "wait", "duration": 0}):
        output = await tool.call(input, CONTEXT)
        assert isinstance(output.content, list) and len(output.content) == 1
        assert isinstance(output.content[0], ImageBlock)
    assert desktop.commands == []


async def test_through_the_runner_a_bad_point_is_an_error_result_the_model_can_fix():
    tool, _ = computer()
    runner = ToolRunner.of([tool])
    [ok, bad, unknown] = await runner.run([
        ToolUseBlock("toolu_1", "computer", {"action": "cursor_position"}),
        ToolUseBlock("toolu_2", "computer", {"action": "left_click", "coordinate": [1300, 5]}),
        ToolUseBlock("toolu_3", "computer", {"action": "dance"}),
    ], run_id="run")
    assert (ok.content, ok.is_error) == ("X=0,Y=0", None)
    assert bad.is_error and "coordinate [1300, 5] is outside the screen" in bad.content
    assert unknown.is_error and "'dance' is not one of" in unknown.content
