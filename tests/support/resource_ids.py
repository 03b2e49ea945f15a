"""Azure resource ids for configuration tests (two subscriptions, fixed resource groups)."""

from __future__ import annotations

SUB = "00000000-0000-0000-0000-0000000000aa"
OTHER_SUB = "11111111-2222-3333-4444-555555555555"


def vault(name: str = "v1", sub: str = SUB) -> str:
    return f"/subscriptions/{sub}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/{name}"


def vm(name: str, sub: str = SUB) -> str:
    return f"/subscriptions/{sub}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/{name}"
