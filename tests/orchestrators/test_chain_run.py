"""``chain_run``: the upstream wait (signal, timeout either way, failed upstream, cancel), the
bounded fan-out over ``vm_backup`` (slots, stagger, batches), cancel while backing up, and the
outcome it reports — the real orchestrators, the VMs' Azure answers scripted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from backup_chain.events import event_id
from backup_chain.ids import vm_batch_instance_id, vm_instance_id
from tests.orchestrators.builders import (
    accepted,
    azure_error,
    in_progress,
    job,
    no_job,
    operation_succeeded,
    read,
)
from tests.support.activity_script import fails, ok
from tests.support.orchestrator_tier import PREFIX, VAULT_ID, OrchestratorTier, custom, moment, vault_id, vm_id


def _chain(name: str, vms: list[str], vault: str = VAULT_ID, **extra: Any) -> dict[str, Any]:
    """A chain's configuration as chain_run receives it (backup_chain.config)."""
    return {
        "name": name,
        "targets": [{"vaultId": vault, "vms": [vm_id(vm) for vm in vms]}],
        "retainDays": 30,
        "monitorTransfer": False,
        "snapshotMinutes": [5, 15],
        "staggerSeconds": 0,
        "maxParallel": 4,
        "upstream": {"timeoutSeconds": 3600, "onTimeout": "end", "onFailure": "skip"},
        **extra,
    }


def _run_input(chain: dict[str, Any], *, wait: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "chain": chain,
        "runId": "r1",
        "prefix": PREFIX,
        "source": "/backup-chain/tests",
        "waitForUpstream": wait,
        "upstream": None,
        "startedBy": "test",
        "gc": None,
        "polling": None,
        **extra,
    }


def _instance(chain: str) -> str:
    return f"chain:{chain}:r1"


def _vm_instance(chain: str, vm: str) -> str:
    return vm_instance_id("r1", chain, vm_id(vm))


def _backs_up(tier: OrchestratorTier, vm: str) -> None:
    """``vm``: nothing running; the POST's operation names a job whose snapshot is done at once."""
    tier.script.on("find_active_job", vm, no_job())
    tier.script.on("trigger_backup", vm, accepted(f"op-{vm}", retry_after=5))
    tier.script.on("backup_operation", f"op-{vm}", operation_succeeded(job(f"job-{vm}", start=tier.at(0))))
    snap = job(f"job-{vm}", start=tier.at(0), snapshot="Completed", snapshot_end=tier.at(300))
    tier.script.on("get_job", f"job-{vm}", read(snap))


def _waiting_for_upstream(tier: OrchestratorTier, chain: dict[str, Any], **extra: Any) -> None:
    tier.begin("chain_run", _instance(chain["name"]), _run_input(chain, **extra))
    tier.drive(_instance(chain["name"]), lambda s: custom(s, "phase") == "waitingForUpstream")


def _finish(tier: OrchestratorTier, chain: str) -> dict[str, Any]:
    status = tier.drive(_instance(chain))
    assert status["runtimeStatus"] == "Completed", status
    assert tier.unscripted(chain) == []
    return dict(status["output"])


def test_a_run_waits_for_its_upstream_signal_then_backs_up_every_vm(tier: OrchestratorTier) -> None:
    chain = _chain("c-signal", ["c-signal-a", "c-signal-b"])
    for vm in ("c-signal-a", "c-signal-b"):
        _backs_up(tier, vm)
    _waiting_for_upstream(tier, chain)
    assert tier.script.calls("find_active_job", "c-signal-a") == []  # nothing before the signal
    tier.raise_event(_instance("c-signal"), "upstream", {"status": "Succeeded", "detail": {"job": 7}})
    output = _finish(tier, "c-signal")
    assert output["outcome"] == "completed" and output["counts"] == {"snapshotCompleted": 2}
    assert output["upstream"]["status"] == "Succeeded" and output["upstream"]["detail"] == {"job": 7}
    types = tier.types("c-signal")
    assert types[:2] == ["ChainStarted", "UpstreamReceived"] and types[-1] == "ChainCompleted"
    assert types.count("BackupTriggered") == 2 and types.count("SnapshotCompleted") == 2
    received = tier.published("c-signal")[1]["data"]["receivedAt"]
    assert tier.input_of(_vm_instance("c-signal", "c-signal-a"))["upstreamAt"] == received


