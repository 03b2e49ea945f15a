"""The GC orchestrators' main branches: the weekly check (findings, remediation, failed
inspections), the weekend window (resume, hold, stop; refusals), the scheduler, and reclaiming a
dead holder's lease — the real orchestrators and lease entity, Azure's answers scripted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from backup_chain.ids import vm_hash
from tests.orchestrators.builders import GUARD_CODE, azure_error, guard_refusal
from tests.support.activity_script import fails, ok
from tests.support.orchestrator_tier import PREFIX, OrchestratorTier, custom, moment, vault_id, vm_id

WEEKLY = {"frequency": "Weekly", "days": ["Wednesday"], "times": ["02:00"], "time_zone": "UTC"}


def _spec(vault: str, vms: list[str], **gc: Any) -> dict[str, Any]:
    """A GC orchestration's input as triggers/gc.py builds it."""
    settings = {
        "mode": "weekly-policy",
        "day": "Saturday",
        "at": "01:00",
        "timeZone": "UTC",
        "policy": "weekly",
        "maxParallel": 2,
        "nearLimitThreshold": 15,
        "remediate": False,
        "windowHours": 6,
        **gc,
    }
    return {
        "gc": settings,
        "targets": [[vault_id(vault), vm_id(vm)] for vm in vms],
        "prefix": PREFIX,
        "source": "/backup-chain/tests",
        "fingerprint": f"fp-{vault}",
    }


def _inspection(tier: OrchestratorTier, vm: str, vault: str, **fields: Any) -> dict[str, Any]:
    """An inspect_protection answer (activities/protection.py): protected, weekly, fine."""
    body = {
        "ok": True,
        "vmId": vm_id(vm),
        "vaultId": vault_id(vault),
        "protectionState": "Protected",
        "policy": "weekly",
        "schedule": {**WEEKLY, "interval_hours": 0, "window_hours": 0},
        "lastScheduledJob": {"jobId": f"sched-{vm}", "status": "Completed", "startTime": tier.at(-3 * 86400)},
        "restorePoints": 5,
        "instantSnapshots": 2,
        "inspectedAt": tier.at(0),
        **fields,
    }
    return ok(body)


def _by_vm(tier: OrchestratorTier, gc_run: str) -> dict[str, list[str]]:
    """``type:finding`` of GC run ``gc_run``'s events, by the last segment of their subject (the
    VM's name, or the run's id for run-level events)."""
    found: dict[str, list[str]] = {}
    for event in tier.published(gc_run):
        subject = str(event["subject"]).rsplit("/", 1)[-1]
        found.setdefault(subject, []).append(f"{event['type'].removeprefix(PREFIX)}:{event['data'].get('finding')}")
    return found


# --- gc_check (weekly-policy) ---------------------------------------------------------------------
def test_the_weekly_check_reports_each_vms_findings(tier: OrchestratorTier) -> None:
    vault = "gc-check"
    vms = ["gcc-fine", "gcc-off", "gcc-stale", "gcc-full"]
    tier.script.on("inspect_protection", "gcc-fine", _inspection(tier, "gcc-fine", vault))
    stopped = _inspection(tier, "gcc-off", vault, protectionState="ProtectionStopped")
    tier.script.on("inspect_protection", "gcc-off", stopped)
    old = {"jobId": "sched-old", "status": "Completed", "startTime": tier.at(-10 * 86400)}
    tier.script.on("inspect_protection", "gcc-stale", _inspection(tier, "gcc-stale", vault, lastScheduledJob=old))
    tier.script.on("inspect_protection", "gcc-full", _inspection(tier, "gcc-full", vault, instantSnapshots=16))
    output = tier.run("gc_check", "gc:check:t1", _spec(vault, vms))["output"]
    assert output["kind"] == "check" and [v["vmId"] for v in output["vms"]] == [vm_id(vm) for vm in vms]
    assert _by_vm(tier, "gc:check:t1") == {
        "gcc-off": ["GcOverdue:protectionOff"],
        "gcc-stale": ["GcOverdue:scheduledBackupStale"],
        "gcc-full": ["RestorePointsNearLimit:nearLimit"],
    }
    assert tier.script.calls("set_protection", vault) == []  # remediate off: only reported
    assert tier.host.status("gc:check:t1")["customStatus"] == {"phase": "completed", "checked": 4, "findings": 3}


