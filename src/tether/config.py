"""Settings, grouped by concern, from defaults < ``tether.toml`` < environment < arguments.

The environment is read here and only here (``Settings.load(environ=...)`` takes any mapping, so
tests pass their own). Every value is validated when loaded, with an error that names the setting.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tether.errors import ConfigError


@dataclass(frozen=True)
class ApiSettings:
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    max_retries: int = 2
    timeout: float = 600.0


@dataclass(frozen=True)
class OutputSettings:
    # None sizes max_tokens to the model: its whole max output with extended output on, else 8192.
    max_tokens: int | None = None
    extended: bool = True
    streaming: bool = True
    # "auto": adaptive where the model wants it, a manual budget where `thinking_budget` is set.
    thinking: Literal["auto", "off"] = "auto"
    thinking_budget: int | None = None
    # A response cut by max_tokens is continued this many times before the run gives up on it.
    max_continuations: int = 3


@dataclass(frozen=True)
class CacheSettings:
    enabled: bool = True
    ttl: Literal["5m", "1h"] = "5m"


@dataclass(frozen=True)
class LimitSettings:
    max_turns: int | None = 100
    max_tokens: int | None = None
    max_dollars: float | None = None
    max_seconds: float | None = None


@dataclass(frozen=True)
class ToolSettings:
    concurrency: int = 8
    timeout: float = 120.0
    max_output_chars: int = 100_000


@dataclass(frozen=True)
class CompactionSettings:
    enabled: bool = True
    # Compact when the prompt is estimated at this share of the model's context window.
    trigger: float = 0.8
    keep_tool_results: int = 6
    # Messages kept verbatim after a summary (at least; the cut moves back to an assistant message).
    keep_messages: int = 6
    summary_max_tokens: int = 8_192


@dataclass(frozen=True)
class StoreSettings:
    # None: sessions.db in the user's data directory; a path; or postgresql://user@host/db.
    url: str | None = field(default=None, repr=False)
    # Sessions not updated for this many days are pruned when the store is opened by the CLI.
    retention_days: float | None = None


@dataclass(frozen=True)
class BudgetSettings:
    """Dollars each tenant's runs may spend per calendar month (UTC): ``[server.budgets]``.

    ``default`` applies to every tenant not named in ``[server.budgets.tenants]``; None (or
    ``inf`` in ``tether.toml``) means no limit. A limit of 0 refuses every run of the tenant.
    """

    default: float | None = None
    tenants: Mapping[str, float | None] = field(default_factory=dict)

    def limit_for(self, tenant: str) -> float | None:
        return self.tenants[tenant] if tenant in self.tenants else self.default

    @property
    def enabled(self) -> bool:
        return self.default is not None or any(v is not None for v in self.tenants.values())


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8600
    # Every route but /healthz needs a service token; only a dev profile may turn this off.
    auth: bool = True
    debug: bool = False
    cors_origins: tuple[str, ...] = ()  # CORS is off unless origins are listed
    concurrency: int = 32  # runs at once in the service's fleet
    budgets: BudgetSettings = field(default_factory=BudgetSettings)


Profile = Literal["dev", "staging", "prod"]
PROFILES = ("dev", "staging", "prod")


@dataclass(frozen=True)
class Settings:
    # Selects the [profiles.<name>] table of tether.toml; prod adds checks at service start.
    profile: Profile = "dev"
    model: str = "claude-opus-4-8"
    api: ApiSettings = ApiSettings()
    output: OutputSettings = OutputSettings()
    cache: CacheSettings = CacheSettings()
    limits: LimitSettings = LimitSettings()
    tools: ToolSettings = ToolSettings()
    store: StoreSettings = StoreSettings()
    compaction: CompactionSettings = CompactionSettings()
    server: ServerSettings = ServerSettings()
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # MCP servers by name: {command, args, env, cwd} for stdio or {url, headers} for HTTP.
    mcp: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        *,
        path: Path | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Defaults, then ``path`` (or ./tether.toml if it exists) with its ``[profiles.<profile>]``
        table, then ``environ``, then ``overrides``.

        ``overrides`` uses dotted names: ``Settings.load(**{"limits.max_turns": 5})``.
        """
        environ = os.environ if environ is None else environ
        toml_path = path or Path("tether.toml")
        table = _read_toml(toml_path) if path is not None or toml_path.exists() else {}
        profiles = table.pop("profiles", {})
        env, given = _from_env(environ), {k: v for k, v in overrides.items() if v is not None}
        values: dict[str, Any] = _flatten(table)
        profile = given.get("profile") or env.get("profile") or values.get("profile") or "dev"
        if profile not in PROFILES:
            raise ConfigError(f"profile must be one of {', '.join(PROFILES)}, not {profile!r}")
        if unknown := set(profiles) - set(PROFILES):
            raise ConfigError(f"tether.toml has [profiles.{sorted(unknown)[0]}]; profiles are {', '.join(PROFILES)}")
        values.update(_flatten(profiles.get(profile, {})))
        values.update(env)
        values.update(given)
        values["profile"] = profile
        return _build(values)

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict, secrets replaced, for showing and logging."""
        data = dataclasses.asdict(self)
        if data["api"]["api_key"]:
            data["api"]["api_key"] = "***"
        if data["store"]["url"] and "@" in data["store"]["url"]:
            data["store"]["url"] = re.sub(r"//[^@/]*@", "//***@", data["store"]["url"])
        return data


MEMORY_FILES = ("AGENTS.md", "CLAUDE.md", "TETHER.md")


def project_memory(workspace: Path) -> str | None:
    """The project's memory files (``AGENTS.md``, ``CLAUDE.md``, ``TETHER.md`` in the workspace), joined."""
    parts = []
    for name in MEMORY_FILES:
        path = workspace / name
        if path.is_file():
            parts.append(f"<project-memory file=\"{name}\">\n{path.read_text(errors='replace').strip()}\n"
                         "</project-memory>")
    return "\n\n".join(parts) or None


