"""``deliver_events``: drains one run's ``delivery_outbox`` into the downstream topic, oldest
first. Transient failures (network, 5xx, 429) are retried on durable timers with exponential
backoff for up to ``delivery.retryFor`` (default 24 h, as long as Event Grid retries a delivery);
refusals (401/403/404, bad endpoint) and failures past that horizon keep the events as
undelivered, loudly (``report_undelivered``). The sweep and the operator route make them pending
again. Never fails: each round is data."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from activities.events import report_undelivered, send_event_batch
from backup_chain.delivery import BATCH_EVENTS, WAKE_EVENT, backoff_seconds, is_permanent, reason_of
from backup_chain.messages import CloudEvent, DelivererInput, DelivererOutput, OutboxTaken, SendResult
from entities.delivery_outbox import index_entity, outbox_entity
from orchestrators.common import after, decode_event_data, iso, now, parse_time

bp = df.Blueprint()
ROUNDS_PER_EXECUTION = 20  # continue as new after this many sends: a short history per replay


@bp.orchestration_trigger(context_name="context")
def deliver_events(context: df.DurableOrchestrationContext):
    """Input: ``key`` (the run's outbox), ``retrySeconds``, ``firstBackoffSeconds``,
    ``maxBackoffSeconds`` and, across continue-as-new, ``attempt`` and ``delivered``."""
    spec: DelivererInput = context.get_input()
    key = spec["key"]
    entity = outbox_entity(key)
    attempt, delivered = int(spec.get("attempt", 0)), int(spec.get("delivered", 0))
    wake = context.wait_for_external_event(WAKE_EVENT)
    if spec.get("retry"):  # started by the sweep or the operator: undelivered events go again
        yield context.call_entity(entity, "retry")
    for _ in range(ROUNDS_PER_EXECUTION):
        taken: OutboxTaken = yield context.call_entity(entity, "take", {"limit": BATCH_EVENTS})
        events: list[CloudEvent] = taken["events"]
        if not events:
            if not taken["kept"]:
                # Unlisted first, then looked at again: an event its publisher kept meanwhile (its
                # index "add" may have landed before this "remove") lists the run again.
                yield context.call_entity(index_entity(), "remove", {"key": key})
                taken = yield context.call_entity(entity, "take", {"limit": BATCH_EVENTS})
                if taken["kept"]:
                    yield context.call_entity(index_entity(), "add", {"key": key})
                    if taken["events"]:
                        continue
            context.set_custom_status({"phase": "idle", "key": key, "delivered": delivered, "kept": taken["kept"]})
            output: DelivererOutput = {"key": key, "delivered": delivered, "undelivered": taken["kept"]}
            return output
        sent: SendResult = yield context.call_activity(send_event_batch, {"events": events})
        if sent["ok"]:
            yield context.call_entity(entity, "delivered", {"ids": [e["id"] for e in events]})
            delivered += len(events)
            attempt = 0
            continue
        error: dict[str, Any] = sent["error"]
        reason = reason_of(error)
        since = parse_time(taken.get("since"))
        horizon = float(spec["retrySeconds"])
        expired = since is not None and (now(context) - since).total_seconds() >= horizon
        permanent = is_permanent(error)
        if expired and not permanent:
            reason = f"not accepted within {horizon:.0f} s (delivery.retryFor); last error {reason}"
        changed = yield context.call_entity(entity, "failed", {"reason": reason, "permanent": permanent or expired})
        if permanent or expired:
            if changed:
                yield context.call_activity(report_undelivered, {"key": key, "reason": reason, "events": changed})
            attempt = 0
            continue  # the next take is empty unless new events arrived meanwhile
        attempt += 1
        delay = backoff_seconds(attempt, float(spec["firstBackoffSeconds"]), float(spec["maxBackoffSeconds"]))
        retry_at = after(context, delay)
        context.set_custom_status(
            {
                "phase": "retrying",
                "key": key,
                "attempt": attempt,
                "lastAttemptAt": iso(now(context)),
                "nextAttemptAt": iso(retry_at),
                "reason": reason,
            }
        )
        timer = context.create_timer(retry_at)
        winner = yield context.task_any([timer, wake])
        if winner is wake:
            timer.cancel()
            asked = decode_event_data(wake.result)
            wake = context.wait_for_external_event(WAKE_EVENT)
            if isinstance(asked, dict) and asked.get("retry"):
                yield context.call_entity(entity, "retry")
    context.continue_as_new({**spec, "attempt": attempt, "delivered": delivered, "retry": False})
    return None
