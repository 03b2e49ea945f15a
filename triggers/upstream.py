"""``upstream_event``: the Event Grid trigger for upstream signals.

A matching event is raised into the chain's run that waits in its window, or starts a run named
after the event id (Event Grid delivers at least once; a redelivery finds its run and changes
nothing); a paused chain gets neither, and says so (triggers/control.py). Events that match no
chain, or are malformed, are logged and acknowledged: retrying them could never succeed."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from app_runtime import config
from backup_chain.config import Chain
from backup_chain.ids import chain_prefix, run_id_for_event
from backup_chain.runs import upstream_signal
from backup_chain.text import is_unicode
from entities.chain_control import read_control
from triggers.control import end_waiting_runs, tell_skipped
from triggers.instance_query import list_instances
from triggers.runs import start_run, waiting_run

bp = df.Blueprint()
log = logging.getLogger("backup_chain")
MAX_EVENT_DATA_BYTES = 64 * 1024
DEDUPE_WINDOW = timedelta(days=8)  # longer than Event Grid's 24 h retry and any upstream timeout


def _fields(event: Any) -> tuple[str, str, str | None, Any]:
    """(id, type, subject, data) of an Event Grid schema event or a CloudEvent."""
    if isinstance(event, func.EventGridEvent):
        return event.id, event.event_type, event.subject, event.get_json()
    return event.id, event.type, event.subject, event.get_json()


def _status(data: Any) -> tuple[str, Any]:
    """Upstream outcome from the event data: ``status`` "Failed" (any case) means failed; anything
    else, or no status, means the upstream job succeeded."""
    if isinstance(data, dict):
        status = str(data.get("status", "Succeeded"))
        return ("Failed" if status.lower() == "failed" else "Succeeded"), data.get("detail", data)
    return "Succeeded", data


def _data_size(data: Any) -> int | None:
    """Bytes of ``data`` as JSON text, or None when it is none: NaN or Infinity (Python's json
    reads them, RFC 8259 and Event Grid do not), a lone surrogate (a ``\\ud800`` escape, no
    Unicode text), or nesting deeper than the encoder can follow. Such data, raised into a run,
    would fail every publish of the run's UpstreamReceived event and every strict read of it."""
    try:
        return len(json.dumps(data, allow_nan=False, ensure_ascii=False).encode("utf-8"))
    except (ValueError, TypeError, UnicodeEncodeError, RecursionError):
        return None


def _event_time(event: Any) -> datetime | None:
    """When the event happened, as its publisher says (Event Grid ``eventTime``, CloudEvent
    ``time``); None when absent or unreadable. A redelivery carries the same time."""
    raw = getattr(event, "event_time", None) or getattr(event, "time", None)
    if isinstance(raw, str):
        try:
            raw = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(raw, datetime):
        return None
    # A time without an offset is read as UTC, as Event Grid writes its times.
    return raw if raw.tzinfo else raw.replace(tzinfo=timezone.utc)


def dedupe_since(event_time: datetime | None) -> datetime | None:
    """The oldest run creation time that can hold this event. Anchored at the event's own time,
    not at any clock's now: the run's created time is on the Durable clock (virtual on devhost),
    and a redelivery days later must still find its run. No bound when the event has no time, or
    one in the first days of year 1 (the window would start before any date Python can hold)."""
    if event_time is None or event_time - datetime.min.replace(tzinfo=timezone.utc) < DEDUPE_WINDOW:
        return None
    return event_time - DEDUPE_WINDOW


async def _already_handled(
    client: df.DurableOrchestrationClient, chain_name: str, event_id: str, since: datetime | None
) -> bool:
    """Was this event already raised into one of the chain's runs (created at ``since`` or later)?"""
    # The SDK leaves createdTimeFrom out of the query when it is None.
    for status in await list_instances(client, created_time_from=since, instance_id_prefix=chain_prefix(chain_name)):
        custom = status.custom_status if isinstance(status.custom_status, dict) else {}
        if (custom.get("upstream") or {}).get("eventId") == event_id:
            return True
    return False


async def _skip_paused(
    client: df.DurableOrchestrationClient, chain: Chain, event_id: str, pause: dict[str, Any]
) -> None:
    """Runs of the paused chain still waiting end skipped; otherwise the run this event would
    have started is told downstream as skipped (ChainSkipped, reason "paused"); either is logged."""
    detail = {**pause, "upstreamEventId": event_id}
    ended = await end_waiting_runs(client, chain, detail)
    run_id = run_id_for_event(event_id)
    if not ended:
        await tell_skipped(client, chain, run_id, detail)
    log.warning(
        "upstream event %s not passed to chain %s: paused since %s; %s",
        event_id,
        chain.name,
        pause["since"],
        f"its waiting runs end skipped: {', '.join(ended)}" if ended else f"run {run_id} not started",
        extra={"chain": chain.name},
    )


@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def upstream_event(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    event_id, event_type, subject, data = _fields(event)
    # A delivery is JSON from outside: a number or object where a string belongs must be
    # acknowledged and dropped, not crash the function (Event Grid would redeliver it for a day).
    if not isinstance(event_id, str) or not isinstance(event_type, str) or not event_id or not event_type:
        log.warning("upstream event without a string id and type ignored")
        return
    if not is_unicode(event_id):
        log.warning("upstream event %a ignored: its id is not Unicode text", event_id)
        return
    if subject is not None and not isinstance(subject, str):
        log.warning("upstream event %s ignored: subject is not a string", event_id)
        return
    size = _data_size(data)
    if size is None:
        log.warning("upstream event %s ignored: its data is not valid JSON text", event_id)
        return
    if size > MAX_EVENT_DATA_BYTES:
        log.warning("upstream event %s ignored: data larger than %d bytes", event_id, MAX_EVENT_DATA_BYTES)
        return
    chains = [c for c in config().chains if c.upstream is not None and c.upstream.matches(event_type, subject)]
    if not chains:
        log.info("upstream event %s (%s, subject %r) matches no chain; acknowledged", event_id, event_type, subject)
        return
    status, detail = _status(data)
    signal = upstream_signal(status, detail, event_id)
    since = dedupe_since(_event_time(event))
    for chain in chains:
        if await _already_handled(client, chain.name, event_id, since):
            log.info("upstream event %s already handled by chain %s", event_id, chain.name)
            continue
        pause = (await read_control(client, chain.name)).pause_view()
        if pause is not None:  # a paused chain hears no upstream event, and says so
            await _skip_paused(client, chain, event_id, pause)
            continue
        waiting = await waiting_run(client, chain)
        if waiting is not None:
            await client.raise_event(waiting, "upstream", signal)
            log.info("upstream event %s raised into %s", event_id, waiting, extra={"chain": chain.name})
            continue
        started, instance_id = await start_run(
            client, chain, run_id_for_event(event_id), started_by="event", wait_for_upstream=False, upstream=signal
        )
        log.info("upstream event %s %s %s", event_id, "started" if started else "already started", instance_id)
