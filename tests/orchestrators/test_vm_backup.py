"""``vm_backup`` branch by branch: the real orchestrator on devhost, Azure's answers scripted."""

from __future__ import annotations

from typing import Any

from tests.orchestrators.builders import (
    accepted,
    azure_error,
    in_progress,
    job,
    no_job,
    operation_succeeded,
    read,
    running,
    vm_input,
    vm_instance,
)
from tests.support.activity_script import fails, ok
from tests.support.orchestrator_tier import OrchestratorTier


def _run(tier: OrchestratorTier, name: str, **extra: Any) -> dict[str, Any]:
    status = tier.run("vm_backup", vm_instance(name), vm_input(name, tier.at(-600), **extra))
    assert status["runtimeStatus"] == "Completed", status
    assert tier.unscripted(name) == []
    return status


def _happy_job(tier: OrchestratorTier, name: str, job_id: str) -> None:
    """get_job for ``job_id``: snapshot running, snapshot done, then the job completed."""
    start = tier.at(0)
    tier.script.on(
        "get_job",
        job_id,
        read(job(job_id, start=start)),
        read(job(job_id, start=start, snapshot="Completed", snapshot_end=tier.at(400))),
        read(job(job_id, status="Completed", start=start, snapshot="Completed", snapshot_end=tier.at(400), end=tier.at(3000))),
    )
    tier.script.on(
        "latest_recovery_point", name, ok({"ok": True, "recoveryPoint": {"name": "rp1", "time": start, "consistency": "AppConsistent"}})
    )


def test_trigger_follows_the_operation_then_reports_snapshot_and_completion(tier: OrchestratorTier) -> None:
    name, job_id = "vm-trigger", "job-trigger"
    tier.script.on("find_active_job", name, no_job())
    tier.script.on("trigger_backup", name, accepted("op-trigger"))
    tier.script.on("backup_operation", name, in_progress(), operation_succeeded(job(job_id, start=tier.at(0))))
    _happy_job(tier, name, job_id)
    status = _run(tier, name)
    output = status["output"]
    assert output["outcome"] == "completed" and output["jobId"] == job_id and output["adopted"] is False
    assert tier.types(name) == ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
    completed = tier.published(name)[-1]["data"]
    assert completed["recoveryPoint"] == "rp1" and completed["consistency"] == "AppConsistent"
    assert len(tier.script.calls("trigger_backup", name)) == 1
    assert len(tier.script.calls("backup_operation", name)) == 2
