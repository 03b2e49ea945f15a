"""Publishing downstream CloudEvents to the Event Grid topic."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from activities.azure_errors import from_exception, raise_if_transient
from activities.clients import publisher
from triggers.telemetry import record_event

bp = df.Blueprint()


def send_events(events: list[dict[str, Any]]) -> None:
    """Send a batch of CloudEvents (raises the SDK's error); ids are deterministic, so a retried
    publish is a duplicate subscribers can drop."""
    from azure.core.messaging import CloudEvent
    from dateutil.parser import isoparse

    batch = [
        CloudEvent(
            source=e["source"],
            type=e["type"],
            data=e["data"],
            subject=e["subject"],
            id=e["id"],
            time=isoparse(e["time"]),
            datacontenttype="application/json",
        )
        for e in events
    ]
    publisher().send(batch)
    for event in events:
        record_event(event)


@bp.activity_trigger(input_name="events")
def publish_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        send_events(events)
    except Exception as err:
        return {"ok": False, "error": raise_if_transient(from_exception(err)).to_dict()}
    return {"ok": True, "count": len(events)}
