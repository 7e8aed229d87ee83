"""The API's file editor: ``str_replace_based_edit_tool`` (``str_replace_editor`` in older versions).

Commands: ``view`` (a file as ``cat -n`` prints it, optionally a ``view_range``; a directory two
levels deep, hidden entries skipped), ``create``, ``str_replace`` (``old_str`` must occur exactly
once), ``insert`` (after ``insert_line``, 0 = the top; ``new_str``, or ``insert_text`` as the memory
tool names it), and ``undo_edit`` in the versions that have it. Every path goes through the
``Workspace``; writes are atomic and keep the file's encoding, byte-order mark, line endings and
mode. File work runs in a thread, one call at a time per editor.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from tether.api.types import Json, ToolSpec
from tether.tools.base import ToolContext, ToolError, ToolOutput
from tether.tools.sandbox import Workspace
from tether.tools.textfile import TextFile, write_atomic

# version -> (tool name, has undo_edit, accepts max_characters)
VERSIONS = {
    "text_editor_20250728": ("str_replace_based_edit_tool", False, True),
    "text_editor_20250429": ("str_replace_based_edit_tool", False, False),
    "text_editor_20250124": ("str_replace_editor", True, False),
    "text_editor_20241022": ("str_replace_editor", True, False),
}
SNIPPET_LINES = 4
MAX_LISTING = 1000


def input_schema(commands: list[str]) -> Json:
    needs = {"create": ["file_text"], "str_replace": ["old_str"], "insert": ["insert_line"]}
    return {
        "type": "object",
        "properties": {
            "command": {"type": "string", "enum": commands},
            "path": {"type": "string"},
            "file_text": {"type": "string"},
            "old_str": {"type": "string"},
            "new_str": {"type": "string"},
            "insert_line": {"type": "integer"},
            "insert_text": {"type": "string"},
            "view_range": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
        },
        "required": ["command", "path"],
        "allOf": [{"if": {"properties": {"command": {"const": command}}}, "then": {"required": fields}}
                  for command, fields in needs.items()],
    }


class TextEditor:
    exclusive = False
    idempotent = False
    timeout: float | None = 30.0

    def __init__(self, workspace: Workspace, *, version: str = "text_editor_20250728",
                 max_characters: int | None = None, max_file_bytes: int = 10 * 2**20, max_undo: int = 10) -> None:
        if version not in VERSIONS:
            raise ValueError(f"unknown text editor version {version!r}; known: {', '.join(VERSIONS)}")
        self.workspace, self.version = workspace, version
        self.name, self.has_undo, self._sends_max = VERSIONS[version]
        self.max_characters, self.max_file_bytes, self.max_undo = max_characters, max_file_bytes, max_undo
        commands = ["view", "create", "str_replace", "insert"] + (["undo_edit"] if self.has_undo else [])
        self.input_schema = input_schema(commands)
        self._history: dict[Path, list[bytes | None]] = defaultdict(list)
        self._lock = asyncio.Lock()

    def spec(self) -> ToolSpec:
        extra = {"max_characters": self.max_characters} if self._sends_max and self.max_characters else None
        return ToolSpec(name=self.name, type=self.version, extra=extra)

    async def call(self, input: Json, context: ToolContext) -> ToolOutput:
        async with self._lock:
            return ToolOutput(await asyncio.to_thread(self.run, input))

    def run(self, input: Json) -> str:
        """One command, blocking; raises ``ToolError`` with what to fix."""
        command, shown = input.get("command"), input.get("path")
        if not isinstance(shown, str):
            raise ToolError("path is required: the file or directory to work on")
        handler = {"view": self.view, "create": self.create, "str_replace": self.str_replace,
                   "insert": self.insert, "undo_edit": self.undo_edit}.get(command)
        if handler is None or (command == "undo_edit" and not self.has_undo):
            known = ", ".join(self.input_schema["properties"]["command"]["enum"])
            raise ToolError(f"unknown command {command!r}; use one of {known}")
        return handler(self.workspace.resolve(shown), shown, input)

    # --- commands

    def view(self, path: Path, shown: str, input: Json) -> str:
        if path.is_dir():
            if input.get("view_range"):
                raise ToolError(f"{shown} is a directory; view_range applies to files only")
            return self._clip(_listing(path, shown))
        lines = _lines(self._read(path, shown).text)
        start, end = _range(input.get("view_range"), len(lines), shown)
        body = _numbered(lines[start - 1:end], start)
        return self._clip(f"Here's the result of running `cat -n` on {shown}:\n{body}")

    def create(self, path: Path, shown: str, input: Json) -> str:
        if path.is_dir():
            raise ToolError(f"{shown} is a directory; give the path of a file to create")
        existed = path.exists()
        old = self._read(path, shown) if existed else TextFile("")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write(path, shown, old.with_text(input["file_text"]))
        return f"File overwritten: {shown}" if existed else f"File created successfully at: {shown}"

    def str_replace(self, path: Path, shown: str, input: Json) -> str:
        doc = self._read(path, shown)
        old, new = doc.with_text(input["old_str"]).text, doc.with_text(input.get("new_str") or "").text
        if not old:
            raise ToolError("old_str is empty; give the exact text to replace")
        found = _occurrences(doc.text, old)
        if not found:
            raise ToolError(f"No replacement was performed: old_str did not appear verbatim in {shown}. "
                            "View the file and copy the text exactly, whitespace and indentation included.")
        if len(found) > 1:
            lines = ", ".join(str(doc.text.count("\n", 0, i) + 1) for i in found)
            raise ToolError(f"No replacement was performed: old_str occurs {len(found)} times in {shown}, "
                            f"at lines {lines}. Include more of the surrounding lines so that it matches once.")
        at = found[0]
        text = doc.text[:at] + new + doc.text[at + len(old):]
        self._write(path, shown, doc.with_text(text))
        first = doc.text.count("\n", 0, at) + 1
        return _edited(shown, text, first, first + new.count("\n"))

    def insert(self, path: Path, shown: str, input: Json) -> str:
        new = input.get("new_str", input.get("insert_text"))
        if new is None:
            raise ToolError("insert needs new_str: the text to insert")
        doc = self._read(path, shown)
        lines, where = _lines(doc.text, keepends=True), input["insert_line"]
        if not 0 <= where <= len(lines):
            raise ToolError(f"insert_line {where} is out of range: {shown} has {len(lines)} lines; "
                            f"use 0 to insert at the top and {len(lines)} to insert at the end")
        piece = doc.with_text(new).text
        if where == len(lines) and lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"  # appending to a file without a final newline: it still has none after
        elif not piece.endswith("\n"):
            piece += "\n"
        lines.insert(where, piece)
        text = "".join(lines)
        self._write(path, shown, doc.with_text(text))
        return _edited(shown, text, where + 1, where + len(_lines(piece)))

    def undo_edit(self, path: Path, shown: str, input: Json) -> str:
        history = self._history.get(path)
        if not history:
            raise ToolError(f"No edit to undo for {shown}.")
        before = history.pop()
        if before is None:
            path.unlink(missing_ok=True)
            return f"Last edit to {shown} undone: the file did not exist before, so it was removed."
        write_atomic(path, before)
        body = _numbered(_lines(TextFile.decode(before, shown).text), 1)
        return self._clip(f"Last edit to {shown} undone successfully. Here's the result of running `cat -n` on "
                          f"{shown}:\n{body}")

    # --- helpers

    def _read(self, path: Path, shown: str) -> TextFile:
        if not path.exists():
            hint = " (use create to make it)" if path.parent.is_dir() else ""
            raise ToolError(f"{shown} does not exist{hint}")
        if not path.is_file():
            raise ToolError(f"{shown} is not a regular file")
        size = path.stat().st_size
        if size > self.max_file_bytes:
            raise ToolError(f"{shown} is {size} bytes, over the editor's limit of {self.max_file_bytes}; "
                            "use bash (head, sed -n, grep) to work with it")
        return TextFile.decode(path.read_bytes(), shown)

    def _write(self, path: Path, shown: str, doc: TextFile) -> None:
        data = doc.encode(shown)
        if self.has_undo:
            history = self._history[path]
            history.append(path.read_bytes() if path.exists() else None)
            del history[:-self.max_undo]
        write_atomic(path, data)

    def _clip(self, text: str) -> str:
        limit = self.max_characters
        if not limit or len(text) <= limit:
            return text
        return (text[:limit] + f"\n[... output truncated at {limit} of {len(text)} characters; "
                "view a smaller view_range to see the rest ...]")


def _lines(text: str, keepends: bool = False) -> list[str]:
    """Lines split at ``\\n`` only (``str.splitlines`` would also split at form feeds and the like)."""
    if not text:
        return []
    parts = text.split("\n")
    if keepends:
        out = [p + "\n" for p in parts[:-1]]
        return [*out, parts[-1]] if parts[-1] else out
    return parts[:-1] if text.endswith("\n") else parts


def _numbered(lines: list[str], first: int) -> str:
    return "\n".join(f"{n:6}\t{line}" for n, line in enumerate(lines, start=first))


def _range(view_range: Any, count: int, shown: str) -> tuple[int, int]:
    if not view_range or not count:
        return 1, count
    start, end = view_range
    if not 1 <= start <= max(count, 1):
        raise ToolError(f"view_range start {start} is out of range: {shown} has {count} lines (they start at 1)")
    end = count if end == -1 else min(end, count)
    if end < start:
        raise ToolError(f"view_range end {view_range[1]} is before its start {start}; "
                        "use -1 for the end of the file")
    return start, end


def _occurrences(text: str, needle: str) -> list[int]:
    found, at = [], text.find(needle)
    while at >= 0:
        found.append(at)
        at = text.find(needle, at + 1)
    return found


def _edited(shown: str, text: str, first: int, last: int) -> str:
    lines = _lines(text)
    start = max(1, first - SNIPPET_LINES)
    end = min(len(lines), last + SNIPPET_LINES)
    return (f"The file {shown} has been edited. Here's the result of running `cat -n` on a snippet of {shown}:\n"
            f"{_numbered(lines[start - 1:end], start)}\n"
            "Review the changes and make sure they are as expected. Edit the file again if necessary.")


def _listing(root: Path, shown: str) -> str:
    entries: list[str] = []
    for depth1 in _visible(root):
        entries.append(depth1.name + ("/" if depth1.is_dir(follow_symlinks=False) else ""))
        if depth1.is_dir(follow_symlinks=False):
            entries.extend(f"{depth1.name}/{e.name}" + ("/" if e.is_dir(follow_symlinks=False) else "")
                           for e in _visible(Path(depth1.path)))
    more = len(entries) - MAX_LISTING
    shown_entries = [os.path.join(shown, e) for e in entries[:MAX_LISTING]]
    note = f"\n[... {more} more entries not shown ...]" if more > 0 else ""
    return (f"Here's the files and directories up to 2 levels deep in {shown}, excluding hidden items:\n"
            + "\n".join([shown, *shown_entries]) + note)


def _visible(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError:
        return []
