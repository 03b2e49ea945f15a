"""``GET /api/chains`` (each configured chain: its VMs, window and next window, GC coverage,
whether it is paused, last run) and ``GET /api/chains/{chain}/runs/{runId}/events`` (the
downstream events a run published, each with its delivery state)."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
import azure.functions as func

from app_runtime import config
from backup_chain.api_models import RequestError
from backup_chain.chain_control import ChainControl
from backup_chain.chain_view import next_window_view
from backup_chain.config import Chain, ChainConfig
from backup_chain.delivery import delivery_outcome
from backup_chain.ids import (
    chain_instance_id,
    chain_prefix,
    outbox_run_key,
    scheduler_instance_id,
    vm_run_prefix,
)
from backup_chain.run_events import announced_snapshot, listing, published
from entities.chain_control import read_control
from entities.delivery_outbox import outbox_entity
from triggers.http_api import existing_run, ok, problem, refusal, run_vm_statuses
from triggers.instance_query import list_instances
from triggers.kept import kept_keys, outbox_summary
from triggers.runs import UNKNOWN_CREATED, run_view

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
VMS_LISTED = 10  # a chain with more VMs lists their ids only when asked (?vms=true)


def _gc_view(cfg: ChainConfig, chain: Chain) -> dict[str, Any] | None:
    if cfg.gc is None:
        return None
    covered = {vm.lower() for _, vm in cfg.gc_targets()}
    return {"mode": cfg.gc.mode, "covered": sum(1 for _, vm in chain.vm_ids() if vm.lower() in covered)}


async def _last_run(client: df.DurableOrchestrationClient, chain: Chain, kept: set[str]) -> dict[str, Any] | None:
    statuses = await list_instances(client, instance_id_prefix=chain_prefix(chain.name))
    if not statuses:
        return None
    run = run_view(max(statuses, key=lambda s: s.created_time or UNKNOWN_CREATED))
    key = outbox_run_key(chain.name, run["runId"])
    if key in kept:  # as in the runs list: kept events keep a run from reporting plain "completed"
        run["outcome"], run["delivery"] = delivery_outcome(run["outcome"], await outbox_summary(client, key))
    return run


def _pause_view(control: ChainControl) -> dict[str, Any]:
    """``paused``, and ``pause`` (since, reason, by) while paused (triggers/control.py)."""
    return {"paused": control.paused, "pause": control.pause_view()}


@bp.route(route="chains", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def list_chains(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    show_vms = req.params.get("vms", "").lower()
    if show_vms not in ("", "true", "false"):
        return problem(400, "Bad request", "vms must be 'true' or 'false'", "vms")
    cfg = config()
    kept = set(await kept_keys(client))
    chains = []
    for chain in cfg.chains:
        scheduler = await client.get_status(scheduler_instance_id(chain.name)) if chain.window else None
        custom = scheduler.custom_status if scheduler and isinstance(scheduler.custom_status, dict) else {}
        vm_ids = [vm for _, vm in chain.vm_ids()]
        listed = show_vms == "true" or (show_vms == "" and len(vm_ids) <= VMS_LISTED)
        chains.append(
            {
                "name": chain.name,
                "vmCount": len(vm_ids),
                "vaults": sorted({vault for vault, _ in chain.vm_ids()}),
                "vms": vm_ids if listed else None,
                "upstream": chain.upstream.model_dump(mode="json") if chain.upstream else None,
                "window": chain.window,
                **next_window_view(chain.window, custom, scheduler.last_updated_time if scheduler else None),
                "gc": _gc_view(cfg, chain),
                **_pause_view(await read_control(client, chain.name)),
                "lastRun": await _last_run(client, chain, kept),
            }
        )
    return ok({"chains": chains})


@bp.route(route="chains/{chain}/runs/{run_id}/events", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def list_run_events(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        chain, run_id, status = await existing_run(req, client, show_input=True)
    except RequestError as err:
        return refusal(err)
    found: list[tuple[dict[str, Any], bool]] = []
    # The chain's and every VM backup's, batch's and job watcher's history (one prefix per run).
    owners = [chain_instance_id(chain.name, run_id)]
    owners += [
        str(s.instance_id) for s in await list_instances(client, instance_id_prefix=vm_run_prefix(chain.name, run_id))
    ]
    for instance_id in owners:
        full = await client.get_status(instance_id, show_history=True, show_history_output=True)
        # The status API's key is "historyEvents"; SDK 1.x keeps it as an attribute of that name.
        found.extend(published(getattr(full, "historyEvents", None) or full.history or []))
    snapshots = []
    for _, vm_id, _, custom in await run_vm_statuses(client, chain, run_id, status):
        snapshot = announced_snapshot(
            prefix=config().eventTypePrefix,
            chain=chain.name,
            run_id=run_id,
            vm_id=vm_id,
            vm_status=custom,
        )
        if snapshot is not None:
            snapshots.append(snapshot)
    outbox = await client.read_entity_state(outbox_entity(outbox_run_key(chain.name, run_id)))
    state = outbox.entity_state if outbox and outbox.entity_exists and isinstance(outbox.entity_state, dict) else None
    return ok({"chain": chain.name, "runId": run_id, "events": listing(found, snapshots, state)})
