"""Inputs and scripted Azure answers for the fast tier, in the JSON shapes the app's activities
take and return (activities/backup.py, protection.py; jobs as backup_chain.jobs.JobView dicts)."""

from __future__ import annotations

from typing import Any

from backup_chain.errors import failure
from backup_chain.ids import vm_instance_id
from tests.support.activity_script import ok
from tests.support.orchestrator_tier import PLAN, PREFIX, VAULT_ID, OrchestratorTier, vm_id

CHAIN = "fast"
# A stop refused by the vault's Resource Guard: Microsoft's sources give no code or status, so
# this is the Recovery Services emulator's stand-in (emulators/recoveryservices/errors.py).
GUARD_CODE = "UserErrorResourceGuardOperationNotAuthorized"
GUARD_MESSAGE = "The operation 'Modify protection' is a critical operation protected by Resource Guard 'rg1'"


def vm_input(name: str, upstream_at: str | None, **extra: Any) -> dict[str, Any]:
    """A vm_backup input as chain_run builds it (orchestrators/chain_run.py ``vm_input``)."""
    return {
        "chain": CHAIN,
        "runId": f"run-{name}",
        "vmId": vm_id(name),
        "vaultId": VAULT_ID,
        "retainDays": 30,
        "monitorTransfer": True,
        "upstreamAt": upstream_at,
        "prefix": PREFIX,
        "plan": PLAN,
        "gc": None,
        "polling": None,
        "delaySeconds": 0,
        "behindKept": False,
        **extra,
    }


def vm_instance(name: str) -> str:
    return vm_instance_id(f"run-{name}", CHAIN, vm_id(name))


def job(
    job_id: str,
    *,
    status: str = "InProgress",
    start: str | None = None,
    snapshot: str = "InProgress",
    snapshot_end: str | None = None,
    end: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "status": status,
        "start_time": start,
        "end_time": end,
        "user_triggered": True,
        "entity_friendly_name": None,
        "container_name": None,
        "snapshot_status": snapshot,
        "snapshot_start": start,
        "snapshot_end": snapshot_end,
        "snapshot_duration": None,
        "transfer_status": None,
        "error_code": None,
        "error_number": None,
        "error_title": None,
        "error_message": None,
        "recommendations": [],
        "backup_size": None,
        **extra,
    }


def read(job_view: dict[str, Any]) -> dict[str, Any]:
    """A get_job answer."""
    return ok({"ok": True, "job": job_view})


def no_job() -> dict[str, Any]:
    """A find_active_job answer: nothing runs for the VM."""
    return ok({"ok": True, "job": None})


def running(job_view: dict[str, Any]) -> dict[str, Any]:
    """A find_active_job answer: this job runs for the VM."""
    return ok({"ok": True, "job": job_view})


def accepted(operation_id: str, retry_after: int = 60) -> dict[str, Any]:
    """A trigger_backup answer: 202 with the operation to follow."""
    return ok({"ok": True, "operationId": operation_id, "retryAfterSeconds": retry_after})


def in_progress() -> dict[str, Any]:
    return ok({"ok": True, "status": "InProgress"})


def operation_succeeded(job_view: dict[str, Any]) -> dict[str, Any]:
    return ok({"ok": True, "status": "Succeeded", "jobId": job_view["job_id"], "job": job_view})


def guard_refusal() -> dict[str, Any]:
    return azure_error(403, GUARD_CODE, GUARD_MESSAGE)


def azure_error(
    status: int | None, code: str, message: str = "scripted", *, kind: str | None = None, **extra: Any
) -> dict[str, Any]:
    """An answer ``{"ok": False, "error": ...}`` classified as the activities classify Azure's
    answers (``kind``: the activity's own verdict, e.g. a final UnknownPolicyTimeZone)."""
    error = failure(status, code, message).to_dict()
    return ok({"ok": False, "error": {**error, **({"kind": kind} if kind else {})}, **extra})


# --- scripting one VM's backup on the tier -------------------------------------------------------
def run_vm(tier: OrchestratorTier, name: str, **extra: Any) -> dict[str, Any]:
    """Run ``name``'s vm_backup (upstream signal 10 min ago) to its end; returns its output."""
    status = tier.run("vm_backup", vm_instance(name), vm_input(name, tier.at(-600), **extra))
    assert status["runtimeStatus"] == "Completed", status
    assert tier.unscripted(name) == []
    return dict(status["output"])


def done(job_id: str, start: str, snapshot_end: str, end: str, **extra: Any) -> dict[str, Any]:
    return job(
        job_id, status="Completed", start=start, snapshot="Completed", snapshot_end=snapshot_end, end=end, **extra
    )


def healthy(tier: OrchestratorTier, name: str, job_id: str) -> None:
    """get_job for ``job_id``: snapshot running, snapshot done, then the whole job done."""
    start = tier.at(0)
    tier.script.on(
        "get_job",
        job_id,
        read(job(job_id, start=start)),
        read(job(job_id, start=start, snapshot="Completed", snapshot_end=tier.at(400))),
        read(done(job_id, start, tier.at(400), tier.at(3000))),
    )
    point = {"name": "rp1", "time": start, "consistency": "AppConsistent"}
    tier.script.on("latest_recovery_point", name, ok({"ok": True, "recoveryPoint": point}))


def triggers(tier: OrchestratorTier, name: str, job_id: str, operation: str) -> None:
    """Nothing runs; the POST is accepted and its operation names ``job_id`` on the second read."""
    tier.script.on("find_active_job", name, no_job())
    tier.script.on("trigger_backup", name, accepted(operation))
    tier.script.on("backup_operation", operation, in_progress(), operation_succeeded(job(job_id, start=tier.at(0))))


def failed_event(tier: OrchestratorTier, name: str) -> dict[str, Any]:
    events = [e for e in tier.published(name) if e["type"].endswith("BackupFailed")]
    assert len(events) == 1, tier.types(name)
    return dict(events[0]["data"])
