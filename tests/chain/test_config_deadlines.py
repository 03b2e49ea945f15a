"""A chain's deadlines in the configuration: ``startWindow`` and ``snapshotDeadline`` are ISO 8601
durations within their bounds, errors name the field, and a chain without them runs as before."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from backup_chain.config import Chain, ConfigError, parse_config
from backup_chain.runs import chain_snapshot
from tests.chain.test_config import VALID, with_change


def _chain(data: dict[str, Any]) -> Chain:
    return parse_config(data).chains[0]


def test_deadlines_parse_and_reach_the_run_as_seconds() -> None:
    data = with_change("chains.0.startWindow", "PT2H")
    data["chains"][0]["snapshotDeadline"] = "PT30M"
    chain = _chain(data)
    assert chain.startWindow == timedelta(hours=2) and chain.snapshotDeadline == timedelta(minutes=30)
    snapshot = chain_snapshot(chain)
    assert snapshot["startWindowSeconds"] == 7200.0 and snapshot["snapshotDeadlineSeconds"] == 1800.0


def test_a_chain_without_deadlines_has_none() -> None:
    chain = _chain(VALID)
    assert chain.startWindow is None and chain.snapshotDeadline is None
    snapshot = chain_snapshot(chain)
    assert snapshot["startWindowSeconds"] is None and snapshot["snapshotDeadlineSeconds"] is None


@pytest.mark.parametrize(
    ("field", "value", "parsed"),
    [
        ("startWindow", "PT1H", timedelta(hours=1)),
        ("startWindow", "P6D", timedelta(days=6)),
        ("snapshotDeadline", "PT5M", timedelta(minutes=5)),
        ("snapshotDeadline", "P1D", timedelta(days=1)),
    ],
)
def test_a_deadline_may_be_at_either_bound(field: str, value: str, parsed: timedelta) -> None:
    assert getattr(_chain(with_change(f"chains.0.{field}", value)), field) == parsed


BAD = [
    ("startWindow", "PT59M", "from PT1H to P6D"),
    ("startWindow", "P7D", "from PT1H to P6D"),
    ("startWindow", "2h", "ISO 8601"),
    ("startWindow", 3600, "ISO 8601"),
    ("startWindow", "PT0S", "positive"),
    ("snapshotDeadline", "PT4M", "from PT5M to P1D"),
    ("snapshotDeadline", "P2D", "from PT5M to P1D"),
    ("snapshotDeadline", "P1M", "positive"),
    ("snapshotDeadline", True, "ISO 8601"),
]


@pytest.mark.parametrize(("field", "value", "fix"), BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD])
def test_a_bad_deadline_names_its_field_and_the_fix(field: str, value: Any, fix: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(with_change(f"chains.0.{field}", value))
    message = str(caught.value).removeprefix("configuration: ")
    assert message.startswith(f"chains[0].{field}:"), message
    assert fix in message, message
    assert len(caught.value.problems) == 1, caught.value.problems  # nothing else is blamed
