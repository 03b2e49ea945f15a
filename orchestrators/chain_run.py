"""``chain_run``: wait for the upstream signal (with a deadline), apply the failure policy, back
up every target VM with bounded, staggered parallelism, and report the run."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from backup_chain.events import chain_subject
from backup_chain.ids import vm_instance_id
from backup_chain.polling import PollPlan
from orchestrators.common import after, decode_event_data, event, iso, now, publish

bp = df.Blueprint()
UPSTREAM_EVENT = "upstream"
CANCEL_EVENT = "cancel"


class _Chain:
    def __init__(self, context: df.DurableOrchestrationContext, spec: dict[str, Any]):
        self.context = context
        self.spec = spec
        self.chain = spec["chain"]
        self.status: dict[str, Any] = {
            "phase": "starting",
            "chain": self.chain["name"],
            "runId": spec["runId"],
            "vms": {},
        }

    def phase(self, phase: str, **fields: Any) -> None:
        self.status.update(phase=phase, updatedAt=iso(now(self.context)), **fields)
        self.context.set_custom_status(self.status)

    def event(self, event_type: str, **data: Any) -> dict[str, Any]:
        body = {"chain": self.chain["name"], "runId": self.spec["runId"], "vmId": None, "vaultId": None, **data}
        return event(
            self.context,
            self.spec,
            event_type,
            subject=chain_subject(self.chain["name"], self.spec["runId"]),
            scope="chain",
            source=self.spec["source"],
            data=body,
        )

    def vm_input(self, vault_id: str, vm_id: str, upstream_at: str, index: int) -> dict[str, Any]:
        chain = self.chain
        low, high = chain.get("snapshotMinutes") or (5, 15)
        return {
            "chain": chain["name"],
            "runId": self.spec["runId"],
            "vmId": vm_id,
            "vaultId": vault_id,
            "retainDays": chain["retainDays"],
            "monitorTransfer": chain["monitorTransfer"],
            "upstreamAt": upstream_at,
            "prefix": self.spec["prefix"],
            "plan": PollPlan.for_minutes(low, high).__dict__,
            "gc": self.spec.get("gc"),
            # Only the first wave is staggered; later VMs start as earlier ones finish.
            "delaySeconds": chain["staggerSeconds"] * index if index < chain["maxParallel"] else 0,
        }


@bp.orchestration_trigger(context_name="context")
def chain_run(context: df.DurableOrchestrationContext):
    """Input: ``chain`` (the chain's configuration), ``runId``, ``prefix``, ``source``,
    ``waitForUpstream``, ``upstream`` (``{"status", "detail", "receivedAt"}`` when already known)
    and ``startedBy``."""
    spec: dict[str, Any] = context.get_input()
    run = _Chain(context, spec)
    chain = run.chain
    targets = [(t["vaultId"], vm) for t in chain["targets"] for vm in t["vms"]]
    run.phase("started", startedAt=iso(now(context)))
    yield publish(context, [run.event("ChainStarted", startedBy=spec.get("startedBy"), vmCount=len(targets))])

    upstream = spec.get("upstream")
    if spec.get("waitForUpstream"):
        deadline = after(context, float(chain["upstream"]["timeoutSeconds"]))
        run.phase("waitingForUpstream", deadline=iso(deadline))
        signal = context.wait_for_external_event(UPSTREAM_EVENT)
        cancel = context.wait_for_external_event(CANCEL_EVENT)
        timer = context.create_timer(deadline)
        winner = yield context.task_any([signal, cancel, timer])
        if winner is cancel:
            return (yield from _finish(run, "cancelled", {}))
        if winner is timer:
            yield publish(context, [run.event("UpstreamTimedOut", deadline=iso(deadline))])
            if chain["upstream"].get("onTimeout", "end") == "end":
                return (yield from _finish(run, "upstreamTimedOut", {}))
            upstream = {"status": "TimedOut", "detail": None, "receivedAt": iso(now(context))}
        else:
            timer.cancel()
            upstream = decode_event_data(signal.result)
    # When the run learned of the upstream outcome, on the orchestration's own clock (what running
    # backups are compared against when deciding to adopt them).
    upstream = {"status": "Succeeded", "detail": None, **(upstream or {}), "receivedAt": iso(now(context))}
    run.phase("upstreamReceived", upstream=upstream)
    # After a timeout with onTimeout "backup" nothing was received: UpstreamTimedOut already told
    # downstream, and an UpstreamReceived would read as "the upstream job finished".
    if upstream.get("status") != "TimedOut":
        yield publish(
            context,
            [
                run.event(
                    "UpstreamReceived",
                    upstreamStatus=upstream.get("status"),
                    detail=upstream.get("detail"),
                    receivedAt=upstream.get("receivedAt"),
                )
            ],
        )
    if upstream.get("status") == "Failed" and (chain.get("upstream") or {}).get("onFailure", "skip") == "skip":
        yield publish(context, [run.event("ChainSkipped", reason="upstream failed", detail=upstream.get("detail"))])
        return (yield from _finish(run, "skipped", {}))

    # Fan out with at most maxParallel VM backups at once; a cancel stops new ones.
    upstream_at = str(upstream.get("receivedAt") or iso(now(context)))
    pending = list(enumerate(targets))
    running: dict[str, Any] = {}
    results: dict[str, dict[str, Any]] = {}
    cancel = context.wait_for_external_event(CANCEL_EVENT)
    cancelled = False
    run.phase("backingUp", vms={vm: "pending" for _, vm in targets})
    while running or (pending and not cancelled):
        while pending and not cancelled and len(running) < chain["maxParallel"]:
            index, (vault_id, vm_id) = pending.pop(0)
            task = context.call_sub_orchestrator(
                "vm_backup",
                run.vm_input(vault_id, vm_id, upstream_at, index),
                vm_instance_id(spec["runId"], chain["name"], vm_id),
            )
            running[vm_id] = task
            run.status["vms"][vm_id] = "running"
        run.phase("backingUp")
        waits = list(running.values()) + ([] if cancelled else [cancel])
        done = yield context.task_any(waits)
        if done is cancel:
            cancelled = True
            break
        vm_id = next(vm for vm, task in running.items() if task is done)
        del running[vm_id]
        vm_result = (
            done.result
            if isinstance(done.result, dict)
            else {"vmId": vm_id, "outcome": "failed", "message": str(done.result)[:500]}
        )
        results[vm_id] = vm_result
        run.status["vms"][vm_id] = vm_result.get("outcome")
    for _, (_, vm_id) in pending:
        results[vm_id] = {"vmId": vm_id, "outcome": "cancelled"}
    for vm_id in running:
        results[vm_id] = {"vmId": vm_id, "outcome": "cancelled"}
    succeeded = all(r["outcome"] in ("completed", "snapshotCompleted") for r in results.values())
    run_outcome = "cancelled" if cancelled else ("completed" if succeeded else "completedWithFailures")
    return (yield from _finish(run, run_outcome, results))


def _finish(run: _Chain, outcome: str, results: dict[str, dict[str, Any]]):
    summary = [
        {k: r.get(k) for k in ("vmId", "outcome", "jobId", "failedPhase", "errorCode", "snapshotCompletedAt")}
        for r in results.values()
    ]
    counts: dict[str, int] = {}
    for r in results.values():
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    run.phase("completed", outcome=outcome, counts=counts, vms={r["vmId"]: r["outcome"] for r in results.values()})
    yield publish(run.context, [run.event("ChainCompleted", outcome=outcome, counts=counts, vms=summary)])
    return {
        "chain": run.chain["name"],
        "runId": run.spec["runId"],
        "outcome": outcome,
        "counts": counts,
        "vms": summary,
    }
