"""A job-watch board entry as ``vm_backup`` registers it (``backup_chain.job_watch.Watch`` JSON),
for the board's unit tests."""

from __future__ import annotations

from typing import Any

from backup_chain.polling import PollPlan
from tests.support.resource_ids import vm

PLAN = PollPlan.for_minutes(6, 8)  # dense from 330 s to 510 s, every 5 s


def board_watch(
    key: str, vm_name: str | None = None, until: str = "snapshot", anchor: float = 0.0, plan: PollPlan = PLAN
) -> dict[str, Any]:
    """``vm_name``: the VM a snapshot watch announces (None: no announce)."""
    announce = None if vm_name is None else {"chain": "c", "runId": "r", "vmId": vm(vm_name), "vaultId": "/v"}
    return {
        "key": key,
        "owner": f"vm:{key}",
        "event": f"job:{until}",
        "vaultId": "/v",
        "jobId": f"job-{key}",
        "until": until,
        "anchor": anchor,
        "plan": plan.to_dict(),
        "announce": announce,
    }
