"""``POST /api/chains/{chain}/pause`` and ``/resume``: a paused chain starts no run at a window,
from an upstream event or by hand, and a run of it waiting for upstream ends skipped; runs
already backing up are not touched (cancel them if need be). docs/operations.md.

The change goes through the ``change_chain_control`` orchestration (entity, then event), and the
route answers with its result, polling the instance as the Durable SDK's own
``wait_for_completion_or_create_check_status_response`` does."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from app_runtime import ACTIVE, config, source
from backup_chain.api_models import RequestError, parse_body
from backup_chain.chain_control import (
    MAX_BY_CHARS,
    PAUSED_EVENT,
    ChainControl,
    ControlInput,
    EmptyBody,
    PauseRequest,
    SkipInput,
)
from backup_chain.config import Chain
from backup_chain.ids import chain_prefix, control_instance_id
from backup_chain.text import is_unicode
from entities.chain_control import read_control
from triggers.http_api import ok, refusal, route_chain
from triggers.instance_query import list_instances
from triggers.runs import UNKNOWN_CREATED, awaits_upstream, utcnow

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("backup_chain")
# App Service authentication (Easy Auth) sets this header to the signed-in caller and drops any
# the client sent: https://learn.microsoft.com/azure/app-service/configure-authentication-user-identities
PRINCIPAL_HEADER = "X-MS-CLIENT-PRINCIPAL-NAME"
CHANGE_WAIT_SECONDS = 30.0
POLL_SECONDS = 0.2


def _caller(req: func.HttpRequest) -> str | None:
    by = req.headers.get(PRINCIPAL_HEADER)
    if by is None:
        return None  # function key only: the caller is not known
    if not by.strip() or len(by) > MAX_BY_CHARS or not is_unicode(by):
        raise RequestError(f"{PRINCIPAL_HEADER} must be 1 to {MAX_BY_CHARS} characters of text", PRINCIPAL_HEADER)
    return by


async def _change(
    client: df.DurableOrchestrationClient, chain: Chain, action: str, reason: str | None, by: str | None
) -> tuple[str, dict[str, Any] | None]:
    """Run ``change_chain_control``; (instance id, its output, or None if it did not end in time)."""
    label = utcnow().strftime("%Y%m%dT%H%M%S%fZ")  # the wall clock only names the change
    spec: ControlInput = {
        "action": action,  # type: ignore[typeddict-item]
        "chain": chain.name,
        "label": f"{action}-{label}",
        "reason": reason,
        "by": by,
        "prefix": config().eventTypePrefix,
        "source": source(),
    }
    instance_id = control_instance_id(chain.name, action, label)
    await client.start_new("change_chain_control", instance_id, spec)
    for _ in range(int(CHANGE_WAIT_SECONDS / POLL_SECONDS)):
        status = await client.get_status(instance_id)
        if status and status.runtime_status not in ACTIVE:
            if status.runtime_status != df.OrchestrationRuntimeStatus.Completed:
                raise RuntimeError(f"{instance_id} ended {status.runtime_status.value}: {status.output}")
            return instance_id, status.output if isinstance(status.output, dict) else None
        await asyncio.sleep(POLL_SECONDS)
    return instance_id, None


async def tell_skipped(
    client: df.DurableOrchestrationClient, chain: Chain, run_id: str, detail: dict[str, Any]
) -> None:
    """Publish ChainSkipped (reason ``paused``) for run ``run_id`` that the paused chain did not
    start; once per run id, so a redelivered upstream event tells it once."""
    instance_id = control_instance_id(chain.name, "skip", run_id)
    if await client.get_status(instance_id):
        return
    spec: SkipInput = {
        "chain": chain.name,
        "runId": run_id,
        "detail": detail,
        "prefix": config().eventTypePrefix,
        "source": source(),
    }
    try:
        await client.start_new("tell_chain_skipped", instance_id, spec)
    except Exception:
        if not await client.get_status(instance_id):  # not a concurrent start of the same one
            raise


async def end_waiting_runs(client: df.DurableOrchestrationClient, chain: Chain, detail: dict[str, Any]) -> list[str]:
    """Every run of the paused chain waiting (or about to wait) for upstream ends skipped: each
    would back up once its signal came. Returns their instance ids, oldest first."""
    active = await list_instances(client, runtime_status=list(ACTIVE), instance_id_prefix=chain_prefix(chain.name))
    waiting = [s for s in active if await awaits_upstream(client, s)]
    waiting.sort(key=lambda s: s.created_time or UNKNOWN_CREATED)
    for status in waiting:
        await client.raise_event(status.instance_id, PAUSED_EVENT, detail)
    return [str(s.instance_id) for s in waiting]


@bp.route(route="chains/{chain}/pause", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def pause_chain(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        chain = route_chain(req)
        body: PauseRequest = parse_body(req.get_body(), PauseRequest)
        by = _caller(req)
    except RequestError as err:
        return refusal(err)
    control = await read_control(client, chain.name)
    changed = False
    if not control.paused:  # pausing a paused chain keeps its first pause
        instance_id, change = await _change(client, chain, "pause", body.reason, by)
        if change is None:
            return ok({"chain": chain.name, "accepted": True, "instanceId": instance_id}, 202)
        changed = bool(change["changed"])
        control = ChainControl.from_state(change["state"])
    pause = control.pause_view() or {}
    ended = await end_waiting_runs(client, chain, pause)
    if changed:
        log.warning("chain %s paused (%s)", chain.name, control.reason or "no reason given")
    return ok({"chain": chain.name, "paused": True, **pause, "changed": changed, "endedWaitingRuns": ended})


@bp.route(route="chains/{chain}/resume", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def resume_chain(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        chain = route_chain(req)
        parse_body(req.get_body(), EmptyBody)
        by = _caller(req)
    except RequestError as err:
        return refusal(err)
    control = await read_control(client, chain.name)
    if not control.paused:
        return ok({"chain": chain.name, "paused": False, "changed": False})
    instance_id, change = await _change(client, chain, "resume", None, by)
    if change is None:
        return ok({"chain": chain.name, "accepted": True, "instanceId": instance_id}, 202)
    log.warning("chain %s resumed", chain.name)
    return ok({"chain": chain.name, "paused": False, "changed": bool(change["changed"]), "pausedSince": control.since})
