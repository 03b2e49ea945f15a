"""The Event Grid trigger webhook (``/runtime/webhooks/eventgrid?functionName=NAME``): subscription
validation for the Event Grid schema, the CloudEvents abuse-protection handshake, and one function
invocation per event of a delivered batch, as the Event Grid extension does.

A delivery that is no batch of events the function could be given is refused with 400 before any
function runs: a body that is not JSON or nests too deeply, an array of non-objects, a validation
event without a code, and an event the Python worker cannot read (a ``time``/``eventTime`` that
is no string, no date, or - a limit of azure-functions 1.26 - an RFC 3339 time with an offset
other than +00:00). On Azure the worker fails that event's invocation and the host answers 500,
so Event Grid redelivers the whole batch until it dead-letters it; devhost says at once which event
cannot be read and why, and runs none of the batch."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from azure.functions import meta

from devhost.invoke import decode

MAX_DELIVERY_BYTES = 1024 * 1024  # Event Grid never delivers more than 1 MB in one request
VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"


def handshake(request: web.Request) -> web.Response:
    """The CloudEvents 1.0 webhook abuse-protection handshake (OPTIONS)."""
    origin = request.headers.get("WebHook-Request-Origin")
    if not origin:
        return web.Response(status=400, text="WebHook-Request-Origin header is required")
    return web.Response(status=200, headers={"WebHook-Allowed-Origin": origin, "Allow": "POST"})


def parse_delivery(raw: bytes) -> list[dict[str, Any]]:
    """The events of one delivery (a JSON array, or a single CloudEvent object)."""
    if len(raw) > MAX_DELIVERY_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_DELIVERY_BYTES, actual_size=len(raw))
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise web.HTTPBadRequest(text=f"request body is not valid JSON: {err}") from None
    except RecursionError:
        raise web.HTTPBadRequest(text="request body nests JSON too deeply to be a batch of events") from None
    events = payload if isinstance(payload, list) else [payload]
    if not events or not all(isinstance(e, dict) for e in events):
        raise web.HTTPBadRequest(text="request body must be an event object or a non-empty array of events")
    return events


def check_events(events: list[dict[str, Any]]) -> None:
    """Refuse (400) a batch with an event the worker's Event Grid converter cannot read."""
    for index, event in enumerate(events):
        try:
            decode("eventGridTrigger", meta.Datum(type="json", value=json.dumps(event)))
        except Exception as err:  # ValueError, TypeError, RecursionError: whatever the converter raises
            raise web.HTTPBadRequest(
                text=f"event {index} is not an Event Grid or CloudEvents 1.0 event: {type(err).__name__}: {err}"
            ) from None


def validation_response(events: list[dict[str, Any]]) -> web.Response | None:
    """Answer the Event Grid schema subscription validation event, if that is what arrived."""
    if len(events) == 1 and events[0].get("eventType") == VALIDATION_EVENT:
        data = events[0].get("data")
        code = data.get("validationCode") if isinstance(data, dict) else None
        if not code:
            return web.Response(status=400, text="validation event without data.validationCode")
        return web.json_response({"validationResponse": code})
    return None