def test_an_upstream_that_never_signals_ends_the_run_at_its_deadline(tier: OrchestratorTier) -> None:
    chain = _chain("c-timeout", ["c-timeout-a"])
    output = tier.run("chain_run", _instance("c-timeout"), _run_input(chain))["output"]
    assert output["outcome"] == "upstreamTimedOut" and output["counts"] == {}
    assert tier.types("c-timeout") == ["ChainStarted", "UpstreamTimedOut", "ChainCompleted"]
    deadline = tier.published("c-timeout")[1]["data"]["deadline"]
    assert tier.timers(_instance("c-timeout")) == [tier.started_at(_instance("c-timeout")) + timedelta(hours=1)]
    assert moment(deadline) == tier.timers(_instance("c-timeout"))[0]
    assert tier.script.calls(when="c-timeout-a") == []


def test_with_on_timeout_backup_the_run_backs_up_after_the_deadline(tier: OrchestratorTier) -> None:
    chain = _chain("c-tbackup", ["c-tbackup-a"], upstream={"timeoutSeconds": 600, "onTimeout": "backup"})
    _backs_up(tier, "c-tbackup-a")
    output = tier.run("chain_run", _instance("c-tbackup"), _run_input(chain))["output"]
    assert output["outcome"] == "completed" and output["upstream"]["status"] == "TimedOut"
    types = tier.types("c-tbackup")
    assert types[:2] == ["ChainStarted", "UpstreamTimedOut"] and "UpstreamReceived" not in types


def test_a_failed_upstream_skips_the_run(tier: OrchestratorTier) -> None:
    chain = _chain("c-skip", ["c-skip-a"])
    _waiting_for_upstream(tier, chain)
    tier.raise_event(_instance("c-skip"), "upstream", {"status": "Failed", "detail": "etl exit 3"})
    output = _finish(tier, "c-skip")
    assert output["outcome"] == "skipped"
    assert tier.types("c-skip") == ["ChainStarted", "UpstreamReceived", "ChainSkipped", "ChainCompleted"]
    assert tier.script.calls(when="c-skip-a") == []


def test_a_failed_upstream_with_on_failure_backup_still_backs_up(tier: OrchestratorTier) -> None:
    chain = _chain("c-failgo", ["c-failgo-a"], upstream={"timeoutSeconds": 600, "onFailure": "backup"})
    _backs_up(tier, "c-failgo-a")
    upstream = {"status": "Failed", "detail": None, "receivedAt": tier.at(0)}
    output = tier.run("chain_run", _instance("c-failgo"), _run_input(chain, wait=False, upstream=upstream))["output"]
    assert output["outcome"] == "completed" and "ChainSkipped" not in tier.types("c-failgo")
    assert tier.timers(_instance("c-failgo")) == []  # the signal came with the request: no wait


def test_a_cancel_while_waiting_for_upstream_ends_the_run_cancelled(tier: OrchestratorTier) -> None:
    chain = _chain("c-cancelwait", ["c-cancelwait-a"])
    _waiting_for_upstream(tier, chain)
    tier.raise_event(_instance("c-cancelwait"), "cancel", {"by": "operator"})
    output = _finish(tier, "c-cancelwait")
    assert output["outcome"] == "cancelled" and output["jobsStillRunning"] == []
    assert tier.types("c-cancelwait") == ["ChainStarted", "ChainCompleted"]