def test_the_weekly_check_resumes_protection_when_told_and_reports_a_refused_resume(tier: OrchestratorTier) -> None:
    vault = "gc-remediate"
    vms = ["gcr-resumed", "gcr-refused"]
    for vm in vms:
        tier.script.on("inspect_protection", vm, _inspection(tier, vm, vault, protectionState="ProtectionStopped"))
    tier.script.on("set_protection", "gcr-resumed", ok({"ok": True, "changed": True, "protectionState": "Protected"}))
    tier.script.on("set_protection", "gcr-refused", azure_error(400, "BMSUserErrorInvalidInput", "no such policy"))
    output = tier.run("gc_check", "gc:check:t2", _spec(vault, vms, remediate=True))["output"]
    resumed, refused = output["vms"]
    assert resumed["remediated"] is True and resumed["remediation"] == {"resumed": True}
    assert refused["remediated"] is False and refused["remediation"]["errorCode"] == "BMSUserErrorInvalidInput"
    assert _by_vm(tier, "gc:check:t2") == {
        "gcr-resumed": ["GcOverdue:protectionOff"],
        "gcr-refused": ["GcResumeFailed:None", "GcOverdue:protectionOff"],
    }


def test_a_vm_whose_inspection_keeps_failing_gets_gc_check_failed_and_the_others_are_checked(
    tier: OrchestratorTier,
) -> None:
    vault = "gc-inspectfail"
    vms = ["gci-down", "gci-fine", "gci-denied"]
    tier.script.on("inspect_protection", "gci-down", fails("ServiceUnavailable", "vault unreachable"))
    tier.script.on("inspect_protection", "gci-fine", _inspection(tier, "gci-fine", vault))
    tier.script.on("inspect_protection", "gci-denied", azure_error(403, "AuthorizationFailed", "denied"))
    output = tier.run("gc_check", "gc:check:t3", _spec(vault, vms))["output"]
    down, fine, denied = output["vms"]
    assert down["error"]["code"] == "ServiceUnavailable" and denied["error"]["code"] == "AuthorizationFailed"
    assert fine["findings"] == []
    assert _by_vm(tier, "gc:check:t3") == {"gci-down": ["GcCheckFailed:None"], "gci-denied": ["GcCheckFailed:None"]}
    # The batch failed as a whole, then each VM of it was inspected again on its own.
    assert len(tier.script.calls("inspect_protection", "gci-down")) == 16


# --- gc_window (weekend-window) -------------------------------------------------------------------
def _protection(on: bool) -> dict[str, Any]:
    return ok({"ok": True, "changed": True, "protectionState": "Protected" if on else "ProtectionStopped"})


def test_the_weekend_window_resumes_protection_holds_it_then_stops_it(tier: OrchestratorTier) -> None:
    vault = "gc-window"
    vms = ["gcw-a", "gcw-b"]
    for vm in vms:
        tier.script.on("set_protection", vm, _protection(True), _protection(False))
    output = tier.run("gc_window", "gc:window:t1", _spec(vault, vms, mode="weekend-window"))["output"]
    assert output["stopped"] == [vm_id(vm) for vm in vms] and output["stopFailed"] == [] and output["keptOn"] == []
    assert tier.types("gc:window:t1") == ["GcWindowOpened", "GcWindowClosed"]
    opened, closed = tier.published("gc:window:t1")
    assert opened["data"]["vms"] == [vm_id(vm) for vm in vms] and opened["data"]["failed"] == []
    assert moment(closed["data"]["closedAt"]) - moment(opened["data"]["openedAt"]) == timedelta(hours=6)
    assert [c["request"]["on"] for c in tier.script.calls("set_protection", "gcw-a")] == [True, False]


