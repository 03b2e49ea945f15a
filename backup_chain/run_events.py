"""The downstream events of one run, read back from what the run recorded: the results of the
``publish_events`` activity calls in its orchestrations' Durable histories (each event's id, type,
subject, time and whether it was kept) and the run's outbox (events kept for later delivery)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from backup_chain.events import event_id

PUBLISH_ACTIVITY = "publish_events"
BRIEF_KEYS = ("id", "type", "subject", "time")


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def published(history: Iterable[Mapping[str, Any]]) -> list[tuple[dict[str, Any], bool]]:
    """(event, sent at once) for every event a completed ``publish_events`` call of this history
    reports. The status API folds an activity's scheduling into its ``TaskCompleted`` event
    (``FunctionName``) and shows its ``Result`` with showHistoryOutput, but never its input
    (azure-functions-durable-extension, DurableClient.GetDurableOrchestrationStatusAsync), so the
    activity's result lists what it did with each event (``events``: id, type, subject, time,
    kept). Results recorded before it did so list nothing."""
    found: list[tuple[dict[str, Any], bool]] = []
    for entry in history:
        if entry.get("EventType") != "TaskCompleted" or entry.get("FunctionName") != PUBLISH_ACTIVITY:
            continue
        result = _json(entry.get("Result"))
        events = result.get("events") if isinstance(result, dict) else None
        for event in events if isinstance(events, list) else []:
            if isinstance(event, dict) and "id" in event:
                brief = {k: event.get(k) for k in BRIEF_KEYS}
                found.append((brief, not event.get("kept")))
    return found


def delivery_state(event_id_: str, sent_at_once: bool, outbox_state: Mapping[str, Any] | None) -> str:
    """``delivered``, ``pending`` (the deliverer is trying it), ``undelivered`` (the topic refused
    it; docs/events.md#delivery) or ``unknown`` (kept once, and the outbox no longer says)."""
    state = outbox_state or {}
    for record in state.get("records") or []:
        if (record.get("event") or {}).get("id") == event_id_:
            return str(record.get("state"))
    if sent_at_once or event_id_ in (state.get("delivered") or []):
        return "delivered"
    return "unknown"


def announced_snapshot(
    *, prefix: str, chain: str, run_id: str, vm_id: str, vm_status: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The SnapshotCompleted a vault's shared poller published for this VM (it is in the poller's
    history, not the run's): known from the VM's ``snapshotCompletedAt``; its id is deterministic."""
    if not vm_status.get("snapshotCompletedAt"):
        return None
    return {
        "id": event_id(run_id, vm_id, "SnapshotCompleted", chain=chain),
        "type": f"{prefix}SnapshotCompleted",
        "subject": vm_id,
        "time": None,
        "snapshotCompletedAt": vm_status.get("snapshotCompletedAt"),
        "publishedBy": "poller",
    }


def listing(
    published_events: Iterable[tuple[dict[str, Any], bool]],
    extra: Iterable[dict[str, Any]],
    outbox_state: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """One entry per distinct event id (a replayed publish repeats one), each with its delivery
    state, oldest first (events without a time last; ChainCompleted after the VM events of its
    instant)."""
    seen: dict[str, dict[str, Any]] = {}
    for event, at_once in published_events:
        key = str(event["id"])
        entry = seen.setdefault(key, {k: event.get(k) for k in BRIEF_KEYS})
        entry["sentAtOnce"] = entry.get("sentAtOnce", False) or at_once
    for event in extra:
        # A VM records its snapshot's end only once the poller published SnapshotCompleted; what the
        # topic did not take at once is in the run's outbox (which never forgets a kept event before
        # it is delivered), so one the outbox does not hold was taken at once.
        seen.setdefault(str(event["id"]), {**event, "sentAtOnce": True})
    entries = []
    for key, entry in seen.items():
        at_once = bool(entry.pop("sentAtOnce"))
        entries.append({**entry, "delivery": delivery_state(key, at_once, outbox_state)})
    order = {id(e): n for n, e in enumerate(entries)}

    def when(entry: dict[str, Any]) -> str:  # a poller's SnapshotCompleted sorts at its snapshot's end
        return str(entry["time"] or entry.get("snapshotCompletedAt") or "")

    def rank(entry: dict[str, Any]) -> int:  # events of one instant: the run's own order (docs/events.md)
        kind = str(entry.get("type") or "").rsplit(".", 1)[-1]
        return {"ChainStarted": 0, "UpstreamReceived": 1, "ChainCompleted": 3}.get(kind, 2)

    return sorted(entries, key=lambda e: (not when(e), when(e), rank(e), order[id(e)]))
