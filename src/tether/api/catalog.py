"""The model catalog: limits, thinking modes, prices and lifecycle of every model, as data.

The facts live in ``models.toml`` beside this file. A ``Catalog`` is built from that file and
optional overrides (``[models."<id>"]`` tables in config), so a fact the reference marks
UNCONFIRMED can be corrected without a release.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

from tether.errors import ConfigError, ModelRetiredError

ThinkingMode = Literal["adaptive", "manual", "none"]
Status = Literal["active", "deprecated", "retired"]


@dataclass(frozen=True, slots=True)
class Prices:
    """US dollars per million tokens."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    display_name: str
    line: str
    context_window: int
    max_output: int
    thinking: ThinkingMode
    prices: Prices
    min_cache_tokens: int
    budget_allowed: bool = True
    can_disable: bool = True
    aliases: tuple[str, ...] = ()
    status: Status = "active"
    released: dt.date | None = None
    retires_at: dt.date | None = None
    successor: str | None = None
    long_prompt_threshold: int | None = None
    long_prompt_prices: Prices | None = None
    unconfirmed: tuple[str, ...] = ()
    known: bool = True

    def prices_for(self, prompt_tokens: int) -> Prices:
        """The prices that apply to a request whose whole prompt is ``prompt_tokens`` long."""
        if self.long_prompt_threshold is not None and prompt_tokens > self.long_prompt_threshold:
            return self.long_prompt_prices or self.prices
        return self.prices


# Used for a model id the catalog does not know: small limits, the highest prices, the largest
# cache minimum, so that nothing is promised that the model may not give.
CONSERVATIVE = dict(
    display_name="unknown model",
    line="unknown",
    context_window=200_000,
    max_output=8_192,
    thinking="none",
    prices=Prices(input=15.0, output=75.0, cache_write_5m=18.75, cache_write_1h=30.0, cache_read=1.50),
    min_cache_tokens=4_096,
    known=False,
)


def _date(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _build(model_id: str, raw: Mapping[str, Any]) -> ModelInfo:
    fields = {f.name for f in dataclasses.fields(ModelInfo)}
    unknown = set(raw) - fields
    if unknown:
        raise ConfigError(f"models.{model_id}: unknown field(s) {sorted(unknown)}; known fields: {sorted(fields)}")
    values = dict(raw)
    try:
        for key in ("prices", "long_prompt_prices"):
            if isinstance(values.get(key), Mapping):
                values[key] = Prices(**values[key])
        for key in ("released", "retires_at"):
            values[key] = _date(values.get(key))
        for key in ("aliases", "unconfirmed"):
            values[key] = tuple(values.get(key, ()))
        return ModelInfo(id=model_id, **values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"models.{model_id}: {exc}") from None


@dataclass
class Catalog:
    """Every model tether knows, by id and alias."""

    models: dict[str, ModelInfo] = field(default_factory=dict)

    @classmethod
    def load(cls, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Catalog:
        text = resources.files("tether.api").joinpath("models.toml").read_text()
        table: dict[str, dict[str, Any]] = tomllib.loads(text)["models"]
        for model_id, changes in (overrides or {}).items():
            base = table.get(model_id) or next(
                (raw for raw in table.values() if model_id in raw.get("aliases", ())), None
            )
            if base is None:  # a model tether does not know yet, described in full by the user
                table[model_id] = dict(changes)
            else:
                base.update(changes)
        return cls({model_id: _build(model_id, raw) for model_id, raw in table.items()})

    def __post_init__(self) -> None:
        self._by_name = {name: info for info in self.models.values() for name in (info.id, *info.aliases)}

    def get(self, model: str) -> ModelInfo:
        """The model's facts. A retired model raises; an unknown one warns and gets conservative limits."""
        info = self._by_name.get(model)
        if info is None:
            warnings.warn(
                f"model {model!r} is not in tether's catalog; using conservative limits "
                f"(context {CONSERVATIVE['context_window']}, max output {CONSERVATIVE['max_output']}). "
                f'Describe it under [models."{model}"] in tether.toml to lift them.',
                UnknownModelWarning,
                stacklevel=2,
            )
            return ModelInfo(id=model, **CONSERVATIVE)  # type: ignore[arg-type]
        if info.status == "retired":
            when = f" on {info.retires_at}" if info.retires_at else ""
            raise ModelRetiredError(
                f"model {model!r} was retired{when} and can no longer be called; use {info.successor!r} instead",
                model=model,
                successor=info.successor,
            )
        return info

    def __iter__(self):
        return iter(self.models.values())


class UnknownModelWarning(UserWarning):
    """A model id that is not in the catalog was used."""


_default: Catalog | None = None


def default_catalog() -> Catalog:
    """The catalog as shipped, loaded once."""
    global _default
    if _default is None:
        _default = Catalog.load()
    return _default
