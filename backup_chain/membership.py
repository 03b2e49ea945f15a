"""Which VMs a target backs up in one run (docs/design.md, "Membership"): its explicit ``vms``,
the VMs its ``select`` chooses (Resource Graph for resource groups and tags, the vault's protected
items for ``protectedInVault``), minus ``exclude``; of those only the VMs protected in the
target's vault are members, every other one is reported ``notProtected``. Pure: the activity
(activities/membership.py) brings Azure's answers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from backup_chain.config import TAG_ANY

NOT_PROTECTED = "notProtected"
NOT_PROTECTED_CODE = "VmNotProtectedInVault"
# How a member was chosen: listed in ``vms``, chosen by ``select``, or named by the run's input.
EXPLICIT, SELECTED, RETRY = "explicit", "selected", "retry"
VM_TYPE = "microsoft.compute/virtualmachines"


def kql_string(value: str) -> str:
    """``value`` as a KQL string literal: single quotes, with backslash and quote escaped
    (learn.microsoft.com/kusto/query/scalar-data-types/string, "Escaping")."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def resource_graph_query(select: Mapping[str, Any]) -> str:
    """The one Resource Graph query for a target's resource groups and tags (its subscription is
    the request's scope). The emulator parses exactly these lines (emulators/README.md); a tag
    whose value is ``*`` or null matches any value, as long as the VM carries the tag."""
    lines = ["Resources", f"| where type =~ {kql_string(VM_TYPE)}"]
    groups = select.get("resourceGroups") or []
    if groups:
        lines.append(f"| where resourceGroup in~ ({', '.join(kql_string(g) for g in groups)})")
    for name, value in sorted((select.get("tags") or {}).items()):
        if value is None or value == TAG_ANY:
            lines.append(f"| where isnotnull(tags[{kql_string(name)}])")
        else:
            lines.append(f"| where tags[{kql_string(name)}] =~ {kql_string(value)}")
    lines += ["| project id", "| order by id asc"]
    return "\n".join(lines)


def resolve_target(
    target: Mapping[str, Any],
    graph_vms: Iterable[str] | None,
    vault_items: Mapping[str, str | None] | None,
) -> dict[str, Any]:
    """A target's members and its report. ``graph_vms``: the VM ids Resource Graph returned (None
    when the target chose none by group or tag); ``vault_items``: VM id (lower case) → policy name
    of every VM with a protected item in the vault, any protection state (None when the vault was
    not read: a target of explicit ids only, tried as before). Every criterion given must match."""
    select = target.get("select") or {}
    chosen: dict[str, tuple[str, str]] = {}  # lower id → (id, how)
    picked: list[str] | None = None
    if graph_vms is not None:
        picked = list(graph_vms)
    if select.get("protectedInVault") and vault_items is not None:
        policies = {p.lower() for p in select.get("policies") or []}
        in_vault = [vm for vm, policy in vault_items.items() if not policies or (policy or "").lower() in policies]
        if picked is None:
            picked = in_vault
        else:
            keep = set(in_vault)
            picked = [vm for vm in picked if vm.lower() in keep]
    for vm in picked or []:
        chosen.setdefault(vm.lower(), (vm, SELECTED))
    for vm in target.get("vms") or []:
        chosen[vm.lower()] = (vm, EXPLICIT)  # listed by hand: said so, even when selected too
    excluded = {vm.lower() for vm in target.get("exclude") or []} & set(chosen)
    members: list[list[str]] = []
    not_protected: list[list[str]] = []
    for key, (vm, how) in chosen.items():
        if key in excluded:
            continue
        if vault_items is not None and key not in vault_items:
            not_protected.append([vm, how])
        else:
            members.append([vm, how])
    counts = {
        EXPLICIT: sum(1 for _, how in chosen.values() if how == EXPLICIT),
        SELECTED: sum(1 for _, how in chosen.values() if how == SELECTED),
        "excluded": len(excluded),
        NOT_PROTECTED: len(not_protected),
        "members": len(members),
    }
    return {"members": members, "notProtected": not_protected, "counts": counts}


def not_protected_result(vm_id: str, vault_id: str) -> dict[str, Any]:
    """The outcome of a chosen VM without a protected item in the target's vault: never triggered."""
    return {
        "vmId": vm_id,
        "outcome": NOT_PROTECTED,
        "errorCode": NOT_PROTECTED_CODE,
        "message": f"VM {vm_id} is not protected in vault {vault_id}; it was not backed up. Protect it in that "
        "vault (Azure Backup: Enable backup) or remove it from the target's selection",
    }