def test_a_vm_that_fails_makes_the_run_complete_with_failures(tier: OrchestratorTier) -> None:
    chain = _chain("c-mixed", ["c-mixed-ok", "c-mixed-bad"])
    _backs_up(tier, "c-mixed-ok")
    tier.script.on("find_active_job", "c-mixed-bad", azure_error(403, "AuthorizationFailed"))
    output = tier.run("chain_run", _instance("c-mixed"), _run_input(chain, wait=False))["output"]
    assert output["outcome"] == "completedWithFailures"
    assert output["counts"] == {"snapshotCompleted": 1, "failed": 1}
    bad = next(v for v in output["vms"] if v["vmId"] == vm_id("c-mixed-bad"))
    assert bad["errorCode"] == "AuthorizationFailed" and bad["failedPhase"] == "trigger"
    completed = tier.published("c-mixed")[-1]
    assert completed["type"] == "BackupChain.ChainCompleted" and completed["data"]["vmsListed"] == "all"


def test_one_slot_backs_up_the_next_vm_only_after_the_previous_snapshot(tier: OrchestratorTier) -> None:
    vms = ["c-slot-a", "c-slot-b", "c-slot-c"]
    chain = _chain("c-slot", vms, maxParallel=1)
    for vm in vms:
        _backs_up(tier, vm)
    output = tier.run("chain_run", _instance("c-slot"), _run_input(chain, wait=False))["output"]
    assert output["counts"] == {"snapshotCompleted": 3}
    order = [(c["activity"], str(c["request"].get("vmId") or c["request"].get("jobId"))) for c in tier.script.calls()]
    firsts = [order.index(("find_active_job", vm_id(vm))) for vm in vms]
    snapshots = [order.index(("get_job", f"job-{vm}")) for vm in vms]
    assert firsts[0] < snapshots[0] < firsts[1] < snapshots[1] < firsts[2] < snapshots[2]


def test_only_the_first_wave_is_staggered(tier: OrchestratorTier) -> None:
    vms = ["c-stagger-a", "c-stagger-b", "c-stagger-c"]
    chain = _chain("c-stagger", vms, maxParallel=2, staggerSeconds=60)
    for vm in vms:
        _backs_up(tier, vm)
    tier.run("chain_run", _instance("c-stagger"), _run_input(chain, wait=False))
    # The third VM starts when a slot frees, after the first wave: it is not delayed again.
    assert [tier.input_of(_vm_instance("c-stagger", vm))["delaySeconds"] for vm in vms] == [0, 60, 0]
    b = _vm_instance("c-stagger", "c-stagger-b")
    assert tier.timers(b)[0] - tier.started_at(b) == timedelta(seconds=60)


def test_a_cancel_while_backing_up_reports_the_azure_jobs_left_running(tier: OrchestratorTier) -> None:
    vm = "c-cancel-a"
    tier.script.on("find_active_job", vm, no_job())
    tier.script.on("trigger_backup", vm, accepted("op-c-cancel-a", retry_after=5))
    tier.script.on("backup_operation", "op-c-cancel-a", operation_succeeded(job("job-c-cancel-a", start=tier.at(0))))
    tier.script.on("get_job", "job-c-cancel-a", read(job("job-c-cancel-a", start=tier.at(0))))
    left = {"vmId": vm_id(vm), "jobId": "job-c-cancel-a", "jobStatus": "InProgress", "jobRunning": True}
    tier.script.on("run_jobs", vm, ok([left]))
    chain = _chain("c-cancel", [vm])
    tier.begin("chain_run", _instance("c-cancel"), _run_input(chain, wait=False))
    tier.drive(_vm_instance("c-cancel", vm), lambda s: custom(s, "phase") == "snapshot")
    tier.raise_event(_instance("c-cancel"), "cancel", {"by": "operator"})
    output = _finish(tier, "c-cancel")
    assert output["outcome"] == "cancelled"
    assert output["jobsStillRunning"] == [{"vmId": vm_id(vm), "jobId": "job-c-cancel-a", "jobStatus": "InProgress"}]
    (asked,) = tier.script.requests("run_jobs", vm)
    assert asked["vms"] == [[vm_id(vm), VAULT_ID, _vm_instance("c-cancel", vm), None]]  # its id is in its status
    completed = tier.published("c-cancel")[-1]["data"]
    assert completed["outcome"] == "cancelled" and completed["jobsStillRunning"] == output["jobsStillRunning"]
    for instance in (_vm_instance("c-cancel", vm), f"{_vm_instance('c-cancel', vm)}:snapshot"):
        tier.terminate(instance)


