import warnings
from decimal import Decimal

import pytest

from tether.api.catalog import Catalog, UnknownModelWarning, default_catalog
from tether.api.cost import cost_of
from tether.api.types import Usage
from tether.errors import ConfigError, ModelRetiredError


def test_every_model_of_the_reference_is_in_the_catalog_with_its_facts():
    catalog = default_catalog()
    for model_id in ["claude-fable-5-2", "claude-mythos-5-2", "claude-haiku-5-5", "claude-sonnet-5-5",
                     "claude-fable-5-1", "claude-opus-5-5", "claude-mythos-5-1", "claude-sonnet-5",
                     "claude-fable-5", "claude-mythos-5", "claude-opus-5", "claude-opus-4-8", "claude-opus-4-7",
                     "claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5", "claude-haiku-4-5-20251001",
                     "claude-opus-4-5", "claude-opus-4-5-20251101", "claude-sonnet-4-5",
                     "claude-sonnet-4-5-20250929"]:
        assert catalog.get(model_id).known, model_id
    opus = catalog.get("claude-opus-4-8")
    assert (opus.context_window, opus.max_output, opus.thinking, opus.min_cache_tokens) == (
        1_000_000, 128_000, "adaptive", 1024)
    assert catalog.get("claude-haiku-4-5").thinking == "manual"
    assert catalog.get("claude-sonnet-4-5").status == "deprecated"


def test_a_retired_model_is_refused_with_a_successor():
    with pytest.raises(ModelRetiredError, match="claude-sonnet-4-6"):
        default_catalog().get("claude-3-7-sonnet-20250219")
    with pytest.raises(ModelRetiredError, match="retired on 2026-06-30"):
        default_catalog().get("claude-mythos-preview")


def test_an_unknown_model_works_with_a_warning_and_conservative_limits():
    with pytest.warns(UnknownModelWarning, match="claude-next"):
        info = default_catalog().get("claude-next")
    assert not info.known and info.max_output == 8_192 and info.min_cache_tokens == 4_096


def test_unconfirmed_facts_are_overridable():
    catalog = Catalog.load({"claude-sonnet-4-6": {"min_cache_tokens": 2048},
                            "claude-new": {"display_name": "New", "line": "opus", "context_window": 10,
                                           "max_output": 5, "thinking": "none", "min_cache_tokens": 1,
                                           "prices": {"input": 1, "output": 1, "cache_write_5m": 1,
                                                      "cache_write_1h": 1, "cache_read": 1}}})
    assert catalog.get("claude-sonnet-4-6").min_cache_tokens == 2048
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert catalog.get("claude-new").max_output == 5
    assert "min_cache_tokens" in catalog.get("claude-sonnet-4-6").unconfirmed


def test_a_bad_override_says_which_field():
    with pytest.raises(ConfigError, match="unknown field"):
        Catalog.load({"claude-opus-4-8": {"max_ouput": 1}})


def test_cost_is_exact_with_the_cache_write_split():
    usage = Usage(input_tokens=1_000, output_tokens=2_000, cache_read_input_tokens=10_000,
                  cache_creation_input_tokens=3_000, cache_write_5m_tokens=1_000, cache_write_1h_tokens=2_000)
    cost = cost_of(usage, default_catalog().get("claude-opus-4-8"))
    # 1000*5 + 2000*25 + 10000*0.5 + 1000*6.25 + 2000*10 per million
    assert cost.total == Decimal("0.08625")
    assert cost.cache_write_1h == Decimal("0.02")


def test_haiku_5_5_bills_long_prompts_at_the_higher_rate():
    haiku = default_catalog().get("claude-haiku-5-5")
    short = cost_of(Usage(input_tokens=100_000, output_tokens=0), haiku).total
    long = cost_of(Usage(input_tokens=100_001, output_tokens=0), haiku).total
    assert short == Decimal("0.01") and long == Decimal("0.0500005")
