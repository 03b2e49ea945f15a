"""Taking and giving back a protected item's protection lease (weekend-window mode), as
generator helpers for orchestrators: the lease entity decides, the caller does the I/O."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from backup_chain.ids import vm_hash
from orchestrators.common import AZURE_RETRY, after, iso, now

WAIT_SECONDS = 30.0
MAX_WAITS = 240  # two hours of waiting for another holder's transition


def lease_entity(vm_id: str) -> df.EntityId:
    return df.EntityId("protection_lease", vm_hash(vm_id))


def acquire(
    context: df.DurableOrchestrationContext, vault_id: str, vm_id: str, policy: str, kind: str
) -> Generator[Any, Any, dict[str, Any]]:
    """Hold the lease; resume protection if this holder is the first. Returns the set_protection
    result (or ``{"ok": True}`` when protection was already held on)."""
    entity = lease_entity(vm_id)
    args = {"holder": context.instance_id, "kind": kind, "item": {"vaultId": vault_id, "vmId": vm_id}}
    for _ in range(MAX_WAITS):
        decision = yield context.call_entity(entity, "acquire", {**args, "at": iso(now(context))})
        if decision["action"] == "wait":
            yield context.create_timer(after(context, WAIT_SECONDS))
            continue
        if decision["action"] == "granted":
            return {"ok": True, "changed": False}
        result = yield context.call_activity_with_retry(
            "set_protection", AZURE_RETRY, {"vaultId": vault_id, "vmId": vm_id, "on": True, "policy": policy}
        )
        yield context.call_entity(entity, "started", {"holder": context.instance_id})
        return dict(result)
    return {
        "ok": False,
        "error": {
            "kind": "final",
            "code": "LeaseBusy",
            "message": "protection lease stayed busy",
            "recommendations": [],
        },
    }


def release(
    context: df.DurableOrchestrationContext,
    vault_id: str,
    vm_id: str,
    policy: str,
    *,
    holder: str | None = None,
    op: str = "release",
) -> Generator[Any, Any, bool]:
    """Give the lease back (``op="reclaim"`` with another ``holder``: on behalf of a holder that
    died); stop protection, keeping its data, if no holder is left. Returns whether it stopped."""
    entity = lease_entity(vm_id)
    decision = yield context.call_entity(
        entity, op, {"holder": holder or context.instance_id, "by": context.instance_id}
    )
    if decision["action"] != "stop":
        return False
    yield context.call_activity_with_retry(
        "set_protection", AZURE_RETRY, {"vaultId": vault_id, "vmId": vm_id, "on": False, "policy": policy}
    )
    yield context.call_entity(entity, "stopped", {"holder": context.instance_id})
    return True