def test_a_cancel_whose_job_lookup_keeps_failing_still_ends_saying_so(tier: OrchestratorTier) -> None:
    vm = "c-cancelfail-a"
    tier.script.on("find_active_job", vm, no_job())
    tier.script.on("trigger_backup", vm, accepted("op-c-cancelfail-a", retry_after=600))
    tier.script.on("backup_operation", "op-c-cancelfail-a", ok({"ok": True, "status": "InProgress"}))
    tier.script.on("run_jobs", vm, fails("ServiceUnavailable", "down"), fails("ServiceUnavailable", "down"))
    chain = _chain("c-cancelfail", [vm])
    tier.begin("chain_run", _instance("c-cancelfail"), _run_input(chain, wait=False))
    tier.drive(_vm_instance("c-cancelfail", vm), lambda s: custom(s, "phase") == "waitingForBackupOperation")
    tier.raise_event(_instance("c-cancelfail"), "cancel", {"by": "operator"})
    output = _finish(tier, "c-cancelfail")
    assert output["outcome"] == "cancelled" and output["jobsStillRunning"] == []
    (vm_result,) = output["vms"]
    assert vm_result["readError"].startswith("job lookup failed beyond its retries")
    assert vm_result["jobId"] is None and vm_result["jobRunning"] is None  # unknown, not "not running"
    asked = tier.script.requests("run_jobs", vm)
    assert len(asked) == 16 and asked[-1]["readJobs"] is False  # 8 reads, then 8 asks for the ids only
    tier.terminate(_vm_instance("c-cancelfail", vm))


def test_a_run_of_more_than_fifty_vms_goes_through_batches(tier: OrchestratorTier) -> None:
    vms = [f"c-batch-{n:02d}" for n in range(51)]
    vault = vault_id("vault-batch")
    tier.script.on("find_active_job", "vault-batch", azure_error(403, "AuthorizationFailed"))  # every VM, at once
    chain = _chain("c-batch", vms, vault=vault)
    output = tier.run("chain_run", _instance("c-batch"), _run_input(chain, wait=False))["output"]
    assert output["outcome"] == "completedWithFailures" and output["counts"] == {"failed": 51}
    assert sorted(v["vmId"] for v in output["vms"]) == sorted(vm_id(vm) for vm in vms)
    batches = [tier.input_of(f"vm:c-batch:r1:batch{n:03d}") for n in range(2)]
    assert [len(b["items"]) for b in batches] == [50, 1] and batches[0]["parallel"] == 4
    assert len(tier.script.calls("find_active_job", "vault-batch")) == 51
    completed = tier.published("c-batch")[-1]["data"]
    assert completed["counts"] == {"failed": 51} and len(completed["vms"]) == 51


