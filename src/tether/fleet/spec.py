"""What one run of a fleet is asked to do (``RunSpec``) and how it ended (``RunOutcome``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tether.config import LimitSettings
from tether.errors import ConfigError
from tether.tools.policy import Approver

MODES = ("allow", "ask", "deny")


@dataclass
class RunSpec:
    task: str | None  # None: only resume ``session_id``
    model: str | None = None
    tools: list[str] = field(default_factory=list)  # tool set names: bash, editor, python, computer, mcp:NAME
    workspace: str | None = None  # None: a fresh temporary directory
    system: str | None = None
    limits: dict[str, Any] = field(default_factory=dict)  # fields of LimitSettings
    queue: str = "default"  # the queue or tenant, for fair sharing and budgets
    priority: int = 0  # higher runs first within its queue
    session_id: str | None = None  # continue (or resume) this session
    id: str | None = None  # the caller's name for the run (a batch line's id)
    title: str | None = None
    tags: list[str] = field(default_factory=list)
    # Tool name (or "*" for every other tool) -> "allow", "ask" or "deny"; empty: every tool allowed.
    permissions: dict[str, str] = field(default_factory=dict)
    # Who answers "ask": a live callback, so not part of the spec's JSON (without one, "ask" refuses).
    approve: Approver | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "run") -> RunSpec:
        """A spec from JSON data, with errors that say what to fix."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)} - {"approve"}
        if unknown := set(data) - known:
            raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        if not data.get("task") and not data.get("session_id"):
            raise ConfigError(f"{where}: give a task (or a session_id to resume)")
        values = dict(data)
        if isinstance(values.get("tools"), str):
            values["tools"] = [t.strip() for t in values["tools"].split(",") if t.strip()]
        limit_names = {f.name for f in dataclasses.fields(LimitSettings)}
        if bad := set(values.get("limits") or {}) - limit_names:
            raise ConfigError(f"{where}: unknown limit(s) {sorted(bad)}; known: {sorted(limit_names)}")
        permissions = values.get("permissions") or {}
        if not isinstance(permissions, Mapping) or any(m not in MODES for m in permissions.values()):
            raise ConfigError(f"{where}: permissions map tool names (or \"*\") to one of {', '.join(MODES)}")
        try:
            spec = cls(**values)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if not isinstance(spec.priority, int):
            raise ConfigError(f"{where}: priority must be a whole number, not {spec.priority!r}")
        return spec

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(dataclasses.replace(self, approve=None))
        del data["approve"]
        return data


@dataclass
class RunOutcome:
    """How a run ended: ``outcome`` is "completed", "refusal", or an error category."""

    spec_id: str | None
    session_id: str
    outcome: str
    text: str = ""
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    dollars: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("completed", "refusal")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
