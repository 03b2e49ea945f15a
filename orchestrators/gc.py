"""GC enforcement orchestrations: the weekly scheduler, the ``weekly-policy`` check, the
``weekend-window`` window, and reclaiming leases of holders that died (docs/gc.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import azure.durable_functions as df

from activities.protection import inspect_protection
from backup_chain.errors import ErrorDict, retries_exhausted
from backup_chain.events import gc_cloud_event
from backup_chain.gc import assess, next_weekly, protection_on
from backup_chain.ids import gc_due_instance_id
from backup_chain.messages import (
    GcCheckOutput,
    GcInput,
    GcWindowOutput,
    InspectionResult,
    InspectRequest,
    ReclaimInput,
    ReclaimOutput,
)
from backup_chain.stop_findings import stop_finding
from orchestrators.common import AZURE_RETRY, after, iso, now, publish
from orchestrators.membership import gc_members
from orchestrators.protection import acquire, release, set_protection

bp = df.Blueprint()


def _event(
    context: df.DurableOrchestrationContext,
    spec: Mapping[str, Any],
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
    spec: GcInput = context.get_input()
    gc = spec["gc"]
    due = next_weekly(gc["day"], gc["at"], gc["timeZone"], now(context))
    context.set_custom_status(
        {"phase": "sleeping", "next": iso(due), "mode": gc["mode"], "fingerprint": spec["fingerprint"]}
    )
    yield context.create_timer(due)
    kind = "window" if gc["mode"] == "weekend-window" else "check"
    if kind == "check" or gc.get("enforce", True):
        child = gc_due_instance_id(kind, due)
        context.set_custom_status(
            {"phase": "running", "instance": child, "mode": gc["mode"], "fingerprint": spec["fingerprint"]}
        )
        try:
            yield context.call_sub_orchestrator(gc_check if kind == "check" else gc_window, spec, child)
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
    spec: GcInput = context.get_input()
    gc = spec["gc"]
    targets, unread = yield from gc_members(context, spec)
    results: list[InspectionResult] = []
    stamp = iso(now(context))
    for start in range(0, len(targets), int(gc.get("maxParallel", 10))):
        batch = targets[start : start + int(gc.get("maxParallel", 10))]
        context.set_custom_status({"phase": "inspecting", "done": len(results), "total": len(targets)})
        try:
            inspections = yield context.task_all([_inspect(context, vault, vm, stamp) for vault, vm in batch])
        except Exception:  # one VM's reads kept failing beyond the retries: find out which, VM by VM
            inspections = []
            for vault, vm in batch:
                try:
                    inspections.append((yield _inspect(context, vault, vm, stamp)))
                except Exception as err:
                    inspections.append({"ok": False, "error": retries_exhausted(str(err))})
        results.extend(inspections)
    events: list[dict[str, Any]] = _unread_selections(context, spec, unread)
    report: list[dict[str, Any]] = []
    for (vault, vm), inspection in zip(targets, results, strict=True):
        if not inspection["ok"]:
            report.append({"vmId": vm, "vaultId": vault, "error": inspection["error"]})
            failure = _vm_failure(vault, vm, inspection["error"])
            events.append(_event(context, spec, "GcCheckFailed", vm, vault, **_failure_data(failure)))
            continue
        findings = assess(inspection, now(context), int(gc.get("nearLimitThreshold", 15)))
        remediated = False
        remediation: dict[str, Any] | None = None
        if gc.get("remediate") and not protection_on(inspection.get("protectionState")):
            fixed = yield from set_protection(context, vault, vm, gc["policy"], on=True)
            remediated = bool(fixed.get("ok"))
            remediation = (
                {"resumed": True} if remediated else {"resumed": False, **_vm_failure(vault, vm, fixed["error"])}
            )
            if not remediated:
                events.append(
                    _event(context, spec, "GcResumeFailed", vm, vault, **_failure_data(remediation), window=False)
                )
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
                    remediation=remediation,
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
                "remediation": remediation,
            }
        )
    if events:
        yield publish(context, events)
    context.set_custom_status({"phase": "completed", "checked": len(report), "findings": len(events)})
    output: GcCheckOutput = {"kind": "check", "at": stamp, "vms": report}
    if unread:
        output["selectionsFailed"] = unread
    return output


def _inspect(context: df.DurableOrchestrationContext, vault: str, vm: str, stamp: str) -> Any:
    request: InspectRequest = {"vaultId": vault, "vmId": vm, "now": stamp}
    return context.call_activity_with_retry(inspect_protection, AZURE_RETRY, request)


@bp.orchestration_trigger(context_name="context")
def gc_window(context: df.DurableOrchestrationContext):
    """``weekend-window``: resume protection on every VM, hold it for ``windowHours`` so GC runs,
    then give the leases back; protection stops only where no backup still holds it."""
    spec: GcInput = context.get_input()
    gc = spec["gc"]
    targets, unread = yield from gc_members(context, spec)
    opened_at = now(context)
    closes = after(context, float(gc["windowHours"]) * 3600)
    context.set_custom_status({"phase": "opening", "closesAt": iso(closes)})
    opened: list[tuple[str, str]] = []
    failed: list[dict[str, Any]] = []
    for vault, vm in targets:
        result = yield from acquire(context, vault, vm, gc["policy"], "window")
        if result.get("ok"):
            opened.append((vault, vm))
        else:
            failed.append(_vm_failure(vault, vm, result["error"]))
    # GcWindowOpened lists only VMs whose protection is on; each VM whose resume Azure refused
    # also gets its own GcResumeFailed (an operator alerts on that type).
    yield publish(
        context,
        [
            _event(
                context,
                spec,
                "GcWindowOpened",
                None,
                None,
                vms=[vm for _, vm in opened],
                failed=failed,
                openedAt=iso(opened_at),
                closesAt=iso(closes),
            ),
            *[
                _event(context, spec, "GcResumeFailed", f["vmId"], f["vaultId"], **_failure_data(f), window=True)
                for f in failed
            ],
            *_unread_selections(context, spec, unread),
        ],
    )
    context.set_custom_status({"phase": "open", "closesAt": iso(closes), "opened": len(opened), "failed": len(failed)})
    yield context.create_timer(closes)
    stopped: list[str] = []
    kept_on: list[str] = []
    stop_failed: list[dict[str, Any]] = []
    for vault, vm in opened:
        released = yield from release(context, vault, vm, gc["policy"])
        if released["error"] is not None:
            failure = _vm_failure(vault, vm, released["error"])
            stop_failed.append({**failure, **stop_finding(failure["errorCode"], failure["message"]).to_dict()})
        else:
            (stopped if released["stopped"] else kept_on).append(vm)
    # GcWindowClosed says which stops failed and why; each also gets its own GcStopFailed (a finding
    # an operator alerts on and acts on: protection is still on).
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
                stopFailed=stop_failed,
                closedAt=iso(now(context)),
            ),
            *[_stop_failed_event(context, spec, f) for f in stop_failed],
        ],
    )
    context.set_custom_status(
        {"phase": "closed", "stopped": len(stopped), "keptOn": len(kept_on), "stopFailed": len(stop_failed)}
    )
    output: GcWindowOutput = {
        "kind": "window",
        "openedAt": iso(opened_at),
        "vms": [{"vmId": vm, "vaultId": vault, "resumed": True} for vault, vm in opened]
        + [{**f, "resumed": False} for f in failed],
        "stopped": stopped,
        "keptOn": kept_on,
        "stopFailed": stop_failed,
    }
    if unread:
        output["selectionsFailed"] = unread
    return output


def _unread_selections(
    context: df.DurableOrchestrationContext, spec: Mapping[str, Any], unread: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One GcMembershipUnreadable for the selections whose members could not be read: GC did not
    cover them this time (docs/gc.md). Its own type: GcCheckFailed v1 promises a VM (docs/events.md,
    Versioning)."""
    if not unread:
        return []
    first = unread[0]
    return [
        _event(
            context,
            spec,
            "GcMembershipUnreadable",
            None,
            None,
            errorCode=first["errorCode"],
            message=f"the VMs of {len(unread)} selecting target(s) could not be read; GC did not cover them: "
            + "; ".join(f"{u['vaultId']}: {u['errorCode']}: {u['message']}" for u in unread)[:2000],
            selectionsFailed=unread,
        )
    ]


