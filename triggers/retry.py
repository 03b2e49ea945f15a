"""``POST /api/chains/{chain}/runs/{runId}/retry``: a new run, linked to a finished one, that backs
up only the VMs it did not back up (failed, cancelled, not started, never reached). VMs that
completed are left alone, and so are VMs reported ``notProtected``: a VM not protected in its vault
would only be reported again. The retry is ``{runId}-r1`` (a retry of it ``-r2``, ...), so asking
twice answers with the same run; it does not wait for upstream (the old run had its signal)."""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from app_runtime import ACTIVE, config, source
from backup_chain.api_models import RequestError, parse_body
from backup_chain.chain_control import EmptyBody, paused_refusal
from backup_chain.config import Chain
from backup_chain.ids import chain_instance_id, retry_run_id, run_id_of, vm_instance_id
from backup_chain.runs import run_input, upstream_signal
from entities.chain_control import read_control
from orchestrators.chain_run import SUCCEEDED
from triggers.http_api import existing_run, ok, problem, refusal
from triggers.runs import input_of, run_view

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("backup_chain")
NOT_RETRIED = ("notProtected",)  # outcomes a retry could not change
NEVER_REACHED = "notStarted"  # the outcome reported for a VM the old run did not reach


class MembersUnknown(Exception):
    """The old run chose its VMs at its start and recorded them nowhere a retry can read."""


def _old_targets(chain: Chain, spec: Any, records: list[Any]) -> list[tuple[str, str]]:
    """(vault id, VM id) the old run backed up, in its order: the members its output (or, while
    they fit, its custom status) lists (orchestrators/membership.py: VMs a ``select`` chose are
    known only there), else its input's."""
    for record in records:
        if isinstance(record, str):  # the status API may hand a custom status back as JSON text
            try:
                record = json.loads(record)
            except ValueError:
                continue
        members = record.get("members") if isinstance(record, dict) else None
        if isinstance(members, list) and members:
            return [(str(member[0]), str(member[1])) for member in members]
    try:
        chosen = spec.get("vms")
        if chosen:
            return [(str(vault), str(vm)) for vault, vm in chosen]
        if any(t.get("select") for t in spec["chain"]["targets"]):
            raise MembersUnknown(
                "its VMs were chosen at its start and it recorded no member list (it ended before choosing "
                "them, or they were too many for its status); start a new run instead"
            )
        return [(t["vaultId"], vm) for t in spec["chain"]["targets"] for vm in t["vms"] or []]
    except (AttributeError, TypeError, KeyError, ValueError):
        return chain.vm_ids()


def _asked_again(chain: Chain, run_id: str, existing: Any) -> func.HttpResponse:
    """The answer when the retry's instance already exists: that retry, not started again, or a
    409 when the id is held by a run that is no retry of ``run_id`` (one started by hand with
    that name): answering with it would pass an unrelated run off as the retry."""
    if input_of(existing).get("retryOf") != run_id:
        taken = run_id_of(str(existing.instance_id))
        why = f"run id {taken!r}, which a retry of {run_id!r} takes, is already a run that is not its retry"
        return problem(409, "Conflict", why, "runId")
    return ok({"chain": chain.name, "retryOf": run_id, "started": False, **run_view(existing)})


async def _outcomes(
    client: df.DurableOrchestrationClient, chain: Chain, run_id: str, status: Any
) -> list[tuple[str, str, str]]:
    """(vault id, VM id, outcome) of each VM of the old run. A run that ended normally lists its
    VMs in its output (none when it never backed up: skipped, timed out); a terminated or failed
    run has no output, so each VM's own orchestration is asked."""
    spec = input_of(status)
    output = status.output if isinstance(status.output, dict) else None
    listed = {str(v.get("vmId", "")).lower(): v.get("outcome") for v in (output or {}).get("vms") or []}
    found = []
    for vault_id, vm_id in _old_targets(chain, spec, [output, status.custom_status]):
        outcome = listed.get(vm_id.lower())
        if outcome is None and output is None:
            vm_status = await client.get_status(vm_instance_id(run_id, chain.name, vm_id))
            vm_output = vm_status.output if vm_status and isinstance(vm_status.output, dict) else {}
            outcome = vm_output.get("outcome")
        found.append((vault_id, vm_id, str(outcome or NEVER_REACHED)))
    return found


