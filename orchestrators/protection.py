"""Taking and giving back a protected item's protection lease (weekend-window mode), as
generator helpers for orchestrators: the lease entity decides, the caller does the I/O."""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime
from typing import Any

import azure.durable_functions as df

from activities.protection import set_protection as set_protection_activity
from backup_chain.deadlines import START_WINDOW_CLOSED
from backup_chain.errors import error_dict, retries_exhausted
from backup_chain.messages import LeaseDecision, LeaseReleased, ProtectionResult, SetProtectionRequest
from entities.protection_lease import lease_entity
from orchestrators.common import AZURE_RETRY, after, iso, now

WAIT_SECONDS = 30.0
MAX_WAITS = 240  # two hours of waiting for another holder's transition


def acquire(
    context: df.DurableOrchestrationContext,
    vault_id: str,
    vm_id: str,
    policy: str,
    kind: str,
    *,
    give_up_at: datetime | None = None,
) -> Generator[Any, Any, ProtectionResult]:
    """Hold the lease; resume protection if this holder is the first. Returns the set_protection
    result (or ``{"ok": True}`` when protection was already held on). When Azure refuses the
    resume (or keeps failing beyond the retries) the lease is freed again — protection is still
    off — and the result is ``{"ok": False, "error": ...}`` with Azure's code and message.
    ``give_up_at``: a run's start window closes then; waiting stops there (StartWindowClosed,
    the lease not taken)."""
    entity = lease_entity(vm_id)
    args = {"holder": context.instance_id, "kind": kind, "item": {"vaultId": vault_id, "vmId": vm_id}}
    for _ in range(MAX_WAITS):
        decision: LeaseDecision = yield context.call_entity(entity, "acquire", {**args, "at": iso(now(context))})
        if decision["action"] == "wait":
            if give_up_at is not None and now(context) >= give_up_at:
                closed = f"the start window closed at {iso(give_up_at)} while waiting for the protection lease"
                return {"ok": False, "error": error_dict(START_WINDOW_CLOSED, closed)}
            wake = after(context, WAIT_SECONDS)
            yield context.create_timer(min(wake, give_up_at) if give_up_at is not None else wake)
            continue
        if decision["action"] == "granted":
            return {"ok": True, "changed": False}
        result = yield from set_protection(context, vault_id, vm_id, policy, on=True)
        outcome = "started" if result.get("ok") else "resumeFailed"
        yield context.call_entity(entity, outcome, {"holder": context.instance_id})
        return result
    return {"ok": False, "error": error_dict("LeaseBusy", "protection lease stayed busy")}


def release(
    context: df.DurableOrchestrationContext,
    vault_id: str,
    vm_id: str,
    policy: str | None,
    *,
    holder: str | None = None,
    op: str = "release",
) -> Generator[Any, Any, LeaseReleased]:
    """Give the lease back (``op="reclaim"`` with another ``holder``: on behalf of a holder that
    died); stop protection, keeping its data, if no holder is left. Returns ``{"stopped": bool,
    "error": None | {...}}``; when Azure refuses the stop, protection is still on and so is the
    lease (with no holder), and ``error`` carries Azure's code and message."""
    entity = lease_entity(vm_id)
    decision: LeaseDecision = yield context.call_entity(
        entity, op, {"holder": holder or context.instance_id, "by": context.instance_id}
    )
    if decision["action"] != "stop":
        return {"stopped": False, "error": None}
    result = yield from set_protection(context, vault_id, vm_id, policy, on=False)
    outcome = "stopped" if result.get("ok") else "stopFailed"
    yield context.call_entity(entity, outcome, {"holder": context.instance_id})
    return {"stopped": bool(result.get("ok")), "error": None if result.get("ok") else result["error"]}


def set_protection(
    context: df.DurableOrchestrationContext, vault_id: str, vm_id: str, policy: str | None, *, on: bool
) -> Generator[Any, Any, ProtectionResult]:
    """Resume (``on``) or stop protection; every answer checked: ``{"ok": True, ...}`` or
    ``{"ok": False, "error": {kind, code, message, ...}}``, also when Azure kept failing beyond
    the durable retries."""
    request: SetProtectionRequest = {"vaultId": vault_id, "vmId": vm_id, "on": on, "policy": policy}
    try:
        result: ProtectionResult = yield context.call_activity_with_retry(set_protection_activity, AZURE_RETRY, request)
    except Exception as err:  # retries exhausted: the activity's last TransientAzureError
        return {"ok": False, "error": retries_exhausted(str(err))}
    return result
