"""Helpers for the Event Grid emulator tests: a recording webhook server, the emulator process and
small admin-API clients. The emulator runs as a real subprocess on a manual clock."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests
from aiohttp import web
from azure.core.credentials import AccessToken

from devhost.procs import Service, start_service

ORIGIN = "eventgrid.azure.net"


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any

    @property
    def event_type(self) -> str | None:
        return self.headers.get("aeg-event-type")


@dataclass
class WebhookServer:
    """An aiohttp webhook on 127.0.0.1 (own thread and loop) that records every request.

    Paths under ``/eg/`` behave like an Event Grid schema handler (echo the validation code),
    paths under ``/ce/`` like a CloudEvents handler (answer the OPTIONS abuse-protection check).
    ``script[path]`` is a list of statuses returned to notifications, one per request (then 200);
    ``manual`` paths answer the validation POST with 200 and no body (manual handshake)."""

    received: list[Received] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    manual: set[str] = field(default_factory=set)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode(errors="replace")
        item = Received(request.method, request.path, dict(request.query), dict(request.headers), body)
        with self._lock:
            self.received.append(item)
            script = self.script.get(request.path)
            status = script.pop(0) if script and item.event_type == "Notification" else 200
        if request.method == "OPTIONS":
            if request.path.startswith("/ce/") and request.headers.get("WebHook-Request-Origin") == ORIGIN:
                return web.Response(status=200, headers={"WebHook-Allowed-Origin": ORIGIN})
            return web.Response(status=405)
        if item.event_type == "SubscriptionValidation":
            if request.path in self.manual:
                return web.Response(status=200)
            code = body[0]["data"]["validationCode"] if isinstance(body, list) else ""
            return web.json_response({"validationResponse": code})
        return web.Response(status=status)

    def start(self) -> WebhookServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="webhook", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def clear(self) -> None:
        with self._lock:
            self.received.clear()
            self.script.clear()
            self.manual.clear()

    def at(self, path: str, event_type: str | None = None, method: str | None = None) -> list[Received]:
        with self._lock:
            return [
                r
                for r in self.received
                if r.path == path
                and (event_type is None or r.event_type == event_type)
                and (method is None or r.method == method)
            ]

    def notifications(self, path: str) -> list[Received]:
        return self.at(path, "Notification")


class FakeTokenCredential:
    """A TokenCredential for bearer auth: the emulator has no Entra ID to check tokens against."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken("local-test-token", int(time.time()) + 3600)


@dataclass
class Emulator:
    service: Service
    state_dir: Path

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def ca(self) -> str:
        return str(self.service.info["ca"])

    def topic(self, name: str) -> dict[str, str]:
        return dict(self.service.info["topics"][name])

    def get(self, path: str, **params: str) -> Any:
        response = requests.get(f"{self.url}{path}", params=params, verify=self.ca, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, **params: str) -> Any:
        response = requests.post(f"{self.url}{path}", params=params, verify=self.ca, timeout=60)
        response.raise_for_status()
        return response.json()

    def now(self) -> datetime:
        """The emulator's (virtual) time: what it checks SAS expiry against."""
        return datetime.fromisoformat(str(self.get("/admin/clock")["now"]).replace("Z", "+00:00"))

    def advance(self, seconds: float) -> None:
        self.post("/admin/clock/advance", seconds=str(seconds))

    def reset(self) -> None:
        self.post("/admin/reset")

    def deliveries(self, subscription: str) -> list[dict[str, Any]]:
        return list(self.get("/admin/deliveries", subscription=subscription)["deliveries"])


# Where the emulator's manual clock starts: a fixed instant (a Monday), not the day the tests run.
CLOCK_START = datetime(2027, 1, 4, 3, 0, tzinfo=timezone.utc)


