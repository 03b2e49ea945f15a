"""``vm_backup`` branch by branch: the real orchestrator on devhost, Azure's answers scripted
(in the shapes activities/backup.py returns), the clock jumped from timer to timer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from backup_chain.events import event_id
from backup_chain.ids import resource_hash
from tests.orchestrators.builders import (
    CHAIN,
    accepted,
    azure_error,
    done,
    failed_event,
    healthy,
    in_progress,
    job,
    no_job,
    operation_succeeded,
    read,
    run_vm,
    running,
    triggers,
    vm_input,
    vm_instance,
)
from tests.support.activity_script import fails, mentions, ok
from tests.support.orchestrator_tier import OrchestratorTier, custom, vault_id, vm_id


# --- getting a job: trigger, adopt, wait out ----------------------------------------------------
def test_trigger_follows_the_operation_then_reports_snapshot_and_completion(tier: OrchestratorTier) -> None:
    name = "vm-trigger"
    triggers(tier, name, "job-trigger", "op-trigger")
    healthy(tier, name, "job-trigger")
    output = run_vm(tier, name)
    assert output["outcome"] == "completed" and output["jobId"] == "job-trigger" and output["adopted"] is False
    assert tier.types(name) == ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
    completed = tier.published(name)[-1]["data"]
    assert completed["recoveryPoint"] == "rp1" and completed["consistency"] == "AppConsistent"
    assert completed["recoveryPointLookupError"] is None
    assert len(tier.script.calls("trigger_backup", name)) == 1
    assert len(tier.script.calls("backup_operation", "op-trigger")) == 2


def test_without_transfer_monitoring_it_ends_at_the_snapshot(tier: OrchestratorTier) -> None:
    name = "vm-snaponly"
    triggers(tier, name, "job-snaponly", "op-snaponly")
    healthy(tier, name, "job-snaponly")
    output = run_vm(tier, name, monitorTransfer=False)
    assert output["outcome"] == "snapshotCompleted" and output["phase"] == "snapshotCompleted"
    assert tier.types(name) == ["BackupTriggered", "SnapshotCompleted"]
    assert len(tier.script.calls("get_job", "job-snaponly")) == 2  # never read past the snapshot


def test_a_job_started_after_the_upstream_signal_is_adopted(tier: OrchestratorTier) -> None:
    name = "vm-adopt"
    tier.script.on("find_active_job", name, running(job("job-adopt", start=tier.at(-60))))
    healthy(tier, name, "job-adopt")
    output = run_vm(tier, name)
    assert output["outcome"] == "completed" and output["jobId"] == "job-adopt" and output["adopted"] is True
    assert tier.published(name)[0]["data"]["adopted"] is True
    assert tier.script.calls("trigger_backup", name) == []


def test_a_job_older_than_the_upstream_signal_is_waited_out_then_a_new_one_triggered(tier: OrchestratorTier) -> None:
    name = "vm-waitout"
    older = job("job-older", start=tier.at(-3600))
    tier.script.on("find_active_job", name, running(older), no_job())
    tier.script.on("get_job", "job-older", read(older), read({**older, "status": "Completed", "end_time": tier.at(60)}))
    tier.script.on("trigger_backup", name, accepted("op-waitout"))
    tier.script.on("backup_operation", "op-waitout", operation_succeeded(job("job-waitout", start=tier.at(0))))
    healthy(tier, name, "job-waitout")
    output = run_vm(tier, name)
    assert output["outcome"] == "completed" and output["jobId"] == "job-waitout" and output["adopted"] is False
    watched = tier.host.status(f"{vm_instance(name)}:wait0")  # the older job, watched to its end
    assert watched["output"]["ok"] is True and watched["output"]["job"]["status"] == "Completed"
    calls = tier.script.calls()
    order = [c["activity"] for c in calls if mentions(c["request"], name) or mentions(c["request"], "job-older")]
    # Found, watched to its end, looked for again, and only then a POST.
    assert order[:5] == ["find_active_job", "get_job", "get_job", "find_active_job", "trigger_backup"]
    assert tier.types(name) == ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]


def test_the_job_being_waited_out_failing_to_be_read_fails_the_trigger(tier: OrchestratorTier) -> None:
    name = "vm-waitfail"
    older = job("job-waitfail", start=tier.at(-3600))
    tier.script.on("find_active_job", name, running(older))
    tier.script.on("get_job", "job-waitfail", azure_error(404, "ResourceNotFound"))
    output = run_vm(tier, name)
    assert output["outcome"] == "failed" and output["failedPhase"] == "trigger"
    assert output["errorCode"] == "ResourceNotFound"
    assert tier.script.calls("trigger_backup", name) == []


def test_the_job_list_failing_fails_the_trigger_with_azures_code(tier: OrchestratorTier) -> None:
    name = "vm-listfail"
    tier.script.on("find_active_job", name, azure_error(403, "AuthorizationFailed"))
    output = run_vm(tier, name)
    assert output["failedPhase"] == "trigger" and output["errorCode"] == "AuthorizationFailed"
    assert failed_event(tier, name)["errorCode"] == "AuthorizationFailed"


# --- the three conflict forms and the recheck -----------------------------------------------------
def test_an_operation_naming_the_running_job_has_that_job_waited_out(tier: OrchestratorTier) -> None:
    name = "vm-named"
    scheduled = job("job-sched-named", start=tier.at(-1200))
    tier.script.on("find_active_job", name, no_job())
    tier.script.on("trigger_backup", name, accepted("op-named-1"), accepted("op-named-2"))
    tier.script.on(
        "backup_operation",
        "op-named-1",
        azure_error(409, "UserErrorBackupOperationInProgress", jobId="job-sched-named"),
    )
    tier.script.on("backup_operation", "op-named-2", operation_succeeded(job("job-named", start=tier.at(0))))
    done = {**scheduled, "status": "Completed", "end_time": tier.at(600)}
    tier.script.on("get_job", "job-sched-named", read(scheduled), read(scheduled), read(done))
    healthy(tier, name, "job-named")
    output = run_vm(tier, name)
    assert output["outcome"] == "completed" and output["jobId"] == "job-named"
    assert len(tier.script.calls("trigger_backup", name)) == 2
    assert len(tier.script.calls("find_active_job", name)) == 2  # round 1, and after the wait (round 3)


def test_a_named_job_that_already_ended_is_not_waited_for(tier: OrchestratorTier) -> None:
    name = "vm-namedgone"
    tier.script.on("find_active_job", name, no_job())
    tier.script.on("trigger_backup", name, accepted("op-namedgone-1"), accepted("op-namedgone-2"))
    tier.script.on(
        "backup_operation", "op-namedgone-1", azure_error(409, "BMSUserErrorObjectLocked", jobId="job-gone-named")
    )
    tier.script.on("backup_operation", "op-namedgone-2", operation_succeeded(job("job-namedgone", start=tier.at(0))))
    gone = job("job-gone-named", status="Completed", start=tier.at(-1200), end=tier.at(-5))
    tier.script.on("get_job", "job-gone-named", read(gone))
    healthy(tier, name, "job-namedgone")
    output = run_vm(tier, name)
    assert output["outcome"] == "completed" and output["jobId"] == "job-namedgone"
    assert len(tier.script.calls("get_job", "job-gone-named")) == 1
    assert [tier.host.status(f"{vm_instance(name)}:wait{n}") for n in range(4)] == [{}] * 4  # nothing waited out


def test_a_job_that_fails_at_once_with_a_conflict_is_rechecked_after_five_minutes(tier: OrchestratorTier) -> None:
    name = "vm-atonce"
    failed_at_once = job(
        "job-atonce-failed",
        status="Failed",
        start=tier.at(0),
        snapshot="Failed",
        error_code="UserErrorBackupOperationInProgress",
    )
    scheduled = job("job-atonce-sched", start=tier.at(30))  # the list shows it only after its lag
    tier.script.on("find_active_job", name, no_job(), running(scheduled))
    tier.script.on("trigger_backup", name, accepted("op-atonce", retry_after=60))
    tier.script.on("backup_operation", "op-atonce", operation_succeeded(failed_at_once))
    healthy(tier, name, "job-atonce-sched")
    output = run_vm(tier, name)
    assert output["jobId"] == "job-atonce-sched" and output["adopted"] is True and output["outcome"] == "completed"
    fire = tier.timers(vm_instance(name))
    assert fire[1] - fire[0] == timedelta(seconds=300)  # Retry-After 60 s, then the 300 s recheck


def test_a_synchronous_object_locked_refusal_is_rechecked_then_triggered_again(tier: OrchestratorTier) -> None:
    name = "vm-locked"
    tier.script.on("find_active_job", name, no_job())
    tier.script.on("trigger_backup", name, azure_error(400, "BMSUserErrorObjectLocked"), accepted("op-locked"))
    tier.script.on("backup_operation", "op-locked", operation_succeeded(job("job-locked", start=tier.at(0))))
    healthy(tier, name, "job-locked")
    output = run_vm(tier, name)
    assert output["outcome"] == "completed" and output["jobId"] == "job-locked"
    posts = tier.script.calls("trigger_backup", name)
    assert len(posts) == 2
    fire = tier.timers(vm_instance(name))
    assert fire[0] - tier.started_at(vm_instance(name)) == timedelta(seconds=300)


def test_conflicts_every_round_end_in_backup_kept_conflicting(tier: OrchestratorTier) -> None:
    name = "vm-keptconflict"
    tier.script.on("find_active_job", name, no_job())
    tier.script.on("trigger_backup", name, azure_error(400, "BMSUserErrorObjectLocked"))
    output = run_vm(tier, name)
    assert output["errorCode"] == "BackupKeptConflicting" and output["failedPhase"] == "trigger"
    assert len(tier.script.calls("trigger_backup", name)) == 4
    assert tier.types(name) == ["BackupFailed"]


# --- the trigger's operation: Retry-After, deadline, refusals ------------------------------------
def test_retry_after_is_capped_at_an_hour_and_floored_at_five_seconds(tier: OrchestratorTier) -> None:
    for name, retry_after, wait in (("vm-capped", 90000, 3600), ("vm-floored", 1, 5)):
        tier.script.on("find_active_job", name, no_job())
        tier.script.on("trigger_backup", name, accepted(f"op-{name}", retry_after=retry_after))
        tier.script.on(
            "backup_operation", f"op-{name}", in_progress(), operation_succeeded(job(f"job-{name}", start=tier.at(0)))
        )
        healthy(tier, name, f"job-{name}")
        assert run_vm(tier, name, monitorTransfer=False)["outcome"] == "snapshotCompleted"
        fire = tier.timers(vm_instance(name))
        assert fire[0] - tier.started_at(vm_instance(name)) == timedelta(seconds=wait)
        assert fire[1] - fire[0] == timedelta(seconds=wait)


def test_an_operation_still_in_progress_after_two_hours_fails_the_trigger(tier: OrchestratorTier) -> None:
    name = "vm-deadline"
    tier.script.on("find_active_job", name, no_job())
    tier.script.on("trigger_backup", name, accepted("op-deadline", retry_after=600))
    tier.script.on("backup_operation", "op-deadline", in_progress())
    output = run_vm(tier, name)
    assert output["errorCode"] == "BackupOperationNeverEnded" and output["failedPhase"] == "trigger"
    assert len(tier.script.calls("backup_operation", "op-deadline")) == 12  # every 10 min for 2 h
    assert len(tier.script.calls("trigger_backup", name)) == 1  # never POSTs again


def test_the_daily_on_demand_limit_fails_the_trigger_with_azures_code(tier: OrchestratorTier) -> None:
    name = "vm-daily"
    tier.script.on("find_active_job", name, no_job())
    tier.script.on("trigger_backup", name, accepted("op-daily"))
    # The code Azure Backup answers for its 24-hour operation limit (Azure/azure-content#5067; the
    # emulator's ON_DEMAND_LIMIT), here as the failed operation backup_operation reports.
    tier.script.on("backup_operation", "op-daily", azure_error(400, "CloudDosAbsoluteLimitReached", "limit reached"))
    output = run_vm(tier, name)
    assert output["errorCode"] == "CloudDosAbsoluteLimitReached" and output["failedPhase"] == "trigger"
    failed = failed_event(tier, name)
    assert failed["phase"] == "trigger" and failed["message"] == "limit reached"
    assert len(tier.script.calls("trigger_backup", name)) == 1


def test_a_trigger_failing_beyond_its_retries_without_a_new_job_fails_after_one_recheck(tier: OrchestratorTier) -> None:
    name = "vm-exhausted"
    tier.script.on("find_active_job", name, no_job())
    tier.script.on("trigger_backup", name, fails("CloudInternalError", "ARM is down"))
    output = run_vm(tier, name)
    assert output["failedPhase"] == "trigger" and output["errorCode"] == "CloudInternalError"
    assert "still failing after the retries: ARM is down" in output["message"]
    assert len(tier.script.calls("trigger_backup", name)) == 8  # AZURE_RETRY's attempts
    assert len(tier.script.calls("find_active_job", name)) == 3  # the round, the look, the recheck
    assert tier.types(name) == ["BackupFailed"]


def test_a_trigger_failing_beyond_its_retries_takes_the_job_its_accepted_post_started(tier: OrchestratorTier) -> None:
    name = "vm-orphan"
    orphan = job("job-orphan", start=tier.at(5))
    tier.script.on("find_active_job", name, no_job(), no_job(), running(orphan))
    tier.script.on("trigger_backup", name, fails("CloudInternalError", "ARM is down"))
    healthy(tier, name, "job-orphan")
    output = run_vm(tier, name)
    assert output["outcome"] == "completed" and output["jobId"] == "job-orphan" and output["adopted"] is False
    assert tier.types(name) == ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]


# --- the job's phases: fallback verdicts of shared polling, failures ------------------------------
def test_a_failed_snapshot_reports_the_jobs_error_in_the_snapshot_phase(tier: OrchestratorTier) -> None:
    name = "vm-snapfail"
    triggers(tier, name, "job-snapfail", "op-snapfail")
    failed = job(
        "job-snapfail",
        status="Failed",
        start=tier.at(0),
        snapshot="Failed",
        end=tier.at(300),
        error_code="ExtensionFailedVssWriterInBadState",
        error_number=400123,
        error_message="VSS writers are in a bad state",
        recommendations=["Restart the VSS writers."],
    )
    tier.script.on("get_job", "job-snapfail", read(failed))
    output = run_vm(tier, name)
    assert output["failedPhase"] == "snapshot" and output["errorCode"] == "ExtensionFailedVssWriterInBadState"
    event = failed_event(tier, name)
    assert event["azureErrorCode"] == 400123 and event["recommendations"] == ["Restart the VSS writers."]
    assert tier.types(name) == ["BackupTriggered", "BackupFailed"]


def test_a_failed_transfer_reports_the_transfer_phase(tier: OrchestratorTier) -> None:
    name = "vm-xferfail"
    triggers(tier, name, "job-xferfail", "op-xferfail")
    start = tier.at(0)
    snap = job("job-xferfail", start=start, snapshot="Completed", snapshot_end=tier.at(400))
    tier.script.on(
        "get_job",
        "job-xferfail",
        read(snap),
        read({**snap, "status": "Failed"}),  # no error details: the job's status stands for the code
    )
    output = run_vm(tier, name)
    assert output["failedPhase"] == "transfer" and output["errorCode"] == "Failed"
    assert tier.types(name) == ["BackupTriggered", "SnapshotCompleted", "BackupFailed"]


def test_a_transfer_watch_that_cannot_read_the_job_fails_the_transfer_phase(tier: OrchestratorTier) -> None:
    name = "vm-xferread"
    triggers(tier, name, "job-xferread", "op-xferread")
    snap = job("job-xferread", start=tier.at(0), snapshot="Completed", snapshot_end=tier.at(400))
    tier.script.on("get_job", "job-xferread", read(snap), azure_error(404, "ResourceNotFound", "job gone"))
    output = run_vm(tier, name)
    assert output["failedPhase"] == "transfer" and output["errorCode"] == "ResourceNotFound"
    assert tier.types(name) == ["BackupTriggered", "SnapshotCompleted", "BackupFailed"]


def test_a_job_read_failing_beyond_its_retries_fails_the_snapshot_phase(tier: OrchestratorTier) -> None:
    name = "vm-readout"
    triggers(tier, name, "job-readout", "op-readout")
    tier.script.on("get_job", "job-readout", fails("ServiceUnavailable", "vault unreachable"))
    output = run_vm(tier, name)
    # The watch's sub-orchestration fails with the activity's last failure: Azure's code survives.
    assert output["failedPhase"] == "snapshot" and output["errorCode"] == "ServiceUnavailable"
    assert "still failing after the retries: vault unreachable" in output["message"]
    assert len(tier.script.calls("get_job", "job-readout")) == 8


def test_a_recovery_point_lookup_failing_still_completes_the_backup(tier: OrchestratorTier) -> None:
    name = "vm-nopoint"
    triggers(tier, name, "job-nopoint", "op-nopoint")
    start = tier.at(0)
    tier.script.on(
        "get_job", "job-nopoint", read(done("job-nopoint", start, tier.at(400), tier.at(3000), backup_size="42 MB"))
    )
    tier.script.on("latest_recovery_point", name, azure_error(404, "ResourceNotFound", "none yet"))
    output = run_vm(tier, name)
    assert output["outcome"] == "completed"
    completed = tier.published(name)[-1]["data"]
    assert completed["recoveryPointLookupError"] == {"code": "ResourceNotFound", "message": "none yet"}
    assert completed["recoveryPoint"] is None and completed["backupSize"] == "42 MB"


def _shared(name: str) -> dict[str, Any]:
    """Shared polling through a vault of this test's own (its job_watch board is the test's)."""
    return {"polling": {"shared": True}, "vaultId": vault_id(f"vault-{name}"), "monitorTransfer": False}


def _at_snapshot_watch(tier: OrchestratorTier, name: str, job_id: str) -> dict[str, Any]:
    """Start ``name`` (adopting ``job_id``) and drive it until it waits for the snapshot notice."""
    tier.script.on("find_active_job", name, running(job(job_id, start=tier.at(-60))))
    tier.begin("vm_backup", vm_instance(name), vm_input(name, tier.at(-600), **_shared(name)))
    return tier.drive(vm_instance(name), lambda s: custom(s, "phase") == "snapshot")


def test_a_notice_from_the_vaults_poller_ends_the_snapshot_wait(tier: OrchestratorTier) -> None:
    name = "vm-notice"
    _at_snapshot_watch(tier, name, "job-notice")
    snap = job("job-notice", start=tier.at(-60), snapshot="Completed", snapshot_end=tier.at(0))
    tier.raise_event(vm_instance(name), "job:snapshot", {"ok": True, "job": snap, "announced": True})
    output = tier.drive(vm_instance(name))["output"]
    assert output["outcome"] == "snapshotCompleted" and output["snapshotCompletedAt"] == snap["snapshot_end"]
    assert tier.types(name) == ["BackupTriggered"]  # the poller announced the snapshot
    assert tier.script.calls("get_job", "job-notice") == []


def test_a_silent_poller_has_the_watch_withdrawn_and_the_job_read_here(tier: OrchestratorTier) -> None:
    name = "vm-withdrawn"
    running_still = job("job-withdrawn", start=tier.at(-60))
    snap = job("job-withdrawn", start=tier.at(-60), snapshot="Completed", snapshot_end=tier.at(1200))
    tier.script.on("get_job", "job-withdrawn", read(running_still), read(snap))
    _at_snapshot_watch(tier, name, "job-withdrawn")
    output = tier.drive(vm_instance(name))["output"]
    assert output["outcome"] == "snapshotCompleted"
    assert tier.types(name) == ["BackupTriggered", "SnapshotCompleted"]
    # Read here after each silent period: still running, so registered again; then done.
    assert len(tier.script.calls("get_job", "job-withdrawn")) == 2
    registrations = tier.host.mgmt("GET", f"entities/job_watch/{resource_hash(vault_id('vault-vm-withdrawn'))}")
    assert registrations.json()["watches"] == {}  # withdrawn again at the second silent period
    start = tier.started_at(vm_instance(name))
    assert [t - start for t in tier.timers(vm_instance(name))] == [timedelta(seconds=900), timedelta(seconds=1800)]


def _take(tier: OrchestratorTier, name: str, done: list[str]) -> None:
    """What the vault's poller does: take the reads due now (finishing ``done``)."""
    board = resource_hash(vault_id(f"vault-{name}"))
    tier.signal("job_watch", board, "take", {"at": tier.now().timestamp(), "readsPerMinute": 60, "done": done})
    tier.settle()