def test_the_window_reports_a_refused_resume_and_a_refused_stop(tier: OrchestratorTier) -> None:
    vault = "gc-windowfail"
    tier.script.on("set_protection", "gcwf-noresume", azure_error(400, "BMSUserErrorInvalidInput", "no policy"))
    tier.script.on("set_protection", "gcwf-nostop", _protection(True), guard_refusal())
    spec = _spec(vault, ["gcwf-noresume", "gcwf-nostop"], mode="weekend-window")
    output = tier.run("gc_window", "gc:window:t2", spec)["output"]
    resumed = {v["vmId"]: v["resumed"] for v in output["vms"]}
    assert resumed == {vm_id("gcwf-nostop"): True, vm_id("gcwf-noresume"): False}
    (stop_failed,) = output["stopFailed"]
    assert stop_failed["errorCode"] == GUARD_CODE
    assert stop_failed["finding"] == "resourceGuardBlocksStop"
    assert _by_vm(tier, "gc:window:t2") == {
        "gc:window:t2": ["GcWindowOpened:None", "GcWindowClosed:None"],
        "gcwf-noresume": ["GcResumeFailed:None"],
        "gcwf-nostop": ["GcStopFailed:resourceGuardBlocksStop"],
    }


def test_the_window_keeps_protection_on_for_a_backup_still_holding_it(tier: OrchestratorTier) -> None:
    vault = "gc-windowheld"
    vm = "gcwh-a"
    lease = vm_hash(vm_id(vm))
    tier.signal("protection_lease", lease, "acquire", {"holder": "vm:backup:held", "kind": "backup", "at": tier.at(0)})
    tier.signal("protection_lease", lease, "started", {"holder": "vm:backup:held"})
    output = tier.run("gc_window", "gc:window:t3", _spec(vault, [vm], mode="weekend-window"))["output"]
    assert output["keptOn"] == [vm_id(vm)] and output["stopped"] == []
    assert tier.script.calls("set_protection", vm) == []  # on already, and a backup still holds it


# --- gc_scheduler and lease_reclaim ----------------------------------------------------------------
def test_the_scheduler_sleeps_until_the_weekly_time_runs_the_check_and_starts_over(tier: OrchestratorTier) -> None:
    vault = "gc-sched"
    tier.script.on("inspect_protection", "gcs-a", _inspection(tier, "gcs-a", vault))
    spec = _spec(vault, ["gcs-a"])
    tier.begin("gc_scheduler", "gc:scheduler:t1", spec)
    first = tier.drive("gc:scheduler:t1", lambda s: custom(s, "phase") == "sleeping")
    due = moment(first["customStatus"]["next"])
    assert due.strftime("%A %H:%M") == "Saturday 01:00" and due > tier.now()
    again = tier.drive("gc:scheduler:t1", lambda s: custom(s, "next") not in (None, first["customStatus"]["next"]))
    assert moment(again["customStatus"]["next"]) - due == timedelta(days=7)
    child = tier.host.status(f"gc:check:{due.strftime('%Y%m%dT%H%MZ')}")
    assert child["runtimeStatus"] == "Completed" and child["output"]["kind"] == "check"
    tier.terminate("gc:scheduler:t1")


def test_a_weekly_run_that_fails_does_not_stop_the_next_week(tier: OrchestratorTier) -> None:
    vault = "gc-schedfail"
    tier.script.on(
        "inspect_protection", "gcsf-a", _inspection(tier, "gcsf-a", vault, protectionState="ProtectionStopped")
    )
    tier.begin("gc_scheduler", "gc:scheduler:t3", _spec(vault, ["gcsf-a"]))
    first = tier.drive("gc:scheduler:t3", lambda s: custom(s, "phase") == "sleeping")
    child = f"gc:check:{moment(first['customStatus']['next']).strftime('%Y%m%dT%H%MZ')}"
    tier.script.on("publish_events", child, fails("ServiceUnavailable", "topic down"))  # its findings never go out
    again = tier.drive("gc:scheduler:t3", lambda s: custom(s, "next") not in (None, first["customStatus"]["next"]))
    assert tier.host.status(child)["runtimeStatus"] == "Failed"
    assert again["runtimeStatus"] == "Running" and custom(again, "phase") == "sleeping"
    tier.terminate("gc:scheduler:t3")


