"""GC enforcement entry points: the ``gc_weekly`` timer (keeps the weekly scheduler running and
reclaims leases of dead holders), ``GET /api/gc`` and ``POST /api/gc/run``."""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from app_runtime import ACTIVE, config, source
from backup_chain.api_models import RequestError
from backup_chain.config import ChainConfig
from backup_chain.ids import GC_SCHEDULER_ID, gc_manual_instance_id, gc_prefix, reclaim_instance_id
from backup_chain.messages import GcInput, ReclaimInput
from backup_chain.windows import config_fingerprint
from entities.protection_lease import lease_entity
from triggers.http_api import ok, problem
from triggers.instance_query import list_instances
from triggers.runs import UNKNOWN_CREATED, utcnow
from triggers.singletons import keep_running

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("backup_chain")
TERMINAL = (
    df.OrchestrationRuntimeStatus.Completed,
    df.OrchestrationRuntimeStatus.Failed,
    df.OrchestrationRuntimeStatus.Terminated,
    df.OrchestrationRuntimeStatus.Canceled,
)


def gc_input(cfg: ChainConfig) -> GcInput:
    assert cfg.gc is not None
    gc, targets, src = cfg.gc.model_dump(mode="json"), [list(t) for t in cfg.gc_targets()], source()
    body: dict[str, Any] = {"gc": gc, "targets": targets, "prefix": cfg.eventTypePrefix, "source": src}
    selections = cfg.gc_selections()
    if selections:  # VMs chosen at run time: each check or window resolves them (orchestrators/membership.py)
        body["selections"] = selections
    fingerprint = config_fingerprint(body)
    return {**body, "fingerprint": fingerprint}  # type: ignore[typeddict-item]


async def _sweep_leases(client: df.DurableOrchestrationClient, cfg: ChainConfig) -> int:
    """Start a reclaim for every lease holder that is gone (crashed, terminated, purged)."""
    assert cfg.gc is not None
    reclaimed = 0
    for vault, vm in cfg.gc_targets():
        state = await client.read_entity_state(lease_entity(vm))
        if not state.entity_exists or not isinstance(state.entity_state, dict):
            continue
        for holder in list((state.entity_state.get("holders") or {}).keys()):
            holder_status = await client.get_status(holder)
            if holder_status and holder_status.runtime_status not in TERMINAL:
                continue
            reclaim_id = reclaim_instance_id(vm, holder)
            existing = await client.get_status(reclaim_id)
            if existing and existing.runtime_status in ACTIVE:
                continue
            if existing:
                await client.purge_instance_history(reclaim_id)
            reclaim: ReclaimInput = {
                "vaultId": vault,
                "vmId": vm,
                "holder": holder,
                "policy": cfg.gc.policy,
                "prefix": cfg.eventTypePrefix,
                "source": source(),
            }
            await client.start_new("lease_reclaim", reclaim_id, reclaim)
            log.warning("reclaiming protection lease of %s held by %s (holder is gone)", vm, holder)
            reclaimed += 1
    return reclaimed


