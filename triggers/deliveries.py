"""Redelivering kept downstream events: the ``delivery_sweep`` timer (every 15 min) and the
operator's routes ``POST /api/deliveries/retry`` (every run) and
``POST /api/chains/{chain}/runs/{runId}/deliveries/retry`` (one run), plus
``GET /api/deliveries`` (what is kept, per run). Retrying makes undelivered events pending again
and (re)starts the run's ``deliver_events``, which sends them oldest first."""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from activities.events import deliverer_input
from app_runtime import ACTIVE
from backup_chain.api_models import RequestError
from backup_chain.delivery import WAKE_EVENT
from backup_chain.ids import chain_instance_id, deliverer_instance_id, outbox_run_key
from backup_chain.messages import WakeNotice
from triggers.http_api import ok, refusal, route_chain, route_run_id
from triggers.kept import kept_keys, outbox_summary

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("backup_chain")


async def retry(client: df.DurableOrchestrationClient, key: str) -> dict[str, Any]:
    """Send the run's kept events again now; returns what was kept when asked."""
    summary = await outbox_summary(client, key)
    if not summary["pending"] and not summary["undelivered"]:
        return {"key": key, "retried": 0}
    instance_id = deliverer_instance_id(key)
    status = await client.get_status(instance_id)
    if status and status.runtime_status in ACTIVE:
        wake: WakeNotice = {"retry": True}
        await client.raise_event(instance_id, WAKE_EVENT, wake)
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


@bp.route(route="deliveries/retry", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def retry_deliveries(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    results = [await retry(client, key) for key in await kept_keys(client)]
    runs = [r for r in results if r["retried"]]
    return ok({"runs": runs, "events": sum(r["retried"] for r in runs)}, 202)


@bp.route(route="deliveries", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def list_deliveries(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    summaries = [await outbox_summary(client, key) for key in await kept_keys(client)]
    return ok({"runs": [s for s in summaries if s["pending"] or s["undelivered"]]})


@bp.route(route="chains/{chain}/runs/{run_id}/deliveries/retry", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def retry_run_deliveries(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        chain, run_id = route_chain(req), route_run_id(req)
        key = outbox_run_key(chain.name, run_id)
        # A run that never existed is a 404; a purged run's kept events can still be retried.
        if not await client.get_status(chain_instance_id(chain.name, run_id)):
            summary = await outbox_summary(client, key)
            if not summary["pending"] and not summary["undelivered"]:
                raise RequestError(f"run {run_id!r} of chain {chain.name!r} does not exist", field="runId", status=404)
    except RequestError as err:
        return refusal(err)
    result = await retry(client, key)
    return ok({"chain": chain.name, "runId": run_id, "retried": result["retried"]}, 202)