def test_a_vm_orchestration_that_fails_after_its_outcome_counts_as_failed_with_its_error(
    tier: OrchestratorTier,
) -> None:
    vm = "c-crash-a"
    tier.script.on("find_active_job", vm, no_job())
    tier.script.on("trigger_backup", vm, accepted(f"op-{vm}", retry_after=5))
    tier.script.on("backup_operation", f"op-{vm}", operation_succeeded(job(f"job-{vm}", start=tier.at(0))))
    snapshot = {"snapshot": "Completed", "snapshot_end": tier.at(300), "end_time": tier.at(900)}
    tier.script.on("get_job", f"job-{vm}", read(job(f"job-{vm}", status="Completed", start=tier.at(0), **snapshot)))
    tier.script.on("latest_recovery_point", vm, ok({"ok": True, "recoveryPoint": None}))
    # BackupTriggered and SnapshotCompleted go out; BackupCompleted keeps failing beyond its retries.
    completed_id = event_id("r1", vm_id(vm), "BackupCompleted", chain="c-crash")
    tier.script.on("publish_events", completed_id, fails("ServiceUnavailable", "topic down"))
    chain = _chain("c-crash", [vm], monitorTransfer=True)
    output = tier.run("chain_run", _instance("c-crash"), _run_input(chain, wait=False))["output"]
    failed = tier.host.status(_vm_instance("c-crash", vm))
    assert failed["runtimeStatus"] == "Failed" and "topic down" in str(failed["output"])
    (result,) = output["vms"]
    assert output["outcome"] == "completedWithFailures" and result["outcome"] == "failed"
    assert output["counts"] == {"failed": 1}
    # The run's summary and ChainCompleted say why: the VM's orchestration failed, and its error.
    assert result["errorCode"] == "OrchestrationFailed" and "topic down" in result["message"]
    assert result["jobId"] is None
    (chain_completed,) = [e for e in tier.published("c-crash") if e["type"].endswith(".ChainCompleted")]
    assert chain_completed["data"]["vms"] == [result]
    assert len(tier.script.calls("publish_events", completed_id)) == 8
    assert "BackupFailed" not in tier.types(vm)  # the backup completed: only its report failed


def test_chain_completed_queues_behind_a_vms_kept_events(tier: OrchestratorTier) -> None:
    vm = "c-keptvm-a"
    _backs_up(tier, vm)
    kept = ok({"ok": False, "sent": 0, "queued": 1, "reasons": ["topic unreachable"]})
    tier.script.on("publish_events", vm, kept)
    chain = _chain("c-keptvm", [vm])
    output = tier.run("chain_run", _instance("c-keptvm"), _run_input(chain, wait=False))["output"]
    assert output["outcome"] == "completed"
    last = tier.script.requests("publish_events", "c-keptvm")[-1]
    assert last["events"][0]["type"] == f"{PREFIX}ChainCompleted" and last["queue"] is True
    assert tier.script.requests("publish_events", "c-keptvm")[0]["queue"] is False  # ChainStarted went out


def test_the_chain_scheduler_opens_each_window_with_a_run_that_waits_for_its_upstream(tier: OrchestratorTier) -> None:
    chain = _chain("c-window", ["c-window-a"], window="0 30 * * * *", upstream={"timeoutSeconds": 300})
    tier.begin("chain_scheduler", "sched:c-window", {"run": _run_input(chain), "fingerprint": "fp-window"})
    first = tier.drive("sched:c-window", lambda s: custom(s, "phase") == "sleeping")
    opens = moment(first["customStatus"]["nextWindow"])
    assert opens.minute == 30 and opens.second == 0 and opens > tier.now()
    seen = (None, first["customStatus"]["nextWindow"])
    again = tier.drive("sched:c-window", lambda s: custom(s, "nextWindow") not in seen)
    assert moment(again["customStatus"]["nextWindow"]) - opens == timedelta(hours=1)
    run_id = "w-" + opens.strftime("%Y%m%dT%H%M%SZ")
    run = tier.host.status(f"chain:c-window:{run_id}")
    # Nobody signalled the upstream: the window's run ended at its deadline, and the next window came.
    assert run["runtimeStatus"] == "Completed" and run["output"]["outcome"] == "upstreamTimedOut"
    assert tier.started_at(f"chain:c-window:{run_id}") == opens
    tier.terminate("sched:c-window")