def test_the_scheduler_opens_the_weekend_window_at_its_time(tier: OrchestratorTier) -> None:
    vault = "gc-schedwin"
    tier.script.on("set_protection", "gcsw-a", _protection(True), _protection(False))
    tier.begin("gc_scheduler", "gc:scheduler:t4", _spec(vault, ["gcsw-a"], mode="weekend-window"))
    first = tier.drive("gc:scheduler:t4", lambda s: custom(s, "phase") == "sleeping")
    tier.drive("gc:scheduler:t4", lambda s: custom(s, "next") not in (None, first["customStatus"]["next"]))
    window = tier.host.status(f"gc:window:{moment(first['customStatus']['next']).strftime('%Y%m%dT%H%MZ')}")
    assert window["runtimeStatus"] == "Completed" and window["output"]["stopped"] == [vm_id("gcsw-a")]
    tier.terminate("gc:scheduler:t4")


def test_a_window_not_enforced_only_sleeps_through_its_week(tier: OrchestratorTier) -> None:
    vault = "gc-noenforce"
    spec = _spec(vault, ["gcn-a"], mode="weekend-window", enforce=False)
    tier.begin("gc_scheduler", "gc:scheduler:t2", spec)
    first = tier.drive("gc:scheduler:t2", lambda s: custom(s, "phase") == "sleeping")
    tier.drive("gc:scheduler:t2", lambda s: custom(s, "next") not in (None, first["customStatus"]["next"]))
    due = moment(first["customStatus"]["next"])
    assert tier.host.status(f"gc:window:{due.strftime('%Y%m%dT%H%MZ')}") == {}
    assert tier.script.calls("set_protection", "gcn-a") == []
    tier.terminate("gc:scheduler:t2")


def _dead_holder(tier: OrchestratorTier, vm: str) -> None:
    lease = vm_hash(vm_id(vm))
    tier.signal("protection_lease", lease, "acquire", {"holder": "gc:window:dead", "kind": "window", "at": tier.at(0)})
    tier.signal("protection_lease", lease, "started", {"holder": "gc:window:dead"})


def _reclaim(vault: str, vm: str) -> dict[str, Any]:
    return {
        "vaultId": vault_id(vault),
        "vmId": vm_id(vm),
        "holder": "gc:window:dead",
        "policy": "weekly",
        "prefix": PREFIX,
        "source": "/backup-chain/tests",
    }


def test_reclaiming_a_dead_holders_lease_stops_protection_it_left_on(tier: OrchestratorTier) -> None:
    vm = "gcl-a"
    _dead_holder(tier, vm)
    tier.script.on("set_protection", vm, _protection(False))
    output = tier.run("lease_reclaim", "gc:reclaim:t1", _reclaim("gc-reclaim", vm))["output"]
    assert output == {"holder": "gc:window:dead", "stoppedProtection": True, "error": None}
    assert [c["request"]["on"] for c in tier.script.calls("set_protection", vm)] == [False]


def test_a_stop_refused_while_reclaiming_is_published_as_gc_stop_failed(tier: OrchestratorTier) -> None:
    vm = "gcl-b"
    _dead_holder(tier, vm)
    tier.script.on("set_protection", vm, azure_error(400, "BMSUserErrorObjectLocked", "busy"))
    output = tier.run("lease_reclaim", "gc:reclaim:t2", _reclaim("gc-reclaim", vm))["output"]
    assert output["stoppedProtection"] is False and output["error"]["code"] == "BMSUserErrorObjectLocked"
    (event,) = tier.published(vm)
    assert event["type"] == f"{PREFIX}GcStopFailed" and event["data"]["finding"] == "stopRefused"


def test_reclaiming_a_lease_the_holder_no_longer_holds_changes_nothing(tier: OrchestratorTier) -> None:
    vm = "gcl-c"
    output = tier.run("lease_reclaim", "gc:reclaim:t3", _reclaim("gc-reclaim", vm))["output"]
    assert output == {"holder": "gc:window:dead", "stoppedProtection": False, "error": None}
    assert tier.script.calls("set_protection", vm) == [] and tier.published(vm) == []


def test_a_check_that_finds_nothing_publishes_nothing(tier: OrchestratorTier) -> None:
    vault = "gc-allfine"
    tier.script.on("inspect_protection", "gcf-a", _inspection(tier, "gcf-a", vault))
    output = tier.run("gc_check", "gc:check:t4", _spec(vault, ["gcf-a"]))["output"]
    assert output["vms"][0]["findings"] == []
    assert tier.script.calls("publish_events", "gc:check:t4") == []
