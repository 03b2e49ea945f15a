"""Starting chain runs and reading them back, shared by the HTTP API, the upstream trigger and
the window timer (all idempotent: deterministic instance ids, nothing started twice)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

import azure.durable_functions as df

from app_runtime import ACTIVE, config, source
from backup_chain.config import Chain
from backup_chain.ids import chain_instance_id, chain_prefix, run_id_of
from backup_chain.messages import UpstreamSignal
from backup_chain.runs import run_input
from triggers.instance_query import list_instances

log = logging.getLogger("backup_chain")


# Sorts an instance whose created time is unknown as the newest, without reading a clock: on
# devhost the Durable clock is virtual, so the wall clock's now is no stand-in for it.
UNKNOWN_CREATED = datetime.max.replace(tzinfo=timezone.utc)


def utcnow() -> datetime:
    """The wall clock, for names and notes only (ids, a cancel request's stamp); never compare it
    with Durable times (created_time, timers), which follow the host's clock."""
    return datetime.now(timezone.utc)


def input_of(status: Any) -> dict[str, Any]:
    """A run's input (``show_input``), ``{}`` when absent or unreadable."""
    spec = status.input_
    if isinstance(spec, str):  # the status API may hand the input back as JSON text
        try:
            spec = json.loads(spec)
        except ValueError:
            spec = None
    return spec if isinstance(spec, dict) else {}


async def start_run(
    client: df.DurableOrchestrationClient,
    chain: Chain,
    run_id: str,
    *,
    started_by: str,
    wait_for_upstream: bool,
    upstream: UpstreamSignal | None,
    vms: list[str] | None = None,
) -> tuple[bool, str]:
    """Start ``chain``'s run ``run_id`` unless it exists; returns (started, instance id)."""
    instance_id = chain_instance_id(chain.name, run_id)
    existing = await client.get_status(instance_id)
    if existing:
        return False, instance_id
    payload = run_input(
        config(),
        chain,
        run_id,
        source=source(),
        started_by=started_by,  # type: ignore[arg-type]
        wait_for_upstream=wait_for_upstream,
        upstream=upstream,
    )
    if vms is not None:
        keep = {v.lower() for v in vms}
        targets = []
        for target in payload["chain"]["targets"]:
            chosen = [vm for vm in target["vms"] if vm.lower() in keep]
            if chosen:
                targets.append({**target, "vms": chosen})
        payload["chain"]["targets"] = targets
    try:
        await client.start_new("chain_run", instance_id, payload)
    except Exception as err:  # a concurrent start of the same run won the race
        if await client.get_status(instance_id):
            return False, instance_id
        raise RuntimeError(f"could not start {instance_id}: {err}") from err
    log.info("chain run started", extra={"chain": chain.name, "runId": run_id, "startedBy": started_by})
    return True, instance_id


# Phases a run passes through before it reaches its upstream wait (None: not yet run at all).
_BEFORE_WAIT = (None, "starting", "started")


async def awaits_upstream(client: df.DurableOrchestrationClient, status: Any) -> bool:
    """Is this chain run waiting for its upstream signal, or about to? A run started with
    ``waitForUpstream`` is Pending until its first episode and then publishes ChainStarted before
    it waits; a signal raised meanwhile is kept by Durable until the run waits for it, so it must
    not be refused (or, for an Event Grid event, start a second run) in that moment."""
    if status is None or status.runtime_status not in ACTIVE:
        return False
    custom = status.custom_status if isinstance(status.custom_status, dict) else {}
    phase = custom.get("phase")
    if phase == "waitingForUpstream":
        return True
    if phase not in _BEFORE_WAIT:
        return False
    full = await client.get_status(status.instance_id, show_input=True)
    payload = full.input_ if full else None
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except json.JSONDecodeError:
            return False
    return isinstance(payload, dict) and bool(payload.get("waitForUpstream"))


async def waiting_run(client: df.DurableOrchestrationClient, chain: Chain) -> str | None:
    """The newest run of ``chain`` that is waiting (or about to wait) for its upstream signal."""
    statuses = await list_instances(client, runtime_status=list(ACTIVE), instance_id_prefix=chain_prefix(chain.name))
    waiting = [s for s in statuses if await awaits_upstream(client, s)]
    waiting.sort(key=lambda s: s.created_time or UNKNOWN_CREATED)
    return waiting[-1].instance_id if waiting else None


def run_view(status: Any) -> dict[str, Any]:
    custom = status.custom_status if isinstance(status.custom_status, dict) else {}
    return {
        "instanceId": status.instance_id,
        "runId": custom.get("runId") or run_id_of(str(status.instance_id)),
        "runtimeStatus": status.runtime_status.value if status.runtime_status else None,
        "phase": custom.get("phase"),
        "outcome": custom.get("outcome"),
        "counts": custom.get("counts"),
        "createdTime": status.created_time.isoformat() if status.created_time else None,
        "lastUpdatedTime": status.last_updated_time.isoformat() if status.last_updated_time else None,
    }
