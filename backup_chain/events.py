"""Downstream events (DESIGN.md "Events"): CloudEvents 1.0 with deterministic ids, so a replayed
or retried publish is a duplicate that subscribers can drop."""

from __future__ import annotations

import uuid
from typing import Any

EVENT_TYPES = (
    "ChainStarted",
    "UpstreamReceived",
    "UpstreamTimedOut",
    "ChainSkipped",
    "BackupTriggered",
    "SnapshotCompleted",
    "BackupCompleted",
    "BackupFailed",
    "ChainCompleted",
    "GcWindowOpened",
    "GcWindowClosed",
    "GcOverdue",
    "RestorePointsNearLimit",
)
_NAMESPACE = uuid.UUID("6f1c2a57-7c1e-4d53-9a55-0b3f5f8e2b10")
MAX_EVENT_BYTES = 64 * 1024  # far under Event Grid's 1 MB per event; keeps events cheap to fan out


def event_id(run_id: str, scope: str, event_type: str) -> str:
    """Deterministic per (run, VM or chain, type)."""
    return str(uuid.uuid5(_NAMESPACE, f"{run_id}|{scope.lower()}|{event_type}"))


def cloud_event(
    *,
    prefix: str,
    event_type: str,
    source: str,
    subject: str,
    run_id: str,
    scope: str,
    time: str,
    data: dict[str, Any],
) -> dict[str, Any]:
    """A CloudEvents 1.0 event as a JSON-ready dict (the activity turns it into an SDK CloudEvent)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    return {
        "specversion": "1.0",
        "id": event_id(run_id, scope, event_type),
        "source": source,
        "type": f"{prefix}{event_type}",
        "subject": subject,
        "time": time,
        "datacontenttype": "application/json",
        "data": data,
    }


def chain_subject(chain: str, run_id: str) -> str:
    return f"/chains/{chain}/runs/{run_id}"
