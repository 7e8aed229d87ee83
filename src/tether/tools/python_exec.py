"""The python tool: run a piece of Python in a fresh, limited interpreter inside the workspace.

The code goes on stdin to ``python -I -u`` of the current interpreter (so its own stdin is at EOF),
which runs it as ``<code>`` with the workspace first on ``sys.path`` (``-I`` would leave it off), in
the workspace, with a scrubbed environment and ``Limits`` (CPU seconds, address space, file size,
process count) set in the child before exec. A wall timeout and a process-count watch kill the whole
process group. Image files the code writes into the workspace during the call (``plt.savefig("f.png")``)
come back as image blocks after the text.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from tether.api.types import ImageBlock, Json, TextBlock, ToolSpec
from tether.tools.base import ToolContext, ToolError, ToolOutput
from tether.tools.output import exit_status, render
from tether.tools.process import ProcessResult, run_limited
from tether.tools.sandbox import Limits, Workspace

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp"}
SKIP_DIRS = frozenset({"node_modules", "__pycache__", "venv", "site-packages"})
MAX_SCAN = 20_000
# Run the code read from stdin as "<code>": the workspace importable, tracebacks that show the code's
# lines (through linecache, which the default hook does not read) and leave out this frame.
BOOT = (
    "import sys, linecache, traceback\n"
    "linecache.cache['<code>'] = (0, None, sys.stdin.read().splitlines(True), '<code>')\n"
    "sys.path.insert(0, '')\n"
    "sys.excepthook = lambda t, v, tb: traceback.print_exception(t, v, tb and tb.tb_next)\n"
    "exec(compile(''.join(linecache.cache['<code>'][2]), '<code>', 'exec'))\n"
)

DESCRIPTION = (
    "Run Python code in a fresh interpreter (no state is kept between calls) with the workspace as the "
    "working directory. Returns stdout, stderr and the exit status. Figures saved as PNG or JPEG files "
    "into the workspace (e.g. plt.savefig('plot.png')) are returned as images."
)


class PythonTool:
    name = "python"
    exclusive = False
    idempotent = False

    def __init__(
        self, workspace: Workspace, *, limits: Limits | None = None, default_timeout: float = 60.0,
        max_timeout: float = 300.0, max_output_bytes: int = 30_000, python: str = sys.executable,
        max_images: int = 5, max_image_bytes: int = 5 * 2**20, env: Mapping[str, str] | None = None,
    ) -> None:
        self.workspace, self.limits, self.python = workspace, limits or Limits(), python
        self.default_timeout, self.max_timeout = default_timeout, max_timeout
        self.max_output_bytes = max_output_bytes
        self.max_images, self.max_image_bytes = max_images, max_image_bytes
        self.env = workspace.environment(extra={"MPLBACKEND": "Agg", **(env or {})})
        self.timeout = max_timeout + 10  # the runner's backstop; the wall timeout below fires first
        self.input_schema: Json = {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "The Python code to run."},
                "timeout": {"type": "number", "exclusiveMinimum": 0,
                            "description": f"Seconds before the code is stopped (default {default_timeout:g}, "
                                           f"at most {max_timeout:g})."},
            },
            "required": ["code"],
        }

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=DESCRIPTION, input_schema=self.input_schema)

    async def call(self, input: Json, context: ToolContext) -> ToolOutput:
        code = input["code"]
        if "\x00" in code:
            raise ToolError("the code contains a NUL byte")
        wall = min(float(input.get("timeout") or self.default_timeout), self.max_timeout)
        root = self.workspace.root
        before = await asyncio.to_thread(_images, root)
        preexec = await asyncio.to_thread(self.limits.preexec)
        result = await run_limited(
            [self.python, "-I", "-u", "-c", BOOT], stdin=code.encode("utf-8", "surrogateescape"),
            cwd=root, env=self.env, preexec=preexec, timeout=wall, max_output_bytes=self.max_output_bytes,
            max_processes=self.limits.max_processes,
        )
        figures = await asyncio.to_thread(self._new_images, before)
        failed, status = self._status(result, wall)
        text = render(result.stdout, result.stderr, status=status)
        if figures:
            text += "\n[images: " + ", ".join(str(p.relative_to(root)) for p, _ in figures) + "]"
        content: list[TextBlock | ImageBlock] = [TextBlock(("Error: " if failed else "") + text)]
        content += [block for _, block in figures]
        return ToolOutput(content if figures else content[0].text, failed)

    def _status(self, result: ProcessResult, wall: float) -> tuple[bool, str | None]:
        """Whether the call failed, and the line that says how it ended."""
        limits = self.limits
        if result.timed_out:
            return True, (f"the code did not finish within {wall:g} seconds and was killed, with every process "
                          "it started")
        if result.too_many_processes:
            return True, (f"the code started more than {limits.max_processes} processes (a fork bomb?) and was "
                          "killed, with every process it started")
        if result.returncode == 0:
            return False, None
        status = exit_status(result.returncode)
        if result.returncode == -signal.SIGXCPU:
            status += f": it used up its {limits.cpu_seconds} seconds of CPU time"
        elif "MemoryError" in (stderr := result.stderr.text()[0]):
            status += f": it ran out of memory (the limit is {limits.memory_mb} MB)"
        elif "BlockingIOError" in stderr:
            status += f": it hit the limit of {limits.max_processes} processes"
        return True, status

    def _new_images(self, before: dict[Path, tuple[int, int]]) -> list[tuple[Path, ImageBlock]]:
        after = _images(self.workspace.root)
        fresh = sorted(p for p, stamp in after.items() if before.get(p) != stamp)
        out = []
        for path in fresh[: self.max_images]:
            try:
                if path.stat().st_size <= self.max_image_bytes:
                    out.append((path, _image_block(path)))
            except OSError:
                continue
        return out


def _image_block(path: Path) -> ImageBlock:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return ImageBlock({"type": "base64", "media_type": IMAGE_TYPES[path.suffix.lower()], "data": data})


def _is_image(entry: os.DirEntry[str]) -> bool:
    return os.path.splitext(entry.name)[1].lower() in IMAGE_TYPES and entry.is_file(follow_symlinks=False)


def _images(root: Path) -> dict[Path, tuple[int, int]]:
    """Image files under ``root`` (hidden and dependency folders skipped) with their mtime and size."""
    found: dict[Path, tuple[int, int]] = {}
    stack, seen = [root], 0
    while stack and seen < MAX_SCAN:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    seen += 1
                    if entry.name.startswith(".") or entry.name in SKIP_DIRS:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif _is_image(entry):
                        st = entry.stat(follow_symlinks=False)
                        found[Path(entry.path)] = (st.st_mtime_ns, st.st_size)
        except OSError:
            continue
    return found
