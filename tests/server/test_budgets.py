"""Tenant budgets (``[server.budgets]``): a tenant's runs share its dollars for the month; a spent
budget refuses new runs and follow-ups (402, ``budget_exhausted``) and stops running runs at their
next turn; the count is read back from the store after a restart; ``/v1/usage`` shows what is left."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from server_helpers import bearer, open_harness

from tether.config import BudgetSettings
from tether.errors import ConfigError
from tether.server.budgets import TenantBudgets, month_of, next_month, scope
from tether.server.errors import ServiceError
from tether.testing import Turn, tool_use

TINY = 0.000001  # less than any model call costs: one turn spends it
EDIT = Turn([tool_use("str_replace_based_edit_tool", {"command": "create", "path": "notes.txt", "file_text": "hi"})])


async def refused(h, token: str, **body) -> dict:
    response = await h.client.post("/v1/runs", json=body, headers=bearer(token))
    assert response.status_code == 402, response.text
    error = response.json()["error"]
    assert error["category"] == "budget_exhausted"
    return error


async def test_a_spent_budget_refuses_the_tenants_new_runs_and_follow_ups_only(fake, key, tmp_path):
    budgets = {"server.budgets.default": TINY, "server.budgets.tenants": {"team-b": 100}}
    async with open_harness(fake, key, tmp_path, **budgets) as h:
        mine, theirs = await h.token("read,run", "team-a"), await h.token("read,run", "team-b")
        first = await h.run(mine, task="one turn spends it all")
        assert (await h.settled(first["id"]))["status"] == "completed"

        error = await refused(h, mine, task="and another")
        assert all(words in error["message"] for words in ("'team-a'", "renews on", "[server.budgets]"))
        follow = await h.client.post(f"/v1/runs/{first['id']}/messages", json={"text": "more"}, headers=bearer(mine))
        assert follow.status_code == 402 and follow.json()["error"]["category"] == "budget_exhausted"
        assert h.service.manager.get(first["id"]).status == "completed"  # the refused follow-up left it as it was

        other = await h.run(theirs, task="another tenant has its own budget")
        assert (await h.settled(other["id"]))["status"] == "completed"

        usage = (await h.client.get("/v1/usage", headers=bearer(mine))).json()
        [row] = usage["budgets"]["tenants"]
        assert row["tenant"] == "team-a" and row["limit"] == TINY and row["remaining"] == 0 and row["exhausted"]
        assert row["spent"] == pytest.approx(usage["total"]["dollars"])
        assert usage["budgets"]["period"] == f"{dt.datetime.now(dt.UTC):%Y-%m}"


async def test_running_runs_of_the_tenant_stop_at_their_next_turn(fake, key, tmp_path):
    fake.script([EDIT, "never reached"], key=key)
    async with open_harness(fake, key, tmp_path, **{"server.budgets.default": TINY}) as h:
        token = await h.token("read,run", "team-a")
        run = await h.run(token, task="edit a file, then go on", tools=["editor"], permissions={"editor": "allow"})
        done = await h.settled(run["id"])
        assert done["status"] == "failed" and done["outcome"]["outcome"] == "budget_exhausted"
        assert done["turns"] == 1 and "tenant:team-a" in done["outcome"]["error"]
        results = [b for m in await h.service.store.messages(run["session_id"]) for b in m.content
                   if b["type"] == "tool_result"]
        assert len(results) == 1  # the tool call ran; the turn after it was refused


async def test_the_months_spending_is_read_back_from_the_store_after_a_restart(fake, key, tmp_path):
    async with open_harness(fake, key, tmp_path) as h:  # no budgets yet: spend freely
        token = await h.token("read,run", "team-a")
        spent = (await h.settled((await h.run(token, task="before the budget"))["id"]))["dollars"]
        assert h.service.budgets is None
        assert (await h.client.get("/v1/usage", headers=bearer(token))).json()["budgets"] is None
    async with open_harness(fake, key, tmp_path, **{"server.budgets.tenants": {"team-a": spent / 2}}) as h:
        await refused(h, token, task="after the restart")
        admin = await h.token("admin", "ops")
        view = (await h.client.get("/v1/usage", headers=bearer(admin))).json()["budgets"]
        rows = {row["tenant"]: row for row in view["tenants"]}
        assert set(rows) == {"team-a", "ops"}  # tenants with a limit, spending or a token
        assert rows["team-a"]["spent"] == pytest.approx(spent) and rows["team-a"]["exhausted"]
        assert rows["ops"] == {"tenant": "ops", "limit": None, "spent": 0, "remaining": None, "exhausted": False}
        config = (await h.client.get("/v1/config", headers=bearer(admin))).json()
        assert config["server"]["budgets"] == {"default": None, "tenants": {"team-a": spent / 2}}


async def test_a_budget_is_counted_per_calendar_month_in_utc():
    now = [dt.datetime(2026, 1, 31, 23, 59, tzinfo=dt.UTC)]
    reads: list[dt.datetime] = []

    async def spent_since(moment: dt.datetime) -> dict[str, float]:
        reads.append(moment)
        return {"team-a": 5.0} if moment.month == 1 else {}

    ledger = TenantBudgets(BudgetSettings(default=5.0, tenants={"team-b": None}), spent_since, clock=lambda: now[0])
    with pytest.raises(ServiceError) as exc:
        await ledger.check("team-a")
    assert exc.value.status == 402 and "in 2026-01 (UTC)" in exc.value.message and "2026-02-01" in exc.value.message
    assert await ledger.reserve("h1", [scope("team-a")], Decimal(1)) == scope("team-a")
    assert await ledger.reserve("h2", [scope("team-b")], Decimal(1)) is None  # no limit for team-b
    await ledger.settle("h2", Decimal("0.5"))
    assert (await ledger.status(scope("team-b"))).spent == Decimal("0.5")

    now[0] = dt.datetime(2026, 2, 1, 0, 0, 1, tzinfo=dt.UTC)  # a new month: read again, from its start
    await ledger.check("team-a")
    assert reads == [dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 2, 1, tzinfo=dt.UTC)]
    assert await ledger.reserve("h3", [scope("team-a")], Decimal(9)) is None  # a call may cost more than is left
    await ledger.settle("h3", Decimal(6))
    with pytest.raises(ServiceError):
        await ledger.check("team-a")
    view = await ledger.view(["team-a"])
    assert view["period"] == "2026-02" and view["renews_at"] == "2026-03-01T00:00:00+00:00"
    assert view["tenants"] == [{"tenant": "team-a", "limit": 5.0, "spent": 6.0, "remaining": 0.0, "exhausted": True}]
    assert next_month(month_of(dt.datetime(2026, 12, 15, tzinfo=dt.UTC))) == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


async def test_what_other_processes_spend_is_read_from_the_store_again_every_half_minute():
    now = [dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)]
    in_store = {"team-a": 1.0}

    async def spent_since(moment: dt.datetime) -> dict[str, float]:
        return dict(in_store)

    ledger = TenantBudgets(BudgetSettings(default=5.0), spent_since, clock=lambda: now[0])
    await ledger.check("team-a")
    in_store["team-a"] = 6.0  # another service process on the store spent it
    now[0] += dt.timedelta(seconds=29)
    await ledger.check("team-a")  # the count is not read again yet
    now[0] += dt.timedelta(seconds=2)
    with pytest.raises(ServiceError, match=r"\$6\.00 of \$5\.00"):
        await ledger.check("team-a")


async def test_a_zero_budget_refuses_at_once_and_a_bad_tenant_name_is_a_config_error():
    async def nothing(moment: dt.datetime) -> dict[str, float]:
        return {}

    with pytest.raises(ServiceError, match="budget of tenant 'free' is spent"):
        await TenantBudgets(BudgetSettings(tenants={"free": 0.0}), nothing).check("free")
    with pytest.raises(ConfigError, match="server.budgets.tenants names 'no spaces please'"):
        TenantBudgets(BudgetSettings(tenants={"no spaces please": 1.0}), nothing)


async def test_metrics_show_the_budgets_a_token_may_see(fake, key, tmp_path):
    budgets = {"server.budgets.default": 5, "server.budgets.tenants": {"team-b": 7}}
    async with open_harness(fake, key, tmp_path, **budgets) as h:
        mine, admin = await h.token("read,run", "team-a"), await h.token("read,admin", "ops")
        await h.token("read,run", "team-b")
        run = await h.run(mine, task="spend a little")
        await h.settled(run["id"])
        spent = (await h.client.get("/v1/usage", headers=bearer(mine))).json()["total"]["dollars"]
        assert spent > 0

        text = (await h.client.get("/metrics", headers=bearer(mine))).text
        assert 'tether_budget_limit_dollars{tenant="team-a"} 5.000000' in text
        assert f'tether_budget_spent_dollars{{tenant="team-a"}} {spent:.6f}' in text
        assert 'tenant="team-b"' not in text, "a tenant sees its own budget only"
        everyone = (await h.client.get("/metrics", headers=bearer(admin))).text
        assert 'tether_budget_limit_dollars{tenant="team-b"} 7.000000' in everyone
        assert 'tether_budget_spent_dollars{tenant="team-b"} 0.000000' in everyone
