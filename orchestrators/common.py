"""Helpers shared by the orchestrators; everything here is deterministic under replay.

Orchestrators call activities and sub-orchestrations by function reference: azure-functions-durable
1.7.0's ``call_activity``/``call_sub_orchestrator`` take the ``FunctionBuilder`` a v2 decorator
returns and schedule it under its registered name (``DurableOrchestrationContext._get_function_name``),
so histories name the same functions as when they were called by string."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import azure.durable_functions as df

from activities.events import publish_events
from backup_chain.events import (
    iso,
    parse_time,
    seconds_between,
    snapshot_completed_event,
    vm_cloud_event,
)
from backup_chain.jobs import JobView
from backup_chain.messages import CloudEvent, PublishRequest

__all__ = ["iso", "parse_time", "seconds_between"]  # re-exported for the orchestrators

# Transient Azure failures (throttling that outlasted the SDK's own Retry-After retries, 5xx,
# network) are retried on durable timers: 10 s, then up to 8 attempts in all.
AZURE_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=10_000, max_number_of_attempts=8)


def now(context: df.DurableOrchestrationContext) -> datetime:
    value = context.current_utc_datetime
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def after(context: df.DurableOrchestrationContext, seconds: float) -> datetime:
    return now(context) + timedelta(seconds=seconds)


def decode_event_data(value: Any) -> Any:
    """Data raised by the Python client reaches the orchestrator as JSON text (as in Azure)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def publish(context: df.DurableOrchestrationContext, events: list[CloudEvent], *, behind: bool = False) -> Any:
    """The task that publishes ``events`` (yield it). It never fails on the topic: events the
    topic does not accept at once are kept in the run's outbox and delivered later, in order
    (activities/events.py). Once one of this orchestration's publishes was kept (or ``behind``: a
    child's were, see ``kept_any``), the following ones queue behind it (the earlier tasks'
    results are replayed, so this is deterministic)."""
    tasks: list[Any] = context.__dict__.setdefault("_publish_tasks", [])
    queue = behind or kept_any(context)
    request: PublishRequest = {"events": events, "at": iso(now(context)), "queue": queue}
    task = context.call_activity_with_retry(publish_events, AZURE_RETRY, request)
    tasks.append(task)
    return task


def kept_any(context: df.DurableOrchestrationContext) -> bool:
    """Was any of this orchestration's publishes (or its parent's, see ``follow``) kept in the
    run's outbox? Parent and child pass it on (a child's output ``eventsKept``, a child's input
    ``behindKept``), so neither's later events overtake the other's kept ones while the outbox
    entity has not yet taken them in (ChainStarted first, per VM in order, ChainCompleted last)."""
    if context.__dict__.get("_behind_kept"):
        return True
    tasks: list[Any] = context.__dict__.get("_publish_tasks", [])
    return any(isinstance(t.result, dict) and t.result.get("queued") for t in tasks)


def follow(context: df.DurableOrchestrationContext, spec: Mapping[str, Any]) -> None:
    """An orchestration whose parent's events were kept (input ``behindKept``) queues its own
    behind them."""
    if spec.get("behindKept"):
        context.__dict__["_behind_kept"] = True


def vm_event(
    context: df.DurableOrchestrationContext, spec: Mapping[str, Any], job_id: str | None, event_type: str, **data: Any
) -> dict[str, Any]:
    """A per-VM event stamped with the orchestration's clock."""
    return vm_cloud_event(spec, job_id, event_type, iso(now(context)), **data)


def snapshot_completed(
    context: df.DurableOrchestrationContext, spec: Mapping[str, Any], job: JobView
) -> dict[str, Any]:
    return snapshot_completed_event(spec, job, iso(now(context)))
