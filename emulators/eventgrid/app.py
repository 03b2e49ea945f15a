"""HTTP surface: topic publish endpoints, manual validation URL and the ``/admin/`` API.

Publish: ``POST /topics/{topic}/api/events?api-version=2018-01-01`` — the topic's endpoint, used
as-is by ``EventGridPublisherClient(endpoint, credential)`` (it posts to the endpoint it was given
and adds ``api-version``), like ``https://<topic>.<region>-1.eventgrid.azure.net/api/events``.
A successful publish answers 200 with an empty body, as Azure does.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

from emulators.eventgrid.auth import authenticate
from emulators.eventgrid.config import EmulatorConfig, Topic
from emulators.eventgrid.delivery import Dispatcher
from emulators.eventgrid.errors import FORBIDDEN, RESOURCE_NOT_FOUND, UNAUTHORIZED, PublishError, error_response
from emulators.eventgrid.eventlog import topic_log
from emulators.eventgrid.validation import MAX_REQUEST_BYTES, parse_events, too_large
from localclock.clock import Clock, iso
from localclock.clock_http import add_clock_routes

PUBLISH_PATH = "/topics/{topic}/api/events"
READ_CHUNK = 64 * 1024


class EventGridEmulator:
    """The emulator's state: config, clock, accepted events, counters and the dispatcher."""

    def __init__(self, config: EmulatorConfig, clock: Clock, state_dir: Path, dispatcher: Dispatcher) -> None:
        self.config = config
        self.clock = clock
        self.state_dir = Path(state_dir)
        self.dispatcher = dispatcher
        # What each topic accepted, read back from its log: a restarted emulator still shows it.
        self.accepted: dict[str, list[dict[str, Any]]] = {
            t.name: topic_log(self.state_dir, t.name).read() for t in config.topics
        }
        self.requests: Counter[str] = Counter()
        # Publish faults per topic (``/admin/faults``): refuse with 401/403/404 or be unreachable.
        self.faults: dict[str, dict[str, Any]] = {}

    def publish_url(self, base_url: str, topic: Topic) -> str:
        return f"{base_url}/topics/{topic.name}/api/events"

    # --- publish --------------------------------------------------------------------------
    async def publish(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        name = request.match_info["topic"]
        topic = self.config.topic(name)
        fault = self.faults.get(name.lower())
        if fault is not None and fault.get("mode") == "unreachable" and request.transport is not None:
            # No answer at all, as when the endpoint is down or blackholed: the client sees the
            # connection drop (a network error, which Event Grid clients retry).
            self.requests[f"publish {name} unreachable"] += 1
            request.transport.abort()
            return web.Response(status=503)
        try:
            if fault is not None and fault.get("status"):
                raise refusal(int(fault["status"]), name, request)
            if topic is None:
                raise PublishError(
                    404,
                    f"No HTTP resource was found that matches the request URI '{request.url}'.",
                    RESOURCE_NOT_FOUND,
                )
            resource = f"{name}.{request.host}"
            authenticate(request.headers, request.query, topic, str(request.url), self.clock.now(), resource)
            body = await _read_limited(request, MAX_REQUEST_BYTES)
            events = parse_events(body, request.headers.get("Content-Type"), topic)
        except PublishError as err:
            self.requests[f"publish {name} {err.status}"] += 1
            return error_response(err, self.clock.now(), request_id)
        received = iso(self.clock.now())
        records = [
            {"receivedAt": received, "topic": topic.name, "schema": topic.input_schema, "event": e} for e in events
        ]
        topic_log(self.state_dir, topic.name).append(records)
        self.accepted[topic.name].extend(records)
        self.dispatcher.submit(topic, events)
        self.requests[f"publish {topic.name} 200"] += 1
        return web.Response(status=200, headers={"x-ms-request-id": request_id})

    async def validate(self, request: web.Request) -> web.Response:
        ok = self.dispatcher.manual_validate(
            request.match_info["subscription"], request.query.get("id", ""), request.query.get("token", "")
        )
        self.requests[f"validate {'ok' if ok else 'rejected'}"] += 1
        if not ok:
            return web.json_response(
                {"error": {"code": "BadRequest", "message": "Invalid or expired validation URL."}}, status=400
            )
        return web.Response(text="Webhook successfully validated as a result of the GET request.")

    # --- admin ----------------------------------------------------------------------------
    async def admin_events(self, request: web.Request) -> web.Response:
        name = request.query.get("topic")
        if name is not None:
            topic = self.config.topic(name)
            if topic is None:
                return _admin_error(404, f"no topic named {name!r}")
            return web.json_response({"topic": topic.name, "events": self.accepted[topic.name]})
        return web.json_response({"topics": self.accepted})

    async def admin_deliveries(self, request: web.Request) -> web.Response:
        sub = request.query.get("subscription")
        return web.json_response(
            {"subscriptions": self.dispatcher.subscriptions(), "deliveries": self.dispatcher.deliveries(sub)}
        )

    async def admin_deadletters(self, request: web.Request) -> web.Response:
        sub = request.query.get("subscription")

        def keep(item: dict[str, Any]) -> bool:
            return sub is None or str(item["subscription"]).lower() == sub.lower()

        return web.json_response(
            {
                "deadLetters": [d for d in self.dispatcher.dead_letters if keep(d)],
                "dropped": [d for d in self.dispatcher.dropped if keep(d)],
            }
        )

    async def admin_requests(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": dict(self.requests)})

    async def admin_faults(self, request: web.Request) -> web.Response:
        """``POST {"topic", "status": 401|403|404}`` refuses publishes to the topic; ``{"topic",
        "mode": "unreachable"}`` drops them unanswered; ``{"topic"}`` alone clears. GET lists."""
        if request.method == "GET":
            return web.json_response({"faults": self.faults})
        body = await request.json()
        name = str(body.get("topic") or "").lower()
        if self.config.topic(name) is None:
            return _admin_error(404, f"no topic named {name!r}")
        status, mode = body.get("status"), body.get("mode")
        if status is not None and status not in REFUSALS:
            return _admin_error(400, f"status must be one of {sorted(REFUSALS)}")
        if mode not in (None, "unreachable"):
            return _admin_error(400, "mode must be 'unreachable'")
        if status is None and mode is None:
            self.faults.pop(name, None)
        else:
            self.faults[name] = {"status": status, "mode": mode}
        return web.json_response({"faults": self.faults})

    async def admin_reset(self, request: web.Request) -> web.Response:
        await self.dispatcher.reset()
        for topic in self.config.topics:
            self.accepted[topic.name].clear()
            topic_log(self.state_dir, topic.name).truncate()
        self.requests.clear()
        self.faults.clear()
        return web.json_response({"reset": True})

    async def admin_config(self, request: web.Request) -> web.Response:
        return web.json_response(self.config.model_dump(by_alias=True, exclude={"topics": {"__all__": {"key2"}}}))


async def _read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(READ_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


# What a topic answers a publisher it refuses. Event Grid data plane: 401 for an authorization
# failure (bad key or token, or an identity without the "EventGrid Data Sender" role), 403 when
# the request is forbidden, 404 for a missing topic (learn.microsoft.com: EventGridSenderClient
# "401: authorization failure, 403: ... 404/410: topic not found"; event-grid/security-authorization).
REFUSALS = {
    401: ("The principal does not have the required role 'EventGrid Data Sender' on the topic.", UNAUTHORIZED),
    403: ("The request is forbidden: the caller is not allowed to publish to this topic.", FORBIDDEN),
    404: ("The topic was not found.", RESOURCE_NOT_FOUND),
}


def refusal(status: int, topic: str, request: web.Request) -> PublishError:
    message, code = REFUSALS[status]
    if status == 404:
        message = f"No HTTP resource was found that matches the request URI '{request.url}'."
    return PublishError(status, f"{message} Topic: {topic}.", code)


def _admin_error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"error": {"code": "BadRequest" if status == 400 else "NotFound", "message": message}}, status=status
    )


def build_app(emulator: EventGridEmulator) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES + 1)
    app.router.add_post(PUBLISH_PATH, emulator.publish)
    app.router.add_get("/eventsubscriptions/{subscription}/validate", emulator.validate)
    app.router.add_get("/admin/events", emulator.admin_events)
    app.router.add_get("/admin/deliveries", emulator.admin_deliveries)
    app.router.add_get("/admin/deadletters", emulator.admin_deadletters)
    app.router.add_get("/admin/requests", emulator.admin_requests)
    app.router.add_get("/admin/config", emulator.admin_config)
    app.router.add_post("/admin/reset", emulator.admin_reset)
    app.router.add_get("/admin/faults", emulator.admin_faults)
    app.router.add_post("/admin/faults", emulator.admin_faults)
    add_clock_routes(app, emulator.clock, on_advance=emulator.dispatcher.run_due)
    return app
