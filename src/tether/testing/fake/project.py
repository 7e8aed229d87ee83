"""The small Python project the simulated coding agent writes, reads and edits.

It is a pure function of the seed: every file, every function, and every edit the agent will make
(``edit``'s ``old_str`` is always present exactly once in the file as created, until that edit is
made), so a benchmark with real tools sees successful tool calls turn after turn.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

from tether.testing.fake.prose import NOUNS, VERBS

PACKAGES = ("ledger", "billing", "ingest", "reports", "sync", "catalog")


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: str
    functions: tuple[str, ...]
    text: str

    def edit(self, n: int) -> tuple[str, str]:
        """The ``old_str`` and ``new_str`` of the edit to function ``n``."""
        name = self.functions[n % len(self.functions)]
        old = (
            f'        value = item.get("{name.split("_", 1)[1]}", 0)\n'
            f"        result.append(value * {n % len(self.functions) + 2})  # {name}: scale"
        )
        new = (
            f'        value = item.get("{name.split("_", 1)[1]}")\n'
            "        if value is None:\n"
            "            continue\n"
            f"        result.append(value * {n % len(self.functions) + 2} + offset)  # {name}: scale, shifted"
        )
        return old, new


def _function(name: str, k: int) -> str:
    noun = name.split("_", 1)[1]
    return (
        f"def {name}(items, limit=10, offset=0):\n"
        f'    """{name.split("_")[0].capitalize()} the {noun} of each item, stopping after `limit` items."""\n'
        "    result = []\n"
        "    for index, item in enumerate(items):\n"
        "        if index >= limit:\n"
        "            break\n"
        f'        value = item.get("{noun}", 0)\n'
        f"        result.append(value * {k + 2})  # {name}: scale\n"
        "    return result\n"
    )


@lru_cache(maxsize=64)
def project(seed: int, files: int = 4, functions: int = 6, root: str = "") -> tuple[SourceFile, ...]:
    rng = random.Random(f"project:{seed}")
    package = rng.choice(PACKAGES)
    names = rng.sample([f"{v}_{n}" for v in VERBS for n in NOUNS], files * functions)
    modules = rng.sample(NOUNS, files)
    result = []
    for i, module in enumerate(modules):
        own = tuple(names[i * functions : (i + 1) * functions])
        body = "\n\n".join(_function(name, k) for k, name in enumerate(own))
        text = f'"""The {module} helpers of the {package} package."""\n\nfrom __future__ import annotations\n\n\n{body}'
        result.append(SourceFile(f"{root}src/{package}/{module}.py", own, text))
    return tuple(result)