def _stop_failed_event(
    context: df.DurableOrchestrationContext, spec: Mapping[str, Any], f: dict[str, Any]
) -> dict[str, Any]:
    """GcStopFailed: a stop Azure refused, so protection is still on (docs/operations.md)."""
    return _event(
        context,
        spec,
        "GcStopFailed",
        f["vmId"],
        f["vaultId"],
        finding=f["finding"],
        errorCode=f["errorCode"],
        message=f["message"],
        reason=f["reason"],
        recommendations=f["recommendations"],
        protectionState="on",
    )


def _vm_failure(vault: str, vm: str, error: ErrorDict) -> dict[str, Any]:
    """Per VM, what Azure answered: its code and message."""
    return {"vmId": vm, "vaultId": vault, "errorCode": error.get("code"), "message": error.get("message")}


def _failure_data(failure: dict[str, Any]) -> dict[str, Any]:
    return {"errorCode": failure["errorCode"], "message": failure["message"]}


@bp.orchestration_trigger(context_name="context")
def lease_reclaim(context: df.DurableOrchestrationContext):
    """Free the lease of a holder that crashed or was terminated (started by the sweeper). Input:
    ``vaultId``, ``vmId``, ``holder``, ``policy``, and ``prefix``/``source`` for its events."""
    spec: ReclaimInput = context.get_input()
    released = yield from release(
        context, spec["vaultId"], spec["vmId"], spec["policy"], holder=spec["holder"], op="reclaim"
    )
    if released["error"] is not None:
        # The window that held this lease is gone, so this is the only place the refusal is seen.
        failure = _vm_failure(spec["vaultId"], spec["vmId"], released["error"])
        failure.update(stop_finding(failure["errorCode"], failure["message"]).to_dict())
        yield publish(context, [_stop_failed_event(context, spec, failure)])
    output: ReclaimOutput = {
        "holder": spec["holder"],
        "stoppedProtection": released["stopped"],
        "error": released["error"],
    }
    return output