@bp.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=True)
@bp.durable_client_input(client_name="client")
async def gc_weekly(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    cfg = config()
    if cfg.gc is None:
        return
    await keep_running(client, GC_SCHEDULER_ID, "gc_scheduler", gc_input(cfg))
    if cfg.gc.mode == "weekend-window":
        await _sweep_leases(client, cfg)


@bp.route(route="gc", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def gc_status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Per VM: protection state, last scheduled backup and restore points (from the latest check),
    what the latest window did (resumed, or Azure's code and message), current leases; plus the
    next GC run."""
    cfg = config()
    if cfg.gc is None:
        return problem(404, "Not found", "GC enforcement is not configured (no 'gc' section)", "gc")
    scheduler = await client.get_status(GC_SCHEDULER_ID)
    sched = scheduler.custom_status if scheduler and isinstance(scheduler.custom_status, dict) else {}
    checks = await list_instances(client, instance_id_prefix=gc_prefix("check"))
    latest: dict[str, Any] = {}
    done = [c for c in checks if c.runtime_status == df.OrchestrationRuntimeStatus.Completed and c.output]
    if done:
        # Two checks created in the same instant: the one that checked later, else started later
        # (manual instance ids carry the wall-clock start), is the newest.
        newest = max(
            done, key=lambda c: (c.created_time or UNKNOWN_CREATED, str(c.output.get("at")), str(c.instance_id))
        )
        latest = {v["vmId"].lower(): {**v, "checkedAt": newest.output.get("at")} for v in newest.output.get("vms", [])}
    windows = await list_instances(client, instance_id_prefix=gc_prefix("window"))
    last_window: dict[str, Any] = {}
    opened = [w for w in windows if w.runtime_status == df.OrchestrationRuntimeStatus.Completed and w.output]
    if opened:
        newest_window = max(opened, key=lambda w: w.created_time or UNKNOWN_CREATED)
        output = newest_window.output
        stopped = {str(vm).lower() for vm in output.get("stopped", [])}
        stop_failed = {str(f["vmId"]).lower(): f for f in output.get("stopFailed", [])}
        for entry in output.get("vms", []):
            vm_key = str(entry["vmId"]).lower()
            last_window[vm_key] = {
                "instanceId": newest_window.instance_id,
                "openedAt": output.get("openedAt"),
                **{k: entry.get(k) for k in ("resumed", "errorCode", "message")},
                # only a stop Azure accepted counts: a refused one left protection on
                "stopped": vm_key in stopped,
                "stopFailed": stop_failed.get(vm_key),
            }
    vms = []
    # Listed VMs, then the members selecting targets had at the latest check or window.
    listed = {vm.lower(): (vault, vm) for vault, vm in cfg.gc_targets()}
    for entry in [*latest.values(), *((newest_window.output.get("vms") or []) if opened else [])]:
        if entry.get("vmId") and entry.get("vaultId"):
            listed.setdefault(str(entry["vmId"]).lower(), (str(entry["vaultId"]), str(entry["vmId"])))
    for vault, vm in listed.values():
        lease = await client.read_entity_state(lease_entity(vm))
        lease_state = lease.entity_state if lease.entity_exists and isinstance(lease.entity_state, dict) else {}
        vms.append(
            {
                "vmId": vm,
                "vaultId": vault,
                "lastCheck": latest.get(vm.lower()),
                "lastWindow": last_window.get(vm.lower()),
                "lease": {"phase": lease_state.get("phase", "off"), "holders": lease_state.get("holders", {})},
            }
        )
    return ok(
        {
            "mode": cfg.gc.mode,
            "enforce": cfg.gc.enforce,
            "next": sched.get("next"),
            "scheduler": sched.get("phase"),
            "vms": vms,
        }
    )


@bp.route(route="gc/run", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def gc_run(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start a GC check (``{"kind": "check"}``) or window (``{"kind": "window"}``) now."""
    cfg = config()
    if cfg.gc is None:
        return problem(404, "Not found", "GC enforcement is not configured (no 'gc' section)", "gc")
    try:
        raw = req.get_body()
        if len(raw) > 4096:
            raise RequestError("request body is larger than 4096 bytes", status=413)
        body = json.loads(raw or b"{}")
        if not isinstance(body, dict) or set(body) - {"kind"}:
            raise RequestError('body must be {"kind": "check" | "window"}', field="kind")
        kind = body.get("kind", "window" if cfg.gc.mode == "weekend-window" else "check")
        if kind not in ("check", "window"):
            raise RequestError(f"kind must be 'check' or 'window', got {kind!r}", field="kind")
        if kind == "window" and cfg.gc.mode != "weekend-window":
            raise RequestError("a GC window needs gc.mode 'weekend-window'", field="kind")
    except RequestError as err:
        return problem(err.status, "Bad request" if err.status == 400 else "Payload too large", err.detail, err.field)
    except (ValueError, RecursionError) as err:  # not JSON, not UTF-8 text, or nested too deeply
        return problem(400, "Bad request", f"request body is not valid JSON: {err}")
    running = await list_instances(client, runtime_status=list(ACTIVE), instance_id_prefix=gc_prefix(kind))
    if running:
        return problem(409, "Conflict", f"a GC {kind} is already running: {running[0].instance_id}")
    # The orchestration reads its own (Durable) time; the wall clock only names the instance.
    instance_id = gc_manual_instance_id(kind, utcnow())
    await client.start_new(f"gc_{kind}", instance_id, gc_input(cfg))
    return ok({"kind": kind, "instanceId": instance_id}, 202)
