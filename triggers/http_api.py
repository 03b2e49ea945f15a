"""The HTTP API (function-level keys): start, report upstream, read, list and cancel chain runs.

Bad input gets a 400 problem naming the field, an unknown chain or run a 404, and nothing is
started; retried requests are idempotent (deterministic instance ids)."""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from app_runtime import ACTIVE, config
from backup_chain.api_models import RequestError, StartRun, UpstreamReport, parse_body
from backup_chain.chain_control import paused_refusal
from backup_chain.config import Chain
from backup_chain.delivery import delivery_outcome
from backup_chain.ids import (
    chain_instance_id,
    chain_prefix,
    is_vm_batch,
    outbox_run_key,
    valid_run_id,
    vm_instance_id,
    vm_run_prefix,
)
from backup_chain.messages import CancelNotice
from backup_chain.runs import upstream_signal
from entities.chain_control import read_control
from triggers.instance_query import list_instances
from triggers.kept import kept_keys, outbox_summary
from triggers.runs import awaits_upstream, input_of, run_view, start_run, utcnow

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("backup_chain")
TERMINAL = ("Completed", "Failed", "Terminated", "Canceled")
CANCEL_PASSES = 3  # listings of a cancelled run's active batch and VM instances to terminate


def problem(status: int, title: str, detail: str, field: str | None = None) -> func.HttpResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if field is not None:
        body["field"] = field
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/problem+json")


