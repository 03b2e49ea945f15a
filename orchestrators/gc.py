"""GC enforcement orchestrations (DESIGN.md "GC"): the weekly scheduler, the ``weekly-policy``
check, the ``weekend-window`` window, and reclaiming leases of holders that died."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from backup_chain.events import gc_cloud_event
from backup_chain.gc import assess, next_weekly, protection_on
from orchestrators.common import AZURE_RETRY, after, iso, now, publish
from orchestrators.protection import acquire, release

bp = df.Blueprint()


def gc_instance_id(kind: str, label: str) -> str:
    return f"gc:{kind}:{label}"


def _event(
    context: df.DurableOrchestrationContext,
    spec: dict[str, Any],
    event_type: str,
    vm_id: str | None,
    vault_id: str | None,
    **data: Any,
) -> dict[str, Any]:
    return gc_cloud_event(
        prefix=spec["prefix"],
        source=spec["source"],
        gc_run=context.instance_id,
        event_type=event_type,
        time=iso(now(context)),
        vm_id=vm_id,
        vault_id=vault_id,
        **data,
    )


@bp.orchestration_trigger(context_name="context")
def gc_scheduler(context: df.DurableOrchestrationContext):
    """Eternal: sleep until the configured weekly time, run the check or the window, repeat.
    Input: ``gc`` (config), ``targets`` [[vaultId, vmId]], ``prefix``, ``source``, ``fingerprint``."""
    spec: dict[str, Any] = context.get_input()
    gc = spec["gc"]
    due = next_weekly(gc["day"], gc["at"], gc["timeZone"], now(context))
    context.set_custom_status(
        {"phase": "sleeping", "next": iso(due), "mode": gc["mode"], "fingerprint": spec["fingerprint"]}
    )
    yield context.create_timer(due)
    kind = "window" if gc["mode"] == "weekend-window" else "check"
    if kind == "check" or gc.get("enforce", True):
        child = gc_instance_id(kind, due.strftime("%Y%m%dT%H%MZ"))
        context.set_custom_status(
            {"phase": "running", "instance": child, "mode": gc["mode"], "fingerprint": spec["fingerprint"]}
        )
        try:
            yield context.call_sub_orchestrator(f"gc_{kind}", spec, child)
        except Exception as err:  # the next week must still come; the child reports its own failure
            context.set_custom_status(
                {"phase": "lastRunFailed", "error": str(err)[:300], "fingerprint": spec["fingerprint"]}
            )
    context.continue_as_new(spec)
    return None


@bp.orchestration_trigger(context_name="context")
def gc_check(context: df.DurableOrchestrationContext):
    """``weekly-policy``: inspect every VM (bounded fan-out), raise GcOverdue and
    RestorePointsNearLimit with what was found and what to do, optionally resume protection."""
    spec: dict[str, Any] = context.get_input()
    gc = spec["gc"]
    targets = [tuple(t) for t in spec["targets"]]
    results: list[dict[str, Any]] = []
    stamp = iso(now(context))
    for start in range(0, len(targets), int(gc.get("maxParallel", 10))):
        batch = targets[start : start + int(gc.get("maxParallel", 10))]
        context.set_custom_status({"phase": "inspecting", "done": len(results), "total": len(targets)})
        inspections = yield context.task_all(
            [
                context.call_activity_with_retry(
                    "inspect_protection", AZURE_RETRY, {"vaultId": vault, "vmId": vm, "now": stamp}
                )
                for vault, vm in batch
            ]
        )
        results.extend(inspections)
    events: list[dict[str, Any]] = []
    report = []
    for (vault, vm), inspection in zip(targets, results, strict=True):
        if not inspection["ok"]:
            report.append({"vmId": vm, "vaultId": vault, "error": inspection["error"]})
            continue
        findings = assess(inspection, now(context), int(gc.get("nearLimitThreshold", 15)))
        remediated = False
        if gc.get("remediate") and not protection_on(inspection.get("protectionState")):
            fixed = yield context.call_activity_with_retry(
                "set_protection", AZURE_RETRY, {"vaultId": vault, "vmId": vm, "on": True, "policy": gc["policy"]}
            )
            remediated = bool(fixed.get("ok"))
        for finding in findings:
            events.append(
                _event(
                    context,
                    spec,
                    finding.kind,
                    vm,
                    vault,
                    finding=finding.code,
                    reason=finding.reason,
                    advice=finding.advice,
                    protectionState=inspection.get("protectionState"),
                    lastScheduledJob=inspection.get("lastScheduledJob"),
                    instantSnapshots=inspection.get("instantSnapshots"),
                    remediated=remediated,
                )
            )
        report.append(
            {
                **{
                    k: inspection.get(k)
                    for k in (
                        "vmId",
                        "vaultId",
                        "protectionState",
                        "policy",
                        "lastScheduledJob",
                        "restorePoints",
                        "instantSnapshots",
                    )
                },
                "findings": [f.to_dict() for f in findings],
                "remediated": remediated,
            }
        )
    if events:
        yield publish(context, events)
    context.set_custom_status({"phase": "completed", "checked": len(report), "findings": len(events)})
    return {"kind": "check", "at": stamp, "vms": report}


@bp.orchestration_trigger(context_name="context")
def gc_window(context: df.DurableOrchestrationContext):
    """``weekend-window``: resume protection on every VM, hold it for ``windowHours`` so GC runs,
    then give the leases back; protection stops only where no backup still holds it."""
    spec: dict[str, Any] = context.get_input()
    gc = spec["gc"]
    targets = [tuple(t) for t in spec["targets"]]
    opened_at = now(context)
    closes = after(context, float(gc["windowHours"]) * 3600)
    context.set_custom_status({"phase": "opening", "closesAt": iso(closes)})
    for vault, vm in targets:
        yield from acquire(context, vault, vm, gc["policy"], "window")
    yield publish(
        context,
        [
            _event(
                context,
                spec,
                "GcWindowOpened",
                None,
                None,
                vms=[vm for _, vm in targets],
                openedAt=iso(opened_at),
                closesAt=iso(closes),
            )
        ],
    )
    context.set_custom_status({"phase": "open", "closesAt": iso(closes)})
    yield context.create_timer(closes)
    stopped: list[str] = []
    kept_on: list[str] = []
    for vault, vm in targets:
        was_last = yield from release(context, vault, vm, gc["policy"])
        (stopped if was_last else kept_on).append(vm)
    yield publish(
        context,
        [
            _event(
                context,
                spec,
                "GcWindowClosed",
                None,
                None,
                stopped=stopped,
                keptOnForRunningBackups=kept_on,
                closedAt=iso(now(context)),
            )
        ],
    )
    context.set_custom_status({"phase": "closed", "stopped": len(stopped), "keptOn": len(kept_on)})
    return {"kind": "window", "openedAt": iso(opened_at), "stopped": stopped, "keptOn": kept_on}


@bp.orchestration_trigger(context_name="context")
def lease_reclaim(context: df.DurableOrchestrationContext):
    """Free the lease of a holder that crashed or was terminated (started by the sweeper)."""
    spec: dict[str, Any] = context.get_input()
    stopped = yield from release(
        context, spec["vaultId"], spec["vmId"], spec["policy"], holder=spec["holder"], op="reclaim"
    )
    return {"holder": spec["holder"], "stoppedProtection": stopped}
