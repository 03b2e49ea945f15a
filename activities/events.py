"""Publishing downstream CloudEvents to the Event Grid topic, and the durable outbox behind it.

``publish_events`` sends at once when it can; when the topic fails (or earlier events of the run
are still kept), it hands the events to the run's ``delivery_outbox`` entity and makes sure the
run's ``deliver_events`` orchestration is running, and reports them as queued: a publish never
fails its orchestration and never drops an event (docs/events.md)."""

from __future__ import annotations

import asyncio
import logging
import os
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import azure.durable_functions as df

from activities.azure_errors import from_exception
from activities.clients import SettingsError, publisher
from app_runtime import ACTIVE, config
from backup_chain.delivery import WAKE_EVENT, Outbox, outbox_key, reason_of
from backup_chain.events import SCHEMA_ROUTE, data_schema_uri, parse_time
from backup_chain.ids import deliverer_instance_id
from backup_chain.messages import (
    CloudEvent,
    DelivererInput,
    EventBatch,
    PublishedEvent,
    PublishRequest,
    PublishResult,
    SendResult,
    Undelivered,
    WakeNotice,
)
from entities.delivery_outbox import index_entity, outbox_entity
from telemetry import record_event, record_undelivered

bp = df.Blueprint()
log = logging.getLogger("backup_chain")
WAKE_AFTER_SECONDS = 60.0  # a deliverer in backoff is woken by a new event at most this often
SCHEMA_BASE_SETTING = "EVENT_SCHEMA_BASE_URL"
_NO_HOST = ("Name or service not known", "nodename nor servname", "getaddrinfo failed", "No address associated")


@lru_cache(maxsize=1)
def schema_base_url() -> str | None:
    """Where the app's event schemas are served: ``EVENT_SCHEMA_BASE_URL``, else the app's own
    route on its default host name (App Service sets ``WEBSITE_HOSTNAME``, e.g.
    ``<app>.azurewebsites.net``: learn.microsoft.com/azure/app-service/reference-app-settings)."""
    configured = os.environ.get(SCHEMA_BASE_SETTING, "").strip()
    if configured:
        parsed = urlsplit(configured)
        whole = parsed.scheme in ("http", "https") and parsed.netloc and not parsed.query and not parsed.fragment
        if whole and not any(c.isspace() for c in configured):  # a URI has no white space (RFC 3986)
            return configured
        # Events still flow (dataschema is optional in CloudEvents 1.0); the setting is named loudly.
        log.error(
            "%s=%r is not an absolute http(s) URL: downstream events carry no dataschema",
            SCHEMA_BASE_SETTING,
            configured,
        )
        return None
    host = os.environ.get("WEBSITE_HOSTNAME", "").strip()
    if host:
        return f"https://{host}/api/{SCHEMA_ROUTE}"
    log.warning("downstream events carry no dataschema: neither %s nor WEBSITE_HOSTNAME is set", SCHEMA_BASE_SETTING)
    return None


def send_events(events: list[dict[str, Any]]) -> None:
    """Send a batch of CloudEvents (raises the SDK's error); ids are deterministic, so a retried
    publish is a duplicate subscribers can drop. ``dataschema`` is set here, at send time: it names
    where this app serves the schema, a setting no orchestration input needs to carry."""
    from azure.core.messaging import CloudEvent
    from dateutil.parser import isoparse

    base = schema_base_url()
    batch = [
        CloudEvent(
            source=e["source"],
            type=e["type"],
            data=e["data"],
            subject=e["subject"],
            id=e["id"],
            time=isoparse(e["time"]),
            datacontenttype="application/json",
            dataschema=data_schema_uri(base, e["type"]) if base else None,
        )
        for e in events
    ]
    publisher().send(batch)
    for event in events:
        record_event(event)


def describe(err: BaseException) -> dict[str, Any]:
    """A send failure as data: ``status``, ``code``, ``message`` (see backup_chain.delivery.is_permanent)."""
    if isinstance(err, SettingsError):
        return {"status": None, "code": "SettingsError", "message": str(err)}
    # azure-eventgrid re-raises a 404 as a ResourceNotFoundError without status (its message is
    # about namespaces); the service's own error, with status and code, is its cause.
    cause = err.__cause__
    if getattr(err, "status_code", 0) is None and cause is not None and getattr(cause, "status_code", None):
        err = cause
    try:
        found = from_exception(err).to_dict()
    except Exception:  # not an SDK or network error: a bad endpoint URL or event
        return {"status": None, "code": "InvalidEndpoint", "message": f"{type(err).__name__}: {err}"}
    if found.get("code") == "NetworkError" and any(text in str(found.get("message")) for text in _NO_HOST):
        found["code"] = "NameResolutionError"
    return dict(found)


def try_send(events: list[CloudEvent]) -> SendResult:
    try:
        send_events(events)
    except Exception as err:
        return {"ok": False, "error": describe(err)}
    return {"ok": True, "count": len(events)}


