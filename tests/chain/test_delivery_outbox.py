"""The downstream outbox's rules (backup_chain.delivery): order, dedup, refusal, retry, outcome."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from backup_chain.config import ConfigError, parse_config
from backup_chain.delivery import (
    Outbox,
    backoff_seconds,
    delivery_outcome,
    is_permanent,
    outbox_apply,
    outbox_key,
    reason_of,
)
from backup_chain.events import cloud_event
from backup_chain.ids import outbox_run_key
from demo.stack import REPO

VM_A = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/a"


def ev(kind: str, time: str, scope: str = VM_A, run: str = "r1") -> dict[str, Any]:
    return cloud_event(
        prefix="BackupChain.",
        event_type=kind,
        source="/src",
        subject=scope,
        run_id=run,
        scope=scope,
        time=time,
        data={"chain": "Nightly", "runId": run},
    )


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"].split(".", 1)[1] for e in events]


def test_pending_events_come_out_in_lifecycle_order_whatever_order_they_were_kept_in() -> None:
    box = Outbox()
    t = "2027-01-04T00:10:00.000000Z"
    box.add([ev("BackupCompleted", "2027-01-04T01:00:00.000000Z")], "down", t)
    box.add([ev("SnapshotCompleted", t), ev("BackupTriggered", t)], "down", t)
    box.add([ev("ChainStarted", "2027-01-04T00:00:00.000000Z", scope="chain")], "down", t)
    assert kinds(box.take()) == ["ChainStarted", "BackupTriggered", "SnapshotCompleted", "BackupCompleted"]


def test_an_event_is_kept_once_and_never_again_after_delivery() -> None:
    box = Outbox()
    first = ev("BackupTriggered", "2027-01-04T00:10:00.000000Z")
    assert box.add([first, first], "down", "") == 1
    assert box.mark_delivered([first["id"]]) == 1
    assert box.add([first], "down", "") == 0
    assert box.take() == [] and not box.blocks()


def test_a_refusal_keeps_every_event_as_undelivered_and_reports_each_once() -> None:
    box = Outbox()
    events = [
        ev("BackupTriggered", "2027-01-04T00:10:00.000000Z"),
        ev("SnapshotCompleted", "2027-01-04T00:20:00.000000Z"),
    ]
    box.add(events, "HTTP 403", "")
    changed = box.mark_failed("HTTP 403 Forbidden: no role", permanent=True)
    assert [e["id"] for e in changed] == [e["id"] for e in events]
    assert box.take() == [] and box.blocks()
    assert [u["reason"] for u in box.summary()["undelivered"]] == ["HTTP 403 Forbidden: no role"] * 2
    # The same refusal again is not news; a new event behind them is, and takes them along in order.
    box.add([ev("BackupCompleted", "2027-01-04T01:00:00.000000Z")], None, "")
    assert kinds(box.take()) == ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
    assert kinds(box.mark_failed("HTTP 403 Forbidden: no role", permanent=True)) == ["BackupCompleted"]
    # The sweep retries them all; still refused for the same reason (another request id in the
    # message): nothing new to report.
    assert box.retry() == 3 and box.mark_failed("HTTP 403 Forbidden: no role (request 2)", permanent=True) == []
    assert len(box.mark_failed("HTTP 404 NotFound: topic deleted", permanent=True)) == 3


def test_transient_failures_keep_events_pending_and_retry_makes_undelivered_pending() -> None:
    box = Outbox()
    box.add([ev("BackupTriggered", "2027-01-04T00:10:00.000000Z")], None, "2027-01-04T00:10:00.000000Z")
    assert box.mark_failed("NetworkError: refused", permanent=False) == []
    assert box.head_since() == "2027-01-04T00:10:00.000000Z" and len(box.take()) == 1
    box.mark_failed("HTTP 401", permanent=True)
    assert outbox_apply(box, "retry", {}) == 1
    assert len(outbox_apply(box, "take", {})["events"]) == 1
    # An old refused event going along with a new one does not start the new one's horizon early.
    box.mark_failed("HTTP 401", permanent=True)
    box.add([ev("BackupCompleted", "2027-01-05T00:10:00.000000Z")], None, "2027-01-05T00:10:00.000000Z")
    assert box.head_since() == "2027-01-05T00:10:00.000000Z" and len(box.take()) == 2


def test_reasons_drop_event_grids_per_request_report_tail() -> None:
    error = {"status": 403, "code": "Forbidden", "message": "Not allowed. Report 'abc:1:1/4/2027 (UTC)' to our forums."}
    assert reason_of(error) == "HTTP 403 Forbidden: Not allowed."
    assert reason_of({"status": 403, "code": "HTTP403", "message": "no code sent"}) == "HTTP 403: no code sent"
    assert reason_of({"status": None, "code": "ServiceRequestError", "message": "down"}) == "ServiceRequestError: down"


def test_classification_and_backoff() -> None:
    for status in (401, 403, 404):
        assert is_permanent({"status": status, "code": "x"})
    assert is_permanent({"status": None, "code": "NameResolutionError"})
    for transient in (None, 429, 500, 503):
        assert not is_permanent({"status": transient, "code": "NetworkError" if transient is None else "x"})
    assert [backoff_seconds(n, 10, 600) for n in (1, 2, 3, 7, 30)] == [10, 20, 40, 600, 600]


def test_outbox_key_is_the_run_and_outcome_is_never_plain_completed_with_kept_events() -> None:
    assert outbox_key(ev("BackupTriggered", "t")) == outbox_run_key("nightly", "r1") == "nightly:r1"
    assert delivery_outcome("completed", {"pending": [], "undelivered": []}) == ("completed", "delivered")
    assert delivery_outcome("completed", {"pending": [], "undelivered": [{}]}) == (
        "completedWithUndeliveredEvents",
        "undelivered",
    )
    assert delivery_outcome("completedWithFailures", {"pending": [{}], "undelivered": []}) == (
        "completedWithFailures",
        "pending",
    )


def test_unknown_operation_is_refused() -> None:
    with pytest.raises(ValueError, match="no operation"):
        outbox_apply(Outbox(), "drop", {})


CHAINS = [
    {
        "name": "c1",
        "targets": [
            {
                "vaultId": "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg/providers/"
                "Microsoft.RecoveryServices/vaults/v1",
                "vms": [
                    "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg/providers/"
                    "Microsoft.Compute/virtualMachines/a"
                ],
            }
        ],
    }
]


def test_delivery_settings_default_to_event_grids_24_hours_and_are_validated() -> None:
    default = parse_config({"chains": CHAINS}).delivery
    assert (default.retryFor.total_seconds(), default.firstBackoff.total_seconds()) == (86400, 10)
    assert default.maxBackoff.total_seconds() == 600
    custom = parse_config({"chains": CHAINS, "delivery": {"retryFor": "PT2H", "maxBackoff": "PT1M"}}).delivery
    assert custom.retryFor.total_seconds() == 7200 and custom.maxBackoff.total_seconds() == 60
    for bad, field in (({"retryFor": "P8D"}, "delivery.retryFor"), ({"firstBackoff": "PT1H"}, "firstBackoff")):
        with pytest.raises(ConfigError, match=field):
            parse_config({"chains": CHAINS, "delivery": bad})


def test_an_undelivered_event_is_an_error_line_and_a_metric_count() -> None:
    """In a fresh interpreter (the OpenTelemetry meter provider is process-global)."""
    code = """