def test_a_poller_alive_but_behind_is_waited_for_before_reading_here(tier: OrchestratorTier) -> None:
    name = "vm-watching"
    snap = job("job-watching", start=tier.at(-60), snapshot="Completed", snapshot_end=tier.at(300))
    tier.script.on("get_job", "job-watching", read(snap))
    _at_snapshot_watch(tier, name, "job-watching")
    tier.host.advance(600)
    _take(tier, name, [])  # the poller took a read 5 min before the fallback wake: alive
    output = tier.drive(vm_instance(name))["output"]
    assert output["outcome"] == "snapshotCompleted"
    fire = tier.timers(vm_instance(name))
    assert len(fire) == 2 and fire[1] - fire[0] == timedelta(seconds=900)  # waited one more period
    assert len(tier.script.calls("get_job", "job-watching")) == 1


def test_a_watch_the_poller_finished_waits_once_for_its_notice_then_reads_here(tier: OrchestratorTier) -> None:
    name = "vm-finished"
    snap = job("job-finished", start=tier.at(-60), snapshot="Completed", snapshot_end=tier.at(300))
    tier.script.on("get_job", "job-finished", read(snap))
    _at_snapshot_watch(tier, name, "job-finished")
    _take(tier, name, [f"{vm_instance(name)}:snapshot"])
    output = tier.drive(vm_instance(name))["output"]
    assert output["outcome"] == "snapshotCompleted"
    assert len(tier.timers(vm_instance(name))) == 2  # "finished" once is waited out, twice read
    assert len(tier.script.calls("get_job", "job-finished")) == 1