def test_a_slot_notice_that_cannot_be_sent_frees_the_slot_when_the_vm_ends(tier: OrchestratorTier) -> None:
    vms = ["c-notell-a", "c-notell-b"]
    chain = _chain("c-notell", vms, maxParallel=1, monitorTransfer=True)
    for vm in vms:
        tier.script.on("find_active_job", vm, no_job())
        tier.script.on("trigger_backup", vm, accepted(f"op-{vm}", retry_after=5))
        tier.script.on("backup_operation", f"op-{vm}", operation_succeeded(job(f"job-{vm}", start=tier.at(0))))
        snapshot = {"snapshot": "Completed", "snapshot_end": tier.at(300)}
        done = job(f"job-{vm}", status="Completed", start=tier.at(0), end=tier.at(900), **snapshot)
        tier.script.on("get_job", f"job-{vm}", read(job(f"job-{vm}", start=tier.at(0), **snapshot)), read(done))
        tier.script.on("latest_recovery_point", vm, ok({"ok": True, "recoveryPoint": None}))
    tier.script.on("tell_parent", _instance("c-notell"), fails("NetworkError", "devhost unreachable"))
    output = tier.run("chain_run", _instance("c-notell"), _run_input(chain, wait=False))["output"]
    assert output["counts"] == {"completed": 2}
    order = [(c["activity"], str(c["request"].get("vmId"))) for c in tier.script.calls()]
    first_ended = order.index(("latest_recovery_point", vm_id("c-notell-a")))
    assert order.index(("find_active_job", vm_id("c-notell-b"))) > first_ended  # not at a's snapshot
    assert len(tier.script.calls("tell_parent", _instance("c-notell"))) == 16  # each VM's notice, 8 tries


def test_a_cancel_whose_job_reads_keep_failing_still_names_each_vms_job(tier: OrchestratorTier) -> None:
    vm = "c-idsonly-a"
    tier.script.on("find_active_job", vm, no_job())
    tier.script.on("trigger_backup", vm, accepted(f"op-{vm}", retry_after=600))
    tier.script.on("backup_operation", f"op-{vm}", ok({"ok": True, "status": "InProgress"}))
    ids_only = ok([{"vmId": vm_id(vm), "jobId": f"job-{vm}", "jobStatus": None, "jobRunning": None}])
    tier.script.on("run_jobs", vm, *[fails("ServiceUnavailable", "down")] * 8, ids_only)
    chain = _chain("c-idsonly", [vm])
    tier.begin("chain_run", _instance("c-idsonly"), _run_input(chain, wait=False))
    tier.drive(_vm_instance("c-idsonly", vm), lambda s: custom(s, "phase") == "waitingForBackupOperation")
    tier.raise_event(_instance("c-idsonly"), "cancel", {"by": "operator"})
    output = _finish(tier, "c-idsonly")
    (vm_result,) = output["vms"]
    assert vm_result["jobId"] == f"job-{vm}" and vm_result["jobRunning"] is None
    assert vm_result["readError"].startswith("job lookup failed beyond its retries")
    asked = tier.script.requests("run_jobs", vm)
    assert len(asked) == 9 and asked[-1]["readJobs"] is False
    tier.terminate(_vm_instance("c-idsonly", vm))


def _completes(tier: OrchestratorTier, vm: str) -> None:
    """``vm``: triggered, and its job already done (snapshot and transfer) when first read."""
    tier.script.on("find_active_job", vm, no_job())
    tier.script.on("trigger_backup", vm, accepted(f"op-{vm}", retry_after=5))
    tier.script.on("backup_operation", f"op-{vm}", operation_succeeded(job(f"job-{vm}", start=tier.at(0))))
    snapshot = {"snapshot": "Completed", "snapshot_end": tier.at(300), "end_time": tier.at(900)}
    tier.script.on("get_job", f"job-{vm}", read(job(f"job-{vm}", status="Completed", start=tier.at(0), **snapshot)))
    tier.script.on("latest_recovery_point", vm, ok({"ok": True, "recoveryPoint": None}))


