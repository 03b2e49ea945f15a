"""A run's members, decided once at its start (docs/design.md, "Membership"): explicit targets as
configured, targets with a ``select`` through ``resolve_members`` (one activity per target, with
retry), or exactly the ``vms`` the run's input names (a retry, ``retryOf``)."""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import azure.durable_functions as df

from activities.membership import resolve_members
from backup_chain.errors import retries_exhausted
from backup_chain.membership import EXPLICIT, NOT_PROTECTED, RETRY, SELECTED, not_protected_result
from backup_chain.messages import ResolveMembersResult
from orchestrators.common import AZURE_RETRY

# Members listed in the run's custom status while it runs (Azure caps custom status at 16 KB);
# a larger run lists them in its output only. The per-target counts get their own budget (a chain
# of many targets with long selectors shows the totals only; ChainStarted has them all).
STATUS_MEMBERS_BYTES = 8 * 1024
STATUS_RECORD_BYTES = 4 * 1024


@dataclass
class Membership:
    """``targets``: (vault id, VM id) to back up, in order; ``listed``: [vault id, VM id, how] of
    every member; ``record``: what ChainStarted and the run say about it (counts per target);
    ``unprotected``: the result of each chosen VM not protected in its vault (never triggered);
    ``failed``: whether a target's membership could not be read (the run cannot be complete)."""

    targets: list[tuple[str, str]] = field(default_factory=list)
    listed: list[list[str]] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    unprotected: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: bool = False

    def add(self, vault_id: str, vm_id: str, how: str) -> None:
        self.targets.append((vault_id, vm_id))
        self.listed.append([vault_id, vm_id, how])

    def for_status(self) -> dict[str, Any]:
        """The members for the run's custom status while they fit its budget."""
        record = self.record
        if len(json.dumps(record)) > STATUS_RECORD_BYTES:
            record = {k: v for k, v in record.items() if k != "targets"}
        if len(json.dumps(self.listed)) <= STATUS_MEMBERS_BYTES:
            return {"membership": record, "members": self.listed}
        return {"membership": record, "membersListed": False}


def _explicit_counts(target: Mapping[str, Any]) -> dict[str, Any]:
    count = len(target.get("vms") or [])
    return {
        "vaultId": target["vaultId"],
        EXPLICIT: count,
        SELECTED: 0,
        "excluded": 0,
        NOT_PROTECTED: 0,
        "members": count,
    }


def resolve_membership(
    context: df.DurableOrchestrationContext, spec: Mapping[str, Any]
) -> Generator[Any, Any, Membership]:
    found = Membership()
    if spec.get("vms") is not None:
        for vault_id, vm_id in spec["vms"]:
            found.add(vault_id, vm_id, RETRY)
        found.record = {"how": RETRY, "retryOf": spec.get("retryOf"), "members": len(found.targets)}
        return found
    per_target: list[dict[str, Any]] = []
    seen: set[str] = set()  # a VM two targets choose is backed up once, with the first target's vault
    for target in spec["chain"]["targets"]:
        if not target.get("select"):
            for vm_id in target["vms"]:
                if vm_id.lower() not in seen:  # an earlier target chose it: one VM backup per instance id
                    seen.add(vm_id.lower())
                    found.add(target["vaultId"], vm_id, EXPLICIT)
            per_target.append(_explicit_counts(target))
            continue
        try:
            result: ResolveMembersResult = yield context.call_activity_with_retry(
                resolve_members, AZURE_RETRY, {"target": dict(target)}
            )
        except Exception as err:  # Azure kept failing beyond the retries
            result = {"ok": False, "error": retries_exhausted(str(err))}
        selector = {k: v for k, v in target["select"].items() if v not in (None, False)}  # the criteria given
        counts: dict[str, Any] = {"vaultId": target["vaultId"], "selector": selector}
        if not result.get("ok"):
            found.failed = True
            error: Mapping[str, Any] = result.get("error") or {}
            per_target.append({**counts, "error": {"code": error.get("code"), "message": error.get("message")}})
            continue
        for vm_id, how in result.get("members", []):
            if vm_id.lower() not in seen:
                seen.add(vm_id.lower())
                found.add(target["vaultId"], vm_id, how)
        for vm_id, _ in result.get("notProtected", []):
            found.unprotected.setdefault(vm_id, not_protected_result(vm_id, target["vaultId"]))
        per_target.append({**counts, **result.get("counts", {})})
    # Not protected in one target's vault but a member through another's (two vaults selecting
    # the same tag or group): backed up, so never reported notProtected.
    found.unprotected = {vm: r for vm, r in found.unprotected.items() if vm.lower() not in seen}
    found.record = {"how": "configured", "members": len(found.targets), "targets": per_target}
    return found


def gc_members(
    context: df.DurableOrchestrationContext, spec: Mapping[str, Any]
) -> Generator[Any, Any, tuple[list[tuple[str, str]], list[dict[str, Any]]]]:
    """GC's VMs for one check or window, resolved at its start as a chain run resolves them: the
    explicit ``targets`` and the members of every ``selections`` target (a chain target with a
    ``select``; VMs not in the vault are not GC's). Also each selection that could not be read
    ([{vaultId, errorCode, message}])."""
    targets = [(str(vault), str(vm)) for vault, vm in spec["targets"]]
    seen = {vm.lower() for _, vm in targets}
    failed: list[dict[str, Any]] = []
    for target in spec.get("selections") or []:
        try:
            result: ResolveMembersResult = yield context.call_activity_with_retry(
                resolve_members, AZURE_RETRY, {"target": dict(target)}
            )
        except Exception as err:  # Azure kept failing beyond the retries
            result = {"ok": False, "error": retries_exhausted(str(err))}
        if not result.get("ok"):
            error: Mapping[str, Any] = result.get("error") or {}
            failed.append(
                {"vaultId": target["vaultId"], "errorCode": error.get("code"), "message": error.get("message")}
            )
            continue
        for vm_id, _ in result.get("members", []):
            if vm_id.lower() not in seen:
                seen.add(vm_id.lower())
                targets.append((target["vaultId"], vm_id))
    return targets, failed