def ok(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


def route_chain(req: func.HttpRequest) -> Chain:
    name = req.route_params.get("chain", "")
    chain = config().chain(name)
    if chain is None:
        known = ", ".join(c.name for c in config().chains)
        raise RequestError(f"no chain named {name!r}; configured chains: {known}", field="chain", status=404)
    return chain


def route_run_id(req: func.HttpRequest) -> str:
    run_id = req.route_params.get("run_id", "")
    if not valid_run_id(run_id):
        raise RequestError(f"{run_id!r} is not a valid run id", field="runId", status=404)
    return run_id


async def existing_run(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, *, show_input: bool = False
) -> tuple[Chain, str, Any]:
    """The chain, run id and Durable status of the run the route names (RequestError 404 if none)."""
    chain = route_chain(req)
    run_id = route_run_id(req)
    status = await client.get_status(chain_instance_id(chain.name, run_id), show_input=show_input)
    if not status:
        raise RequestError(f"run {run_id!r} of chain {chain.name!r} does not exist", field="runId", status=404)
    return chain, run_id, status


def refusal(error: RequestError) -> func.HttpResponse:
    titles = {400: "Bad request", 404: "Not found", 409: "Conflict", 413: "Payload too large"}
    return problem(error.status, titles.get(error.status, "Error"), error.detail, error.field)


@bp.route(route="chains/{chain}/runs", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_chain_run(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        chain = route_chain(req)
        body: StartRun = parse_body(req.get_body(), StartRun)
        if body.vms is not None:
            unknown = [vm for vm in body.vms if chain.vault_of(vm) is None]
            if unknown:
                raise RequestError(f"VM {unknown[0]} is not a target of chain {chain.name!r}", field="vms")
        if body.waitForUpstream and body.upstream is not None:
            raise RequestError("give either waitForUpstream or upstream, not both", field="upstream")
        if body.waitForUpstream and chain.upstream is None:
            raise RequestError(f"chain {chain.name!r} has no upstream to wait for", field="waitForUpstream")
    except RequestError as err:
        return refusal(err)
    paused = paused_refusal(chain.name, await read_control(client, chain.name))
    if paused is not None:  # a paused chain starts no run, by hand either (docs/operations.md)
        return problem(409, "Conflict", paused, "chain")
    # The wall clock only names the run; its windows and timers run on the Durable clock.
    run_id = body.runId or "h-" + utcnow().strftime("%Y%m%dT%H%M%S%fZ")
    upstream = None
    if not body.waitForUpstream:
        report = body.upstream or UpstreamReport(status="Succeeded", detail={"source": "http"})
        upstream = upstream_signal(report.status, report.detail)
    started, instance_id = await start_run(
        client,
        chain,
        run_id,
        started_by="http",
        wait_for_upstream=body.waitForUpstream,
        upstream=upstream,
        vms=body.vms,
    )
    status = await client.get_status(instance_id)
    return ok({"chain": chain.name, "runId": run_id, "started": started, **run_view(status)}, 202 if started else 200)


@bp.route(route="chains/{chain}/runs/{run_id}/upstream", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def report_upstream(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        chain, run_id, status = await existing_run(req, client)
        report: UpstreamReport = parse_body(req.get_body(), UpstreamReport, allow_empty=False)
    except RequestError as err:
        return refusal(err)
    instance_id = chain_instance_id(chain.name, run_id)
    paused = paused_refusal(chain.name, await read_control(client, chain.name))
    if paused is not None:  # the run ends skipped when its chain is paused; no signal reaches it
        return problem(409, "Conflict", paused, "chain")
    if not await awaits_upstream(client, status):
        custom = status.custom_status if isinstance(status.custom_status, dict) else {}
        return problem(409, "Conflict", f"run {run_id!r} is not waiting for upstream (phase {custom.get('phase')})")
    await client.raise_event(instance_id, "upstream", upstream_signal(report.status, report.detail))
    return ok({"chain": chain.name, "runId": run_id, "accepted": True}, 202)


def run_members(status: Any) -> list[list[str]] | None:
    """[vault id, VM id, how chosen] of each member the run resolved at its start (orchestrators/
    membership.py): from its output once it ended, else from its custom status while they fit
    there; None when neither has them (a run of thousands of chosen VMs still running)."""
    for source in (status.output, status.custom_status):
        if isinstance(source, dict) and isinstance(source.get("members"), list):
            return [list(member) for member in source["members"]]
    return None


def run_vms(chain: Chain, status: Any) -> list[tuple[str, str]]:
    """(vault id, VM id) of the run's own VMs: its resolved members, else from its input (a run
    started with ``vms`` backs up only those, and a run keeps the targets it started with when
    the configuration changes)."""
    members = run_members(status)
    if members is not None:
        return [(vault_id, vm_id) for vault_id, vm_id, _ in members]
    spec = input_of(status)
    try:
        if isinstance(spec.get("vms"), list):
            return [(vault_id, vm_id) for vault_id, vm_id in spec["vms"]]
        return [(t["vaultId"], vm) for t in spec["chain"]["targets"] for vm in t.get("vms") or []]
    except (AttributeError, TypeError, KeyError, ValueError):
        return chain.vm_ids()


async def run_vm_statuses(
    client: df.DurableOrchestrationClient, chain: Chain, run_id: str, status: Any
) -> list[tuple[str, str, Any, dict[str, Any]]]:
    """(vault id, VM id, Durable status or None, custom status) of each of the run's own VMs."""
    found = []
    for vault_id, vm_id in run_vms(chain, status):
        vm_status = await client.get_status(vm_instance_id(run_id, chain.name, vm_id))
        custom = vm_status.custom_status if vm_status and isinstance(vm_status.custom_status, dict) else {}
        found.append((vault_id, vm_id, vm_status, custom))
    return found


def _failure_detail(custom: dict[str, Any], output: Any) -> dict[str, Any]:
    """A failed VM's Azure message and recommendations (as its BackupFailed event carries them).
    VM orchestrations started before its status kept them have the message in their output only."""
    if custom.get("phase") != "failed":
        return {}
    summary = output if isinstance(output, dict) else {}
    return {
        "message": custom.get("message", summary.get("message")),
        "recommendations": custom.get("recommendations", summary.get("recommendations", [])),
    }


@bp.route(route="chains/{chain}/runs/{run_id}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_chain_run(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        chain, run_id, status = await existing_run(req, client, show_input=True)
    except RequestError as err:
        return refusal(err)
    vms = []
    chosen = {vm_id.lower(): how for _, vm_id, how in run_members(status) or []}
    for vault_id, vm_id, vm_status, custom in await run_vm_statuses(client, chain, run_id, status):
        vms.append(
            {
                "vmId": vm_id,
                "vaultId": vault_id,
                **({"chosen": chosen[vm_id.lower()]} if vm_id.lower() in chosen else {}),
                "runtimeStatus": vm_status.runtime_status.value if vm_status and vm_status.runtime_status else None,
                **{k: v for k, v in custom.items() if k != "vmId"},
                **_failure_detail(custom, vm_status.output if vm_status else None),
            }
        )
    output = status.output if str(status.runtime_status.value if status.runtime_status else "") in TERMINAL else None
    view = run_view(status)
    # Downstream delivery: events the topic has not accepted yet are kept, and a run with any
    # never reports plain "completed" (docs/events.md).
    kept = await outbox_summary(client, outbox_run_key(chain.name, run_id))
    view["outcome"], delivery = delivery_outcome(view["outcome"], kept)
    if isinstance(output, dict):
        output = {**output, "outcome": delivery_outcome(output.get("outcome"), kept)[0]}
    # id, type, subject, time, reason, since (first refused), attempts: as GET /api/deliveries lists them
    undelivered = list(kept["undelivered"])
    return ok(
        {
            "chain": chain.name,
            **view,
            "delivery": delivery,
            "undelivered": undelivered,
            "pendingDelivery": [{k: e[k] for k in ("id", "type", "subject", "reason")} for e in kept["pending"]],
            "retryOf": input_of(status).get("retryOf"),
            "custom": status.custom_status,
            "output": output,
            "vms": vms,
        }
    )


@bp.route(route="chains/{chain}/runs", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def list_chain_runs(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        chain = route_chain(req)
        top = int(req.params.get("top", "50"))
        if not 1 <= top <= 500:
            raise ValueError
    except RequestError as err:
        return refusal(err)
    except ValueError:
        return problem(400, "Bad request", "top must be an integer between 1 and 500", "top")
    statuses = await list_instances(client, instance_id_prefix=chain_prefix(chain.name))
    runs = sorted((run_view(s) for s in statuses), key=lambda r: r["createdTime"] or "", reverse=True)[:top]
    # Runs with kept events (the delivery index lists them) do not report plain "completed" here either.
    kept_runs = set(await kept_keys(client))
    for run in runs:
        key = outbox_run_key(chain.name, run["runId"])
        if key in kept_runs:
            run["outcome"], run["delivery"] = delivery_outcome(run["outcome"], await outbox_summary(client, key))
    return ok({"chain": chain.name, "runs": runs})


@bp.route(route="chains/{chain}/runs/{run_id}/cancel", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def cancel_chain_run(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        chain, run_id, status = await existing_run(req, client)
    except RequestError as err:
        return refusal(err)
    instance_id = chain_instance_id(chain.name, run_id)
    if status.runtime_status not in ACTIVE:
        return problem(409, "Conflict", f"run {run_id!r} already ended ({status.runtime_status.value})")
    # "at" is a note for people reading the history; the orchestration does not act on it.
    cancel: CancelNotice = {"at": utcnow().isoformat()}
    await client.raise_event(instance_id, "cancel", cancel)
    # Stop watching backups already running (their Azure jobs finish on their own); VMs not yet
    # started are skipped by the chain itself. A large run's vm_batch instances go first: a batch
    # that saw its VMs end would start the next ones. VMs a batch started meanwhile show up in the
    # next listing; each pass lists only what is still active.
    stopped = 0
    for _ in range(CANCEL_PASSES):
        active = await list_instances(
            client, runtime_status=list(ACTIVE), instance_id_prefix=vm_run_prefix(chain.name, run_id)
        )
        if not active:
            break
        for vm_status in sorted(active, key=lambda s: not is_vm_batch(str(s.instance_id))):
            await client.terminate(vm_status.instance_id, f"chain run {run_id} cancelled")
            stopped += 1
    log.info("chain run cancelled", extra={"chain": chain.name, "runId": run_id})
    return ok({"chain": chain.name, "runId": run_id, "cancelled": True, "stoppedWatchers": stopped}, 202)
