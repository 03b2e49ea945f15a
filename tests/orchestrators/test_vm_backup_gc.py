"""``vm_backup`` for a VM garbage collection covers: keeping clear of the policy's scheduled
backup (refuse or delay), and in weekend-window mode holding the protection lease — resuming
protection before the backup and stopping it after, with Azure's refusals reported."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from backup_chain.ids import vm_hash
from orchestrators.protection import WAIT_SECONDS
from tests.orchestrators.builders import (
    GUARD_CODE,
    GUARD_MESSAGE,
    azure_error,
    failed_event,
    guard_refusal,
    healthy,
    run_vm,
    triggers,
    vm_input,
    vm_instance,
)
from tests.support.activity_script import fails, ok
from tests.support.orchestrator_tier import LEASE_MAX_WAITS, OrchestratorTier, moment, vm_id

WEEKLY_POLICY = {"mode": "weekly-policy", "policy": "weekly", "overlap": "refuse"}
WINDOW = {"mode": "weekend-window", "policy": "weekly", "overlap": "refuse"}


def _daily_in(tier: OrchestratorTier, minutes: int) -> tuple[dict[str, Any], datetime]:
    """A get_policy_schedule answer: a daily policy running ``minutes`` from now (UTC, to the
    minute), and when it runs."""
    at = (tier.now() + timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    schedule = {
        "frequency": "Daily",
        "days": [],
        "times": [at.strftime("%H:%M")],
        "time_zone": "UTC",
        "interval_hours": 0,
        "window_hours": 0,
    }
    return ok({"ok": True, "schedule": schedule, "policy": "daily"}), at


def test_a_backup_that_would_overlap_the_scheduled_one_is_refused(tier: OrchestratorTier) -> None:
    name = "vm-refuse"
    tier.script.on("get_policy_schedule", name, _daily_in(tier, 60)[0])
    output = run_vm(tier, name, gc=WEEKLY_POLICY)
    assert output["failedPhase"] == "trigger" and output["errorCode"] == "OverlapsScheduledBackup"
    assert tier.types(name) == ["BackupFailed"]
    assert tier.script.calls("find_active_job", name) == []  # no backup is even looked for
    (asked,) = tier.script.requests("get_policy_schedule", name)
    assert "policy" not in asked  # weekly-policy reads the VM's own policy


def test_with_overlap_delay_the_backup_waits_until_the_scheduled_one_is_clear(tier: OrchestratorTier) -> None:
    name = "vm-delay"
    schedule, scheduled = _daily_in(tier, 60)
    tier.script.on("get_policy_schedule", name, schedule)
    triggers(tier, name, "job-delay", "op-delay")
    healthy(tier, name, "job-delay")
    output = run_vm(tier, name, gc={**WEEKLY_POLICY, "overlap": "delay"})
    assert output["outcome"] == "completed"
    assert tier.types(name) == ["BackupDelayed", "BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
    delayed = tier.published(name)[0]["data"]
    resumes = scheduled + timedelta(hours=2)  # a scheduled backup may start up to 2 h after its time
    assert moment(delayed["resumesAt"]) == resumes
    assert tier.timers(vm_instance(name))[0] == resumes
    (post,) = tier.script.calls("trigger_backup", name)
    assert moment(post["request"]["expiryUtc"]) == resumes + timedelta(days=30)  # retainDays from the trigger


def test_a_backup_clear_of_the_scheduled_one_goes_ahead_at_once(tier: OrchestratorTier) -> None:
    name = "vm-clear"
    tier.script.on("get_policy_schedule", name, _daily_in(tier, 8 * 60)[0])  # 3 h of backup end well before
    triggers(tier, name, "job-clear", "op-clear")
    healthy(tier, name, "job-clear")
    assert run_vm(tier, name, gc={**WEEKLY_POLICY, "overlap": "delay"})["outcome"] == "completed"
    assert tier.types(name)[0] == "BackupTriggered"  # no BackupDelayed


def test_a_vm_without_a_policy_schedule_is_backed_up_at_once(tier: OrchestratorTier) -> None:
    name = "vm-nopolicy"
    tier.script.on("get_policy_schedule", name, ok({"ok": True, "schedule": None, "policy": None}))
    triggers(tier, name, "job-nopolicy", "op-nopolicy")
    healthy(tier, name, "job-nopolicy")
    assert run_vm(tier, name, gc=WEEKLY_POLICY)["outcome"] == "completed"
    assert tier.types(name)[0] == "BackupTriggered"


def test_a_schedule_that_cannot_be_read_fails_the_trigger_with_its_code(tier: OrchestratorTier) -> None:
    name = "vm-badzone"
    tier.script.on("get_policy_schedule", name, azure_error(None, "UnknownPolicyTimeZone", "zone?", kind="final"))
    output = run_vm(tier, name, gc=WEEKLY_POLICY)
    assert output["errorCode"] == "UnknownPolicyTimeZone" and output["failedPhase"] == "trigger"


def test_a_schedule_read_failing_beyond_its_retries_fails_the_trigger(tier: OrchestratorTier) -> None:
    name = "vm-schedout"
    tier.script.on("get_policy_schedule", name, fails("TooManyRequests", "throttled"))
    output = run_vm(tier, name, gc=WEEKLY_POLICY)
    assert output["errorCode"] == "TooManyRequests" and output["failedPhase"] == "trigger"
    assert len(tier.script.calls("get_policy_schedule", name)) == 8


def _protection(on: bool) -> dict[str, Any]:
    state = "Protected" if on else "ProtectionStopped"
    return ok({"ok": True, "changed": True, "protectionState": state})


def test_weekend_window_resumes_protection_for_the_backup_and_stops_it_after(tier: OrchestratorTier) -> None:
    name = "vm-lease"
    tier.script.on("get_policy_schedule", name, ok({"ok": True, "schedule": None, "policy": "weekly"}))
    tier.script.on("set_protection", name, _protection(True), _protection(False))
    triggers(tier, name, "job-lease", "op-lease")
    healthy(tier, name, "job-lease")
    output = run_vm(tier, name, gc=WINDOW, monitorTransfer=False)  # the lease is held to the end anyway
    assert output["outcome"] == "completed" and output["protectionStopped"] is True
    assert [c["request"]["on"] for c in tier.script.calls("set_protection", name)] == [True, False]
    assert tier.script.requests("get_policy_schedule", name)[0]["policy"] == "weekly"
    lease = tier.host.mgmt("GET", f"entities/protection_lease/{vm_hash(vm_id(name))}").json()
    assert lease["phase"] == "off" and lease["holders"] == {}


def test_a_resume_azure_refuses_fails_the_trigger_and_frees_the_lease(tier: OrchestratorTier) -> None:
    name = "vm-noresume"
    tier.script.on("get_policy_schedule", name, ok({"ok": True, "schedule": None, "policy": "weekly"}))
    tier.script.on("set_protection", name, azure_error(400, "BMSUserErrorInvalidInput", "policy gone"))
    output = run_vm(tier, name, gc=WINDOW)
    assert output["errorCode"] == "BMSUserErrorInvalidInput" and output["failedPhase"] == "trigger"
    assert failed_event(tier, name)["message"] == "policy gone"
    assert tier.script.calls("trigger_backup", name) == []
    lease = tier.host.mgmt("GET", f"entities/protection_lease/{vm_hash(vm_id(name))}").json()
    assert lease["phase"] == "off" and lease["holders"] == {}


def test_a_stop_azure_refuses_is_reported_with_its_finding(tier: OrchestratorTier) -> None:
    name = "vm-nostop"
    tier.script.on("get_policy_schedule", name, ok({"ok": True, "schedule": None, "policy": "weekly"}))
    tier.script.on("set_protection", name, _protection(True), guard_refusal())
    triggers(tier, name, "job-nostop", "op-nostop")
    healthy(tier, name, "job-nostop")
    output = run_vm(tier, name, gc=WINDOW)
    assert output["outcome"] == "completed" and output["protectionStopped"] is False
    stop_error = output["protectionStopError"]
    assert stop_error["code"] == GUARD_CODE and stop_error["message"] == GUARD_MESSAGE
    assert stop_error["finding"] == "resourceGuardBlocksStop"
    lease = tier.host.mgmt("GET", f"entities/protection_lease/{vm_hash(vm_id(name))}").json()
    assert lease["phase"] == "on"  # protection is still on, and the lease says so


def test_a_lease_in_another_holders_transition_is_waited_for_and_kept_on_for_it(tier: OrchestratorTier) -> None:
    name = "vm-shared-lease"
    key = vm_hash(vm_id(name))
    tier.signal("protection_lease", key, "acquire", {"holder": "gc:window:other", "kind": "window", "at": tier.at(0)})
    tier.script.on("get_policy_schedule", name, ok({"ok": True, "schedule": None, "policy": "weekly"}))
    triggers(tier, name, "job-shared-lease", "op-shared-lease")
    healthy(tier, name, "job-shared-lease")
    tier.begin("vm_backup", vm_instance(name), vm_input(name, tier.at(-600), gc=WINDOW))
    tier.drive(vm_instance(name), lambda s: len(tier.timers(vm_instance(name))) >= 2)  # waited twice
    tier.signal("protection_lease", key, "started", {"holder": "gc:window:other"})
    output = tier.drive(vm_instance(name))["output"]
    assert output["outcome"] == "completed" and output["protectionStopped"] is False
    assert tier.script.calls("set_protection", name) == []  # the other holder resumed it and keeps it
    assert tier.unscripted(name) == []


def test_a_resume_failing_beyond_its_retries_fails_the_trigger_and_frees_the_lease(tier: OrchestratorTier) -> None:
    name = "vm-resumeout"
    tier.script.on("get_policy_schedule", name, ok({"ok": True, "schedule": None, "policy": "weekly"}))
    tier.script.on("set_protection", name, fails("CloudInternalError", "ARM is down"))
    output = run_vm(tier, name, gc=WINDOW)
    assert output["failedPhase"] == "trigger" and output["errorCode"] == "CloudInternalError"
    assert output["message"] == "still failing after the retries: ARM is down"
    assert failed_event(tier, name)["message"] == output["message"]
    assert tier.types(name) == ["BackupFailed"]
    # AZURE_RETRY: 8 attempts 10 s apart, and one timer more after the last: the Durable Python SDK
    # (models/Task.py RetryAbleTask, as DTFx) fails the task only once that timer fired.
    calls = tier.script.calls("set_protection", name)
    assert len(calls) == 8 and all(c["request"]["on"] is True for c in calls)
    started = tier.started_at(vm_instance(name))
    assert [t - started for t in tier.timers(vm_instance(name))] == [timedelta(seconds=10 * n) for n in range(1, 9)]
    assert tier.script.calls("trigger_backup", name) == []
    lease = tier.host.mgmt("GET", f"entities/protection_lease/{vm_hash(vm_id(name))}").json()
    assert lease["phase"] == "off" and lease["holders"] == {}  # resumeFailed: protection is still off


def test_a_stop_failing_beyond_its_retries_is_reported_and_the_lease_stays_on(tier: OrchestratorTier) -> None:
    name = "vm-stopout"
    tier.script.on("get_policy_schedule", name, ok({"ok": True, "schedule": None, "policy": "weekly"}))
    tier.script.on("set_protection", name, _protection(True), fails("CloudInternalError", "ARM is down"))
    triggers(tier, name, "job-stopout", "op-stopout")
    healthy(tier, name, "job-stopout")
    output = run_vm(tier, name, gc=WINDOW)
    assert output["outcome"] == "completed" and output["protectionStopped"] is False
    stop_error = output["protectionStopError"]
    assert stop_error["code"] == "CloudInternalError"
    assert stop_error["message"] == "still failing after the retries: ARM is down"
    assert [c["request"]["on"] for c in tier.script.calls("set_protection", name)] == [True] + [False] * 8
    assert tier.types(name) == ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
    lease = tier.host.mgmt("GET", f"entities/protection_lease/{vm_hash(vm_id(name))}").json()
    assert lease["phase"] == "on" and lease["holders"] == {}  # stopFailed: protection is still on


def test_a_lease_that_stays_in_another_holders_transition_fails_the_trigger_lease_busy(tier: OrchestratorTier) -> None:
    name = "vm-lease-busy"
    key = vm_hash(vm_id(name))
    tier.signal("protection_lease", key, "acquire", {"holder": "gc:window:stuck", "kind": "window", "at": tier.at(0)})
    tier.script.on("get_policy_schedule", name, ok({"ok": True, "schedule": None, "policy": "weekly"}))
    tier.begin("vm_backup", vm_instance(name), vm_input(name, tier.at(-600), gc=WINDOW))
    status = tier.drive(vm_instance(name), max_jumps=LEASE_MAX_WAITS + 10)
    output = status["output"]
    assert output["failedPhase"] == "trigger" and output["errorCode"] == "LeaseBusy"
    assert status["customStatus"]["phase"] == "failed" and status["customStatus"]["errorCode"] == "LeaseBusy"
    assert failed_event(tier, name)["message"] == "protection lease stayed busy"
    # The bound's waits (cut to LEASE_MAX_WAITS in the tier) of WAIT_SECONDS each; nothing asked of Azure.
    started = tier.started_at(vm_instance(name))
    waits = [t - started for t in tier.timers(vm_instance(name))]
    assert waits == [timedelta(seconds=WAIT_SECONDS * n) for n in range(1, LEASE_MAX_WAITS + 1)]
    assert tier.script.calls("set_protection", name) == [] and tier.script.calls("find_active_job", name) == []
    lease = tier.host.mgmt("GET", f"entities/protection_lease/{key}").json()
    assert lease["phase"] == "starting" and list(lease["holders"]) == ["gc:window:stuck"]
    assert tier.unscripted(name) == []
