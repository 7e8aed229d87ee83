"""A simulated coding agent: the behaviour benchmarks run through the fake Messages API.

Turn by turn it surveys the workspace, writes the files of a small project (``project``), then
cycles through reading a file, editing it with ``str_replace``, checking it with a command, and
searching the tree; its last turn is a summary with ``end_turn``. It uses whichever tools the
request offers: ``bash``, the text editor (``str_replace_based_edit_tool`` or
``str_replace_editor``), both, or else the first tool with a schema, called with an input that
schema accepts. Everything is a function of the seed and of the number of assistant turns already
in the conversation, so a run replays identically. With thinking on, each turn starts with a
thinking block. Sizes are realistic: a few hundred output tokens a turn, files of ~60 lines.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tether.testing.fake import prose
from tether.testing.fake.project import SourceFile, project
from tether.testing.fake.schema_input import example
from tether.testing.fake.turns import Block, Turn, text, thinking, tool_use

EDITORS = ("str_replace_based_edit_tool", "str_replace_editor")
Call = tuple[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Toolbox:
    bash: str | None
    editor: str | None
    other: Mapping[str, Any] | None

    @classmethod
    def of(cls, tools: Sequence[Mapping[str, Any]]) -> Toolbox:
        names = {t.get("name") for t in tools}
        editor = next((name for name in EDITORS if name in names), None)
        other = next(
            (t for t in tools if t.get("name") not in ("bash", editor) and "input_schema" in t), None
        )
        return cls("bash" if "bash" in names else None, editor, other)

    @property
    def empty(self) -> bool:
        return self.bash is None and self.editor is None and self.other is None


class CodingAgent:
    def __init__(
        self, turns: int = 50, seed: int = 0, *, files: int = 4, root: str = "", parallel_rate: float = 0.15
    ) -> None:
        if turns < 1:
            raise ValueError("a run has at least one turn")
        self.turns, self.seed, self.parallel_rate = turns, seed, parallel_rate
        self.files = project(seed, files=files, root=root)
        self._made: dict[tuple[int, bool, Toolbox], Turn] = {}

    def __call__(self, request: dict[str, Any]) -> Turn:
        step = sum(1 for m in request.get("messages") or () if m.get("role") == "assistant")
        thinks = (request.get("thinking") or {}).get("type") in ("enabled", "adaptive")
        tools = Toolbox.of(request.get("tools") or ())
        if tools.other is not None or step >= self.turns:  # rare: made afresh
            return self._turn(step, thinks, tools)
        # A turn depends on nothing else, and the fake copies blocks before it fills them in: every
        # run asks for the same few turns, each made once.
        key = (step, thinks, tools)
        if key not in self._made:
            self._made[key] = self._turn(step, thinks, tools)
        return self._made[key]

    def _turn(self, step: int, thinks: bool, tools: Toolbox) -> Turn:
        rng = random.Random(f"{self.seed}:{step}")
        blocks: list[Block] = []
        if thinks:
            blocks.append(thinking(prose.thinking(rng)))
        if step >= self.turns - 1 or tools.empty:
            blocks.append(text(self._summary(rng, step)))
            return Turn(blocks)
        calls = self._calls(step, tools, rng)
        blocks.append(text(prose.paragraph(rng, 2, 5)))
        blocks += [tool_use(name, tool_input) for name, tool_input in calls]
        return Turn(blocks)

    def _summary(self, rng: random.Random, step: int) -> str:
        edited = ", ".join(f.path for f in self.files)
        return (
            f"I've finished after {step} steps. Summary of the changes:\n\n"
            f"- Reworked the scaling helpers in {edited} so that items without a value are skipped "
            "instead of counted as zero, and every helper accepts an `offset`.\n"
            f"- {prose.paragraph(rng, 2, 3)}\n- {prose.paragraph(rng, 1, 2)}\n\n"
            "All files compile, and the searches show no remaining callers of the old behaviour."
        )

    def _calls(self, step: int, tools: Toolbox, rng: random.Random) -> list[Call]:
        if tools.bash is None and tools.editor is None:
            assert tools.other is not None
            return [(tools.other["name"], example(tools.other.get("input_schema") or {}))]
        if step == 0:
            return [self._survey(tools)]
        if step <= len(self.files):
            return [self._create(self.files[step - 1], tools)]
        k = step - 1 - len(self.files)
        phase, round_ = k % 4, k // 4
        source = self.files[round_ % len(self.files)]
        if phase == 0:
            calls = [self._view(source, tools)]
            if rng.random() < self.parallel_rate:
                calls.append(self._view(self.files[(round_ + 1) % len(self.files)], tools))
            return calls
        if phase == 1:
            return [self._edit(source, round_ // len(self.files), tools)]
        if phase == 2:
            return [self._check(source, tools)]
        return [self._search(rng, tools)]

    def _survey(self, tools: Toolbox) -> Call:
        if tools.bash:
            return tools.bash, {
                "command": "pwd && ls -la && find . -name '*.py' -not -path './.git/*' | head -50"
            }
        return tools.editor or "", {"command": "view", "path": "."}

    def _create(self, source: SourceFile, tools: Toolbox) -> Call:
        if tools.editor:
            return tools.editor, {"command": "create", "path": source.path, "file_text": source.text}
        folder = source.path.rsplit("/", 1)[0]
        return tools.bash or "", {
            "command": f"mkdir -p {folder} && cat > {source.path} <<'EOF'\n{source.text}EOF"
        }

    def _view(self, source: SourceFile, tools: Toolbox) -> Call:
        if tools.editor:
            return tools.editor, {"command": "view", "path": source.path}
        return tools.bash or "", {"command": f"cat -n {source.path}"}

    def _edit(self, source: SourceFile, n: int, tools: Toolbox) -> Call:
        old, new = source.edit(n)
        if tools.editor:
            return tools.editor, {
                "command": "str_replace",
                "path": source.path,
                "old_str": old,
                "new_str": new,
            }
        script = (
            f"python3 - <<'EOF'\nimport pathlib\npath = pathlib.Path({source.path!r})\ntext = path.read_text()\n"
            f"path.write_text(text.replace({old!r}, {new!r}, 1))\nEOF"
        )
        return tools.bash or "", {"command": script}

    def _check(self, source: SourceFile, tools: Toolbox) -> Call:
        if tools.bash:
            return tools.bash, {
                "command": f"python3 -m py_compile {source.path} && grep -n 'def ' {source.path}"
            }
        return tools.editor or "", {"command": "view", "path": source.path, "view_range": [1, 24]}

    def _search(self, rng: random.Random, tools: Toolbox) -> Call:
        word = rng.choice(prose.NOUNS)
        if tools.bash:
            folder = self.files[0].path.rsplit("/", 1)[0]
            return tools.bash, {"command": f"grep -rn '{word}' {folder} | head -40"}
        return tools.editor or "", {"command": "view", "path": self.files[0].path.rsplit("/", 1)[0]}
