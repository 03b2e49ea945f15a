"""The Event Grid emulator's config file is validated with errors that name the bad field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from emulators.eventgrid.config import ConfigError, parse_config


def base() -> dict[str, Any]:
    return {
        "topics": [{"name": "orders"}],
        "subscriptions": [{"name": "sub-1", "topic": "orders", "endpointUrl": "http://127.0.0.1:7071/api/x?code=y"}],
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: c["topics"][0].update(inputSchema="Custom"), "topics.0.inputSchema"),
        (lambda c: c["topics"][0].update(key="not base64!"), "topics.0.key"),
        (lambda c: c["subscriptions"][0].update(topic="nope"), "subscriptions.0.topic"),
        (lambda c: c["subscriptions"][0].update(endpointUrl="http://example.com/x"), "subscriptions.0.endpointUrl"),
        (lambda c: c["subscriptions"][0].update(maxEventsPerBatch=5001), "subscriptions.0.maxEventsPerBatch"),
        (
            lambda c: c["subscriptions"][0].update(retryPolicy={"maxDeliveryAttempts": 31}),
            "subscriptions.0.retryPolicy.maxDeliveryAttempts",
        ),
        (
            lambda c: c["subscriptions"][0].update(retryPolicy={"eventTimeToLiveInMinutes": 0}),
            "subscriptions.0.retryPolicy.eventTimeToLiveInMinutes",
        ),
        (lambda c: c["subscriptions"][0].update(filter={"subjectBeginsWit": "/x"}), "subscriptions.0.filter"),
        (lambda c: c["subscriptions"][0].update(deliverySchema="CloudEventSchemaV1_0"), "deliverySchema"),
    ],
)
def test_invalid_fields_are_named(change: Any, field: str) -> None:
    config = base()
    change(config)
    with pytest.raises(ConfigError) as err:
        parse_config(config)
    assert field in str(err.value)


def test_defaults_follow_azure() -> None:
    config = parse_config(base())
    sub = config.subscriptions[0]
    assert sub.retry_policy.max_delivery_attempts == 30
    assert sub.retry_policy.event_time_to_live_in_minutes == 1440
    assert sub.max_events_per_batch == 1 and sub.delivery_schema == "EventGridSchema"
    assert config.topics[0].key  # generated when absent


def test_cli_reports_a_bad_config_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"topics": []}')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "emulators.eventgrid",
            "--port",
            "0",
            "--config",
            str(path),
            "--state-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "topics" in result.stderr
