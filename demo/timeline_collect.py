"""Reads a run's timeline from the local stack and writes it: the run (``GET …/runs/{runId}``), the
ids of the events it published (``GET …/runs/{runId}/events``), those events as the downstream topic
accepted them (Event Grid emulator ``/admin/events``) and their deliveries to the downstream
listener (``/admin/deliveries``). The model and the drawing are pure (``demo/timeline.py``,
``demo/timeline_render.py``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dateutil.parser import isoparse

from demo.stack import DOWNSTREAM_LISTENER, DOWNSTREAM_TOPIC, Stack
from demo.timeline import Delivery, RunTimeline, build_timeline
from demo.timeline_render import render

DELIVERED_STATUSES = frozenset({200, 201, 202, 203, 204})  # Event Grid's webhook success codes


class CollectError(RuntimeError):
    """The stack did not answer what a timeline needs."""


def _get(stack: Stack, path: str) -> dict[str, Any]:
    response = stack.api("GET", path)
    if response.status_code != 200:
        raise CollectError(f"GET /api/{path} answered {response.status_code}: {response.text[:300]}")
    return dict(response.json())


def listener_deliveries(stack: Stack) -> dict[str, Delivery]:
    """Per event id, the emulator's record of its delivery to the downstream listener."""
    answer = stack.admin("eventgrid", "GET", "/admin/deliveries", params={"subscription": DOWNSTREAM_LISTENER})
    if not any(s.get("name") == DOWNSTREAM_LISTENER for s in answer.get("subscriptions") or []):
        raise CollectError(f"the Event Grid emulator has no downstream subscription {DOWNSTREAM_LISTENER!r}")
    found: dict[str, Delivery] = {}
    for delivery in answer.get("deliveries") or []:
        succeeded = [h for h in delivery.get("history") or [] if h.get("httpStatusCode") in DELIVERED_STATUSES]
        at = isoparse(succeeded[-1]["time"]) if delivery.get("state") == "Delivered" and succeeded else None
        for event_id in delivery.get("eventIds") or []:
            found[str(event_id)] = Delivery(str(delivery.get("state")), at)
    return found


def collect(stack: Stack, chain: str, run_id: str) -> RunTimeline:
    run = _get(stack, f"chains/{chain}/runs/{run_id}")
    listed = _get(stack, f"chains/{chain}/runs/{run_id}/events").get("events") or []
    records = stack.admin("eventgrid", "GET", "/admin/events", params={"topic": DOWNSTREAM_TOPIC})
    accepted = {str(r["event"].get("id")): r["event"] for r in records.get("events") or []}
    # Events the run kept (the topic has not taken them yet) are not in the topic's log: the
    # timeline then falls back to the run's own record of the VM.
    events = [accepted[str(e.get("id"))] for e in listed if str(e.get("id")) in accepted]
    return build_timeline(run, events, listener_deliveries(stack))


def settle_deliveries(stack: Stack, timeout: float) -> None:
    """Wait (at most ``timeout`` wall seconds) until no delivery to the listener is still pending,
    so the picture shows when downstream heard rather than 'pending'; a delivery still pending
    after that is drawn as such."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(d.state != "Pending" for d in listener_deliveries(stack).values()):
            return
        time.sleep(0.2)


def write(timeline: RunTimeline, path: Path) -> None:
    path.write_text(render(timeline, path.suffix.lower()), encoding="utf-8")
