"""Keeping a singleton orchestration (a scheduler, a vault's poller) running with the current
configuration: started when missing, terminated when its configuration changed (and started again
on the next call, once the termination has been processed)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import azure.durable_functions as df

from app_runtime import ACTIVE

log = logging.getLogger("backup_chain")


async def keep_running(
    client: df.DurableOrchestrationClient, instance_id: str, orchestrator: str, spec: Mapping[str, Any]
) -> Literal["running", "restarting", "started"]:
    """``spec`` is the orchestration's input and carries a ``fingerprint`` of its configuration,
    which the orchestration echoes in its custom status."""
    status = await client.get_status(instance_id)
    if status and status.runtime_status in ACTIVE:
        current = status.custom_status if isinstance(status.custom_status, dict) else {}
        # No fingerprint yet: started a moment ago and not yet run (its input is the current one).
        if current.get("fingerprint") in (None, spec["fingerprint"]):
            return "running"
        await client.terminate(instance_id, "configuration changed")
        log.info("restarting %s (%s): configuration changed", instance_id, orchestrator)
        return "restarting"
    try:
        await client.start_new(orchestrator, instance_id, spec)
    except Exception:
        # A concurrent caller started it first (Durable refuses a second running instance).
        again = await client.get_status(instance_id)
        if again and again.runtime_status in ACTIVE:
            return "running"
        raise
    log.info("%s started (%s)", instance_id, orchestrator)
    return "started"
