"""The anonymous ``GET /api/schemas/events/{type}/v{major}`` (triggers/schemas.py), called as the
Functions host calls it: only a known type's current major is served, anything else is a 404 that
reads no file and echoes the caller's text only bounded."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from backup_chain.events import EVENT_TYPES
from harness.event_contract import schema_path
from triggers.schemas import ECHO_CHARS, event_schema

serve = event_schema.build().get_user_function()


def _get(event_type: str, version: str) -> func.HttpResponse:
    request = func.HttpRequest(
        "GET", "https://app/api/schemas/events", route_params={"event_type": event_type, "version": version}, body=b""
    )
    return serve(request)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_each_types_current_major_is_its_schema_file(event_type: str) -> None:
    answer = _get(event_type, "v1")
    assert (answer.status_code, answer.mimetype) == (200, "application/schema+json")
    assert answer.get_body().decode() == schema_path(event_type).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("event_type", "version", "field"),
    [
        ("..", "v1", "type"),
        ("../schemas/majors", "v1", "type"),
        ("__class__", "v1", "type"),
        ("chainstarted", "v1", "type"),
        ("ChainStarted", "..%2Fmajors.json", "version"),
        ("ChainStarted", "v01", "version"),
        ("ChainStarted", "v2", "version"),
        ("ChainStarted", "v1.json", "version"),
    ],
)
def test_anything_else_is_a_404_naming_the_bad_part(event_type: str, version: str, field: str) -> None:
    answer = _get(event_type, version)
    body = json.loads(answer.get_body())
    assert (answer.status_code, body["field"]) == (404, field)
    assert "$schema" not in answer.get_body().decode()


@pytest.mark.parametrize(
    ("event_type", "version", "echoed"), [("x" * 8000, "v1", "x"), ("ChainStarted", "9" * 8000, "9")]
)
def test_the_callers_text_is_echoed_bounded(event_type: str, version: str, echoed: str) -> None:
    # Anonymous: an 8 KB path segment must not come back whole in the answer.
    detail = json.loads(_get(event_type, version).get_body())["detail"]
    assert echoed * ECHO_CHARS in detail
    assert echoed * (ECHO_CHARS + 1) not in detail