def test_a_snapshot_never_heard_of_gives_up_after_48_fallback_periods(tier: OrchestratorTier) -> None:
    name = "vm-gaveup"
    _at_snapshot_watch(tier, name, "job-gaveup")
    for _ in range(48):  # the vault's poller stays alive (takes reads) but never tells the backup
        tier.host.advance(600)
        _take(tier, name, [])
        tier.jump()  # to the fallback wake: "watching", so the backup waits another period
        tier.settle()
    output = tier.drive(vm_instance(name))["output"]
    assert output["failedPhase"] == "snapshot" and output["errorCode"] == "JobWatchGaveUp"
    assert tier.script.calls("get_job", "job-gaveup") == []  # never read here while the poller was alive
    assert len(tier.timers(vm_instance(name))) == 48


# --- before and around the backup: stagger, kept events -------------------------------------------
def test_a_staggered_vm_waits_its_delay_before_looking_for_jobs(tier: OrchestratorTier) -> None:
    name = "vm-stagger"
    tier.script.on("find_active_job", name, running(job("job-stagger", start=tier.at(100))))
    healthy(tier, name, "job-stagger")
    assert run_vm(tier, name, delaySeconds=120, monitorTransfer=False)["outcome"] == "snapshotCompleted"
    started = tier.started_at(vm_instance(name))
    assert tier.timers(vm_instance(name))[0] - started == timedelta(seconds=120)


