"""The pure pieces behind the operators' API: a run's event list read back from Durable histories
and its outbox, a chain's next window from its scheduler's status, and a failed VM's Azure text as
its custom status keeps it."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from backup_chain.chain_view import next_window_view
from backup_chain.custom_status import CUT_MARK, FAILURE_TEXT_UNITS, failure_for_status, utf16_units
from backup_chain.events import event_id
from backup_chain.run_events import announced_snapshot, listing, published

VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"


def _event(kind: str, time: str, subject: str = "/chains/c/runs/r") -> dict[str, Any]:
    return {"id": f"id-{kind}", "type": f"P.{kind}", "subject": subject, "time": time}


def _completed(events: list[dict[str, Any]], *, kept: bool, as_text: bool = True) -> dict[str, Any]:
    result = {
        "ok": not kept,
        "sent": 0 if kept else len(events),
        "queued": len(events) if kept else 0,
        "reasons": [],
        "events": [{**e, "kept": kept} for e in events],
    }
    return {
        "EventType": "TaskCompleted",
        "FunctionName": "publish_events",
        "ScheduledTime": "2027-01-04T03:00:00Z",
        "Result": json.dumps(result) if as_text else result,  # as_text: a host that left it a string
    }


def test_published_reads_what_completed_publish_calls_report() -> None:
    started = _event("ChainStarted", "2027-01-04T03:00:00.000000Z")
    triggered = _event("BackupTriggered", "2027-01-04T03:01:00.000000Z", VM)
    history = [
        {"EventType": "ExecutionStarted", "FunctionName": "chain_run"},
        _completed([started], kept=False),
        {"EventType": "TaskFailed", "FunctionName": "publish_events", "Reason": "boom"},
        {"EventType": "TaskCompleted", "FunctionName": "trigger_backup", "Result": {"events": [triggered]}},
        # A result recorded before publish_events reported its events: nothing to list.
        {"EventType": "TaskCompleted", "FunctionName": "publish_events", "Result": {"ok": True, "sent": 1}},
        _completed([triggered], kept=True, as_text=False),
    ]
    assert published(history) == [(started, True), (triggered, False)]


def test_listing_gives_each_event_once_with_its_delivery_state_in_the_runs_order() -> None:
    at = "2027-01-04T03:10:00.000000Z"
    completed = _event("ChainCompleted", at)
    failed = _event("BackupFailed", at, VM)
    kept = _event("BackupTriggered", "2027-01-04T03:01:00.000000Z", VM)
    lost = _event("BackupCompleted", "2027-01-04T03:05:00.000000Z", VM)
    sent_later = _event("UpstreamReceived", "2027-01-04T03:00:00.000000Z")
    found = [
        (completed, True),
        (sent_later, False),
        (kept, False),
        (kept, False),  # a replayed publish repeats the event: listed once
        (failed, False),
        (lost, False),
    ]
    outbox = {
        "records": [{"event": kept, "state": "pending"}, {"event": failed, "state": "undelivered"}],
        "delivered": ["id-UpstreamReceived"],
    }
    listed = listing(found, [], outbox)
    assert [(e["type"], e["delivery"]) for e in listed] == [
        ("P.UpstreamReceived", "delivered"),
        ("P.BackupTriggered", "pending"),
        ("P.BackupCompleted", "unknown"),  # kept once, and the outbox no longer says
        ("P.BackupFailed", "undelivered"),
        ("P.ChainCompleted", "delivered"),  # after the VM events of its instant
    ]


def test_a_pollers_snapshot_is_listed_with_its_deterministic_id_at_the_snapshots_end() -> None:
    status = {"phase": "transfer", "jobId": "j1", "snapshotCompletedAt": "2027-01-04T03:06:00.000000Z"}
    snapshot = announced_snapshot(prefix="P.", chain="C", run_id="r", vm_id=VM, vm_status=status)
    assert snapshot is not None
    assert snapshot["id"] == event_id("r", VM, "SnapshotCompleted", chain="C")
    assert (snapshot["type"], snapshot["subject"], snapshot["time"]) == ("P.SnapshotCompleted", VM, None)
    assert announced_snapshot(prefix="P.", chain="C", run_id="r", vm_id=VM, vm_status={}) is None
    triggered = _event("BackupTriggered", "2027-01-04T03:01:00.000000Z", VM)
    completed = _event("BackupCompleted", "2027-01-04T03:20:00.000000Z", VM)
    listed = listing([(triggered, True), (completed, True)], [snapshot], None)
    assert [e["type"] for e in listed] == ["P.BackupTriggered", "P.SnapshotCompleted", "P.BackupCompleted"]
    assert listed[1]["delivery"] == "delivered"
    kept = {"records": [{"event": {"id": snapshot["id"]}, "state": "undelivered"}], "delivered": []}
    assert listing([], [snapshot], kept)[0]["delivery"] == "undelivered"


def test_next_window_is_the_schedulers_and_after_the_current_one_while_it_runs() -> None:
    window = "0 30 22 * * *"
    sleeping = {"phase": "sleeping", "nextWindow": "2027-01-04T22:30:00.000000Z"}
    assert next_window_view(window, sleeping, None) == {"nextWindow": sleeping["nextWindow"], "scheduler": "sleeping"}
    opened = datetime(2027, 1, 4, 22, 30, 1, tzinfo=timezone.utc)
    assert next_window_view(window, {"phase": "running", "runId": "w-1"}, opened) == {
        "nextWindow": "2027-01-05T22:30:00.000000Z",
        "scheduler": "running",
    }
    assert next_window_view(window, {}, None) == {"nextWindow": None, "scheduler": "notStarted"}
    assert next_window_view(None, sleeping, None) == {"nextWindow": None, "scheduler": None}


def test_failure_text_in_custom_status_is_kept_whole_when_short_and_cut_visibly_when_long() -> None:
    assert failure_for_status("short", ["do this", "then that"]) == {
        "message": "short",
        "recommendations": ["do this", "then that"],
    }
    long_message, advice = "m" * 5000, ["a" * 1500, "b" * 1500, "c" * 10]
    bounded = failure_for_status(long_message, advice)
    assert bounded["message"] == "m" * FAILURE_TEXT_UNITS + CUT_MARK
    assert bounded["recommendations"] == ["a" * 1500, "b" * (FAILURE_TEXT_UNITS - 1500) + CUT_MARK]
    assert sum(utf16_units(r) for r in bounded["recommendations"]) < FAILURE_TEXT_UNITS + 2 * len(CUT_MARK)
    assert failure_for_status(None, []) == {"message": None, "recommendations": []}
