"""Exception paths of the chain's orchestrators end in an answer, never a silently failed
orchestration: every step of ``vm_backup`` before the backup itself (the schedule check, the
BackupDelayed publish of ``gc.overlap: delay``, resuming protection) ends in a BackupFailed
(``_answered``); a cancelled run whose job lookup keeps failing still ends with ChainCompleted;
ChainCompleted queues behind a VM's kept events. Driven by hand
(tests/support/orchestration_driver.py): the real stack cannot make an activity fail beyond its
retries at exactly that step."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrators.vm_backup import vm_backup
from tests.support.orchestration_driver import Context, Task, drive, user_function

VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/app01"
VAULT = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v1"
# Daily at 04:00 UTC: an ad hoc backup at 03:00 (the driver's clock) would overlap it.
COLLIDING = {"frequency": "Daily", "days": [], "times": ["04:00"], "time_zone": "UTC"}


def spec(mode: str) -> dict[str, Any]:
    return {
        "chain": "nightly",
        "runId": "r1",
        "vmId": VM,
        "vaultId": VAULT,
        "prefix": "BackupChain.",
        "retainDays": 30,
        "monitorTransfer": False,
        "upstreamAt": "2027-01-04T03:00:00Z",
        "plan": {},
        "gc": {"mode": mode, "policy": "weekly", "overlap": "delay"},
    }


@pytest.mark.parametrize(
    ("mode", "failing"),
    [
        ("weekly-policy", "BackupDelayed"),  # the publish of BackupDelayed failed beyond its retries
        ("weekend-window", "BackupDelayed"),
    ],
)
def test_a_failure_before_the_backup_is_a_backup_failed_not_a_silent_failed_orchestration(
    mode: str, failing: str
) -> None:
    published: list[str] = []

    def answer(task: Task) -> Any:
        if task.kind == "activity" and task.name == "get_policy_schedule":
            return {"ok": True, "schedule": COLLIDING, "policy": "weekly"}
        if task.kind == "activity" and task.name == "publish_events":
            kinds = [e["type"].rsplit(".", 1)[-1] for e in task.input["events"]]
            if kinds == [failing]:
                return RuntimeError("Activity function 'publish_events' failed: retries exhausted")
            published.extend(kinds)
            return {"ok": True, "sent": len(kinds), "queued": 0, "reasons": []}
        if task.kind == "timer":
            return None
        raise AssertionError(f"unexpected task {task}")

    result = drive(user_function(vm_backup), Context(spec(mode)), answer)
    assert result["outcome"] == "failed" and result["failedPhase"] == "trigger", result
    assert published[-1] == "BackupFailed", published


def test_chain_completed_queues_behind_a_vms_kept_events() -> None:
    """A VM whose events were kept says so (``eventsKept``), and its run's ChainCompleted then
    queues behind them: the publish must not look at the outbox entity, which may not have taken
    the VM's events in yet, and send ChainCompleted ahead of them (README: ChainCompleted last)."""
    from orchestrators.chain_run import _Chain, _finish

    refused = {**spec("weekly-policy"), "gc": {"mode": "weekly-policy", "policy": "weekly", "overlap": "refuse"}}

    def kept(task: Task) -> Any:
        if task.name == "get_policy_schedule":
            return {"ok": True, "schedule": COLLIDING, "policy": "weekly"}
        assert task.name == "publish_events", task
        return {"ok": False, "sent": 0, "queued": len(task.input["events"]), "reasons": ["HTTP 503"]}

    vm_result = drive(user_function(vm_backup), Context(refused), kept)
    assert vm_result["outcome"] == "failed" and vm_result["eventsKept"] is True, vm_result

    publishes: list[dict[str, Any]] = []

    def sent(task: Task) -> Any:
        publishes.append(task.input)
        return {"ok": True, "sent": 1, "queued": 0, "reasons": []}

    chain_spec = {"chain": {"name": "nightly"}, "runId": "r1", "prefix": "BackupChain.", "source": "/src"}
    context = Context(chain_spec)
    drive(lambda c: _finish(_Chain(c, chain_spec), "completedWithFailures", {VM: vm_result}), context, sent)
    assert [p["events"][0]["type"] for p in publishes] == ["BackupChain.ChainCompleted"]
    assert publishes[0]["queue"] is True, publishes[0]


def test_a_cancelled_run_whose_job_lookup_keeps_failing_still_ends_saying_so() -> None:
    """``run_jobs`` failing beyond its retries after a cancel: the run still publishes
    ChainCompleted (its VMs keep their job ids, each with the read error), it does not fail."""
    from orchestrators.chain_run import _Chain, _finish, _jobs_left

    items = [(VM, {"vaultId": VAULT}, "vm:nightly:r1:app01")]
    results = {VM: {"vmId": VM, "outcome": "cancelled", "jobId": "job-1"}}
    publishes: list[dict[str, Any]] = []

    def answer(task: Task) -> Any:
        if task.name == "run_jobs":
            return RuntimeError("Activity function 'run_jobs' failed: 503 ServiceUnavailable")
        publishes.append(task.input)
        return {"ok": True, "sent": 1, "queued": 0, "reasons": []}

    chain_spec = {"chain": {"name": "nightly"}, "runId": "r1", "prefix": "BackupChain.", "source": "/src"}

    def cancelled(context: Any) -> Any:
        left = yield from _jobs_left(context, items, results)
        return (yield from _finish(_Chain(context, chain_spec), "cancelled", left))

    output = drive(cancelled, Context(chain_spec), answer)
    assert [p["events"][0]["type"] for p in publishes] == ["BackupChain.ChainCompleted"]
    (vm,) = output["vms"]
    assert vm["jobId"] == "job-1" and vm["jobRunning"] is None and "beyond its retries" in vm["readError"], vm


def test_a_vms_events_queue_behind_its_runs_kept_chain_events() -> None:
    """ChainStarted (or UpstreamReceived) kept: the VM inputs built after it say so
    (``behindKept``), and the VM's first publish queues behind it without asking the outbox entity,
    which may not have taken the chain's event in yet."""
    from orchestrators.chain_run import _Chain
    from orchestrators.common import publish

    chain_spec = {
        "chain": {"name": "nightly", "retainDays": 30, "monitorTransfer": False, "maxParallel": 2, "staggerSeconds": 0},
        "runId": "r1",
        "prefix": "BackupChain.",
        "source": "/src",
    }
    inputs: list[dict[str, Any]] = []

    def chain_steps(context: Any) -> Any:
        run = _Chain(context, chain_spec)
        yield publish(context, [run.event("ChainStarted")])
        inputs.append(run.vm_input(VAULT, VM, "2027-01-04T03:00:00.000000Z", 0))

    kept = {"ok": False, "sent": 0, "queued": 1, "reasons": ["HTTP 503"]}
    drive(chain_steps, Context(chain_spec), lambda task: kept)
    assert inputs[0]["behindKept"] is True, inputs[0]

    refused = {**spec("weekly-policy"), "gc": {"mode": "weekly-policy", "policy": "weekly", "overlap": "refuse"}}
    publishes: list[dict[str, Any]] = []

    def answer(task: Task) -> Any:
        if task.name == "get_policy_schedule":
            return {"ok": True, "schedule": COLLIDING, "policy": "weekly"}
        publishes.append(task.input)
        return {"ok": True, "sent": 1, "queued": 0, "reasons": []}

    drive(user_function(vm_backup), Context({**refused, "behindKept": inputs[0]["behindKept"]}), answer)
    assert [p["queue"] for p in publishes] == [True], publishes
