"""The invariant checker on made-up observations: a consistent run passes, and each kind of
wrong run is caught by the invariant meant for it (so a green fault run means something)."""

from __future__ import annotations

import copy
import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from harness.chain_stack import PREFIX
from harness.faults.invariants import Observed, check, check_gc_refusals, check_undelivered
from harness.faults.scenarios import (
    DOWNSTREAM_OUTAGES,
    DOWNSTREAM_REFUSALS,
    WEEKEND_WINDOW,
    WEEKLY_POLICY,
    FaultCase,
    VmPlan,
    generate,
)

T0 = datetime(2030, 1, 3, 1, 0, tzinfo=timezone.utc)
RUN = "faults-0"


def _iso(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _case(gc_mode: str = WEEKLY_POLICY) -> FaultCase:
    vms = (
        VmPlan("fvm001", "Linux", "rsv-1", "ok"),
        VmPlan("fvm002", "Windows", "rsv-1", "snapshot"),
        VmPlan("fvm003", "Linux", "rsv-2", "transfer"),
    )
    return FaultCase(0, "small", gc_mode, T0, vms, {}, (), 3, 0.0, 1, run_id=RUN)


def _event(kind: str, subject: str, minutes: float, **data: Any) -> dict[str, Any]:
    return {
        "receivedAt": _iso(minutes),
        "event": {
            "id": f"{kind}-{subject.rsplit('/', 1)[-1]}",
            "type": PREFIX + kind,
            "subject": subject,
            "time": _iso(minutes),
            "data": {"runId": RUN, **data},
        },
    }


def _job(vm: str, job_id: str, status: str, tasks: dict[str, str], snap: float | None, end: float | None, **kw: Any):
    return {
        "id": job_id,
        "vm": vm,
        "userTriggered": True,
        "status": status,
        "tasks": tasks,
        "startTime": _iso(1),
        "endTime": _iso(end) if end is not None else None,
        "snapshotCompletedAt": _iso(snap) if snap is not None else None,
        "error": None,
        **kw,
    }


def _observed(case: FaultCase) -> Observed:
    ok, snap, transfer = case.vms
    records = [
        _event("ChainStarted", f"/chains/faults/runs/{RUN}", 0),
        _event("BackupTriggered", ok.vm_id, 1, jobId="j1", adopted=False),
        _event("BackupTriggered", snap.vm_id, 1, jobId="j2", adopted=False),
        _event("BackupTriggered", transfer.vm_id, 1, jobId="j3", adopted=False),
        _event("SnapshotCompleted", ok.vm_id, 8, jobId="j1", snapshotCompletedAt=_iso(7)),
        _event(
            "BackupFailed", snap.vm_id, 8, jobId="j2", phase="snapshot", errorCode="ExtensionFailedVssWriterInBadState"
        ),
        _event("SnapshotCompleted", transfer.vm_id, 9, jobId="j3", snapshotCompletedAt=_iso(9)),
        _event("BackupCompleted", ok.vm_id, 30, jobId="j1"),
        _event(
            "BackupFailed",
            transfer.vm_id,
            31,
            jobId="j3",
            phase="transfer",
            errorCode="CopyingVHDsFromBackUpVaultTakingLongTime",
        ),
        _event(
            "ChainCompleted",
            f"/chains/faults/runs/{RUN}",
            31,
            counts={"completed": 1, "failed": 2},
            vms=[
                {"vmId": ok.vm_id, "outcome": "completed", "jobId": "j1"},
                {"vmId": snap.vm_id, "outcome": "failed", "jobId": "j2"},
                {"vmId": transfer.vm_id, "outcome": "failed", "jobId": "j3"},
            ],
        ),
    ]
    done = {"Take Snapshot": "Completed", "Transfer data to vault": "Completed"}
    jobs = {
        "fvm001": [_job("fvm001", "j1", "Completed", done, 7, 29)],
        "fvm002": [
            _job(
                "fvm002",
                "j2",
                "Failed",
                {"Take Snapshot": "Failed", "Transfer data to vault": "NotStarted"},
                None,
                7,
                error="ExtensionFailedVssWriterInBadState",
            )
        ],
        "fvm003": [
            _job(
                "fvm003",
                "j3",
                "Failed",
                {"Take Snapshot": "Completed", "Transfer data to vault": "Failed"},
                9,
                30,
                error="CopyingVHDsFromBackUpVaultTakingLongTime",
            )
        ],
    }
    stopped = case.gc_mode == WEEKEND_WINDOW
    items = {
        v.name: [{"vm": v.name, "protectionState": "ProtectionStopped" if stopped else "Protected"}] for v in case.vms
    }
    instances = [
        {"instanceId": f"chain:faults:{RUN}", "name": "chain_run", "runtimeStatus": "Completed"},
        {"instanceId": "poller:abc", "name": "job_poller", "runtimeStatus": "Running"},
    ]
    leases: dict[str, dict[str, Any] | None] | None = (
        {v.vm_id.lower(): {"phase": "off", "holders": {}} for v in case.vms} if stopped else None
    )
    return Observed(RUN, T0, T0 + timedelta(minutes=40), records, jobs, items, instances, leases)


def _invariants(observed: Observed, case: FaultCase) -> set[str]:
    return {v.invariant for v in check(observed, case).violations}


@pytest.mark.parametrize("mode", [WEEKLY_POLICY, WEEKEND_WINDOW])
def test_a_consistent_run_passes(mode: str) -> None:
    case = _case(mode)
    report = check(_observed(case), case)
    assert report.ok, report.text()
    assert report.stats["duplicateDeliveries"] == 0


def test_redelivering_the_same_event_id_is_counted_not_a_violation() -> None:
    case = _case()
    observed = _observed(case)
    observed.records.append(copy.deepcopy(observed.records[4]))  # SnapshotCompleted fvm001 again
    report = check(observed, case)
    assert report.ok, report.text()
    assert report.stats["duplicateDeliveries"] == 1


def _with(observed: Observed, index: int, **changes: Any) -> Observed:
    record = copy.deepcopy(observed.records[index])
    for key, value in changes.items():
        if key == "data":
            record["event"]["data"].update(value)
        elif key == "receivedAt":
            record["receivedAt"] = value
        else:
            record["event"][key] = value
    observed.records.append(record)
    return observed


def test_one_event_id_with_two_meanings_is_caught() -> None:
    case = _case()
    assert _invariants(_with(_observed(case), 4, data={"snapshotSeconds": 1.0}), case) == set()  # re-stamped
    assert _invariants(_with(_observed(case), 4, data={"jobId": "j2"}), case) == {"event-id-reuse"}
    assert _invariants(_with(_observed(case), 4, type=PREFIX + "BackupCompleted"), case) == {"event-id-reuse"}


def test_a_second_snapshot_event_id_for_a_vm_is_caught() -> None:
    case = _case()
    assert "snapshot-once" in _invariants(_with(_observed(case), 4, id="another-id"), case)


def test_a_missing_snapshot_event_is_caught() -> None:
    case = _case()
    observed = _observed(case)
    del observed.records[4]
    assert _invariants(observed, case) == {"snapshot-once"}


def test_a_snapshot_event_before_the_snapshot_completed_is_caught() -> None:
    case = _case()
    observed = _observed(case)
    observed.records[4]["event"]["time"] = _iso(6)
    assert _invariants(observed, case) == {"snapshot-after-truth"}
    observed = _observed(case)
    observed.records[4]["receivedAt"] = _iso(6.5)
    assert _invariants(observed, case) == {"snapshot-after-truth"}


def test_a_snapshot_event_for_a_failed_snapshot_is_caught() -> None:
    case = _case()
    observed = _observed(case)
    observed.records.append(_event("SnapshotCompleted", case.vms[1].vm_id, 8, jobId="j2", snapshotCompletedAt=_iso(7)))
    assert {"snapshot-once", "snapshot-after-truth"} <= _invariants(observed, case)


def test_two_terminal_events_or_a_terminal_state_the_emulator_contradicts_are_caught() -> None:
    case = _case()
    observed = _observed(case)
    observed.records.append(_event("BackupFailed", case.vms[0].vm_id, 31, jobId="j1", phase="transfer"))
    assert "terminal-state" in _invariants(observed, case)
    observed = _observed(case)
    observed.jobs["fvm001"][0]["status"] = "Failed"
    assert "terminal-state" in _invariants(observed, case)
    observed = _observed(case)
    observed.records[9]["event"]["data"]["vms"][0]["outcome"] = "failed"  # the summary disagrees
    assert _invariants(observed, case) == {"terminal-state"}


def test_a_healthy_vm_that_gave_up_is_caught() -> None:
    case = _case()
    observed = _observed(case)
    del observed.records[7]  # BackupCompleted fvm001 ...
    observed.records.insert(7, _event("BackupFailed", case.vms[0].vm_id, 30, jobId=None, phase="trigger"))
    observed.jobs["fvm001"] = []
    del observed.records[4]
    del observed.records[1]
    observed.records[-1]["event"]["data"]["vms"][0].update(outcome="failed", jobId=None)
    assert _invariants(observed, case) == {"scenario-outcome"}


def test_a_second_triggered_job_is_caught() -> None:
    case = _case()
    observed = _observed(case)
    done = {"Take Snapshot": "Completed", "Transfer data to vault": "Completed"}
    observed.jobs["fvm001"].append(_job("fvm001", "j9", "Completed", done, 9, 29))
    assert _invariants(observed, case) == {"single-trigger"}


def test_an_unfinished_orchestration_is_caught_but_not_an_eternal_singleton() -> None:
    case = _case()
    observed = _observed(case)
    observed.instances += [
        {"instanceId": "gc:scheduler", "name": "gc_scheduler", "runtimeStatus": "Running"},
        {"instanceId": "scheduler:faults", "name": "chain_scheduler", "runtimeStatus": "Running"},
    ]
    assert check(observed, case).ok
    observed.instances.append({"instanceId": "vm:faults:x:1", "name": "vm_backup", "runtimeStatus": "Running"})
    assert _invariants(observed, case) == {"no-stuck-orchestration"}
    observed.instances[-1]["runtimeStatus"] = "Failed"
    assert _invariants(observed, case) == {"no-stuck-orchestration"}


def test_protection_that_disagrees_with_its_lease_is_caught() -> None:
    case = _case(WEEKEND_WINDOW)
    observed = _observed(case)
    observed.items["fvm001"][0]["protectionState"] = "Protected"  # on, but nobody holds it
    assert _invariants(observed, case) == {"protection-lease"}
    observed = _observed(case)
    assert observed.leases is not None
    observed.leases[case.vms[1].vm_id.lower()] = {"phase": "on", "holders": {"vm:faults:x:2": {}}}  # a dead holder
    assert _invariants(observed, case) == {"protection-lease"}
    observed.instances.append({"instanceId": "vm:faults:x:2", "name": "vm_backup", "runtimeStatus": "Running"})
    observed.items["fvm002"][0]["protectionState"] = "Protected"
    assert _invariants(observed, case) == {"no-stuck-orchestration"}


def test_generated_cases_are_seeded_and_bounded() -> None:
    assert generate(7) == generate(7)
    assert generate(7) != generate(8)
    for seed in range(20):
        case = generate(seed)
        assert 8 <= len(case.vms) <= 12
        assert 2 <= len(case.kills) <= 3
        assert [k.after_events for k in case.kills] == sorted(k.after_events for k in case.kills)
        assert {"ok", "snapshot", "transfer"} <= {v.fate for v in case.vms}
    assert 40 <= len(generate(1, "large").vms) <= 60


def test_a_lost_chain_started_or_a_second_triggered_id_is_caught() -> None:
    case = _case()
    observed = _observed(case)
    del observed.records[0]  # ChainStarted never reached the topic
    assert _invariants(observed, case) == {"published-once"}
    # BackupTriggered for fvm001 published again under another id (same job): a duplicate
    assert _invariants(_with(_observed(case), 1, id="other-trigger-id"), case) == {"published-once"}
    observed = _observed(case)
    del observed.records[1]  # the terminal event names job j1, but no BackupTriggered arrived
    assert _invariants(observed, case) == {"published-once"}


def test_a_vm_whose_events_arrive_out_of_order_is_caught() -> None:
    case = _case()
    observed = _observed(case)
    observed.records[4]["receivedAt"] = _iso(30.5)  # SnapshotCompleted fvm001 after its BackupCompleted
    assert _invariants(observed, case) == {"per-vm-order"}
    observed = _observed(case)
    observed.records[1]["receivedAt"] = _iso(8.5)  # BackupTriggered fvm001 after its SnapshotCompleted
    assert _invariants(observed, case) == {"per-vm-order"}


def test_a_job_or_protection_change_on_a_vm_outside_the_set_is_caught() -> None:
    case = _case()
    observed = _observed(case)
    observed.bystanders = {"fvm099": "ProtectionStopped"}
    observed.items["fvm099"] = [{"vm": "fvm099", "protectionState": "ProtectionStopped"}]
    observed.jobs["fvm099"] = [{**_job("fvm099", "j99", "Completed", {}, 7, 20), "userTriggered": False}]
    assert check(observed, case).ok  # its own scheduled job is fine
    observed.items["fvm099"][0]["protectionState"] = "Protected"
    assert _invariants(observed, case) == {"outside-set"}
    observed.items["fvm099"][0]["protectionState"] = "ProtectionStopped"
    observed.jobs["fvm099"][0]["userTriggered"] = True
    assert _invariants(observed, case) == {"outside-set"}


def test_a_user_triggered_job_after_chain_completed_is_caught() -> None:
    case = _case()
    observed = _observed(case)
    late = _job("fvm001", "j10", "InProgress", {}, None, None)
    late["startTime"] = _iso(35)  # ChainCompleted was at 31
    observed.jobs["fvm001"].append(late)
    assert "job-after-completion" in _invariants(observed, case)


def test_undelivered_events_are_caught_and_never_plain_success() -> None:
    case = _case()
    observed = _observed(case)
    observed.run_view = {"outcome": "completedWithFailures", "undelivered": []}
    assert check(observed, case).ok
    observed.run_view = {"outcome": "completed", "undelivered": [{"id": "e1", "reason": "403"}]}
    assert [v.detail.split(" ", 1)[0] for v in check(observed, case).violations] == ["outcome", "1"]
    assert _invariants(observed, case) == {"undelivered"}
    mid_run = {"outcome": "completedUndelivered", "undelivered": [{"id": "e1", "reason": "403"}]}
    assert [v.invariant for v in check_undelivered(mid_run, settled=False)] == []
    assert [v.invariant for v in check_undelivered(mid_run)] == ["undelivered"]


def _failed_at_trigger(case: FaultCase, code: str) -> Observed:
    """fvm001 (healthy) ends BackupFailed at trigger with ``code``: no job, no other events."""
    observed = _observed(case)
    del observed.records[7]
    observed.records.insert(
        7, _event("BackupFailed", case.vms[0].vm_id, 30, jobId=None, phase="trigger", errorCode=code)
    )
    observed.jobs["fvm001"] = []
    del observed.records[4]
    del observed.records[1]
    observed.records[-1]["event"]["data"]["vms"][0].update(outcome="failed", jobId=None)
    return observed


def test_a_refused_resume_must_end_at_trigger_with_azures_code() -> None:
    case = dataclasses.replace(_case(WEEKEND_WINDOW), refusal_code="AuthorizationFailed")
    refused = dataclasses.replace(case, vms=(dataclasses.replace(case.vms[0], fate="refused"), *case.vms[1:]))
    assert check(_failed_at_trigger(refused, "AuthorizationFailed"), refused).ok
    assert _invariants(_failed_at_trigger(refused, "ResourceNotFound"), refused) == {"scenario-outcome"}
    assert _invariants(_observed(refused), refused) == {"scenario-outcome"}  # it completed: it was never refused
    assert _invariants(_failed_at_trigger(case, "AuthorizationFailed"), case) == {"scenario-outcome"}


def test_an_arm_outage_excuses_a_trigger_failure_only_on_an_exposed_vm() -> None:
    case = _case()
    observed = _failed_at_trigger(case, "ServiceUnavailable")
    assert _invariants(observed, case) == {"scenario-outcome"}  # not exposed: the outage is no excuse
    observed.exposed = {"fvm002"}
    assert _invariants(observed, case) == {"scenario-outcome"}
    observed.exposed = {"fvm001"}
    assert check(observed, case).ok
    assert _invariants(_failed_at_trigger(case, "CloudInternalError"), case) == {"scenario-outcome"}
    late = _failed_at_trigger(case, "CloudInternalError")  # its last retry just after the outage
    late.exposed = {"fvm001"}
    assert check(late, case).ok
    other = _failed_at_trigger(case, "UserErrorBackupOperationInProgress")
    other.exposed = {"fvm001"}
    assert _invariants(other, case) == {"scenario-outcome"}  # exposed, but not a code an outage gives


def test_a_refused_stop_may_leave_protection_on_with_an_unheld_lease_only_for_that_vm() -> None:
    case = _case(WEEKEND_WINDOW)
    observed = _observed(case)
    assert observed.leases is not None
    observed.items["fvm001"][0]["protectionState"] = "Protected"
    observed.leases[case.vms[0].vm_id.lower()] = {"phase": "on", "holders": {}}
    assert _invariants(observed, case) == {"protection-lease"}  # nobody refused its stop
    refused = dataclasses.replace(case, stop_refused=("fvm001",))
    assert check(observed, refused).ok
    observed.leases[case.vms[0].vm_id.lower()] = {"phase": "stopping", "holders": {}}
    assert _invariants(observed, refused) == {"protection-lease"}  # left half-way
    observed.leases[case.vms[0].vm_id.lower()] = {"phase": "on", "holders": {}}
    observed.items["fvm001"][0]["protectionState"] = "ProtectionStopped"
    assert _invariants(observed, refused) == {"protection-lease"}  # stopped after all, lease says on


def test_a_chain_vm_outside_gc_vms_must_keep_its_protection_and_no_lease() -> None:
    case = dataclasses.replace(_case(WEEKEND_WINDOW), gc_excluded=("fvm001",))
    observed = _observed(case)
    assert observed.leases is not None
    observed.items["fvm001"][0]["protectionState"] = "Protected"
    observed.leases[case.vms[0].vm_id.lower()] = None
    assert check(observed, case).ok
    observed.items["fvm001"][0]["protectionState"] = "ProtectionStopped"  # the chain stopped it
    assert _invariants(observed, case) == {"protection-lease"}
    observed.items["fvm001"][0]["protectionState"] = "Protected"
    observed.leases[case.vms[0].vm_id.lower()] = {"phase": "on", "holders": {f"chain:faults:{RUN}": {}}}
    assert "protection-lease" in _invariants(observed, case)  # the chain leased it


def _gc_events(
    opened: list[Any],
    failed: list[Any],
    stop_failed: list[Any],
    stopped: list[Any],
    findings: list[dict[str, Any]] | None = None,
) -> list[Any]:
    """The window's events; ``findings`` (default: one per ``stop_failed``) its GcStopFailed data."""

    def event(kind: str, event_id: str, subject: str, **data: Any) -> dict[str, Any]:
        return {"id": event_id, "type": PREFIX + kind, "subject": subject, "data": {"runId": "gc:window", **data}}

    stop_findings = stop_failed if findings is None else findings
    return [
        event("GcWindowOpened", "opened", "/gc/window", vms=opened, failed=failed),
        event(
            "GcWindowClosed",
            "closed",
            "/gc/window",
            stopped=stopped,
            stopFailed=stop_failed,
            keptOnForRunningBackups=[],
        ),
        *[event("GcStopFailed", f"stop-{i}", str(f["vmId"]), **f) for i, f in enumerate(stop_findings)],
    ]


def test_gc_window_events_must_name_exactly_the_refused_vms() -> None:
    base = _case(WEEKEND_WINDOW)
    v1, v2, v3 = (p.vm_id for p in base.vms)
    case = dataclasses.replace(
        base,
        vms=(base.vms[0], dataclasses.replace(base.vms[1], fate="refused"), base.vms[2]),
        gc_excluded=(),
        stop_refused=("fvm003",),
        refusal_code="ResourceNotFound",
    )
    bad2 = {"vmId": v2, "errorCode": "ResourceNotFound"}
    bad3 = {"vmId": v3, "errorCode": "ResourceNotFound"}
    assert check_gc_refusals(_gc_events([v1, v3], [bad2], [bad3], [v1]), case) == []
    assert check_gc_refusals(_gc_events([v1, v3], [bad2], [bad3], [v1]) * 2, case) == []  # redelivered
    reclaim = {"id": "r", "type": PREFIX + "GcStopFailed", "subject": v3, "data": {**bad3, "runId": "reclaim:1"}}
    assert check_gc_refusals([*_gc_events([v1, v3], [bad2], [bad3], [v1]), reclaim], case) == []  # not the window's
    wrong = [
        _gc_events([v1, v2, v3], [bad2], [bad3], [v1]),  # a refused VM listed as resumed
        _gc_events([v1, v3], [], [bad3], [v1]),  # the refusal not reported
        _gc_events([v1, v3], [{**bad2, "errorCode": "AuthorizationFailed"}], [bad3], [v1]),  # wrong code
        _gc_events([v1, v3], [bad2], [], [v1, v3]),  # a refused stop reported as stopped
        _gc_events([v1], [bad2], [bad3], [v1]),  # a VM left out of the window
        _gc_events([v1, v3], [bad2], [bad3], [v1])[:1],  # never closed
        _gc_events([v1, v3], [bad2], [bad3], [v1], findings=[]),  # the refused stop's finding missing
        _gc_events([v1, v3], [bad2], [bad3], [v1], findings=[bad3, {**bad2, "errorCode": "x"}]),  # one too many
        _gc_events([v1, v3], [bad2], [bad3], [v1], findings=[{**bad3, "errorCode": "AuthorizationFailed"}]),
    ]
    for events in wrong:
        assert {v.invariant for v in check_gc_refusals(events, case)} == {"gc-refusals"}, events
    excluded = dataclasses.replace(case, gc_excluded=("fvm001",))
    assert check_gc_refusals(_gc_events([v3], [bad2], [bad3], []), excluded) == []
    assert check_gc_refusals(_gc_events([v1, v3], [bad2], [bad3], [v1]), excluded) != []  # outside gc.vms


def test_generated_cases_draw_the_wider_world_deterministically() -> None:
    cases = [generate(seed) for seed in range(40)] + [generate(seed, "large") for seed in range(10, 20)]
    assert [c.describe() for c in cases[:5]] == [generate(seed).describe() for seed in range(5)]
    kinds = {f.kind for c in cases for f in c.downstream_faults}
    assert kinds == set(DOWNSTREAM_REFUSALS) | set(DOWNSTREAM_OUTAGES)
    assert any(f.seconds >= 3600 for c in cases for f in c.downstream_faults)
    assert any(f.seconds < 3600 for c in cases for f in c.downstream_faults)
    assert any(c.arm_outage for c in cases) and not all(c.arm_outage for c in cases)
    for case in cases:
        assert case.bystanders
        assert not {b.name for b in case.bystanders} & {p.name for p in case.vms}
        gc_set = {p.name for p in case.vms if case.in_gc(p.name)}
        if case.gc_mode == WEEKEND_WINDOW:
            assert case.gc_excluded and case.resume_refused and case.stop_refused
            assert set(case.resume_refused) | set(case.stop_refused) <= gc_set
            assert not set(case.resume_refused) & set(case.stop_refused)
            vms = case.config()["gc"]["vms"]
            assert sorted(vms) == sorted(case.vm(n).vm_id for n in gc_set)
        else:
            assert not gc_set and not case.resume_refused and not case.stop_refused
        if case.arm_outage:
            assert case.arm_outage.seconds > 8 * 10  # longer than AZURE_RETRY's 8 attempts 10 s apart
