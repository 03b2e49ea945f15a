"""Did the run behave as the sample scenario says it must? Compares the run's status (HTTP API),
the downstream events (Event Grid emulator) and the Recovery Services emulator's own record of the
jobs (its ``/admin/jobs`` truth)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dateutil.parser import isoparse

from demo.scenario import CHAIN, FAILED_ERROR, PREFIX, VMS, DemoVm

HEALTHY_ORDER = ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
FAILED_ORDER = ["BackupTriggered", "BackupFailed"]


def _time(text: Any) -> datetime | None:
    return isoparse(str(text)) if text else None


def kind(event: dict[str, Any]) -> str:
    return str(event.get("type", "")).removeprefix(PREFIX)


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)  # virtual seconds, snapshot done -> event
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def expect(self, condition: bool, problem: str) -> bool:
        if not condition:
            self.problems.append(problem)
        return condition


def check(
    run: dict[str, Any],
    events: list[dict[str, Any]],
    jobs: dict[str, list[dict[str, Any]]],
    upstream_event_id: str,
) -> Verdict:
    """``jobs`` maps a VM name to the emulator's jobs for that VM (newest first)."""
    v = Verdict()
    v.expect(run.get("runtimeStatus") == "Completed", f"run ended {run.get('runtimeStatus')}, expected Completed")
    v.expect(run.get("outcome") == "completedWithFailures", f"run outcome {run.get('outcome')!r}")
    ids = [e.get("id") for e in events]
    v.expect(len(ids) == len(set(ids)), "a downstream event was published twice")

    chain_events = [e for e in events if str(e.get("subject", "")).startswith(f"/chains/{CHAIN}/")]
    chain_kinds = [kind(e) for e in chain_events]
    v.expect(
        chain_kinds == ["ChainStarted", "UpstreamReceived", "ChainCompleted"],
        f"chain events {chain_kinds}, expected ChainStarted, UpstreamReceived, ChainCompleted",
    )
    upstream = (run.get("custom") or {}).get("upstream") or {}
    v.expect(
        upstream.get("eventId") == upstream_event_id and upstream.get("status") == "Succeeded",
        f"the run did not take the published upstream event {upstream_event_id} ({upstream})",
    )
    received_at = _time(upstream.get("receivedAt"))
    vm_views = {str(vm.get("vmId")).lower(): vm for vm in run.get("vms") or []}
    for vm in VMS:
        mine = [e for e in events if str(e.get("subject", "")).lower() == vm.id.lower()]
        _check_vm(v, vm, mine, vm_views.get(vm.id.lower(), {}), jobs.get(vm.name, []), received_at)

    completed = next((e for e in chain_events if kind(e) == "ChainCompleted"), None)
    if completed is not None:
        data = completed.get("data") or {}
        v.expect(data.get("outcome") == "completedWithFailures", f"ChainCompleted outcome {data.get('outcome')!r}")
        v.expect(data.get("counts") == {"completed": 5, "failed": 1}, f"ChainCompleted counts {data.get('counts')}")
        summary = {str(s.get("vmId")).lower(): s for s in data.get("vms") or []}
        for vm in VMS:
            want = "failed" if vm.role == "failsSnapshot" else "completed"
            got = (summary.get(vm.id.lower()) or {}).get("outcome")
            v.expect(got == want, f"ChainCompleted reports {vm.name} as {got!r}, expected {want!r}")
        times = [t for t in (_time(e.get("time")) for e in events) if t is not None]
        v.expect(_time(completed.get("time")) == max(times), "ChainCompleted is not the last event")
    return v


def _check_vm(
    v: Verdict,
    vm: DemoVm,
    events: list[dict[str, Any]],
    view: dict[str, Any],
    jobs: list[dict[str, Any]],
    received_at: datetime | None,
) -> None:
    kinds = [kind(e) for e in events]
    by_kind = {kind(e): e for e in events}
    job_ids = {(e.get("data") or {}).get("jobId") for e in events}
    if not v.expect(len(job_ids) == 1 and None not in job_ids, f"{vm.name}: events name jobs {job_ids}"):
        return
    job_id = str(next(iter(job_ids)))
    own = next((j for j in jobs if j.get("id") == job_id), None)
    if not v.expect(own is not None and own.get("userTriggered") is True, f"{vm.name}: job {job_id} is not on-demand"):
        return
    assert own is not None
    v.expect(view.get("jobId") == job_id, f"{vm.name}: run status names job {view.get('jobId')}, events {job_id}")

    if vm.role == "failsSnapshot":
        v.expect(kinds == FAILED_ORDER, f"{vm.name}: events {kinds}, expected {FAILED_ORDER}")
        data = (by_kind.get("BackupFailed") or {}).get("data") or {}
        v.expect(data.get("phase") == "snapshot", f"{vm.name}: BackupFailed phase {data.get('phase')!r}")
        v.expect(data.get("errorCode") == FAILED_ERROR, f"{vm.name}: BackupFailed errorCode {data.get('errorCode')!r}")
        v.expect(view.get("phase") == "failed", f"{vm.name}: phase {view.get('phase')!r}, expected failed")
        return

    v.expect(kinds == HEALTHY_ORDER, f"{vm.name}: events {kinds}, expected {HEALTHY_ORDER}")
    v.expect(view.get("phase") == "completed", f"{vm.name}: phase {view.get('phase')!r}, expected completed")
    truth = _time(own.get("snapshotCompletedAt"))
    snapshot_event = by_kind.get("SnapshotCompleted")
    if v.expect(truth is not None and snapshot_event is not None, f"{vm.name}: no Take Snapshot completion"):
        assert truth is not None and snapshot_event is not None
        told = _time(snapshot_event.get("time"))
        reported = _time((snapshot_event.get("data") or {}).get("snapshotCompletedAt"))
        v.expect(
            reported is not None and abs((reported - truth).total_seconds()) < 1,
            f"{vm.name}: SnapshotCompleted says {reported}, the job says {truth}",
        )
        if v.expect(told is not None and told >= truth, f"{vm.name}: SnapshotCompleted before the snapshot ended"):
            assert told is not None
            v.lags.append((told - truth).total_seconds())

    if vm.role == "scheduledRunning":
        scheduled = [j for j in jobs if j.get("userTriggered") is False]
        if not v.expect(len(scheduled) == 1, f"{vm.name}: expected one scheduled job, found {len(scheduled)}"):
            return
        sched = scheduled[0]
        started, ended = _time(sched.get("startTime")), _time(sched.get("endTime"))
        # docs/design.md: a job that started before the upstream signal is waited out, then our own runs.
        v.expect(
            received_at is not None and started is not None and started < received_at,
            f"{vm.name}: the scheduled job did not start before the upstream signal",
        )
        v.expect(view.get("runningJobId") == sched.get("id"), f"{vm.name}: did not wait for the scheduled job")
        adopted = ((by_kind.get("BackupTriggered") or {}).get("data") or {}).get("adopted")
        v.expect(adopted is False and job_id != sched.get("id"), f"{vm.name}: adopted the older scheduled job")
        own_start = _time(own.get("startTime"))
        v.expect(
            ended is not None and own_start is not None and own_start >= ended,
            f"{vm.name}: own backup started before the scheduled one ended",
        )
        if ended is not None and own_start is not None:
            v.notes.append(
                f"{vm.name} waited out its scheduled backup (job {str(sched.get('id'))[:8]}, ended "
                f"{ended:%H:%M:%S}) and then ran its own"
            )
