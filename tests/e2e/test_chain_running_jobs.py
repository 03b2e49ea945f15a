"""A backup job already running for a VM when the chain wants one (docs/design.md): one the
scheduler started after the upstream signal is adopted (no second trigger); one that started
before it is waited out, then the chain triggers its own on-demand backup."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.stack import Stack
from harness.chain_stack import (
    chain,
    jobs,
    kinds,
    next_weekday_at,
    one,
    parse_time,
    run_to_end,
    scenario,
    start_stack,
    vm,
)

THURSDAY = 3
PER_VM = ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
# A daily policy at 00:05 UTC: with the clock starting at 00:00 its scheduled job starts at
# 00:05:30-00:06, after the run received its upstream signal (at 00:00).
DAILY_0005 = {"name": "daily-0005", "frequency": "Daily", "time": "00:05", "timeZone": "UTC", "retentionDays": 7}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    body = scenario(
        [
            vm("lead01", transfer=(8, 10)),
            vm("schednew", policy="daily-0005", transfer=(20, 25)),
            # Started by the policy 3 minutes before the clock starts, so before any upstream signal.
            vm("schedold", os="Windows", transfer=(20, 25), runningScheduledJob={"startedMinutesAgo": 3}),
        ],
        scheduleDelayMinutes=[0.5, 1.0],
        lateScheduleRate=0.0,
    )
    body["vaults"][0]["policies"].append(DAILY_0005)
    chains = [
        # schednew is the second target: the 600 s stagger makes it look for running jobs at 00:10.
        chain("adopt", ["lead01", "schednew"], staggerSeconds=600),
        chain("waitout", ["schedold"]),
    ]
    base: Path = tmp_path_factory.mktemp("chain-running-jobs")
    running = start_stack(base, body, chains, start=next_weekday_at(THURSDAY))
    try:
        # Both runs start at 00:00, while the older scheduled job still runs and before the newer one.
        for name, run_id in (("adopt", "r-adopt"), ("waitout", "r-waitout")):
            response = running.api("POST", f"chains/{name}/runs", {"runId": run_id})
            assert response.status_code == 202, response.text
        running.settle()
        yield running
    finally:
        running.stop()


def test_scheduled_job_started_after_upstream_is_adopted(stack: Stack) -> None:
    events = run_to_end(stack, "r-adopt")
    for name in ("lead01", "schednew"):
        assert kinds(events, name) == PER_VM, name

    truth = jobs(stack, "schednew")
    assert len(truth) == 1, truth  # nothing triggered: the scheduled job is the run's backup
    scheduled = truth[0]
    assert scheduled["userTriggered"] is False and scheduled["status"] == "Completed"
    received = parse_time(one(events, "UpstreamReceived")["data"]["receivedAt"])
    assert parse_time(scheduled["startTime"]) > received
    triggered = one(events, "BackupTriggered", "schednew")["data"]
    assert triggered["adopted"] is True
    assert triggered["jobId"].lower() == scheduled["id"].lower()
    snapshot = one(events, "SnapshotCompleted", "schednew")["data"]
    assert parse_time(snapshot["snapshotCompletedAt"]) == parse_time(scheduled["snapshotCompletedAt"])
    assert one(events, "BackupCompleted", "schednew")["data"]["jobId"].lower() == scheduled["id"].lower()

    lead = one(events, "BackupTriggered", "lead01")["data"]
    assert lead["adopted"] is False
    assert [j["userTriggered"] for j in jobs(stack, "lead01")] == [True]


def test_scheduled_job_started_before_upstream_is_waited_out_then_own_backup(stack: Stack) -> None:
    events = run_to_end(stack, "r-waitout")
    assert kinds(events, "schedold") == PER_VM

    scheduled, own = jobs(stack, "schedold")
    assert scheduled["userTriggered"] is False and scheduled["status"] == "Completed"
    assert own["userTriggered"] is True and own["status"] == "Completed"
    triggered = one(events, "BackupTriggered", "schedold")
    assert triggered["data"]["adopted"] is False
    assert triggered["data"]["jobId"].lower() == own["id"].lower()
    # Our backup started only once the scheduled one had ended.
    assert parse_time(own["startTime"]) >= parse_time(scheduled["endTime"])
    assert parse_time(triggered["time"]) >= parse_time(scheduled["endTime"])
    snapshot = one(events, "SnapshotCompleted", "schedold")["data"]
    assert snapshot["jobId"].lower() == own["id"].lower()
    assert parse_time(snapshot["snapshotCompletedAt"]) == parse_time(own["snapshotCompletedAt"])