def _retry_input(chain: Chain, run_id: str, retry_id: str, vms: list[tuple[str, str]]) -> dict[str, Any]:
    """The retry's ``chain_run`` input: only ``vms`` (also as its targets, which the run's GET
    lists), and a signal standing for the one the old run already had."""
    payload: dict[str, Any] = dict(
        run_input(
            config(),
            chain,
            retry_id,
            source=source(),
            started_by="http",
            wait_for_upstream=False,
            upstream=upstream_signal("Succeeded", {"source": "retry", "retryOf": run_id}),
        )
    )
    by_vault: dict[str, list[str]] = {}
    for vault_id, vm_id in vms:
        by_vault.setdefault(vault_id, []).append(vm_id)
    payload["chain"] = {**payload["chain"], "targets": [{"vaultId": v, "vms": ids} for v, ids in by_vault.items()]}
    payload["vms"] = [[vault_id, vm_id] for vault_id, vm_id in vms]
    payload["retryOf"] = run_id
    return payload


@bp.route(route="chains/{chain}/runs/{run_id}/retry", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def retry_chain_run(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        chain, run_id, status = await existing_run(req, client, show_input=True)
        parse_body(req.get_body(), EmptyBody)  # no fields: an empty body or {}
    except RequestError as err:
        return refusal(err)
    retry_id = retry_run_id(run_id)
    if retry_id is None:
        return problem(409, "Conflict", f"run id {run_id!r} is too long to name a retry ({run_id}-r1)", "runId")
    retry_instance = chain_instance_id(chain.name, retry_id)
    existing = await client.get_status(retry_instance, show_input=True)
    if existing:  # asked again: the retry already started
        return _asked_again(chain, run_id, existing)
    if status.runtime_status in ACTIVE:
        custom = status.custom_status if isinstance(status.custom_status, dict) else {}
        state = f"{status.runtime_status.value}, phase {custom.get('phase')}"
        return problem(409, "Conflict", f"run {run_id!r} has not finished ({state}); retry it once it ends", "runId")
    paused = paused_refusal(chain.name, await read_control(client, chain.name))
    if paused is not None:
        return problem(409, "Conflict", paused, "chain")
    try:
        outcomes = await _outcomes(client, chain, run_id, status)
    except MembersUnknown as err:
        return problem(409, "Conflict", f"cannot retry run {run_id!r}: {err}", "runId")
    again = [(vault, vm) for vault, vm, outcome in outcomes if outcome not in SUCCEEDED + NOT_RETRIED]
    left_out = [{"vmId": vm, "outcome": outcome} for _, vm, outcome in outcomes if outcome in NOT_RETRIED]
    if not again:
        done = sum(1 for *_, outcome in outcomes if outcome in SUCCEEDED)
        why = f"{done} of {len(outcomes)} VMs of run {run_id!r} backed up"
        why += f", {len(left_out)} not protected in their vault" if left_out else ""
        return problem(409, "Conflict", f"nothing to retry: {why}", "runId")
    # Asked again while the VMs' outcomes were read: that retry stands. Durable overwrites an
    # instance that has ended (OverridableExistingInstanceStates, default NonRunningStates), so a
    # start now would run a retry that already ended a second time.
    existing = await client.get_status(retry_instance, show_input=True)
    if existing:
        return _asked_again(chain, run_id, existing)
    try:
        await client.start_new("chain_run", retry_instance, _retry_input(chain, run_id, retry_id, again))
    except Exception as err:
        existing = await client.get_status(retry_instance, show_input=True)
        if not existing:  # not a concurrent retry of the same run
            raise RuntimeError(f"could not start {retry_instance}: {err}") from err
        return _asked_again(chain, run_id, existing)  # a concurrent ask started it: not this one
    log.info("retry %s of run %s started with %d VMs", retry_id, run_id, len(again), extra={"chain": chain.name})
    started = await client.get_status(retry_instance)
    return ok(
        {
            "chain": chain.name,
            "retryOf": run_id,
            "started": True,
            **run_view(started),
            "runId": retry_id,
            "vms": [vm for _, vm in again],
            "notRetried": left_out,
        },
        202,
    )
