"""``change_chain_control`` records a pause or resume in the chain's ``chain_control`` entity and,
when it changed anything, tells downstream (ChainPaused / ChainResumed); ``tell_chain_skipped``
tells downstream that a paused chain did not start a run. Events go out through ``publish`` like
every other event (outbox, retries), which is why these are orchestrations."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from backup_chain.chain_control import SKIPPED_REASON, ControlChange, ControlInput, SkipInput
from backup_chain.events import chain_cloud_event
from backup_chain.messages import CloudEvent
from entities.chain_control import control_entity
from orchestrators.common import iso, now, publish

bp = df.Blueprint()


def _event(spec: ControlInput | SkipInput, run_id: str, event_type: str, time: str, **data: Any) -> CloudEvent:
    return chain_cloud_event(
        prefix=spec["prefix"],
        chain=spec["chain"],
        run_id=run_id,
        source=spec["source"],
        event_type=event_type,
        time=time,
        **data,
    )


@bp.orchestration_trigger(context_name="context")
def change_chain_control(context: df.DurableOrchestrationContext):
    spec: ControlInput = context.get_input()
    at = iso(now(context))
    args = {"at": at, "reason": spec["reason"], "by": spec["by"]}
    change: ControlChange = yield context.call_entity(control_entity(spec["chain"]), spec["action"], args)
    if not change["changed"]:  # already in that state: nothing happened, nothing to tell
        return change
    if spec["action"] == "pause":
        event = _event(spec, spec["label"], "ChainPaused", at, since=at, reason=spec["reason"], by=spec["by"])
    else:
        before = change["before"]
        event = _event(
            spec,
            spec["label"],
            "ChainResumed",
            at,
            pausedSince=before.get("since"),
            pauseReason=before.get("reason"),
            by=spec["by"],
        )
    yield publish(context, [event])
    return change


@bp.orchestration_trigger(context_name="context")
def tell_chain_skipped(context: df.DurableOrchestrationContext):
    spec: SkipInput = context.get_input()
    event = _event(spec, spec["runId"], "ChainSkipped", iso(now(context)), reason=SKIPPED_REASON, detail=spec["detail"])
    yield publish(context, [event])
    return event["id"]
