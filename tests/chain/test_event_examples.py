"""The JSON examples of docs/events/ against the publisher: each example is rebuilt with the real
event builder of backup_chain.events from its own data and must come out identical (envelope, id,
data keys, values and types), and every event type the app publishes has one example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backup_chain.events import EVENT_TYPES, chain_cloud_event, gc_cloud_event, vm_cloud_event

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLES = DOCS / "events"
PREFIX = "BackupChain."  # the configuration's default eventTypePrefix, as the examples use


def _examples() -> list[Path]:
    return sorted(EXAMPLES.glob("*.json"))


def _rebuild(example: dict[str, Any]) -> dict[str, Any]:
    """The event the app's builder makes from the example's own type, time, source and data."""
    event_type = example["type"].removeprefix(PREFIX)
    data = dict(example["data"])
    chain, run_id, vm_id, vault_id = (data.pop(k) for k in ("chain", "runId", "vmId", "vaultId"))
    if chain is None:  # GC events: no chain; the GC run's instance id is the run id
        finding = data.pop("finding", None)
        return gc_cloud_event(
            prefix=PREFIX,
            source=example["source"],
            gc_run=run_id,
            event_type=event_type,
            time=example["time"],
            vm_id=vm_id,
            vault_id=vault_id,
            finding=finding,
            **data,
        )
    if vm_id is None:  # chain events: subject is the run
        return chain_cloud_event(
            prefix=PREFIX,
            chain=chain,
            run_id=run_id,
            source=example["source"],
            event_type=event_type,
            time=example["time"],
            **data,
        )
    spec = {"prefix": PREFIX, "chain": chain, "runId": run_id, "vmId": vm_id, "vaultId": vault_id}
    job_id = data.pop("jobId")
    return vm_cloud_event(spec, job_id, event_type, example["time"], **data)


def _types(value: Any) -> Any:
    """The JSON types of a value, recursively (so a string where the app sends a number differs)."""
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__


def test_every_published_event_type_has_one_example() -> None:
    assert sorted(p.stem for p in _examples()) == sorted(EVENT_TYPES)


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.stem)
def test_example_is_what_the_publisher_builds(path: Path) -> None:
    example = json.loads(path.read_text(encoding="utf-8"))
    assert example["type"] == PREFIX + path.stem
    rebuilt = _rebuild(example)
    assert list(example) == list(rebuilt)  # envelope keys, in the publisher's order
    assert _types(example) == _types(rebuilt)
    assert example == rebuilt  # id (UUIDv5 of chain, run, scope, type, finding), source, subject, data


def test_events_page_links_every_example() -> None:
    page = (DOCS / "events.md").read_text(encoding="utf-8")
    missing = [p.name for p in _examples() if f"(events/{p.name})" not in page]
    assert missing == []
