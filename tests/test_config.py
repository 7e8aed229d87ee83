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


def test_a_profile_table_applies_over_the_base(tmp_path):
    toml = tmp_path / "tether.toml"
    toml.write_text('model = "claude-sonnet-4-6"\n[server]\nport = 9000\n'
                    '[profiles.prod.server]\nport = 443\ndebug = false\n[profiles.prod.limits]\nmax_dollars = 5\n')
    dev = Settings.load(path=toml, environ={})
    prod = Settings.load(path=toml, environ={"TETHER_PROFILE": "prod"})
    assert (dev.profile, dev.server.port) == ("dev", 9000)
    assert (prod.profile, prod.server.port, prod.limits.max_dollars) == ("prod", 443, 5)
    with pytest.raises(ConfigError, match="profile must be one of dev, staging, prod"):
        Settings.load(path=toml, environ={"TETHER_PROFILE": "production"})


def test_secrets_are_redacted_when_shown():
    s = Settings.load(environ={"ANTHROPIC_API_KEY": "sk-ant-123", "TETHER_STORE_URL": "postgresql://u:pw@h/db"})
    shown = str(s.redacted())
    assert "sk-ant-123" not in shown and "pw" not in shown and "***" in shown


async def test_config_check_finds_what_to_change(tmp_path):
    from tether.checks import problems

    ok = Settings.load(environ={"ANTHROPIC_API_KEY": "k", "TETHER_STORE_URL": str(tmp_path / "s.db")})
    assert await problems(ok, service=True) == []
    bad = Settings.load(environ={"TETHER_STORE_URL": "postgresql://nobody@127.0.0.1:1/x", "TETHER_PROFILE": "prod",
                                 "TETHER_MODEL": "claude-3-7-sonnet-20250219"}, **{"server.debug": True})
    found = await problems(bad, service=True)
    assert any("retired" in p for p in found) and any("ANTHROPIC_API_KEY" in p for p in found)
    assert any("unreachable" in p for p in found) and any("server.debug = false" in p for p in found)


def test_tenant_budgets_have_a_default_and_overrides(tmp_path):
    toml = tmp_path / "tether.toml"
    toml.write_text('[server.budgets]\ndefault = 50\n[server.budgets.tenants]\nacme = 200.5\ninternal = inf\n'
                    'trial = 0\n')
    budgets = Settings.load(path=toml, environ={}).server.budgets
    assert budgets.tenants == {"acme": 200.5, "internal": None, "trial": 0.0} and budgets.enabled
    assert [budgets.limit_for(t) for t in ("acme", "internal", "trial", "other")] == [200.5, None, 0.0, 50.0]
    from_env = Settings.load(path=toml, environ={"TETHER_TENANT_BUDGET": "7.5"}).server.budgets
    assert from_env.default == 7.5 and from_env.tenants["acme"] == 200.5
    assert not Settings.load(environ={}).server.budgets.enabled


@pytest.mark.parametrize(("text", "words"), [
    ("[server.budgets]\ndefault = -1\n", "server.budgets.default must be dollars"),
    ("[server.budgets]\ndefault = true\n", "server.budgets.default must be dollars"),
    ('[server.budgets.tenants]\nacme = "lots"\n', "server.budgets.tenants.acme must be dollars"),
    ("[server.budgets]\nacme = 3\n", "unknown setting 'server.budgets.acme'"),
    ("[server.budgets]\ntenants = 3\n", "server.budgets.tenants is a table"),
    ("[server]\nbudgets = 5\n", "server.budgets is a table"),
])
def test_bad_budgets_say_what_to_change(tmp_path, text, words):
    toml = tmp_path / "tether.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError, match=words):
        Settings.load(path=toml, environ={})