def test_once_an_event_is_kept_in_the_outbox_every_later_one_queues_behind_it(tier: OrchestratorTier) -> None:
    name = "vm-kept"
    kept = ok({"ok": False, "sent": 0, "queued": 1, "reasons": ["topic unreachable"]})
    tier.script.on("publish_events", name, kept, ok({"ok": True, "sent": 1, "queued": 0, "reasons": []}))
    triggers(tier, name, "job-kept", "op-kept")
    healthy(tier, name, "job-kept")
    output = run_vm(tier, name)
    assert output["outcome"] == "completed" and output["eventsKept"] is True
    # BackupTriggered was kept; SnapshotCompleted (published by the watch's sub-orchestration,
    # told through its input) and BackupCompleted queue behind it.
    publishes = [(p["events"][0]["type"], p["queue"]) for p in tier.script.requests("publish_events", name)]
    assert publishes == [
        ("BackupChain.BackupTriggered", False),
        ("BackupChain.SnapshotCompleted", True),
        ("BackupChain.BackupCompleted", True),
    ]


# --- the remaining corners: lookups failing beyond their retries, codes without a name ------------
def test_an_orphan_search_that_fails_or_finds_an_older_job_still_fails_the_trigger(tier: OrchestratorTier) -> None:
    name = "vm-orphansearch"
    older = job("job-orphansearch-old", start=tier.at(-3600))  # started before the upstream signal
    lookups_fail = [fails("CloudInternalError", "list down")] * 8
    tier.script.on("find_active_job", name, no_job(), *lookups_fail, running(older))
    tier.script.on("trigger_backup", name, fails("CloudInternalError", "ARM is down"))
    output = run_vm(tier, name)
    assert output["failedPhase"] == "trigger" and output["errorCode"] == "CloudInternalError"
    assert "ARM is down" in output["message"]  # the trigger's failure, not the lookup's
    assert len(tier.script.calls("find_active_job", name)) == 10


