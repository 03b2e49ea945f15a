"""Building scenarios and chain configurations for tests that run the app on the local stack."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from demo.stack import SUBSCRIPTION, Stack, vault_id, vm_id

WEEKLY = {
    "name": "weekly",
    "frequency": "Weekly",
    "days": ["Wednesday"],
    "time": "02:00",
    "timeZone": "UTC",
    "retentionDays": 30,
}


def vm(
    name: str,
    *,
    os: str = "Linux",
    snapshot: tuple[float, float] = (6, 8),
    transfer: tuple[float, float] = (30, 40),
    **extra: Any,
) -> dict[str, Any]:
    """A scenario VM in resource group rg-app, protected by the weekly policy."""
    return {
        "name": name,
        "resourceGroup": "rg-app",
        "os": os,
        "powerState": "running",
        "policy": "weekly",
        "protected": True,
        "snapshotMinutes": list(snapshot),
        "transferMinutes": list(transfer),
        **extra,
    }


def scenario(vms: list[dict[str, Any]], *, vault: str = "v1", seed: int = 7, **extra: Any) -> dict[str, Any]:
    return {
        "subscriptionId": SUBSCRIPTION,
        "seed": seed,
        "vaults": [
            {"resourceGroup": "rg-backup", "name": vault, "location": "japaneast", "policies": [WEEKLY], "vms": vms}
        ],
        **extra,
    }


def chain(name: str, vm_names: list[str], *, vault: str = "v1", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "targets": [{"vaultId": vault_id(vault), "vms": [vm_id(n) for n in vm_names]}],
        "snapshotMinutes": [6, 8],
        **extra,
    }


@contextmanager
def running_stack(
    base: Path, scenario_body: dict[str, Any], chains: list[dict[str, Any]], **config: Any
) -> Iterator[Stack]:
    stack = Stack.start(base, scenario_body, {"chains": chains, **config})
    try:
        yield stack
    finally:
        stack.stop()


def types_for(events: list[dict[str, Any]], vm_name: str | None = None) -> list[str]:
    """Event types (without prefix) for one VM, or chain-level events when ``vm_name`` is None."""
    out = []
    for event in events:
        subject = str(event.get("subject", ""))
        if (vm_name is None and subject.startswith("/chains/")) or (vm_name and subject.endswith("/" + vm_name)):
            out.append(str(event["type"]).split(".", 1)[1])
    return out
