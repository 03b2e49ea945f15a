"""Where events' ``dataschema`` points (docs/events.md, "Contract"): ``EVENT_SCHEMA_BASE_URL``, else
the app's own route on ``WEBSITE_HOSTNAME``; a bad setting or none is said in the log, and events
then go without the optional attribute rather than not at all."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from activities.events import schema_base_url
from backup_chain.events import data_schema_uri


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("EVENT_SCHEMA_BASE_URL", raising=False)
    monkeypatch.delenv("WEBSITE_HOSTNAME", raising=False)
    schema_base_url.cache_clear()
    yield
    schema_base_url.cache_clear()


def test_the_setting_wins_over_the_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_HOSTNAME", "bc-prod.azurewebsites.net")
    monkeypatch.setenv("EVENT_SCHEMA_BASE_URL", "https://events.contoso.com/schemas/")
    base = schema_base_url()
    assert data_schema_uri(str(base), "Contoso.ChainStarted") == "https://events.contoso.com/schemas/ChainStarted/v1"


def test_in_azure_the_apps_own_route_on_its_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_HOSTNAME", "bc-prod.azurewebsites.net")
    assert schema_base_url() == "https://bc-prod.azurewebsites.net/api/schemas/events"


@pytest.mark.parametrize(
    "bad",
    [
        "events.contoso.com/schemas",
        "ftp://events.contoso.com",
        "https://x/s?v=1",
        "/schemas",
        "https://events contoso.com/schemas",  # not a URI: dataschema would break its schema's pattern
    ],
)
def test_a_bad_setting_is_named_in_an_error_and_no_dataschema_is_sent(
    bad: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WEBSITE_HOSTNAME", "bc-prod.azurewebsites.net")
    monkeypatch.setenv("EVENT_SCHEMA_BASE_URL", bad)
    with caplog.at_level(logging.WARNING, logger="backup_chain"):
        assert schema_base_url() is None
    assert [(r.levelname, "EVENT_SCHEMA_BASE_URL" in r.getMessage()) for r in caplog.records] == [("ERROR", True)]


def test_neither_setting_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="backup_chain"):
        assert schema_base_url() is None
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "WEBSITE_HOSTNAME" in caplog.records[0].getMessage()
