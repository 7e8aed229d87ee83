"""Rendering a run's events in the terminal with rich, or as JSON lines."""

from __future__ import annotations

import json
import sys
from typing import assert_never

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from tether.agent import events as ev


class JsonRenderer:
    def __init__(self, out=sys.stdout) -> None:
        self.out = out

    def __call__(self, event: ev.Event) -> None:
        self.out.write(json.dumps(ev.to_dict(event), ensure_ascii=False, default=str) + "\n")
        self.out.flush()


class RichRenderer:
    """Text as it streams, thinking dimmed, tool calls and results as panels, a closing line of costs."""

    def __init__(self, console: Console | None = None, *, max_result_chars: int = 2_000) -> None:
        self.console = console or Console(highlight=False)
        self.max_result_chars = max_result_chars
        self._streaming: str | None = None

    def _stream(self, kind: str, text: str, style: str | None = None) -> None:
        if self._streaming not in (None, kind):
            self.console.print()
        self._streaming = kind
        self.console.print(Text(text, style=style or ""), end="")

    def _block(self, renderable) -> None:
        if self._streaming is not None:
            self.console.print()
            self._streaming = None
        self.console.print(renderable)

    def __call__(self, event: ev.Event) -> None:
        match event:
            case ev.RunStarted(model=model):
                self.console.print(Text(f"● {model}", style="bold cyan"))
            case ev.TextDelta(text=text):
                self._stream("text", text)
            case ev.ThinkingDelta(thinking=thinking):
                self._stream("thinking", thinking, "dim italic")
            case ev.ToolCallStarted() | ev.ToolInputDelta() | ev.UsageReport():
                pass
            case ev.ToolCallFinished(name=name, input=tool_input):
                body = json.dumps(tool_input, indent=2, ensure_ascii=False)
                self._block(Panel(body, title=f"→ {name}", title_align="left", border_style="blue"))
            case ev.ToolResult(name=name, content=content, is_error=is_error, seconds=seconds):
                text = content if isinstance(content, str) else "\n".join(
                    getattr(b, "text", f"[{b.type}]") for b in content)
                if len(text) > self.max_result_chars:
                    text = text[: self.max_result_chars] + f"\n… ({len(text)} characters)"
                style = "red" if is_error else "green"
                self._block(Panel(Text(text), title=f"← {name} ({seconds:.2f}s)", title_align="left",
                                  border_style=style))
            case ev.TurnEnd():
                pass
            case ev.Warning(code=code, message=message):
                self._block(Text(f"⚠ {code}: {message}", style="yellow"))
            case ev.Compacted(kind=kind, tokens_before=before, tokens_after=after):
                self._block(Text(f"⇣ compacted ({kind}): ~{before:,} → ~{after:,} tokens", style="magenta"))
            case ev.RunEnd():
                self._block(Text(summary(event), style="bold" if event.outcome == "completed" else "bold red"))
            case _:
                assert_never(event)


def summary(end: ev.RunEnd) -> str:
    u = end.usage
    prompt = u.prompt_tokens
    hit = u.cache_read_input_tokens / prompt if prompt else 0.0
    line = (f"{end.outcome} · {end.turns} turns · {prompt:,} in / {u.output_tokens:,} out · "
            f"cache hit {hit:.0%} · ${end.dollars:.4f}")
    return f"{line}\n{end.error}" if end.error else line
