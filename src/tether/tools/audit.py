"""The audit log: one JSON line per tool call, append-only and hash-chained.

Each line holds the call (run id, tool_use id, tool, input with secrets redacted), the permission
decision, when it started, how long it took, whether it succeeded, and the sha256 of its output. It
also holds ``prev``, the hash of the line before it (64 zeros for the first), and ``hash``, the
sha256 of its own canonical JSON without ``hash``. Editing, deleting or reordering a line therefore
breaks the chain at that line, and ``verify`` names it. Cutting lines off the *end* leaves a valid
shorter chain: keep the last hash somewhere else (``AuditLog.head``) and pass it to ``verify`` to
catch that too.

One process writes one log file; lines are written off the event loop and flushed one by one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tether.api.types import ImageBlock, TextBlock

GENESIS = "0" * 64
REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"token|secret|passw|api_?key|access_?key|private_?key|^key$|_key$|credential|authoriz|^auth$|_auth$|cookie",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"sk-ant-[A-Za-z0-9_\-]{8,}"                # Anthropic keys
    r"|sk-[A-Za-z0-9_\-]{20,}"                  # other sk- keys
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*"
)


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-named keys and key-shaped strings replaced by ``[REDACTED]``."""
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) and value[k] not in (None, "") else redact(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value)
    return value


def output_digest(content: str | list[TextBlock | ImageBlock]) -> str:
    """sha256 of a tool's output: of the text, or of the canonical JSON of its blocks."""
    data = content if isinstance(content, str) else canonical([b.to_wire() for b in content])
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(slots=True)
class AuditEntry:
    run_id: str
    tool_use_id: str
    tool: str
    input: Any
    decision: str  # allowed, denied, asked-yes, asked-always, asked-no, asked-none, invalid, unknown-tool
    started_at: str  # ISO 8601, UTC
    duration_ms: float
    status: str  # ok, error, cancelled
    output_sha256: str | None


class AuditLog:
    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._head: str | None = None

    @property
    def head(self) -> str | None:
        """The hash of the last line written (None before the first write)."""
        return self._head

    async def record(self, entry: AuditEntry) -> None:
        await asyncio.to_thread(self.write, entry)

    def write(self, entry: AuditEntry) -> str:
        """Append one line (blocking); returns its hash."""
        with self._lock:
            if self._head is None:
                self._head = _last_hash(self.path)
            line: dict[str, Any] = {**asdict(entry), "input": redact(entry.input), "prev": self._head}
            line["hash"] = hashlib.sha256(canonical(line).encode("utf-8")).hexdigest()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(canonical(line) + "\n")
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
            self._head = line["hash"]
            return self._head


def _last_hash(path: Path) -> str:
    if not path.exists():
        return GENESIS
    last = GENESIS
    with open(path, encoding="utf-8") as f:
        for raw in f:
            if raw.strip():
                last = json.loads(raw).get("hash", last)
    return last


def verify(path: str | os.PathLike[str], head: str | None = None) -> tuple[bool, str]:
    """Check the chain of a log file: ``(True, summary)``, or ``(False, what is wrong at which line)``."""
    prev, count = GENESIS, 0
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            problem = _check_line(raw, prev)
            if problem:
                return False, f"line {number}: {problem}"
            prev, count = json.loads(raw)["hash"], count + 1
    if head is not None and prev != head:
        return False, f"the last line's hash is {prev[:16]}…, expected {head[:16]}…: lines were cut off the end"
    return True, f"{count} lines, chain intact"


def _check_line(raw: str, prev: str) -> str | None:
    try:
        line = json.loads(raw)
    except json.JSONDecodeError:
        return "not valid JSON (edited or truncated)"
    if not isinstance(line, dict) or "hash" not in line or "prev" not in line:
        return "not an audit entry (no hash or prev)"
    claimed = line.pop("hash")
    if hashlib.sha256(canonical(line).encode("utf-8")).hexdigest() != claimed:
        return "its hash does not match its content: the line was edited"
    if line["prev"] != prev:
        return "its prev does not match the line before: a line was deleted, inserted or moved"
    return None