def start_emulator(tmp: Path, config: dict[str, Any], *, start: datetime = CLOCK_START) -> Emulator:
    config_path = tmp / "eventgrid.json"
    config_path.write_text(json.dumps(config))
    state_dir = tmp / "state"
    service = start_service(
        "eventgrid",
        [
            "emulators.eventgrid",
            "--port",
            "0",
            "--config",
            str(config_path),
            "--state-dir",
            str(state_dir),
            "--manual-clock",
            "--clock-start",
            start.isoformat(),
        ],
        log_dir=tmp / "logs",
        env={"DEVHOST_CLOCK_MODE": "real"},  # a fresh manual clock of its own, not an inherited one
    )
    return Emulator(service, state_dir)


# --- a standard setup shared by the test modules ------------------------------------------------

ORDERS_KEY = "b3JkZXJzLXRvcGljLWtleS1mb3ItbG9jYWwtdGVzdHMh"
CLOUD_KEY = "Y2xvdWQtdG9waWMta2V5LWZvci1sb2NhbC10ZXN0cyEh"


def standard_config(webhook: WebhookServer) -> dict[str, Any]:
    """Two topics (Event Grid schema and CloudEvents) and subscriptions exercising filters,
    batching, retries, dead-lettering and both validation handshakes."""
    return {
        "topics": [
            {"name": "orders", "inputSchema": "EventGridSchema", "key": ORDERS_KEY},
            {"name": "cloud", "inputSchema": "CloudEventSchemaV1_0", "key": CLOUD_KEY},
        ],
        "subscriptions": [
            {
                "name": "eg-all",
                "topic": "orders",
                "endpointUrl": webhook.url("/eg/all?functionName=onOrder&code=local-code"),
            },
            {
                "name": "eg-filtered",
                "topic": "orders",
                "endpointUrl": webhook.url("/eg/filtered"),
                "filter": {
                    "includedEventTypes": ["Backup.Completed"],
                    "subjectBeginsWith": "/vms/",
                    "subjectEndsWith": "/app01",
                },
            },
            {
                "name": "eg-case",
                "topic": "orders",
                "endpointUrl": webhook.url("/eg/case"),
                "filter": {"subjectBeginsWith": "/VMS/", "isSubjectCaseSensitive": True},
            },
            {
                "name": "eg-flaky",
                "topic": "orders",
                "endpointUrl": webhook.url("/eg/flaky"),
                "filter": {"subjectBeginsWith": "/flaky/"},
                "retryPolicy": {"maxDeliveryAttempts": 3, "eventTimeToLiveInMinutes": 1440},
                "deadLetter": "deadletter/eg-flaky.jsonl",
            },
            {
                "name": "eg-ttl",
                "topic": "orders",
                "endpointUrl": webhook.url("/eg/ttl"),
                "filter": {"subjectBeginsWith": "/ttl/"},
                "retryPolicy": {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1},
                "deadLetter": "deadletter/eg-ttl.jsonl",
            },
            {
                "name": "eg-reject",
                "topic": "orders",
                "endpointUrl": webhook.url("/eg/reject"),
                "filter": {"subjectBeginsWith": "/reject/"},
                "deadLetter": "deadletter/eg-reject.jsonl",
            },
            {
                "name": "eg-manual",
                "topic": "orders",
                "endpointUrl": webhook.url("/eg/manual"),
                "filter": {"subjectBeginsWith": "/manual/"},
            },
            {"name": "ce-all", "topic": "cloud", "endpointUrl": webhook.url("/ce/all")},
            {
                "name": "ce-batch",
                "topic": "cloud",
                "endpointUrl": webhook.url("/ce/batch"),
                "maxEventsPerBatch": 10,
                "filter": {"includedEventTypes": ["Batch.Me"]},
            },
        ],
    }


def emulator_fixture_body(tmp: Path) -> Any:
    """Generator body for a module-scoped fixture: yields ``(emulator, webhook)``, with the
    emulator's CA trusted by the SDK through ``REQUESTS_CA_BUNDLE``."""
    import os

    webhook = WebhookServer().start()
    emulator = start_emulator(tmp, standard_config(webhook))
    previous = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = emulator.ca
    try:
        yield emulator, webhook
    finally:
        if previous is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = previous
        emulator.service.stop()
        webhook.stop()
