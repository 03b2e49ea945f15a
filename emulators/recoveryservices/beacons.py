"""The Linux post-scripts' snapshot beacons (docs/beacon.md), sent as the real script sends them:
one CloudEvent ``BackupChain.Beacon.SnapshotTaken`` (source the VM, time the in-guest snapshot
moment on the shared clock), POSTed with a managed-identity bearer token to the topic. A topic
that fails or is unreachable loses the beacon, as on a VM: the job completes anyway and the app
finds it by polling. Counted in the engine's stats (``beaconsSent``, ``beaconsLost``).

A topic name is resolved against the Event Grid emulator's URL (``EVENTGRID_EMULATOR_URL``),
trusted with its CA (``EVENTGRID_EMULATOR_CA``); a full ``https://`` URL is used as it is."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
import uuid
from datetime import datetime, timezone

import aiohttp

from emulators.recoveryservices.engine import DueBeacon, Engine

EVENT_TYPE = "BackupChain.Beacon.SnapshotTaken"
TIMEOUT_SECONDS = 2.0  # the post-script's own per-request timeout
log = logging.getLogger("emulators.recoveryservices.beacons")


def publish_url(topic: str) -> str | None:
    if topic.startswith(("https://", "http://")):
        return topic
    base = os.environ.get("EVENTGRID_EMULATOR_URL", "").rstrip("/")
    return f"{base}/topics/{topic}/api/events" if base else None


def managed_identity_token() -> str:
    """What IMDS hands the VM for Event Grid: a JWT whose ``aud`` is Event Grid's (the emulator
    checks only that; it has no Entra ID to verify a signature)."""

    def part(body: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()

    return f"{part({'typ': 'JWT', 'alg': 'none'})}.{part({'aud': 'https://eventgrid.azure.net'})}.sig"


def beacon_event(beacon: DueBeacon) -> dict[str, object]:
    when = datetime.fromtimestamp(beacon.at, timezone.utc).replace(microsecond=0)
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"beacon:{beacon.job_id}")),
        "type": EVENT_TYPE,
        "source": beacon.vm_id,
        "time": when.isoformat().replace("+00:00", "Z"),
    }


def _ssl_context() -> ssl.SSLContext:
    ca = os.environ.get("EVENTGRID_EMULATOR_CA")
    return ssl.create_default_context(cafile=ca) if ca and os.path.exists(ca) else ssl.create_default_context()


async def send(engine: Engine, beacon: DueBeacon) -> bool:
    url = publish_url(beacon.topic)
    sent = False
    if url is not None:
        headers = {
            "Content-Type": "application/cloudevents+json; charset=utf-8",
            "Authorization": f"Bearer {managed_identity_token()}",
        }
        try:
            timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(url, json=beacon_event(beacon), headers=headers, ssl=_ssl_context()) as response,
            ):
                sent = response.status < 300
                if not sent:
                    log.warning("beacon for %s lost: topic answered %d", beacon.vm_id, response.status)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as err:
            log.warning("beacon for %s lost: %s", beacon.vm_id, err or type(err).__name__)
    else:
        log.warning("beacon for %s lost: topic %r needs EVENTGRID_EMULATOR_URL", beacon.vm_id, beacon.topic)
    engine.stats["beaconsSent" if sent else "beaconsLost"] += 1
    return sent


async def send_due(engine: Engine) -> None:
    """Send every beacon the engine made due, at once (each VM sends its own; a slow topic must not
    hold up the others or the emulator's tick for more than one timeout)."""
    due, engine.beacons = engine.beacons, []
    await asyncio.gather(*(send(engine, beacon) for beacon in due))