def test_a_run_of_more_than_200_vms_lists_only_those_not_completed_and_those_a_failed_batch_lost(
    tier: OrchestratorTier,
) -> None:
    # 201 VMs in 5 batches at once: the first completes, 199 fail at their first call, and the last
    # one's batch is terminated while it waits on its trigger, so no batch reports it.
    chain_name, done_vm, lost_vm = "c-many", "c-many-done", "c-many-lost"
    failing = [f"c-many-{n:03d}" for n in range(199)]
    _completes(tier, done_vm)
    tier.script.on("find_active_job", "vault-many", azure_error(403, "AuthorizationFailed"))
    tier.script.on("find_active_job", lost_vm, no_job())
    tier.script.on("trigger_backup", lost_vm, accepted(f"op-{lost_vm}", retry_after=3600))
    tier.script.on("backup_operation", f"op-{lost_vm}", in_progress())
    targets = [
        {"vaultId": vault_id("vault-many-done"), "vms": [vm_id(done_vm)]},
        {"vaultId": vault_id("vault-many"), "vms": [vm_id(vm) for vm in failing]},
        {"vaultId": vault_id("vault-many-lost"), "vms": [vm_id(lost_vm)]},
    ]
    # monitorTransfer off: the VM that backs up ends snapshotCompleted, which is not listed either.
    chain = {**_chain(chain_name, [], maxParallel=250, monitorTransfer=False), "targets": targets}
    tier.begin("chain_run", _instance(chain_name), _run_input(chain, wait=False))
    tier.drive(_vm_instance(chain_name, lost_vm), lambda s: custom(s, "phase") == "waitingForBackupOperation")
    lost_batch = vm_batch_instance_id(chain_name, "r1", 4)
    assert tier.input_of(lost_batch)["items"][0][0] == vm_id(lost_vm)
    tier.terminate(lost_batch)
    output = _finish(tier, chain_name)
    assert output["outcome"] == "completedWithFailures" and output["counts"] == {"snapshotCompleted": 1, "failed": 200}
    assert len(output["vms"]) == 201  # the run's output keeps every VM
    lost = next(v for v in output["vms"] if v["vmId"] == vm_id(lost_vm))
    assert lost["outcome"] == "failed" and lost["errorCode"] == "NotReportedByBatch"
    assert lost["message"] == "batch004 did not report this VM"
    (completed,) = [e["data"] for e in tier.published(chain_name) if e["type"].endswith(".ChainCompleted")]
    assert completed["vmsListed"] == "notCompleted" and completed["counts"] == output["counts"]
    listed = {v["vmId"]: v for v in completed["vms"]}
    assert len(completed["vms"]) == 200 and vm_id(done_vm) not in listed
    assert listed[vm_id(lost_vm)] == lost and listed[vm_id(failing[0])]["errorCode"] == "AuthorizationFailed"
    tier.terminate(_vm_instance(chain_name, lost_vm))


def test_a_cancel_once_every_vm_completed_changes_nothing(tier: OrchestratorTier) -> None:
    # The fan-out stops listening for a cancel once its last VM ended; one that comes while
    # ChainCompleted is still being published (a retry) is left unread.
    vm = "c-latecancel-a"
    _completes(tier, vm)
    completed_id = event_id("r1", "chain", "ChainCompleted", chain="c-latecancel")
    tier.script.on("publish_events", completed_id, fails("ServiceUnavailable", "outbox busy"), ok({"ok": True}))
    chain = _chain("c-latecancel", [vm], monitorTransfer=True)
    tier.begin("chain_run", _instance("c-latecancel"), _run_input(chain, wait=False))
    tier.drive(_instance("c-latecancel"), lambda s: custom(s, "phase") == "completed")
    assert len(tier.script.calls("publish_events", completed_id)) == 1  # waiting out its retry
    tier.raise_event(_instance("c-latecancel"), "cancel", {"by": "operator"})
    output = _finish(tier, "c-latecancel")
    assert output["outcome"] == "completed" and output["counts"] == {"completed": 1}
    assert "jobsStillRunning" not in output and tier.script.calls("run_jobs", vm) == []
    published = [e["data"]["outcome"] for e in tier.published("c-latecancel") if e["id"] == completed_id]
    assert published == ["completed", "completed"]  # the one ChainCompleted, retried once
