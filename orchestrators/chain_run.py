"""``chain_run``: wait for the upstream signal (with a deadline), apply the failure policy, back
up every target VM with bounded, staggered parallelism, and report the run."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

import azure.durable_functions as df

from activities.run_jobs import run_jobs
from backup_chain.chain_control import PAUSED_EVENT, SKIPPED_REASON
from backup_chain.custom_status import upstream_detail_for_event, upstream_for_status
from backup_chain.deadlines import not_started, window_closed
from backup_chain.events import chain_cloud_event
from backup_chain.ids import batch_label, vm_batch_instance_id, vm_instance_id
from backup_chain.messages import ChainRunInput, RunJob, RunJobsRequest, VmBackupInput, VmBatchInput
from backup_chain.polling import PollPlan
from backup_chain.runs import gc_for_vm
from orchestrators.common import AZURE_RETRY, after, decode_event_data, iso, kept_any, now, parse_time, publish
from orchestrators.membership import Membership, resolve_membership
from orchestrators.notify import tell
from orchestrators.vm_backup import vm_backup

bp = df.Blueprint()
BATCH_SIZE = 50  # VMs per vm_batch sub-orchestration in large runs
SUMMARY_LIMIT = 200  # VMs listed in a ChainCompleted event
SUCCEEDED = (
    "completed",
    "snapshotCompleted",
)  # a VM outcome that backed it up (snapshotCompleted: monitorTransfer off)
UPSTREAM_EVENT = "upstream"
CANCEL_EVENT = "cancel"
SLOT_EVENT = "slot"  # "slot:{n}": child n's snapshot phase is over (its parallelism slot is free)


class _ChainRunState:
    """Per-execution state of one chain run (rebuilt identically on every replay)."""

    def __init__(self, context: df.DurableOrchestrationContext, spec: ChainRunInput):
        self.context = context
        self.spec = spec
        self.chain = spec["chain"]
        self.status: dict[str, Any] = {"phase": "starting", "chain": self.chain["name"], "runId": spec["runId"]}
        self.upstream: dict[str, Any] | None = None  # the whole signal (custom status shows it bounded)
        self.membership: Membership | None = None

    def phase(self, phase: str, **fields: Any) -> None:
        self.status.update(phase=phase, updatedAt=iso(now(self.context)), **fields)
        self.context.set_custom_status(self.status)

    def event(self, event_type: str, **data: Any) -> dict[str, Any]:
        return chain_cloud_event(
            prefix=self.spec["prefix"],
            chain=self.chain["name"],
            run_id=self.spec["runId"],
            source=self.spec["source"],
            event_type=event_type,
            time=iso(now(self.context)),
            **data,
        )

    def progress(self, results: dict[str, Any], left: int) -> None:
        """Custom status keeps counts only (Azure limits it to 16 KB); per-VM detail lives in
        each VM's own orchestration."""
        counts: dict[str, int] = {"running": left}
        for result in results.values():
            if isinstance(result, dict) and "outcome" in result:
                counts[result["outcome"]] = counts.get(result["outcome"], 0) + 1
            elif isinstance(result, dict):  # a batch's results
                for vm_result in result.values():
                    outcome = vm_result.get("outcome", "failed") if isinstance(vm_result, dict) else "failed"
                    counts[outcome] = counts.get(outcome, 0) + 1
        self.phase("backingUp", counts=counts)

    def vm_input(self, vault_id: str, vm_id: str, upstream_at: str, index: int, start_by: str | None) -> VmBackupInput:
        chain = self.chain
        low, high = chain.get("snapshotMinutes") or (5, 15)
        shared = bool((self.spec.get("polling") or {}).get("shared"))
        return {
            "chain": chain["name"],
            "runId": self.spec["runId"],
            "vmId": vm_id,
            "vaultId": vault_id,
            "retainDays": chain["retainDays"],
            "monitorTransfer": chain["monitorTransfer"],
            "upstreamAt": upstream_at,
            "prefix": self.spec["prefix"],
            # Beacons hint the shared board only: per-VM polling keeps its dense plan (docs/beacon.md).
            "plan": PollPlan.for_chain(low, high, bool(chain.get("beacons")) and shared).to_dict(),
            "gc": gc_for_vm(self.spec.get("gc"), vm_id),
            "polling": self.spec.get("polling"),
            # Only the first wave is staggered; later VMs start as earlier ones finish.
            "delaySeconds": chain["staggerSeconds"] * index if index < chain["maxParallel"] else 0,
            "behindKept": kept_any(self.context),  # ChainStarted/UpstreamReceived were kept
            "startBy": start_by,
            "snapshotDeadlineSeconds": chain.get("snapshotDeadlineSeconds"),
        }


