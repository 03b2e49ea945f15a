"""``beacon_event``: the Event Grid trigger for snapshot beacons (docs/beacon.md).

A beacon is a hint, never truth. A valid one is signalled as ``hint`` to the ``job_watch`` board of
each vault that may watch the VM, and the vault's poller is woken so the job is read at once
(unless its status says it was woken already and looks every tick); the board ignores a VM it
does not watch, or a time outside the watched phase. SnapshotCompleted still comes only from the
job's own state. A malformed beacon is logged at ERROR naming the field and
acknowledged (redelivering it could never succeed); nothing changes."""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from app_runtime import config
from backup_chain.beacon import BeaconInvalid, hint_vaults, parse_beacon
from backup_chain.ids import poller_instance_id
from backup_chain.job_watch import POLLER_WAKE_EVENT, poller_awaits_wake
from backup_chain.messages import WatchHint
from entities.job_watch import watch_entity
from triggers.upstream import _data_size

bp = df.Blueprint()
log = logging.getLogger("backup_chain")


def _fields(event: Any) -> tuple[Any, Any, Any, Any, Any]:
    """(id, type, source, time, data) of a CloudEvent delivery; an Event Grid schema event has no
    source (its topic is Azure's), so it is no beacon."""
    if isinstance(event, func.EventGridEvent):
        return event.id, event.event_type, None, event.event_time, event.get_json()
    source = getattr(event, "source", None)
    return event.id, event.type, source, getattr(event, "time", None), event.get_json()


@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def beacon_event(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    event_id, event_type, source, time, data = _fields(event)
    try:
        beacon = parse_beacon(event_id, event_type, source, time, _data_size(data) if data is not None else 0)
    except BeaconInvalid as err:
        log.error("beacon %a ignored: %s", str(event_id)[:128], err)
        return
    cfg = config()
    if not cfg.polling.shared:
        # Per-VM polling has no board to hint: each backup reads on its own plan (docs/beacon.md).
        log.info("beacon %s for %s not applied: polling.shared is false", beacon.event_id, beacon.vm_id)
        return
    vaults = hint_vaults(cfg, beacon.vm_id)
    if not vaults:
        log.warning("beacon %s for %s ignored: no configured vault can back up that VM", beacon.event_id, beacon.vm_id)
        return
    hint: WatchHint = {"vmId": beacon.vm_id, "at": beacon.at, "beaconId": beacon.event_id}
    woken = 0
    for vault in vaults:
        # The board gets the hint directly (it holds even if no poller runs now) and through the
        # woken poller, which applies it before its take; the second one is a no-op ("repeated").
        # The signal goes first: a poller whose status says it was woken already takes it within a
        # tick, as its status is saved before each sleep (docs/beacon.md, "In the app").
        await client.signal_entity(watch_entity(vault), "hint", hint)
        woken += await _wake_poller(client, vault, hint)
    log.info(
        "beacon %s for %s hinted to %d vault board(s), %d poller(s) woken (the others were awake)",
        beacon.event_id,
        beacon.vm_id,
        len(vaults),
        woken,
    )


async def _wake_poller(client: df.DurableOrchestrationClient, vault: str, hint: WatchHint) -> int:
    """Raise the wake into the vault's poller unless its status says it was woken already; 1 if
    raised. A status that cannot be read counts as unknown: the wake is raised."""
    poller = poller_instance_id(vault)
    try:
        status = await client.get_status(poller)
        runtime, custom = (status.runtime_status.name if status.runtime_status else None), status.custom_status
    except Exception as err:
        log.info("poller of %s: status not read (%s); waking it", vault, err)
        runtime, custom = None, None
    if not poller_awaits_wake(runtime, custom):
        return 0
    try:
        await client.raise_event(poller, POLLER_WAKE_EVENT, hint)
    except Exception as err:  # no poller running: the hinted read waits for the next one
        log.info("beacon %s: poller of %s not woken (%s)", hint["beaconId"], vault, err)
        return 0
    return 1