async def kept(client: df.DurableOrchestrationClient, key: str) -> bool:
    """Does the run's outbox keep any event (so a new one must queue behind it)?"""
    state = await client.read_entity_state(outbox_entity(key))
    return Outbox.from_state(state.entity_state if state and state.entity_exists else None).blocks()


def deliverer_input(key: str) -> DelivererInput:
    delivery = config().delivery
    return {
        "key": key,
        "retrySeconds": delivery.retryFor.total_seconds(),
        "firstBackoffSeconds": delivery.firstBackoff.total_seconds(),
        "maxBackoffSeconds": delivery.maxBackoff.total_seconds(),
    }


async def kick(client: df.DurableOrchestrationClient, key: str, at: str = "") -> bool:
    """Start the run's deliverer unless it runs; True when started. One waiting out a backoff is
    woken (at most once a minute, ``at`` being the publisher's orchestration time): a new event
    should not wait up to ``maxBackoff`` behind a topic that is back, and an outage should not
    cost an attempt per event."""
    instance_id = deliverer_instance_id(key)
    status = await client.get_status(instance_id)
    if status and status.runtime_status in ACTIVE:
        custom = status.custom_status if isinstance(status.custom_status, dict) else {}
        if custom.get("phase") == "retrying" and _wake_due(custom, at):
            wake: WakeNotice = {"retry": False}
            await client.raise_event(instance_id, WAKE_EVENT, wake)
        return False
    try:
        await client.start_new("deliver_events", instance_id, deliverer_input(key))
    except Exception:
        again = await client.get_status(instance_id)
        if again and again.runtime_status in ACTIVE:
            return False
        raise
    return True


async def enqueue(
    client: df.DurableOrchestrationClient, key: str, events: list[dict[str, Any]], reason: str | None, at: str
) -> None:
    await client.signal_entity(outbox_entity(key), "add", {"key": key, "events": events, "reason": reason, "at": at})
    await client.signal_entity(index_entity(), "add", {"key": key})
    await kick(client, key, at)


def _wake_due(custom: dict[str, Any], at: str) -> bool:
    now, last = parse_time(at), parse_time(custom.get("lastAttemptAt"))
    next_at = parse_time(custom.get("nextAttemptAt"))
    if now is None or last is None or next_at is None:
        return False
    return (now - last).total_seconds() >= WAKE_AFTER_SECONDS and (next_at - now).total_seconds() > 0


def by_outbox(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        groups.setdefault(outbox_key(event), []).append(event)
    return groups


@bp.activity_trigger(input_name="request")
@bp.durable_client_input(client_name="client")
async def publish_events(
    request: PublishRequest | list[CloudEvent], client: df.DurableOrchestrationClient
) -> PublishResult:
    """Input: ``events``, ``at`` (the caller's orchestration time) and ``queue`` (the caller
    already queued events: keep its order). Output: ``ok`` (all sent now), ``sent``, ``queued``."""
    events: list[dict[str, Any]] = request if isinstance(request, list) else list(request["events"])
    at = "" if isinstance(request, list) else str(request.get("at") or "")
    queue_all = isinstance(request, dict) and bool(request.get("queue"))
    sent = queued = 0
    reasons: list[str] = []
    published: list[PublishedEvent] = []
    for key, batch in by_outbox(events).items():
        reason = "kept behind earlier events of the run that the topic has not accepted yet"
        if not (queue_all or await kept(client, key)):
            result = await asyncio.to_thread(try_send, batch)
            if result["ok"]:
                sent += len(batch)
                published.extend(_published(event, kept=False) for event in batch)
                continue
            reason = reason_of(result["error"])
            log.warning(
                "downstream topic did not accept %d events of %s (kept for delivery): %s", len(batch), key, reason
            )
        await enqueue(client, key, batch, reason, at)
        queued += len(batch)
        reasons.append(reason)
        published.extend(_published(event, kept=True) for event in batch)
    return {"ok": queued == 0, "sent": sent, "queued": queued, "reasons": reasons, "events": published}


def _published(event: dict[str, Any], *, kept: bool) -> PublishedEvent:
    time = event.get("time")
    return {
        "id": str(event.get("id")),
        "type": str(event.get("type")),
        "subject": str(event.get("subject")),
        "time": None if time is None else str(time),
        "kept": kept,
    }


@bp.activity_trigger(input_name="request")
def send_event_batch(request: EventBatch) -> SendResult:
    """One attempt to send the outbox's head (the deliverer retries on durable timers)."""
    return try_send(list(request["events"]))


@bp.activity_trigger(input_name="request")
def report_undelivered(request: Undelivered) -> int:
    """Loud: an ERROR line per event (id, type, subject, reason) and the undelivered metric."""
    for event in request["events"]:
        record_undelivered(event, str(request["reason"]))
    return len(request["events"])
