"""Parse and validate a publish request body the way an Event Grid custom topic does.

Sources:
- Required properties: Event Grid schema ``id``, ``subject``, ``eventType``, ``eventTime`` (checked
  in the order subject, id, eventType, eventTime); ``topic`` if present must equal the topic's
  resource id, ``metadataVersion`` if present must be ``"1"``, ``dataVersion`` is stamped ``""``
  when absent (docs: event-schema, EventGridPartialEvent). CloudEvents 1.0: ``id``, ``source``,
  ``type``, ``specversion`` (= ``"1.0"``) (spec EventGrid.json ``CloudEventEvent``).
- Body shape: Event Grid schema takes a JSON array ("Unexpected token when reading JSON. Expected:
  StartArray, actual: StartObject." is the service's message for an object); CloudEvents take
  ``application/cloudevents-batch+json`` (array) or ``application/cloudevents+json`` /
  ``application/json`` (single object).
- Limits: 1,536,000 bytes per request and 1,049,600 bytes per event; HTTP 413
  ``RequestEntityTooLarge`` with "The maximum size (N) has been exceeded." (message seen in
  Azure SDK exceptions; per-event figure measured against the service, see
  pm7y/AzureEventGridSimulator#201; Azure's documented limit is 1 MB).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from emulators.eventgrid.config import CLOUD_EVENT_SCHEMA, Topic
from emulators.eventgrid.errors import (
    INPUT_JSON_INVALID,
    INVALID_CONTENT_TYPE,
    PAYLOAD_TOO_LARGE,
    PublishError,
)

MAX_REQUEST_BYTES = 1_536_000
MAX_EVENT_BYTES = 1_049_600
SCHEMA_NAMES: dict[str, str] = {"EventGridSchema": "EventGridEvent", CLOUD_EVENT_SCHEMA: "CloudEventV10"}
EG_REQUIRED = ("subject", "id", "eventType", "eventTime")
CE_REQUIRED = ("id", "source", "type", "specversion")
CE_BATCH = "application/cloudevents-batch+json"
CE_SINGLE = "application/cloudevents+json"
BAD_CONTENT_TYPE = (
    "The Content-Type header is either missing or it doesn't have a valid value. The content type "
    "header must either be application/cloudevents+json; charset=utf-8 or "
    "application/cloudevents-batch+json; charset=UTF-8."
)


# Stand-ins (no Microsoft source found gives these messages): .NET's JSON readers refuse nesting
# deeper than 64 by default, and a string holding half a UTF-16 surrogate pair is not valid Unicode
# text; Event Grid answers both 400 InputJsonInvalid (a lone surrogate is
# 400 in Azure too; docs/azure-fidelity.md).
MAX_DEPTH = 64
TOO_DEEP = f"The reader's MaxDepth of {MAX_DEPTH} has been exceeded."
LONE_SURROGATE = "The JSON received contains a string with an unpaired UTF-16 surrogate (\\u{:04x})."


def _check_tree(payload: object) -> None:
    """Depth and text of every value, without recursion (the payload may be deep on purpose)."""
    stack: list[tuple[object, int]] = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise _bad(TOO_DEEP)
            children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(value, str):
            # json.loads joins a valid escaped pair into one character: what is left is unpaired.
            lone = next((c for c in value if "\ud800" <= c <= "\udfff"), None)
            if lone is not None:
                raise _bad(LONE_SURROGATE.format(ord(lone)))


def too_large(limit: int) -> PublishError:
    return PublishError(413, f"The maximum size ({limit}) has been exceeded.", PAYLOAD_TOO_LARGE, report=False)


def _bad(message: str) -> PublishError:
    return PublishError(400, message, INPUT_JSON_INVALID)


def _not_conforming(schema: str, extra: str = "") -> PublishError:
    return _bad(
        f"This resource is configured to receive event in '{SCHEMA_NAMES[schema]}' schema. "
        f"The JSON received does not conform to the expected schema.{extra}"
    )


def _requires(schema: str, prop: str) -> PublishError:
    return _bad(
        f"This resource is configured for '{SCHEMA_NAMES[schema]}' schema and requires '{prop}' property to be set."
    )


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # Python < 3.11 accepts at most 6 fractional digits; .NET writes 7.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits) :]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _event_size(event: dict[str, Any]) -> int:
    return len(json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode())


def _validate_eventgrid(event: object, topic: Topic) -> dict[str, Any]:
    schema = topic.input_schema
    if not isinstance(event, dict):
        raise _not_conforming(schema)
    for prop in EG_REQUIRED:
        value = event.get(prop)
        if value is None or (prop != "subject" and value == ""):
            raise _requires(schema, prop)
        if not isinstance(value, str):
            raise _bad(f"The '{prop}' property of an event must be a string.")
    if parse_time(event["eventTime"]) is None:
        raise _bad(f"The eventTime '{event['eventTime']}' is not a valid date-time (ISO 8601 / RFC 3339).")
    stamped = dict(event)
    topic_value = event.get("topic")
    if topic_value not in (None, "") and str(topic_value).lower() != topic.resource_id.lower():
        raise _bad(
            f"Invalid topic '{topic_value}': if included, 'topic' must match the topic's resource id "
            f"'{topic.resource_id}'."
        )
    metadata_version = event.get("metadataVersion")
    if metadata_version not in (None, "", "1"):
        raise _bad(f"Invalid metadataVersion '{metadata_version}': if included, it must be '1'.")
    stamped["topic"] = topic.resource_id
    stamped["metadataVersion"] = "1"
    stamped.setdefault("dataVersion", "")
    if stamped["dataVersion"] is None:
        stamped["dataVersion"] = ""
    return stamped


def _validate_cloudevent(event: object, topic: Topic) -> dict[str, Any]:
    schema = topic.input_schema
    if not isinstance(event, dict):
        raise _not_conforming(schema)
    for prop in CE_REQUIRED:
        value = event.get(prop)
        if value in (None, ""):
            raise _requires(schema, prop)
        if not isinstance(value, str):
            raise _bad(f"The '{prop}' attribute of a CloudEvent must be a string.")
    if event["specversion"] != "1.0":
        raise _bad(f"Unsupported CloudEvents specversion '{event['specversion']}'; only '1.0' is supported.")
    if "time" in event and event["time"] is not None and parse_time(event["time"]) is None:
        raise _bad(f"The time '{event['time']}' is not a valid RFC 3339 timestamp.")
    if "data" in event and "data_base64" in event:
        raise _bad("A CloudEvent cannot have both 'data' and 'data_base64'.")
    return dict(event)


def parse_events(body: bytes, content_type: str | None, topic: Topic) -> list[dict[str, Any]]:
    """The events of a publish request, validated and stamped, or a :class:`PublishError`."""
    if len(body) > MAX_REQUEST_BYTES:
        raise too_large(MAX_REQUEST_BYTES)
    schema = topic.input_schema
    media = _media_type(content_type)
    if schema == CLOUD_EVENT_SCHEMA and media not in (CE_BATCH, CE_SINGLE, "application/json"):
        raise PublishError(415, BAD_CONTENT_TYPE, INVALID_CONTENT_TYPE)
    if not body.strip():
        raise _bad("Unexpected end when reading JSON.")
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _bad(f"The request body is not valid JSON: {err}.") from None
    except RecursionError:
        raise _bad(TOO_DEEP) from None
    _check_tree(payload)

    if schema == CLOUD_EVENT_SCHEMA:
        if media == CE_BATCH:
            if not isinstance(payload, list):
                raise _not_conforming(schema, " Token Expected: StartArray, Actual Token Received: StartObject.")
            items = payload
        else:
            if isinstance(payload, list):
                raise _not_conforming(schema, " Token Expected: StartObject, Actual Token Received: StartArray.")
            items = [payload]
    else:
        if not isinstance(payload, list):
            raise _bad("Unexpected token when reading JSON. Expected: StartArray, actual: StartObject.")
        items = payload
    if not items:
        raise _not_conforming(schema)

    events = []
    for item in items:
        if isinstance(item, dict) and _event_size(item) > MAX_EVENT_BYTES:
            raise too_large(MAX_EVENT_BYTES)
        if schema == CLOUD_EVENT_SCHEMA:
            events.append(_validate_cloudevent(item, topic))
        else:
            events.append(_validate_eventgrid(item, topic))
    return events
