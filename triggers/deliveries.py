"""Redelivering kept downstream events: the ``delivery_sweep`` timer (every 15 min) and the
operator's routes ``POST /api/deliveries/retry`` (every run) and
``POST /api/chains/{chain}/runs/{runId}/deliveries/retry`` (one run), plus
``GET /api/deliveries`` (what is kept, per run). Retrying makes undelivered events pending again
and (re)starts the run's ``deliver_events``, which sends them oldest first."""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from activities.events import deliverer_input
from backup_chain.delivery import WAKE_EVENT, Outbox, deliverer_id, run_key
from backup_chain.ids import valid_run_id
from entities.delivery_outbox import index_entity, outbox_entity
from triggers.context import config
from triggers.singletons import ACTIVE

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("backup_chain")


async def outbox_summary(client: df.DurableOrchestrationClient, key: str) -> dict[str, Any]:
    state = await client.read_entity_state(outbox_entity(key))
    outbox = Outbox.from_state(state.entity_state if state and state.entity_exists else None)
    return {**outbox.summary(), "key": key}


async def kept_keys(client: df.DurableOrchestrationClient) -> list[str]:
    state = await client.read_entity_state(index_entity())
    value = state.entity_state if state and state.entity_exists else None
    return [str(k) for k in value] if isinstance(value, list) else []


async def retry(client: df.DurableOrchestrationClient, key: str) -> dict[str, Any]:
    """Send the run's kept events again now; returns what was kept when asked."""
    summary = await outbox_summary(client, key)
    if not summary["pending"] and not summary["undelivered"]:
        return {"key": key, "retried": 0}
    instance_id = deliverer_id(key)
    status = await client.get_status(instance_id)
    if status and status.runtime_status in ACTIVE:
        await client.raise_event(instance_id, WAKE_EVENT, {"retry": True})
    else:
        try:
            await client.start_new("deliver_events", instance_id, {**deliverer_input(key), "retry": True})
        except Exception:  # started concurrently (the sweep and the route at once)
            again = await client.get_status(instance_id)
            if not (again and again.runtime_status in ACTIVE):
                raise
    return {"key": key, "retried": len(summary["pending"]) + len(summary["undelivered"])}


@bp.timer_trigger(schedule="0 */15 * * * *", arg_name="timer", run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def delivery_sweep(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    for key in await kept_keys(client):
        result = await retry(client, key)
        if result["retried"]:
            log.info("delivery sweep: retrying %d kept events of %s", result["retried"], key)


def _json(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


@bp.route(route="deliveries/retry", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def retry_deliveries(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    results = [await retry(client, key) for key in await kept_keys(client)]
    runs = [r for r in results if r["retried"]]
    return _json({"runs": runs, "events": sum(r["retried"] for r in runs)}, 202)


@bp.route(route="deliveries", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def list_deliveries(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    summaries = [await outbox_summary(client, key) for key in await kept_keys(client)]
    return _json({"runs": [s for s in summaries if s["pending"] or s["undelivered"]]})


@bp.route(route="chains/{chain}/runs/{run_id}/deliveries/retry", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def retry_run_deliveries(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    chain = config().chain(req.route_params.get("chain", ""))
    run_id = req.route_params.get("run_id", "")
    if chain is None or not valid_run_id(run_id):
        body = {"type": "about:blank", "title": "Not found", "status": 404, "detail": "no such chain or run id"}
        return func.HttpResponse(json.dumps(body), status_code=404, mimetype="application/problem+json")
    result = await retry(client, run_key(chain.name, run_id))
    return _json({"chain": chain.name, "runId": run_id, "retried": result["retried"]}, 202)