def test_a_recovery_point_lookup_failing_beyond_its_retries_still_completes_the_backup(tier: OrchestratorTier) -> None:
    name = "vm-pointout"
    triggers(tier, name, "job-pointout", "op-pointout")
    start = tier.at(0)
    tier.script.on("get_job", "job-pointout", read(done("job-pointout", start, tier.at(400), tier.at(3000))))
    tier.script.on("latest_recovery_point", name, fails("TooManyRequests", "throttled"))
    assert run_vm(tier, name)["outcome"] == "completed"
    lookup = tier.published(name)[-1]["data"]["recoveryPointLookupError"]
    assert lookup == {"code": "TooManyRequests", "message": "still failing after the retries: throttled"}


def test_a_job_read_here_after_a_silent_poller_that_fails_fails_the_snapshot_phase(tier: OrchestratorTier) -> None:
    name = "vm-sharedread"
    tier.script.on("get_job", "job-sharedread", azure_error(404, "ResourceNotFound", "job gone"))
    _at_snapshot_watch(tier, name, "job-sharedread")
    output = tier.drive(vm_instance(name))["output"]
    assert output["failedPhase"] == "snapshot" and output["errorCode"] == "ResourceNotFound"


def test_a_failed_job_without_a_symbolic_code_reports_azures_number(tier: OrchestratorTier) -> None:
    name = "vm-number"
    triggers(tier, name, "job-number", "op-number")
    failed = job("job-number", status="Failed", start=tier.at(0), snapshot="Failed", error_number=400254)
    tier.script.on("get_job", "job-number", read(failed))
    output = run_vm(tier, name)
    assert output["errorCode"] == "400254" and failed_event(tier, name)["azureErrorCode"] == 400254