@bp.orchestration_trigger(context_name="context")
def chain_run(context: df.DurableOrchestrationContext):
    """Input: ``chain`` (the chain's configuration), ``runId``, ``prefix``, ``source``,
    ``waitForUpstream``, ``upstream`` (``{"status", "detail", "receivedAt"}`` when already known)
    and ``startedBy``."""
    spec: ChainRunInput = context.get_input()
    run = _ChainRunState(context, spec)
    chain = run.chain
    retry_of = spec.get("retryOf")
    run.phase("started", startedAt=iso(now(context)), **({"retryOf": retry_of} if retry_of else {}))
    membership = yield from resolve_membership(context, spec)
    run.membership = membership
    targets = membership.targets
    run.status.update(membership.for_status())
    started = run.event(
        "ChainStarted",
        startedBy=spec.get("startedBy"),
        vmCount=len(targets),
        membership=membership.record,
        **({"retryOf": retry_of} if retry_of else {}),  # a retry says which run it retries
    )
    yield publish(context, [started])

    # The signal as it came (a run's input, or the upstream event's JSON), then stamped below.
    told: Mapping[str, Any] | None = spec.get("upstream")
    if spec.get("waitForUpstream"):
        deadline = after(context, float(chain["upstream"]["timeoutSeconds"]))
        run.phase("waitingForUpstream", deadline=iso(deadline))
        signal = context.wait_for_external_event(UPSTREAM_EVENT)
        cancel = context.wait_for_external_event(CANCEL_EVENT)
        paused = context.wait_for_external_event(PAUSED_EVENT)  # its chain was paused (docs/operations.md)
        timer = context.create_timer(deadline)
        winner = yield context.task_any([signal, cancel, paused, timer])
        if winner is cancel:
            return (yield from _finish(run, "cancelled", {}))
        if winner is paused:
            timer.cancel()
            pause = decode_event_data(paused.result)
            yield publish(context, [run.event("ChainSkipped", reason=SKIPPED_REASON, detail=pause)])
            return (yield from _finish(run, "skipped", {}))
        if winner is timer:
            yield publish(context, [run.event("UpstreamTimedOut", deadline=iso(deadline))])
            if chain["upstream"].get("onTimeout", "end") == "end":
                return (yield from _finish(run, "upstreamTimedOut", {}))
            told = {"status": "TimedOut", "detail": None, "receivedAt": iso(now(context))}
        else:
            timer.cancel()
            told = decode_event_data(signal.result)
    # When the run learned of the upstream outcome, on the orchestration's own clock (what running
    # backups are compared against when deciding to adopt them).
    upstream: dict[str, Any] = {"status": "Succeeded", "detail": None, **(told or {}), "receivedAt": iso(now(context))}
    run.upstream = upstream
    run.phase("upstreamReceived", upstream=upstream_for_status(upstream))  # bounded: Azure caps it at 16 KB
    # After a timeout with onTimeout "backup" nothing was received: UpstreamTimedOut already told
    # downstream, and an UpstreamReceived would read as "the upstream job finished".
    if upstream.get("status") != "TimedOut":
        yield publish(
            context,
            [
                run.event(
                    "UpstreamReceived",
                    upstreamStatus=upstream.get("status"),
                    detail=upstream_detail_for_event(upstream.get("detail")),
                    receivedAt=upstream.get("receivedAt"),
                )
            ],
        )
    if upstream.get("status") == "Failed" and (chain.get("upstream") or {}).get("onFailure", "skip") == "skip":
        yield publish(
            context,
            [
                run.event(
                    "ChainSkipped", reason="upstream failed", detail=upstream_detail_for_event(upstream.get("detail"))
                )
            ],
        )
        return (yield from _finish(run, "skipped", {}))

    # Fan out with at most maxParallel VM backups at once; a cancel stops new ones. Large runs go
    # through vm_batch sub-orchestrations so that no single history grows with the VM count.
    upstream_at = str(upstream.get("receivedAt") or iso(now(context)))
    # The start window opens now (the run has its upstream signal and starts backing up).
    window = chain.get("startWindowSeconds")
    start_by = iso(after(context, float(window))) if window else None
    items = [
        (
            vm_id,
            run.vm_input(vault_id, vm_id, upstream_at, index, start_by),
            vm_instance_id(spec["runId"], chain["name"], vm_id),
        )
        for index, (vault_id, vm_id) in enumerate(targets)
    ]
    cancel = context.wait_for_external_event(CANCEL_EVENT)
    run.phase("backingUp", counts={"pending": len(items)})
    parallel = int(chain["maxParallel"])
    if len(items) <= BATCH_SIZE:
        results, cancelled = yield from fan_out(
            context, vm_backup, items, parallel, cancel, run.progress, start_by=start_by
        )
    else:
        per_batch = min(BATCH_SIZE, parallel)
        batches = [
            (
                batch_label(n),
                {"items": items[i : i + BATCH_SIZE], "parallel": per_batch, "startBy": start_by},
                vm_batch_instance_id(chain["name"], spec["runId"], n),
            )
            for n, i in enumerate(range(0, len(items), BATCH_SIZE))
        ]
        batch_results, cancelled = yield from fan_out(
            context, vm_batch, batches, max(1, parallel // per_batch), cancel, run.progress, start_by=start_by
        )
        results = {}
        for n, start in enumerate(range(0, len(items), BATCH_SIZE)):
            key = batch_label(n)
            outcome = batch_results.get(key)
            for vm_id, _, _ in items[start : start + BATCH_SIZE]:
                found = outcome.get(vm_id) if isinstance(outcome, dict) else None
                results[vm_id] = found or {
                    "vmId": vm_id,
                    "outcome": "cancelled" if cancelled else "failed",
                    "errorCode": None if cancelled else "NotReportedByBatch",
                    "message": f"{key} did not report this VM",
                }
    for vm_id, _, _ in items:
        results.setdefault(vm_id, {"vmId": vm_id, "outcome": "cancelled"})
    if cancelled:
        results = yield from _jobs_left(context, items, results)
    results.update(membership.unprotected)  # chosen, not protected in the vault: reported, never triggered
    # A target whose members could not be read leaves its VMs unbacked: never a plain "completed".
    succeeded = all(r["outcome"] in SUCCEEDED for r in results.values()) and not membership.failed
    run_outcome = "cancelled" if cancelled else ("completed" if succeeded else "completedWithFailures")
    return (yield from _finish(run, run_outcome, results))


def fan_out(
    context: df.DurableOrchestrationContext,
    orchestrator: Callable[..., Any],
    items: Sequence[tuple[str, Mapping[str, Any], str]],
    parallel: int,
    cancel: Any,
    progress: Any,
    release: Mapping[str, Any] | None = None,
    *,
    start_by: str | None = None,
) -> Generator[Any, Any, tuple[dict[str, Any], bool]]:
    """Run ``orchestrator`` once per (key, input, instance id) until all are done or ``cancel`` (a
    task, or None) completes. At most ``parallel`` children hold a slot at once: a child holds its
    slot from its start until it tells ``snapshot`` (its snapshot phase is over, see
    orchestrators/notify.py) or ends, so hours of transfer are watched without holding one.
    ``release``: the input of a child run this way (``vm_batch``): its parent is told
    ``snapshot`` once no item holds a slot. ``start_by``: the run's start window closes then (ISO
    time): items still waiting for a slot are ``notStarted`` (a durable timer wakes the fan-out
    at that moment). Returns results by key and whether cancel won."""
    pending = list(enumerate(items))
    running: dict[str, Any] = {}  # key → child task, until the child ends
    holding: dict[str, Any] = {}  # key → its slot notice, until heard or the child ends
    results: dict[str, Any] = {}
    released = release is None
    closes = parse_time(start_by)
    open_now = closes is not None and bool(pending) and not window_closed(closes, now(context))
    window = context.create_timer(closes) if open_now else None
    while running or pending:
        if pending and (window_closed(closes, now(context)) or (window is not None and window.is_completed)):
            for _, (key, payload, _) in pending:
                results[key] = _not_started_result(key, payload, str(start_by))
            pending = []
            progress(results, len(running))
        while pending and len(holding) < parallel:
            n, (key, payload, instance_id) = pending.pop(0)
            slot = f"{SLOT_EVENT}:{n}"
            tell_parent = {**(payload.get("tell") or {}), "snapshot": [context.instance_id, slot]}
            running[key] = context.call_sub_orchestrator(orchestrator, {**payload, "tell": tell_parent}, instance_id)
            holding[key] = context.wait_for_external_event(slot)
        if not released and not pending and not holding:
            released = True
            yield from tell(context, release or {}, "snapshot")
        if not running and not pending:
            break  # every item left was not started
        waits = [*running.values(), *holding.values()] + ([cancel] if cancel is not None else [])
        if window is not None and pending and not window.is_completed:
            waits.append(window)
        done = yield context.task_any(waits)
        if cancel is not None and done is cancel:
            _cancel_timer(window)
            return results, True
        if done is window:
            continue  # the start window closed: the loop's head reports what still waits
        freed = next((k for k, task in holding.items() if task is done), None)
        if freed is not None:
            del holding[freed]
            continue
        key = next(k for k, task in running.items() if task is done)
        del running[key]
        holding.pop(key, None)
        results[key] = (
            done.result
            if isinstance(done.result, dict)
            else {
                "vmId": key,
                "outcome": "failed",
                "errorCode": "OrchestrationFailed",
                "message": str(done.result)[:500],
            }
        )
        progress(results, len(pending) + len(running))
    if not released:
        yield from tell(context, release or {}, "snapshot")
    _cancel_timer(window)
    return results, False


def _cancel_timer(timer: Any) -> None:
    """A timer not yet fired is cancelled: an orchestration completes only once its pending timers
    completed or were cancelled (Durable Functions TimerTask docs)."""
    if timer is not None and not timer.is_completed:
        timer.cancel()


def _not_started_result(key: str, payload: Mapping[str, Any], start_by: str) -> Any:
    """The result of an item the start window closed on before it started: a VM's, or a whole
    batch's (each of its VMs)."""
    if "items" in payload:  # a vm_batch
        return {vm_id: not_started(vm_id, start_by) for vm_id, _, _ in payload["items"]}
    return not_started(key, start_by)


@bp.orchestration_trigger(context_name="context")
def vm_batch(context: df.DurableOrchestrationContext):
    """Backs up one batch of a large run's VMs. Input: ``items`` ([vmId, vm_backup input,
    instance id]) and ``parallel``. Output: each VM's result by VM id."""
    spec: VmBatchInput = context.get_input()
    items = [(vm_id, payload, instance_id) for vm_id, payload, instance_id in spec["items"]]

    def progress(results: dict[str, Any], left: int) -> None:
        context.set_custom_status({"phase": "backingUp", "done": len(results), "left": left})

    results, _ = yield from fan_out(
        context, vm_backup, items, int(spec["parallel"]), None, progress, release=spec, start_by=spec.get("startBy")
    )
    return results


def _jobs_left(
    context: df.DurableOrchestrationContext,
    items: Sequence[tuple[str, Mapping[str, Any], str]],
    results: dict[str, Any],
) -> Generator[Any, Any, dict[str, Any]]:
    """After a cancel: every VM keeps its Azure job id (from its result, or else from its
    orchestration's custom status) and says whether Azure still runs that job (cancelling a run
    stops watching, never the Azure jobs)."""
    ask = [
        [vm_id, payload["vaultId"], instance_id, results[vm_id].get("jobId")]
        for vm_id, payload, instance_id in items
        if results[vm_id].get("outcome") != "completed"
    ]
    if not ask:
        return results
    # One activity per BATCH_SIZE VMs keeps each message small in runs of thousands of VMs.
    chunks = [ask[i : i + BATCH_SIZE] for i in range(0, len(ask), BATCH_SIZE)]
    try:
        requests: list[RunJobsRequest] = [{"vms": chunk} for chunk in chunks]
        reads: list[list[RunJob]] = yield context.task_all(
            [context.call_activity_with_retry(run_jobs, AZURE_RETRY, request) for request in requests]
        )
    except Exception as err:  # Azure kept failing beyond the retries: the run still ends, saying so
        error = f"job lookup failed beyond its retries: {str(err)[:300]}"
        reads = yield from _job_ids_only(context, ask, chunks, error)
    for job in (job for read in reads for job in read):
        kept = results[job["vmId"]]
        results[job["vmId"]] = {
            **kept,
            "jobId": kept.get("jobId") or job["jobId"],
            "jobStatus": job["jobStatus"],
            "jobRunning": job["jobRunning"],
            **({"readError": job["readError"]} if job.get("readError") else {}),
        }
    return results


def _job_ids_only(
    context: df.DurableOrchestrationContext, ask: list[list[Any]], chunks: list[list[list[Any]]], error: str
) -> Generator[Any, Any, list[list[RunJob]]]:
    """Each VM's job id without asking Azure (a cancelled VM's result may not carry it: it is in
    its orchestration's custom status), every one with ``error`` as its ``readError``."""
    try:
        reads: list[list[RunJob]] = yield context.task_all(
            [
                context.call_activity_with_retry(run_jobs, AZURE_RETRY, RunJobsRequest(vms=chunk, readJobs=False))
                for chunk in chunks
            ]
        )
    except Exception:  # not even the ids: keep those the results had
        reads = [[{"vmId": vm, "jobId": job, "jobStatus": None, "jobRunning": None} for vm, _, _, job in ask]]
    return [
        [
            {"vmId": job["vmId"], "jobId": job["jobId"], "jobStatus": None, "jobRunning": None, "readError": error}
            for job in read
        ]
        for read in reads
    ]


def _finish(run: _ChainRunState, outcome: str, results: dict[str, dict[str, Any]]):
    # ``message`` says why a VM failed, also when its own orchestration failed (no Azure code then).
    keys: tuple[str, ...] = ("vmId", "outcome", "jobId", "failedPhase", "errorCode", "message", "snapshotCompletedAt")
    if outcome == "cancelled":
        keys += ("jobStatus", "jobRunning", "readError")
    # snapshotLate only where a SnapshotLate was published (a snapshot deadline is optional).
    summary = [
        {**{k: r.get(k) for k in keys}, **({"snapshotLate": True} if r.get("snapshotLate") else {})}
        for r in results.values()
    ]
    # A cancelled run says which Azure jobs it leaves running (they finish on their own).
    left: dict[str, list[dict[str, Any]]] = {}
    if outcome == "cancelled":
        running = [r for r in results.values() if r.get("jobRunning")]
        left["jobsStillRunning"] = [{k: r.get(k) for k in ("vmId", "jobId", "jobStatus")} for r in running]
    counts: dict[str, int] = {}
    for r in results.values():
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    run.phase("completed", outcome=outcome, counts=counts)
    # Large runs list only the VMs that did not complete, keeping the event far below Event
    # Grid's 1 MB limit; the run's output and GET .../runs/{runId} keep every VM.
    listed = summary if len(summary) <= SUMMARY_LIMIT else [v for v in summary if v["outcome"] not in SUCCEEDED]
    yield publish(
        run.context,
        [
            run.event(
                "ChainCompleted",
                outcome=outcome,
                counts=counts,
                vms=listed[:SUMMARY_LIMIT],
                vmsListed="all" if listed is summary else "notCompleted",
                **{k: v[:SUMMARY_LIMIT] for k, v in left.items()},
            )
        ],
        behind=any(r.get("eventsKept") for r in results.values()),  # ChainCompleted comes last
    )
    return {
        "chain": run.chain["name"],
        "runId": run.spec["runId"],
        "outcome": outcome,
        "counts": counts,
        "vms": summary,
        **left,
        **({"upstream": run.upstream} if run.upstream is not None else {}),
        **(
            {"membership": run.membership.record, "members": run.membership.listed}
            if run.membership is not None
            else {}
        ),
    }