ENV = {
    "ANTHROPIC_API_KEY": "api.api_key",
    "ANTHROPIC_BASE_URL": "api.base_url",
    "TETHER_MODEL": "model",
    "TETHER_PROFILE": "profile",
    "TETHER_STORE_URL": "store.url",
    "ENABLE_STREAMING": "output.streaming",
    "ENABLE_PROMPT_CACHE": "cache.enabled",
    "ENABLE_EXTENDED_OUTPUT": "output.extended",
    "MAX_TOKENS": "output.max_tokens",
    "THINKING_BUDGET": "output.thinking_budget",
    "TETHER_TENANT_BUDGET": "server.budgets.default",
}
# Tables whose keys are names (of models, servers, tenants), kept whole instead of read as settings.
_TABLES = ("models", "mcp", "server.budgets.tenants")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if f"{prefix}{key}" in _TABLES:
            out[f"{prefix}{key}"] = value
        elif isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values = {dotted: environ[name] for name, dotted in ENV.items() if environ.get(name)}
    if "api.api_key" not in values and environ.get("ANTHROPIC_AUTH_TOKEN"):
        values["api.api_key"] = environ["ANTHROPIC_AUTH_TOKEN"]
    return values


def _build(values: Mapping[str, Any]) -> Settings:
    groups: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    sections = {f.name: f.type for f in dataclasses.fields(Settings)}
    for dotted, value in values.items():
        group, _, name = dotted.rpartition(".")
        if not group:
            if dotted not in sections or dotted in _GROUPS:
                raise ConfigError(f"unknown setting {dotted!r}; known: {sorted(_known())}")
            top[dotted] = value
        elif group in _GROUPS:
            groups.setdefault(group, {})[name] = value
        else:
            raise ConfigError(f"unknown setting {dotted!r}; known: {sorted(_known())}")
    budgets = groups.pop("server.budgets", None)
    for group, changes in groups.items():
        top[group] = _section(_GROUPS[group], group, changes)
    if budgets is not None:
        top["server"] = dataclasses.replace(top.get("server", ServerSettings()), budgets=_budgets(budgets))
    if not isinstance(top.get("server", ServerSettings()).budgets, BudgetSettings):
        raise ConfigError("server.budgets is a table: [server.budgets] with default = <dollars>, and "
                          "[server.budgets.tenants] with <tenant> = <dollars>")
    return Settings(**top)


_GROUPS = {
    "api": ApiSettings,
    "output": OutputSettings,
    "cache": CacheSettings,
    "limits": LimitSettings,
    "tools": ToolSettings,
    "store": StoreSettings,
    "compaction": CompactionSettings,
    "server": ServerSettings,
    "server.budgets": BudgetSettings,
}


def _known() -> list[str]:
    names = ["profile", "model", "models", "mcp"]
    for group, cls in _GROUPS.items():
        names += [f"{group}.{f.name}" for f in dataclasses.fields(cls)]
    return names


def _section(cls: type, group: str, changes: Mapping[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    converted = {}
    for name, value in changes.items():
        if name not in fields:
            raise ConfigError(f"unknown setting '{group}.{name}'; known: {sorted(_known())}")
        converted[name] = _convert(f"{group}.{name}", fields[name].default, value)
    return cls(**converted)


def _budgets(changes: Mapping[str, Any]) -> BudgetSettings:
    if unknown := set(changes) - {"default", "tenants"}:
        raise ConfigError(f"unknown setting 'server.budgets.{sorted(unknown)[0]}': [server.budgets] takes "
                          "default = <dollars>, and [server.budgets.tenants] takes <tenant> = <dollars>")
    tenants = changes.get("tenants", {})
    if not isinstance(tenants, Mapping):
        raise ConfigError("server.budgets.tenants is a table of <tenant> = <dollars>, not "
                          f"{type(tenants).__name__}")
    return BudgetSettings(
        default=_dollars("server.budgets.default", changes.get("default")),
        tenants={str(name): _dollars(f"server.budgets.tenants.{name}", value) for name, value in tenants.items()})


def _dollars(name: str, value: Any) -> float | None:
    """A budget in dollars: a number, 0 or more; inf (or None) for no limit."""
    if isinstance(value, str):
        try:
            value = float(value.replace("_", ""))
        except ValueError:
            pass
    if value is None or (isinstance(value, float) and value == float("inf")):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(f"{name} must be dollars: a number, 0 or more (inf for no limit), not {value!r}")
    return float(value)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(name: str, default: Any, value: Any) -> Any:
    """Coerce strings from the environment to the type of the default, with a clear error."""
    if isinstance(default, tuple):
        return tuple(v.strip() for v in value.split(",") if v.strip()) if isinstance(value, str) else tuple(value)
    if not isinstance(value, str):
        return value
    if isinstance(default, bool):
        if value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{name} must be true or false, not {value!r}")
    if isinstance(default, int) or (default is None and name.endswith(("max_tokens", "budget", "turns"))):
        try:
            return int(value.replace("_", ""))
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if isinstance(default, float) or (default is None and name.endswith(("dollars", "seconds", "days"))):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number, not {value!r}") from None
    return value
