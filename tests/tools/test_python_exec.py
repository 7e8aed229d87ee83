"""The python tool in a real, limited interpreter: output, limits, timeouts, figures."""

from __future__ import annotations

import asyncio
import base64
import struct
import time
import zlib

import pytest

from tether.api.types import ImageBlock, TextBlock
from tether.tools.base import ToolContext
from tether.tools.python_exec import PythonTool
from tether.tools.sandbox import Limits, Workspace

CTX = ToolContext("run", "toolu")
SMALL = Limits(cpu_seconds=2, memory_mb=256, file_size_mb=1, max_processes=16, open_files=64)


@pytest.fixture
def python(tmp_path):
    return PythonTool(Workspace(tmp_path), limits=SMALL, default_timeout=5)


async def run(tool, code, **extra):
    return await tool.call({"code": code, **extra}, CTX)


def gone(pid: int) -> bool:
    """The process is dead: no longer in /proc, or a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + \
        chunk(b"IEND", b"")


def test_spec_is_a_custom_tool(python):
    wire = python.spec().to_wire()
    assert wire["name"] == "python" and "type" not in wire
    assert wire["input_schema"]["required"] == ["code"]


async def test_stdout_stderr_and_exit_status(python, tmp_path):
    ok = await run(python, "import os, sys\nprint(os.getcwd())\nprint('warn', file=sys.stderr)")
    assert ok.content == f"{tmp_path}\n[stderr]\nwarn" and not ok.is_error
    failed = await run(python, "raise SystemExit(3)")
    assert failed.is_error and failed.content.endswith("[exit code 3]")
    traceback = await run(python, "x = 1\nx / 0")
    assert traceback.is_error and "ZeroDivisionError" in traceback.content
    assert 'File "<code>", line 2, in <module>\n    x / 0' in traceback.content


async def test_environment_and_stdin(python, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-do-not-leak")
    tool = PythonTool(python.workspace, limits=SMALL)
    out = await run(tool, "import os, sys\nprint(sorted(k for k in os.environ if 'ANTHROPIC' in k))\n"
                          "print(repr(sys.stdin.read()))")
    assert out.content == "[]\n''"


async def test_wall_timeout_kills_the_group(python, tmp_path):
    started = time.monotonic()
    out = await run(python, "import subprocess, time\n"
                            "p = subprocess.Popen(['sleep', '60'])\nopen('child.pid', 'w').write(str(p.pid))\n"
                            "print('started', flush=True)\ntime.sleep(60)", timeout=1)
    assert time.monotonic() - started < 3
    assert out.is_error and "did not finish within 1 seconds" in out.content and "started" in out.content
    await asyncio.sleep(0.1)
    child = int((tmp_path / "child.pid").read_text())
    assert gone(child)


async def test_cpu_limit(tmp_path):
    tool = PythonTool(Workspace(tmp_path), limits=Limits(cpu_seconds=1), default_timeout=10)
    out = await run(tool, "while True: pass")
    assert out.is_error and "SIGXCPU" in out.content and "1 seconds of CPU time" in out.content


async def test_file_size_limit(python, tmp_path):
    out = await run(python, "open('big', 'wb').write(b'x' * (2 * 2**20))")
    assert out.is_error and "File too large" in out.content
    assert (tmp_path / "big").stat().st_size <= 2**20


async def test_figures_come_back_as_images(python, tmp_path):
    (tmp_path / "old.png").write_bytes(png())  # there before the call: not returned
    code = f"import base64\nopen('plot.png', 'wb').write(base64.b64decode({base64.b64encode(png())!r}))\nprint('saved')"
    out = await run(python, code)
    assert isinstance(out.content, list) and not out.is_error
    text, image = out.content
    assert isinstance(text, TextBlock) and text.text == "saved\n[images: plot.png]"
    assert isinstance(image, ImageBlock)
    assert image.source == {"type": "base64", "media_type": "image/png", "data": base64.b64encode(png()).decode()}
    again = await run(python, "print('nothing new')")
    assert again.content == "nothing new"


async def test_no_state_between_calls(python):
    await run(python, "x = 1")
    out = await run(python, "print(x)")
    assert out.is_error and "NameError" in out.content


async def test_workspace_modules_are_importable(python, tmp_path):
    (tmp_path / "helper.py").write_text("def answer():\n    return 42\n")
    out = await run(python, "import helper\nprint(helper.answer(), __name__)")
    assert out.content == "42 __main__"


async def test_cancellation_kills_the_group(python, tmp_path):
    task = asyncio.create_task(run(python, "import os, time\nopen('pid', 'w').write(str(os.getpid()))\ntime.sleep(60)"))
    for _ in range(200):
        if (tmp_path / "pid").exists() and (tmp_path / "pid").read_text():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)
    pid = int((tmp_path / "pid").read_text())
    assert gone(pid)