import json, logging
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
records = []
handler = logging.Handler()
handler.emit = records.append
logging.getLogger("backup_chain").addHandler(handler)
from telemetry import UNDELIVERED_METRIC, record_undelivered
event = {"id": "e-1", "type": "BackupChain.BackupTriggered", "subject": "/vm", "data": {"runId": "r1"}}
record_undelivered(event, "HTTP 403 Forbidden: no role")
record_undelivered({**event, "id": "e-2"}, "HTTP 403 Forbidden: no role")
points = [
    p.value
    for rm in reader.get_metrics_data().resource_metrics
    for sm in rm.scope_metrics
    for m in sm.metrics
    if m.name == UNDELIVERED_METRIC
    for p in m.data.data_points
]
print(json.dumps({"points": points, "logs": [(r.levelname, r.getMessage(), r.eventId) for r in records]}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["points"] == [2]
    assert [tuple(x) for x in found["logs"]] == [
        (
            "ERROR",
            "downstream event e-1 (BackupChain.BackupTriggered, /vm) undelivered: HTTP 403 Forbidden: no role",
            "e-1",
        ),
        (
            "ERROR",
            "downstream event e-2 (BackupChain.BackupTriggered, /vm) undelivered: HTTP 403 Forbidden: no role",
            "e-2",
        ),
    ]


# --- the rule the deliverer's last look relies on ----------------------------------------------
def test_the_deliverers_second_take_sees_an_event_kept_after_its_empty_take() -> None:
    """The deliverer, finding the outbox empty, unlists the run and then takes again
    (orchestrators/delivery.py): an event its publisher kept in between must show in that take
    (``kept``, and the event itself while pending) so the run is listed again and the event sent.
    The race itself (the publisher's index "add" landing before the deliverer's "remove") cannot
    be produced on demand on the real stack; the orchestrator's order of steps is not faked here."""
    key = "nightly:r1"
    outbox = Outbox(key)
    empty = outbox_apply(outbox, "take", {"limit": 10})
    assert empty == {"events": [], "since": None, "kept": 0}
    late = ev("ChainCompleted", "2027-01-04T03:00:00Z")
    outbox_apply(
        outbox, "add", {"key": key, "events": [late], "reason": "HTTP 503 ServiceUnavailable: busy", "at": late["time"]}
    )
    again = outbox_apply(outbox, "take", {"limit": 10})
    assert again["kept"] == 1 and [e["id"] for e in again["events"]] == [late["id"]], again
    # Refused (undelivered) events are kept but not taken: the run stays listed for the sweep.
    outbox_apply(outbox, "failed", {"reason": "HTTP 403 Forbidden: no role", "permanent": True})
    refused = outbox_apply(outbox, "take", {"limit": 10})
    assert refused["kept"] == 1 and refused["events"] == [], refused
