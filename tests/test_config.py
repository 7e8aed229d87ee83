import pytest

from tether.config import Settings
from tether.errors import ConfigError


def test_layers_apply_in_order(tmp_path):
    toml = tmp_path / "tether.toml"
    toml.write_text('model = "claude-sonnet-4-6"\n[limits]\nmax_turns = 7\n[cache]\nttl = "1h"\n')
    env = {"ENABLE_STREAMING": "false", "MAX_TOKENS": "4096", "THINKING_BUDGET": "2048",
           "ENABLE_PROMPT_CACHE": "0", "ENABLE_EXTENDED_OUTPUT": "no", "ANTHROPIC_API_KEY": "sk-ant-secret"}
    s = Settings.load(path=toml, environ=env, **{"limits.max_turns": 3})
    assert s.model == "claude-sonnet-4-6" and s.cache.ttl == "1h"
    assert s.limits.max_turns == 3
    assert (s.output.streaming, s.output.max_tokens, s.output.thinking_budget) == (False, 4096, 2048)
    assert (s.cache.enabled, s.output.extended) == (False, False)
    assert "sk-ant-secret" not in repr(s) and s.redacted()["api"]["api_key"] == "***"


def test_bad_values_name_the_setting(tmp_path):
    with pytest.raises(ConfigError, match="output.streaming must be true or false"):
        Settings.load(environ={"ENABLE_STREAMING": "maybe"})
    with pytest.raises(ConfigError, match="output.max_tokens must be a whole number"):
        Settings.load(environ={"MAX_TOKENS": "lots"})
    bad = tmp_path / "tether.toml"
    bad.write_text("[limits]\nmax_turn = 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'limits.max_turn'"):
        Settings.load(path=bad, environ={})
    bad.write_text("[limits\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load(path=bad, environ={})
