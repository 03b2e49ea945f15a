"""Every Azure answer checked, on devhost + emulators (weekly-policy GC mode): an optional lookup
never fails a completed backup, an ARM outage beyond the retries ends in a BackupFailed with phase
and Azure's code, and an ad hoc backup never overlaps the policy's scheduled one (refused, or
delayed until clear with ``gc.overlap: delay``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from demo.stack import Stack
from harness.chain_stack import (
    chain,
    jobs,
    kinds,
    one,
    parse_time,
    run_to_end,
    scenario,
    start_stack,
    vm,
)

MONDAY = datetime(2027, 1, 4, 0, 0, tzinfo=timezone.utc)
SCHEDULED = datetime(2027, 1, 6, 2, 0, tzinfo=timezone.utc)  # the scenario policy: Wednesday 02:00 UTC
BEFORE_SCHEDULED = SCHEDULED - timedelta(minutes=30)


def _faults(stack: Stack, body: dict[str, Any]) -> None:
    stack.admin("recoveryservices", "POST", "/admin/faults", json=body)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    vms = [vm(name, snapshot=(5, 7), transfer=(10, 15)) for name in ("rp01", "arm01", "ov01", "sc01")]
    chains = [chain("rp", ["rp01"]), chain("arm", ["arm01"]), chain("ov", ["ov01"]), chain("sc", ["sc01"])]
    base: Path = tmp_path_factory.mktemp("chain-answers")
    running = start_stack(base, scenario(vms), chains, start=MONDAY, gc={"mode": "weekly-policy"})
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.slow
def test_a_failing_recovery_point_lookup_does_not_fail_the_backup(stack: Stack) -> None:
    # Every recovery point list answers 503, beyond the SDK's and the orchestrator's retries.
    _faults(stack, {"operations": {"RecoveryPoints_List": {"rate503": 1}}})
    try:
        assert stack.api("POST", "chains/rp/runs", {"runId": "r-rp"}).status_code == 202
        events = run_to_end(stack, "r-rp", step=30)
    finally:
        _faults(stack, {"operations": {"RecoveryPoints_List": {"rate503": 0}}})
    assert kinds(events, "rp01") == ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
    completed = one(events, "BackupCompleted", "rp01")["data"]
    assert completed["jobStatus"] == "Completed" and completed["recoveryPoint"] is None
    assert completed["recoveryPointLookupError"]["code"] == "ServiceUnavailable"
    chain_end = one(events, "ChainCompleted")["data"]
    assert chain_end["outcome"] == "completed"
    assert chain_end["vms"][0]["outcome"] == "completed"


@pytest.mark.slow
def test_an_arm_outage_in_the_trigger_phase_ends_in_backup_failed(stack: Stack) -> None:
    _faults(stack, {"operations": {"Backups_Trigger": {"rate503": 1}}})
    try:
        assert stack.api("POST", "chains/arm/runs", {"runId": "r-arm"}).status_code == 202
        events = run_to_end(stack, "r-arm", step=30)
    finally:
        _faults(stack, {"operations": {"Backups_Trigger": {"rate503": 0}}})
    failed = one(events, "BackupFailed", "arm01")["data"]
    assert (failed["phase"], failed["errorCode"]) == ("trigger", "ServiceUnavailable")
    assert "temporarily unavailable" in failed["message"]
    assert (failed["azureErrorCode"], failed["errorTitle"]) == (None, None)  # an ARM answer, not a job's
    vm_summary = one(events, "ChainCompleted")["data"]["vms"][0]
    assert (vm_summary["outcome"], vm_summary["failedPhase"], vm_summary["errorCode"]) == (
        "failed",
        "trigger",
        "ServiceUnavailable",
    )
    assert jobs(stack, "arm01") == []  # no backup was ever started


@pytest.mark.slow
def test_an_arm_outage_in_the_schedule_check_ends_in_backup_failed(stack: Stack) -> None:
    """The step before the backup (weekly-policy's check of the policy's schedule) failing beyond
    the retries is a BackupFailed in the trigger phase with Azure's code, and the run still ends."""
    _faults(stack, {"operations": {"ProtectionPolicies_Get": {"rate503": 1}}})
    try:
        assert stack.api("POST", "chains/sc/runs", {"runId": "r-sc"}).status_code == 202
        events = run_to_end(stack, "r-sc", step=30)
    finally:
        _faults(stack, {"operations": {"ProtectionPolicies_Get": {"rate503": 0}}})
    assert kinds(events, "sc01") == ["BackupFailed"]
    failed = one(events, "BackupFailed", "sc01")["data"]
    assert (failed["phase"], failed["errorCode"]) == ("trigger", "ServiceUnavailable")
    chain_end = one(events, "ChainCompleted")["data"]
    assert chain_end["outcome"] == "completedWithFailures"
    vm_summary = chain_end["vms"][0]
    assert (vm_summary["outcome"], vm_summary["failedPhase"], vm_summary["errorCode"]) == (
        "failed",
        "trigger",
        "ServiceUnavailable",
    )
    assert jobs(stack, "sc01") == []  # no ad hoc backup without knowing the schedule


def test_weekly_policy_mode_refuses_an_overlapping_ad_hoc_backup(stack: Stack) -> None:
    stack.advance((BEFORE_SCHEDULED - stack.clock.now()).total_seconds())
    assert stack.api("POST", "chains/ov/runs", {"runId": "r-ov"}).status_code == 202
    events = run_to_end(stack, "r-ov", step=30)
    failed = one(events, "BackupFailed", "ov01")["data"]
    assert (failed["phase"], failed["errorCode"]) == ("trigger", "OverlapsScheduledBackup")
    assert "2027-01-06T02:00" in failed["message"]
    assert [j for j in jobs(stack, "ov01") if j["userTriggered"]] == []


@pytest.fixture(scope="module")
def delaying(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A transfer long enough that an ad hoc backup at 01:30 would still run at 02:00-02:20, when the
    # emulator starts the scheduled one.
    vms = [vm("dl01", snapshot=(5, 7), transfer=(60, 70))]
    base: Path = tmp_path_factory.mktemp("chain-answers-delay")
    running = start_stack(
        base,
        scenario(vms),
        [chain("dl", ["dl01"])],
        start=BEFORE_SCHEDULED,
        gc={"mode": "weekly-policy", "overlap": "delay"},
    )
    try:
        yield running
    finally:
        running.stop()


def test_delay_waits_until_the_scheduled_backup_is_clear(delaying: Stack) -> None:
    stack = delaying
    assert stack.api("POST", "chains/dl/runs", {"runId": "r-dl"}).status_code == 202
    events = run_to_end(stack, "r-dl", step=300, limit=8 * 3600)
    assert kinds(events, "dl01") == ["BackupDelayed", "BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
    delayed = one(events, "BackupDelayed", "dl01")["data"]
    assert parse_time(delayed["scheduledBackupAt"]) == SCHEDULED
    assert parse_time(delayed["resumesAt"]) == SCHEDULED + timedelta(hours=2)
    triggered = one(events, "BackupTriggered", "dl01")
    assert parse_time(triggered["time"]) >= SCHEDULED + timedelta(hours=2)
    # the scheduled backup GC depends on ran undisturbed; ours ran after it
    scheduled = [j for j in jobs(stack, "dl01") if not j["userTriggered"]]
    ours = [j for j in jobs(stack, "dl01") if j["userTriggered"]]
    assert [j["status"] for j in scheduled] == ["Completed"]
    assert len(ours) == 1 and ours[0]["status"] == "Completed"
    assert parse_time(ours[0]["startTime"]) >= parse_time(scheduled[0]["endTime"])
