"""Events as the orchestrations build them in their less common branches, against their schemas
(docs/events.md, "Contract"): a branch that no local stack happens to run would otherwise break
its strict schema (``additionalProperties: false``) unseen. The orchestration code runs on the
real Durable SDK's orchestration context; the task it yields is read for the events it publishes,
and the test answers in the activity's place."""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import pytest

from backup_chain.chain_control import SKIPPED_REASON, ChainControl, control_apply
from backup_chain.deadlines import not_started
from backup_chain.events import chain_cloud_event, vm_cloud_event
from backup_chain.membership import not_protected_result, resolve_target
from harness.event_contract import violations
from orchestrators.chain_run import _ChainRunState, _finish
from orchestrators.membership import Membership, resolve_membership

AT = "2027-01-04T02:00:00Z"
SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"
VAULT = f"{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/rsv-prod"
APP = f"{SUB}/resourceGroups/rg-app/providers/Microsoft.Web/sites/backup-chain-local"
PREFIX = "BackupChain."


def _vm(name: str) -> str:
    return f"{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/{name}"


def _context() -> df.DurableOrchestrationContext:
    started = {"EventType": 12, "EventId": -1, "IsPlayed": False, "Timestamp": AT}  # OrchestratorStarted
    body = {"history": [started], "instanceId": "rt4", "isReplaying": False, "parentInstanceId": None, "input": None}
    return df.DurableOrchestrationContext.from_json(json.dumps({**body, "upperSchemaVersion": 0}))


def _ran_to_end(gen: Generator[Any, Any, Any], *answers: Any) -> Any:
    """Drive ``gen``, answering each task it yields with the next answer (an exception is raised
    into it); its return value."""
    try:
        next(gen)
        for answer in answers:
            if isinstance(answer, BaseException):
                gen.throw(answer)
            else:
                gen.send(answer)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the orchestration code asked for more than the test answered")


def _chain_event(event_type: str, run_id: str = "w-20270104T020000Z", **data: Any) -> dict[str, Any]:
    return chain_cloud_event(
        prefix=PREFIX, chain="nightly", run_id=run_id, source=APP, event_type=event_type, time=AT, **data
    )


def _chain_started(membership: Membership, **extra: Any) -> dict[str, Any]:
    # as orchestrators/chain_run.py builds it
    return _chain_event(
        "ChainStarted", startedBy="http", vmCount=len(membership.targets), membership=membership.record, **extra
    )


SELECT = {"protectedInVault": True, "policies": ["DailyPolicy"], "resourceGroups": None, "tags": {"env": None}}
SELECTING = {"vaultId": VAULT, "vms": [_vm("pinned01")], "exclude": [_vm("old01")], "select": SELECT}


def test_chain_started_of_a_selecting_target_follows_its_schema() -> None:
    vault_items = {_vm(n).lower(): "DailyPolicy" for n in ("web01", "old01", "pinned01")}
    answer = resolve_target(SELECTING, [_vm("web01"), _vm("old01"), _vm("lost01")], vault_items)
    membership = _ran_to_end(
        resolve_membership(_context(), {"chain": {"targets": [SELECTING]}}), {"ok": True, **answer}
    )
    assert membership.record["targets"][0]["selector"] == {
        "protectedInVault": True,
        **{k: SELECT[k] for k in ("policies", "tags")},
    }
    event = _chain_started(membership)
    assert violations(event) == []


def test_chain_started_of_a_target_whose_members_could_not_be_read_follows_its_schema() -> None:
    spec = {"chain": {"targets": [SELECTING, {"vaultId": VAULT, "vms": [_vm("db01")]}]}}
    membership = _ran_to_end(resolve_membership(_context(), spec), RuntimeError("Resource Graph kept failing"))
    assert membership.failed and membership.record["targets"][0]["error"]["message"]
    assert violations(_chain_started(membership)) == []


def test_chain_started_of_a_retry_follows_its_schema() -> None:
    spec = {"vms": [[VAULT, _vm("web01")]], "retryOf": "w-20270103T020000Z"}
    membership = _ran_to_end(resolve_membership(_context(), spec))
    assert membership.record == {"how": "retry", "retryOf": "w-20270103T020000Z", "members": 1}
    event = _chain_started(membership, retryOf="w-20270103T020000Z")
    assert violations(event) == []


def _chain_completed(outcome: str, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec = {"chain": {"name": "nightly"}, "runId": "w-20270104T020000Z", "prefix": PREFIX, "source": APP}
    run = _ChainRunState(_context(), spec)  # type: ignore[arg-type]
    gen = _finish(run, outcome, results)
    task = next(gen)
    (action,) = task.action_repr
    (event,) = json.loads(action.input_)["events"]
    return dict(event)


@pytest.mark.parametrize("outcome", ["completedWithFailures", "cancelled"])
def test_chain_completed_with_not_started_not_protected_and_late_vms_follows_its_schema(outcome: str) -> None:
    late = {"vmId": _vm("web01"), "outcome": "completed", "jobId": "job-1", "snapshotLate": True}
    results = {
        _vm("web01"): late,
        _vm("web02"): not_started(_vm("web02"), AT),
        _vm("lost01"): not_protected_result(_vm("lost01"), VAULT),
    }
    if outcome == "cancelled":
        results[_vm("web01")] |= {"jobStatus": "InProgress", "jobRunning": True}
    event = _chain_completed(outcome, results)
    assert {v["outcome"] for v in event["data"]["vms"]} == {"completed", "notStarted", "notProtected"}
    assert violations(event) == []


def test_chain_paused_resumed_and_skipped_while_paused_follow_their_schemas() -> None:
    control = ChainControl()
    paused = control_apply(control, "pause", {"at": AT, "reason": None, "by": None})
    skipped_detail = {**(control.pause_view() or {}), "window": AT}  # orchestrators/scheduler.py
    resumed = control_apply(control, "resume", {"at": AT, "reason": None, "by": None})
    assert paused["changed"] and resumed["changed"]
    label = "pause-20270104T020000000000Z"  # triggers/control.py names a change so
    before = resumed["before"]
    events = [
        _chain_event("ChainPaused", label, since=AT, reason=None, by=None),
        _chain_event("ChainResumed", label, pausedSince=before["since"], pauseReason=before["reason"], by=before["by"]),
        _chain_event("ChainSkipped", reason=SKIPPED_REASON, detail=skipped_detail),
    ]
    assert [p for e in events for p in violations(e)] == []


def test_snapshot_late_whose_job_could_not_be_read_follows_its_schema() -> None:
    spec = {"prefix": PREFIX, "chain": "nightly", "runId": "w-20270104T020000Z", "vmId": _vm("web01"), "vaultId": VAULT}
    # as orchestrators/vm_backup.py builds it when the job read failed beyond its retries
    event = vm_cloud_event(
        spec,
        "job-1",
        "SnapshotLate",
        AT,
        triggeredAt=AT,
        deadline=AT,
        jobStatus=None,
        snapshotStatus=None,
        readError={"code": "RetriesExhausted", "message": "kept failing"},
    )
    assert violations(event) == []
