"""``/v1/models`` and ``/v1/models/{id}``, from the catalog, through the SDK's pagination."""

from __future__ import annotations

import anthropic
import pytest

from tether.api.catalog import default_catalog

LISTED = [m for m in default_catalog() if m.status != "retired"]


def test_the_sdk_pages_through_every_listed_model(client):
    page = client.models.list(limit=3)
    assert len(page.data) == 3 and page.has_more
    assert page.first_id == page.data[0].id and page.last_id == page.data[-1].id
    ids = [model.id for model in client.models.list(limit=4)]  # auto-pagination follows after_id
    assert sorted(ids) == sorted(m.id for m in LISTED)
    assert len(ids) == len(set(ids))


def test_newest_first_and_well_formed(client):
    models = list(client.models.list(limit=100))
    dates = [m.created_at for m in models]
    assert dates == sorted(dates, reverse=True)
    opus = next(m for m in models if m.id == "claude-opus-4-8")
    assert opus.type == "model" and opus.display_name == "Claude Opus 4.8" and opus.lifecycle == "active"
    assert opus.max_input_tokens == 1_000_000 and opus.max_tokens == 128_000 and opus.line == "opus"
    assert opus.capabilities.thinking.types.adaptive.supported
    assert not opus.capabilities.thinking.types.enabled.supported


def test_before_id_pages_backwards(client):
    everything = client.models.list(limit=100).data
    page = client.models.list(before_id=everything[5].id, limit=2)
    assert [m.id for m in page.data] == [m.id for m in everything[3:5]]
    assert page.has_more


def test_retired_models_only_on_request(client):
    default = {m.id for m in client.models.list(limit=100).data}
    retired = client.models.list(limit=100, lifecycle=["retired"]).data
    assert "claude-3-7-sonnet-20250219" not in default
    assert "claude-3-7-sonnet-20250219" in {m.id for m in retired}
    assert {m.lifecycle for m in retired} == {"retired"}


def test_retrieve_by_id_or_alias(client):
    assert client.models.retrieve("claude-haiku-4-5").id == "claude-haiku-4-5-20251001"
    sonnet = client.models.retrieve("claude-sonnet-4-5-20250929")
    assert sonnet.lifecycle == "deprecated" and sonnet.retires_at is not None


def test_retrieve_unknown_is_404(client):
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.models.retrieve("claude-unknown-9")
    assert caught.value.api_message == "model: claude-unknown-9"


def test_bad_limit_is_400(client):
    with pytest.raises(anthropic.BadRequestError):
        client.models.list(limit=0)


def test_unknown_path_is_404(http, headers):
    response = http.get("/v1/nowhere", headers=headers)
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found_error"