def test_backup_triggered_failing_to_publish_beyond_its_retries_fails_the_snapshot_phase(
    tier: OrchestratorTier,
) -> None:
    name = "vm-untold"
    triggers(tier, name, "job-untold", "op-untold")
    triggered_id = event_id("run-vm-untold", vm_id(name), "BackupTriggered", chain=CHAIN)
    tier.script.on("publish_events", triggered_id, fails("ServiceUnavailable", "outbox unreachable"))
    output = run_vm(tier, name)
    # The job runs in Azure, but downstream was never told: a BackupFailed naming the job, not a
    # silent success (vm_backup _answered; the status was "snapshot" when the publish failed).
    assert output["outcome"] == "failed" and output["failedPhase"] == "snapshot"
    assert output["errorCode"] == "ServiceUnavailable" and output["jobId"] == "job-untold"
    assert output["message"] == "still failing after the retries: outbox unreachable"
    assert len(tier.script.calls("publish_events", triggered_id)) == 8
    assert tier.types(name) == ["BackupTriggered"] * 8 + ["BackupFailed"]
    failed = failed_event(tier, name)
    assert failed["phase"] == "snapshot" and failed["message"] == output["message"]
    assert tier.published(name)[-1]["data"]["jobId"] == "job-untold"
    assert tier.script.calls("get_job", "job-untold") == []  # the snapshot was never watched
