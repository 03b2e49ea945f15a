"""The app against the trigger as Azure runs it: the async operation answers Retry-After
60 and stays InProgress for 30 s, and the app POSTs exactly one backup; each form of "a backup is
already running" (a failed operation naming the running job, a job that fails at once with
UserErrorBackupOperationInProgress, a synchronous BMSUserErrorObjectLocked) ends with the running
job waited out and the chain's own backup; the daily on-demand limit ends in one BackupFailed with
Azure's code and no second POST; a job a failed operation names that started after the upstream
signal is adopted (no second POST)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

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
FORMS = {"opfail01": "failedOperation", "jobfail01": "failedJob", "lock01": "objectLocked"}
# A scheduled job started 9 minutes before the clock start shows in the job list only 1 minute after
# it (a 10-minute lag): the run's first look misses it, so its trigger meets the conflict.
LAG_SECONDS = 600
BUSY = {"runningScheduledJob": {"startedMinutesAgo": 9}, "transfer": (20, 25)}
# named01's policy starts a job at 00:05:30-00:06, after the upstream signal (00:00); the chain looks
# for running jobs at 00:10 (the 600 s stagger after lead02), before the job list shows it.
DAILY_0005 = {"name": "daily-0005", "frequency": "Daily", "time": "00:05", "timeZone": "UTC", "retentionDays": 7}
FAILS = {"transferFailureRate": 1.0}  # namedfail01's scheduled job fails in its transfer
HISTORY_FULL_DAY = [{"hoursAgo": h, "userTriggered": True} for h in range(1, 10)]  # 9 on-demand in 24 h


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    rules = {
        "retryAfterSeconds": 60,
        "operationSeconds": 30,
        "onDemandPerDay": 9,
        "jobListLagSeconds": LAG_SECONDS,
        "vms": {name: {"conflictForm": form} for name, form in FORMS.items()},
    }
    vms = [vm("lat01", transfer=(8, 10)), vm("limit01", transfer=(8, 10), history=HISTORY_FULL_DAY)]
    vms += [vm(name, **BUSY) for name in FORMS]  # type: ignore[arg-type]
    vms += [vm("lead02", transfer=(8, 10)), vm("named01", policy="daily-0005", transfer=(20, 25))]
    vms += [vm("lead03", transfer=(8, 10)), vm("namedfail01", policy="daily-0005", transfer=(20, 25), faults=FAILS)]
    body = scenario(vms, backupTrigger=rules, lateScheduleRate=0.0, scheduleDelayMinutes=[0.5, 1.0])
    body["vaults"][0]["policies"].append(DAILY_0005)
    chains = [chain(name, [name]) for name in ["lat01", "limit01", *FORMS]]
    chains.append(chain("named", ["lead02", "named01"], staggerSeconds=600))
    chains.append(chain("namedfail", ["lead03", "namedfail01"], staggerSeconds=600))
    running = start_stack(tmp_path_factory.mktemp("chain-trigger"), body, chains, start=next_weekday_at(THURSDAY))
    try:
        for name in ["lat01", "limit01", *FORMS, "named", "namedfail"]:
            response = running.api("POST", f"chains/{name}/runs", {"runId": f"r-{name}"})
            assert response.status_code == 202, response.text
        running.settle()
        yield running
    finally:
        running.stop()


def _posts(stack: Stack, vm_name: str) -> int:
    return int(stack.admin("recoveryservices", "GET", "/admin/operations")["triggerPosts"].get(vm_name, 0))


def _operations(stack: Stack, vm_name: str) -> list[dict[str, Any]]:
    ops = stack.admin("recoveryservices", "GET", "/admin/operations")["operations"]
    return [o for o in reversed(ops) if o["vm"] == vm_name and o["kind"] == "backup"]


def test_retry_after_60_and_exactly_one_backup_post(stack: Stack) -> None:
    events = run_to_end(stack, "r-lat01")
    assert kinds(events, "lat01") == PER_VM
    assert _posts(stack, "lat01") == 1
    (job,) = jobs(stack, "lat01")
    (operation,) = _operations(stack, "lat01")
    assert operation["status"] == "Succeeded" and operation["jobId"] == job["id"]
    triggered = one(events, "BackupTriggered", "lat01")
    # The app read the operation only after its Retry-After (60 s), not while it ran.
    assert parse_time(triggered["time"]) - parse_time(job["startTime"]) >= timedelta(seconds=60)
    assert triggered["data"]["jobId"].lower() == job["id"].lower()


@pytest.mark.parametrize("vm_name", list(FORMS))
def test_conflict_form_waits_out_the_running_job_then_backs_up(stack: Stack, vm_name: str) -> None:
    events = run_to_end(stack, f"r-{vm_name}")
    assert kinds(events, vm_name) == PER_VM
    truth = jobs(stack, vm_name)
    scheduled, own = truth[0], truth[-1]
    assert scheduled["userTriggered"] is False and scheduled["status"] == "Completed"
    assert own["userTriggered"] is True and own["status"] == "Completed"
    assert parse_time(own["startTime"]) >= parse_time(scheduled["endTime"])
    triggered = one(events, "BackupTriggered", vm_name)["data"]
    assert triggered["adopted"] is False and triggered["jobId"].lower() == own["id"].lower()
    # One POST met the conflict, one started the chain's backup after the running job ended.
    assert _posts(stack, vm_name) == 2
    if FORMS[vm_name] == "failedJob":
        assert [j["error"] for j in truth[1:-1]] == ["UserErrorBackupOperationInProgress"]
    else:
        assert len(truth) == 2  # no job for the conflicting trigger
    if FORMS[vm_name] == "failedOperation":
        first = _operations(stack, vm_name)[0]
        assert first["error"] == "UserErrorBackupOperationInProgress" and first["jobId"] == scheduled["id"]


def test_daily_limit_fails_once_with_azures_code(stack: Stack) -> None:
    events = run_to_end(stack, "r-limit01")
    assert kinds(events, "limit01") == ["BackupFailed"]
    failed = one(events, "BackupFailed", "limit01")["data"]
    assert failed["phase"] == "trigger"
    assert failed["errorCode"] == "CloudDosAbsoluteLimitReached"
    assert "24 hours" in failed["message"]
    assert _posts(stack, "limit01") == 1  # refused once, not retried
    assert [j["userTriggered"] for j in jobs(stack, "limit01")] == [True] * 9  # only the seeded history


def test_a_named_running_job_that_started_after_upstream_is_adopted(stack: Stack) -> None:
    events = run_to_end(stack, "r-named")
    assert kinds(events, "named01") == PER_VM
    (scheduled,) = jobs(stack, "named01")  # the conflicting POST started nothing
    assert scheduled["userTriggered"] is False and scheduled["status"] == "Completed"
    (operation,) = _operations(stack, "named01")
    assert operation["error"] == "UserErrorBackupOperationInProgress" and operation["jobId"] == scheduled["id"]
    assert _posts(stack, "named01") == 1
    triggered = one(events, "BackupTriggered", "named01")["data"]
    assert triggered["adopted"] is True and triggered["jobId"].lower() == scheduled["id"].lower()
    assert one(events, "BackupCompleted", "named01")["data"]["jobId"].lower() == scheduled["id"].lower()


def test_an_adopted_conflict_job_that_fails_later_ends_in_backup_failed(stack: Stack) -> None:
    """The job a conflict named is adopted, then fails in its transfer long after: the run reports
    that failure with Azure's details, not a completed backup, and never POSTs again."""
    events = run_to_end(stack, "r-namedfail")
    assert kinds(events, "namedfail01") == ["BackupTriggered", "SnapshotCompleted", "BackupFailed"]
    (scheduled,) = jobs(stack, "namedfail01")
    assert scheduled["userTriggered"] is False and scheduled["status"] == "Failed"
    (operation,) = _operations(stack, "namedfail01")
    assert operation["error"] == "UserErrorBackupOperationInProgress" and operation["jobId"] == scheduled["id"]
    assert _posts(stack, "namedfail01") == 1
    assert one(events, "BackupTriggered", "namedfail01")["data"]["adopted"] is True
    failed = one(events, "BackupFailed", "namedfail01")["data"]
    assert failed["phase"] == "transfer" and failed["jobId"].lower() == scheduled["id"].lower()
    assert failed["errorCode"] == scheduled["error"]
