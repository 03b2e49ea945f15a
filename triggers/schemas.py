"""``GET /api/schemas/events/{type}/v{major}``: the JSON Schema of one event type's major version,
the URL every published event names as its CloudEvents ``dataschema`` (docs/events.md,
"Contract"). Anonymous on purpose: a subscriber that holds no function key can still read what the
events it receives promise (the schemas are public documents; the route reads nothing else), as an
``AuthLevel.ANONYMOUS`` trigger does (learn.microsoft.com/azure/azure-functions/
functions-bindings-http-webhook-trigger, "HTTP auth levels")."""

from __future__ import annotations

import logging
import re

import azure.durable_functions as df
import azure.functions as func

from app_runtime import APP_DIR
from backup_chain.events import SCHEMA_MAJORS, SCHEMA_ROUTE
from triggers.http_api import problem

bp = df.Blueprint()
log = logging.getLogger("backup_chain")
SCHEMA_DIR = APP_DIR / "docs" / "events" / "schemas"  # shipped with the app (.funcignore)
_VERSION = re.compile(r"v([1-9][0-9]{0,3})")
ECHO_CHARS = 80  # of the caller's path segment said back: anyone may call this route


def _echo(text: str) -> str:
    return repr(text[:ECHO_CHARS] + ("…" if len(text) > ECHO_CHARS else ""))


@bp.route(route=SCHEMA_ROUTE + "/{event_type}/{version}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def event_schema(req: func.HttpRequest) -> func.HttpResponse:
    event_type, version = req.route_params.get("event_type", ""), req.route_params.get("version", "")
    if event_type not in SCHEMA_MAJORS:
        known = ", ".join(SCHEMA_MAJORS)
        return problem(404, "Not Found", f"no event type {_echo(event_type)}; types: {known}", "type")
    match = _VERSION.fullmatch(version)
    if match is None or int(match.group(1)) != SCHEMA_MAJORS[event_type]:
        current = f"v{SCHEMA_MAJORS[event_type]}"
        return problem(404, "Not Found", f"{event_type} has no schema {_echo(version)}; it is at {current}", "version")
    path = SCHEMA_DIR / f"{event_type}.schema.json"
    if not path.is_file():  # a type added without its schema: say so, do not pretend
        log.error("event schema %s is missing from the app (%s)", event_type, path)
        return problem(500, "Internal Server Error", f"the schema of {event_type} is missing from the app", "type")
    return func.HttpResponse(path.read_text(encoding="utf-8"), status_code=200, mimetype="application/schema+json")
